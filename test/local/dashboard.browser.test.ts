/**
 * The dashboard in a real browser (Debian's Chromium, driven by playwright-core): a reading posted to the HTTP
 * API shows up on the page, pushed by the stack's event stream. A screenshot is kept in test-artifacts/.
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
});
