/**
 * The dashboard's LoRaWAN section in a real browser (Debian's Chromium, driven by playwright-core): the config
 * downlinks the network-server stand-in recorded, and a config refused for its size, as the stack pushes them.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chirpstackUplink, ttsUplink } from '../../cli/lorawan-uplinks.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startStack, type Stack } from '../../local/stack.js';
import { DEBIAN_CHROMIUM, describeWithTools } from '../helpers/interop-tools.js';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let stack: Stack;
let browser: Browser;
let dataDir: string;
let secrets: Record<string, { webhookSecret: string }>;
let fCnt = 1;

describeWithTools('the dashboard\'s LoRaWAN section in Chromium', ['chromium'], () => {
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'iotcore-lorawan-dashboard-'));
    [stack, browser] = await Promise.all([
      startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR' }),
      chromium.launch({ executablePath: DEBIAN_CHROMIUM, args: CHROMIUM_ARGS }),
    ]);
    secrets = JSON.parse(await readFile(stack.lorawan.secretsFile, 'utf8')) as typeof secrets;
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  async function uplinkBoth(): Promise<void> {
    for (const [integration, body, query] of [
      [stack.lorawan.integrations.tts, ttsUplink({ fCnt: fCnt++ }), ''],
      [stack.lorawan.integrations.chirpstack, chirpstackUplink({ fCnt: fCnt++ }), '?event=up'],
    ] as const) {
      const res = await fetch(`${stack.urls.ingest}/lorawan/${integration}${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-webhook-secret': secrets[integration]!.webhookSecret },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(202);
    }
  }

  /** Waits for the relay to have relayed (and noted) everything, then runs the poller. */
  async function poll(): Promise<void> {
    for (const end = Date.now() + 10_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
      const d = await queueDepth(stack.sqs.client, stack.relayQueue.url);
      if (d.waiting === 0 && d.inFlight === 0) break;
    }
    await new Promise((r) => setTimeout(r, 1100));
    await stack.runSchedules();
  }

  describe('the dashboard\'s LoRaWAN section', () => {
    it('lists the downlinks the network servers accepted, and the config refused for its size', async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1200 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(stack.urls.dashboard);
      await page.locator('#link.live').waitFor({ timeout: 10_000 });
      expect(await page.locator('#lorawan').isVisible()).toBe(true);

      await uplinkBoth();
      await poll();
      await page.locator('#lorawan-devices tbody tr', { hasText: 'v1' }).nth(1).waitFor({ timeout: 10_000 });
      await uplinkBoth();
      const rows = page.locator('#lorawan-downlinks tbody tr');
      await rows.nth(1).waitFor({ timeout: 10_000 });
      // Newest first: ChirpStack's, then The Things Stack's.
      expect(await rows.nth(0).locator('td').nth(1).textContent()).toBe('ChirpStack');
      expect(await rows.nth(1).locator('td').nth(1).textContent()).toBe('The Things Stack');
      expect(await rows.nth(1).locator('td').nth(2).textContent()).toBe(stack.lorawan.devices.tts);
      expect(await rows.nth(1).locator('td').nth(4).textContent()).toBe('10');

      const { tts } = stack.lorawan.devices;
      stack.emulator.registry.modifyConfig(stack.registry.registry, tts, Buffer.from(`{"schedule":"${'x'.repeat(80)}"}`).toString('base64'));
      await poll();
      await page.locator('#lorawan-devices tbody tr', { hasText: tts }).locator('td', { hasText: 'v2' }).waitFor({ timeout: 10_000 });
      await uplinkBoth();
      const refused = page.locator('#lorawan-devices tbody tr', { hasText: tts }).locator('td.bad');
      await refused.waitFor({ timeout: 10_000 });
      expect(await refused.textContent()).toBe('v2: config version 2 is 95 bytes; integration ttn-demo sends at most 51 per downlink');
      expect(await rows.count()).toBe(2);
      expect(pageErrors).toEqual([]);
    });
  });
});
