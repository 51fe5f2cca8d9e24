/**
 * The dashboard in a real browser (Debian's Chromium, driven by playwright-core): a reading posted to the HTTP
 * API shows up on the page, pushed by the stack's event stream; readings of a device the gateway cannot attach show
 * up as dead letters with their reason, and the replay button sends them to the bridge once the device is bound.
 * Screenshots are kept in test-artifacts/.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot, startStack, type Stack } from '../../local/stack.js';
import { DEBIAN_CHROMIUM, describeWithTools } from '../helpers/interop-tools.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describeWithTools('the dashboard in Chromium', ['chromium'], () => {
  let stack: Stack;
  let browser: Browser;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'iotcore-dashboard-'));
    [stack, browser] = await Promise.all([
      startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR' }),
      chromium.launch({ executablePath: DEBIAN_CHROMIUM, args: CHROMIUM_ARGS }),
    ]);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  describe('the dashboard', () => {
    it('shows a reading posted over HTTP as it reaches the bridge', async () => {
      // Prepare
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(stack.urls.dashboard);
      await page.locator('#link.live').waitFor({ timeout: 10_000 });
      const marker = randomUUID();

      // Act
      const res = await fetch(`${stack.urls.ingest}/devices/pump-0001/events/readings`, {
        method: 'POST',
        headers: { authorization: `Device-Key ${stack.deviceKey('pump-0001')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ temperature: 21.5, marker }),
      });
      const row = page.locator('#readings tbody tr', { hasText: marker });
      await row.waitFor({ timeout: 15_000 });
      // The batch and the device's last event come with the same push or the next.
      await page.locator('#batches tbody tr', { hasText: 'gw-1' }).first().waitFor({ timeout: 5_000 });

      // Assess
      expect(res.status).toBe(202);
      expect(await row.locator('td').nth(1).textContent()).toBe('pump-0001');
      expect(await row.locator('td').nth(2).textContent()).toBe('readings');
      expect(await row.locator('td').nth(3).textContent()).toBe('gw-1');
      expect(await page.locator('#devices tbody tr', { hasText: 'pump-0001' }).locator('td').nth(3).textContent()).toMatch(/s ago$/);
      expect(await page.locator('#http tbody tr', { hasText: '/devices/pump-0001/events/readings' }).locator('td').nth(2).textContent()).toBe('202');
      expect(await page.locator('#chart polyline').count()).toBe(3);
      expect(pageErrors).toEqual([]);

      const artifacts = join(projectRoot(), 'test-artifacts');
      await mkdir(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
    });
  });

  it('lists dead letters with device, code, reason and age, and replays them with the button once the device is bound', async () => {
    // Prepare: orphan-0001 has a valid device key but is not in the bridge's registry.
    const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(stack.urls.dashboard);
    await page.locator('#link.live').waitFor({ timeout: 10_000 });
    const markers = [randomUUID(), randomUUID()];
    for (const marker of markers) {
      const res = await fetch(`${stack.urls.ingest}/devices/orphan-0001/events`, {
        method: 'POST',
        headers: { authorization: `Device-Key ${stack.deviceKey('orphan-0001')}` },
        body: JSON.stringify({ marker }),
      });
      expect(res.status).toBe(202);
    }
    const rows = page.locator('#dead-letters tbody tr', { hasText: 'orphan-0001' });
    await expect.poll(() => page.locator('#dead-letters tbody tr[data-message-id]').count(), { timeout: 15_000, interval: 100 }).toBe(2);
    const batch = page.locator('#batches tbody tr', { hasText: 'dead-lettered' }).first();
    await batch.waitFor({ timeout: 5_000 });

    // Assess the panel and the batch row
    const cells = rows.first().locator('td');
    expect(await cells.nth(0).textContent()).toMatch(/^\d+ (s|min)$/);
    expect(await cells.nth(1).textContent()).toBe('orphan-0001');
    expect(await cells.nth(2).textContent()).toBe('ERR_ATTACH_REJECTED');
    expect(await cells.nth(3).textContent()).toContain('GATEWAY_ATTACHMENT_ERROR');
    expect(await page.locator('#dead-letters-total').textContent()).toBe('2 in the queue');
    expect(await batch.locator('td').nth(3).getAttribute('class')).toBe('bad');
    expect(await batch.locator('td').nth(3).textContent()).toMatch(/dead-lettered: ERR_ATTACH_REJECTED( ×2)? \(orphan-0001\)/);
    // The gateway's last session says the same, not "succeeded".
    expect(await page.locator('#gateways tbody tr', { hasText: 'gw-1' }).locator('td').nth(4).textContent()).toMatch(/dead-lettered: ERR_ATTACH_REJECTED/);
    await page.screenshot({ path: join(artifacts(), 'dashboard-dead-letters.png'), fullPage: true });

    // Act: bind the device through the admin API, then press the button.
    const registry = `${stack.urls.admin}/v1/projects/${stack.registry.project}/locations/${stack.registry.location}/registries/${stack.registry.registry}`;
    for (const [path, body] of [['/devices', { id: 'orphan-0001' }], [':bindDeviceToGateway', { gatewayId: 'gw-1', deviceId: 'orphan-0001' }]] as const) {
      const res = await fetch(`${registry}${path}`, { method: 'POST', body: JSON.stringify(body) });
      expect(res.status).toBe(200);
    }
    await page.locator('#replay').click();
    await page.locator('#replay-result', { hasText: 'replayed 2' }).waitFor({ timeout: 10_000 });
    for (const marker of markers) await page.locator('#readings tbody tr', { hasText: marker }).waitFor({ timeout: 15_000 });
    await page.locator('#dead-letters tbody td.empty').waitFor({ timeout: 10_000 });

    // Assess
    expect(await page.locator('#dead-letters-total').textContent()).toBe('0 in the queue');
    expect(await page.locator('#replay').isDisabled()).toBe(true);
    expect(pageErrors).toEqual([]);
    await page.screenshot({ path: join(artifacts(), 'dashboard-replayed.png'), fullPage: true });
  });
});

function artifacts(): string {
  return join(projectRoot(), 'test-artifacts');
}
