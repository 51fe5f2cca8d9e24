/**
 * Dead letters end to end on the local stack, over real sockets: readings of a device the bridge will not attach
 * through the gateway (the simulator's unregistered device, and one registered but not bound) are dead-lettered by
 * the relay with their reason;
 * the terminal line and the dashboard say so; `iotcore-relay dlq list` shows device, code and reason; once the
 * devices are bound through the emulator's admin API, `dlq replay` moves them back and they reach the bridge, exactly
 * once, leaving the dead-letter queue empty. A record refused for its content is skipped unless forced, and a dry
 * run changes nothing.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dlqCommand } from '../../cli/dlq-command.js';
import type { DashboardState } from '../../local/dashboard-feed.js';
import { DeviceSimulator } from '../../local/device-simulator.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startStack, type Stack } from '../../local/stack.js';
import { until as waitUntil } from '../helpers/until.js';

let stack: Stack;
let dataDir: string;
const lines: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-dead-letters-'));
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR', log: (line) => lines.push(line) });
});

afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** This file's waits: up to 15,000 ms, polling every 100 ms. */
const until = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> =>
  waitUntil(what, probe, timeoutMs, 100);

interface Run {
  code: number;
  out: string;
  err: string;
}

/** `iotcore-relay dlq ...` against this stack's SQS server, its output captured. */
async function dlq(...argv: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const code = await dlqCommand([...argv, '--endpoint', stack.urls.sqs], { out: (t) => void (out += t), err: { write: (t: string) => (err += t) } });
  return { code, out, err };
}

interface ListedJson {
  messageId: string;
  deviceId?: string;
  code?: string;
  reason: string;
  type: string;
  ageSeconds: number;
  wouldFailAgain?: string;
}

async function listed(...filters: string[]): Promise<ListedJson[]> {
  const run = await dlq('list', '--json', ...filters);
  expect(run.code).toBe(0);
  return run.out.trim() === '' ? [] : run.out.trim().split('\n').map((l) => JSON.parse(l) as ListedJson);
}

async function post(deviceId: string, marker: string): Promise<number> {
  const res = await fetch(`${stack.urls.ingest}/devices/${deviceId}/events`, {
    method: 'POST',
    headers: { authorization: `Device-Key ${stack.deviceKey(deviceId)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ marker }),
  });
  return res.status;
}

const readingsWith = (marker: string) => stack.emulator.registry.events.filter((e) => Buffer.from(e.data, 'base64').toString('utf8').includes(marker));
const depth = async (url: string): Promise<number> => {
  const d = await queueDepth(stack.sqs.client, url);
  return d.waiting + d.inFlight;
};
const admin = (): string => `${stack.urls.admin}/v1/projects/${stack.registry.project}/locations/${stack.registry.location}/registries/${stack.registry.registry}`;

async function adminPost(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${admin()}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
}

async function dashboardState(): Promise<DashboardState> {
  return (await (await fetch(`${stack.urls.dashboard}/api/state`)).json()) as DashboardState;
}

describe('dead letters on the local stack', () => {
  it('shows readings of devices the gateway cannot attach as dead letters with reasons, and replays them once the devices are bound', async () => {
    // Prepare: lost-0001 is registered but bound to no gateway; the simulator's bad device, ghost-0001, is not
    // registered at all (what `npm start -- --simulate` posts about one time in thirty).
    await adminPost('/devices', { id: 'lost-0001' });
    const simulator = new DeviceSimulator({ ingestUrl: stack.urls.ingest, devices: ['pump-0003'], deviceKey: (id) => stack.deviceKey(id) });
    const markers = { lost: [randomUUID(), randomUUID()], pump: randomUUID() };
    await Promise.all([simulator.post('pump-0003', 'unregistered'), simulator.post('pump-0003', 'unregistered')]);
    const statuses = [...(await Promise.all(markers.lost.map((m) => post('lost-0001', m)))), await post('pump-0001', markers.pump)];
    const ghostReadings = () => stack.emulator.registry.events.filter((e) => e.attributes.deviceId === 'ghost-0001');
    await until('4 dead letters', async () => ((await depth(stack.deadLetterQueue.url)) === 4 ? true : undefined));
    await until('the good reading at the bridge', () => (readingsWith(markers.pump).length === 1 ? true : undefined));
    const panel = await until('the dashboard panel with the 4 dead letters', async () => {
      const d = (await dashboardState()).deadLetters;
      return d?.total === 4 ? d : undefined;
    });
    const batches = (await dashboardState()).batches;

    // Act 1: list, and a dry run of the replay.
    const all = await listed();
    const lost = await listed('--code', 'ERR_ATTACH_*', '--device', 'lost-*');
    const dry = await dlq('replay', '--dry-run');
    const afterDry = await listed();

    // Assess 1
    expect(simulator.stats()).toMatchObject({ sent: 2, accepted: 2 });
    expect(statuses).toEqual([202, 202, 202]);
    // The terminal says what became of the records, not "deleted".
    const relayLines = lines.filter((l) => l.startsWith('relay '));
    expect(relayLines.join('\n')).toMatch(/dead-lettered: ERR_ATTACH_REJECTED ×\d \((ghost-0001|lost-0001)/);
    expect(relayLines.join('\n')).not.toMatch(/\d+ deleted/);
    expect(relayLines.some((l) => /\d+ confirmed/.test(l))).toBe(true);
    const dashboardDeadLettered = batches.reduce((n, b) => n + (b.summary?.deadLettered ?? 0), 0);
    expect(dashboardDeadLettered).toBe(4);
    expect(batches.filter((b) => (b.summary?.deadLettered ?? 0) > 0).every((b) => b.summary!.tone === 'bad' && b.summary!.text.includes('ERR_ATTACH_REJECTED'))).toBe(true);
    // The panel: device, code, reason, age.
    expect(panel.items.map((i) => i.deviceId).sort()).toEqual(['ghost-0001', 'ghost-0001', 'lost-0001', 'lost-0001']);
    for (const item of panel.items) {
      expect(item.code).toBe('ERR_ATTACH_REJECTED');
      expect(item.reason).toContain('GATEWAY_ATTACHMENT_ERROR');
      expect(Date.parse(item.at)).toBeGreaterThan(Date.now() - 60_000);
      expect(item.permanent).toBeUndefined();
    }
    // dlq list: the same, from the queue itself.
    expect(all.map((d) => d.deviceId).sort()).toEqual(['ghost-0001', 'ghost-0001', 'lost-0001', 'lost-0001']);
    expect(all.every((d) => d.code === 'ERR_ATTACH_REJECTED' && d.type === 'event' && d.ageSeconds < 60)).toBe(true);
    expect(all.find((d) => d.deviceId === 'ghost-0001')!.reason).toMatch(/ghost-0001.*(not|no device)/);
    expect(all.find((d) => d.deviceId === 'lost-0001')!.reason).toMatch(/lost-0001/);
    expect(lost.map((d) => d.deviceId)).toEqual(['lost-0001', 'lost-0001']);
    // The dry run changed nothing.
    expect(dry.code).toBe(0);
    expect(dry.out.match(/^would replay +(ghost|lost)-0001 +ERR_ATTACH_REJECTED +to group gw-1$/gm)).toHaveLength(4);
    expect(dry.out).toContain('would replay 4');
    expect(afterDry.map((d) => d.messageId).sort()).toEqual(all.map((d) => d.messageId).sort());
    expect(await depth(stack.relayQueue.url)).toBe(0);
    expect(markers.lost.flatMap(readingsWith)).toEqual([]);
    expect(ghostReadings()).toEqual([]);

    // Act 2: bind the devices through the admin API, then replay.
    await adminPost('/devices', { id: 'ghost-0001' });
    await adminPost(':bindDeviceToGateway', { gatewayId: 'gw-1', deviceId: 'ghost-0001' });
    await adminPost(':bindDeviceToGateway', { gatewayId: 'gw-1', deviceId: 'lost-0001' });
    const replayed = await dlq('replay');
    await until('the replayed readings at the bridge', () => (markers.lost.every((m) => readingsWith(m).length > 0) && ghostReadings().length >= 2 ? true : undefined));
    // Two more polls of the queue by the event source, for a duplicate to show up if there were one.
    await new Promise((r) => setTimeout(r, 2500));

    // Assess 2
    expect(replayed.code).toBe(0);
    expect(replayed.out).toContain('replayed 4');
    for (const m of markers.lost) expect(readingsWith(m)).toHaveLength(1);
    expect(ghostReadings()).toHaveLength(2);
    expect(new Set(ghostReadings().map((e) => JSON.parse(Buffer.from(e.data, 'base64').toString('utf8')).seq))).toEqual(new Set([1, 2]));
    expect(ghostReadings()[0]!.attributes).toMatchObject({ deviceId: 'ghost-0001', gatewayId: 'gw-1', subFolder: 'readings' });
    expect(await listed()).toEqual([]);
    expect(await depth(stack.deadLetterQueue.url)).toBe(0);
    expect(await depth(stack.relayQueue.url)).toBe(0);
    expect(lines.filter((l) => l.startsWith('relay ')).at(-1)).toMatch(/4 records?: 4 confirmed/);
    const emptied = await until('the panel emptied', async () => {
      const d = (await dashboardState()).deadLetters;
      return d?.total === 0 ? d : undefined;
    });
    expect(emptied.items).toEqual([]);
  });

  it('skips a record refused for its content unless forced, and the relay parks it again', async () => {
    // Prepare: a producer writing to the queue directly (the ingest would have refused this body).
    const body = JSON.stringify({ v: 1, deviceId: 'pump-0002', encoding: 'base64', payload: `%%${randomUUID()}` });
    await stack.sqs.client.send(new SendMessageCommand({ QueueUrl: stack.relayQueue.url, MessageBody: body, MessageGroupId: 'gw-1', MessageDeduplicationId: randomUUID() }));
    const [parked] = await until('the dead letter', async () => {
      const l = await listed();
      return l.length === 1 ? l : undefined;
    });

    // Act
    const skipped = await dlq('replay');
    const stillThere = await listed();
    const forcedDry = await dlq('replay', '--force', '--dry-run');
    const forced = await dlq('replay', '--force');
    const [parkedAgain] = await until('the record parked again', async () => {
      const l = await listed();
      return l.length === 1 && l[0]!.messageId !== parked!.messageId ? l : undefined;
    });

    // Assess
    expect(parked).toMatchObject({ deviceId: 'pump-0002', code: 'ERR_INVALID_BASE64', wouldFailAgain: 'ERR_INVALID_BASE64' });
    expect(skipped.code).toBe(0);
    expect(skipped.out).toMatch(/^skipped\s+pump-0002\s+ERR_INVALID_BASE64\s+would fail again/m);
    expect(skipped.out).toContain('replayed 0; skipped 1 that would fail again (ERR_INVALID_BASE64; --force replays them)');
    expect(stillThere.map((d) => d.messageId)).toEqual([parked!.messageId]);
    expect(forcedDry.out).toContain('would replay 1');
    expect(forced.out).toContain('replayed 1');
    expect(parkedAgain).toMatchObject({ deviceId: 'pump-0002', code: 'ERR_INVALID_BASE64' });
  });
});
