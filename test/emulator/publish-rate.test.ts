/**
 * The bridge's rate limits on client PUBLISHes (emulator/publish-rate.ts): PUBLISH packets a second per connection,
 * payload bytes a second per device, and each reaction to an overrun, over a real TLS connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorOptionsFromArgs } from '../../cli/emulator-command.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/index.js';
import { DEFAULT_BRIDGE_OPTIONS, resolveBridgeOptions } from '../../emulator/options.js';
import { RateWindow } from '../../emulator/publish-rate.js';
import { connectDevice, makeFleet, publishOutcome, type Fleet, type PublishOutcome } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeFleet({ devices: ['dev-a', 'dev-b'] });
});

const emulators: Emulator[] = [];
afterAll(() => Promise.all(emulators.map((e) => e.close())));

async function emulatorWith(options: EmulatorOptions): Promise<Emulator> {
  const e = await startEmulator({ registry: fleet.document, adminPort: null, ...options });
  emulators.push(e);
  return e;
}

/** What the bridge recorded of `device`'s events, as text, in arrival order. */
const recorded = (e: Emulator, device: string): string[] =>
  e.registry.events.filter((m) => m.attributes.deviceId === device).map((m) => Buffer.from(m.data, 'base64').toString());

/** Publishes `texts` as QoS 1 events of `device` all at once; each one's outcome, in order. */
async function burst(e: Emulator, device: string, texts: string[]): Promise<PublishOutcome[]> {
  const client = await connectDevice(e, fleet, device);
  try {
    return await Promise.all(texts.map((t) => publishOutcome(client, `/devices/${device}/events`, t)));
  } finally {
    await client.endAsync(true);
  }
}

const texts = (label: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${label}-${i}`);

describe('RateWindow', () => {
  it('fits an amount once what was taken in the second before leaves the window', () => {
    const w = new RateWindow(3);
    for (const at of [0, 100, 200]) w.take(at, 1);
    expect(w.fitsAt(300, 1)).toBe(1000);
    expect(w.fitsAt(1000, 1)).toBe(1000);
    // At 1,100 only the one taken at 200 is still within the second.
    expect(w.fitsAt(1100, 2)).toBe(1100);
    expect(w.fitsAt(1100, 3)).toBe(1200);
  });

  it('lets an amount over the limit on its own through once the window is empty', () => {
    const w = new RateWindow(10);
    expect(w.fitsAt(0, 15)).toBe(0);
    w.take(0, 15);
    expect(w.fitsAt(10, 1)).toBe(1000);
  });

  it('keeps what is taken out of order in time order', () => {
    const w = new RateWindow(2);
    w.take(500, 1);
    w.take(100, 1);
    expect(w.fitsAt(600, 1)).toBe(1100);
  });
});

describe('options', () => {
  it('are off by default, slowing down when set', () => {
    expect(DEFAULT_BRIDGE_OPTIONS).toMatchObject({ connectionMessageRate: 0, deviceByteRate: 0, rateOverrun: 'slow' });
    expect(resolveBridgeOptions({ connectionMessageRate: 100, deviceByteRate: 524_288, rateOverrun: 'close' })).toMatchObject({
      connectionMessageRate: 100,
      deviceByteRate: 524_288,
      rateOverrun: 'close',
    });
  });

  it.each([{ connectionMessageRate: -1 }, { connectionMessageRate: 1.5 }, { deviceByteRate: Number.NaN }, { rateOverrun: 'queue' }])('refuses %j', (bad) => {
    expect(() => resolveBridgeOptions(bad as never)).toThrow(TypeError);
  });

  it('come from the command line', async () => {
    const options = await emulatorOptionsFromArgs(['--connection-message-rate', '100', '--device-byte-rate', '524288', '--rate-overrun', 'drop', '--quiet']);
    expect(options).toMatchObject({ connectionMessageRate: 100, deviceByteRate: 524_288, rateOverrun: 'drop' });
    await expect(emulatorOptionsFromArgs(['--rate-overrun', 'queue'])).rejects.toThrow('--rate-overrun');
    await expect(emulatorOptionsFromArgs(['--connection-message-rate', '-5'])).rejects.toThrow('--connection-message-rate');
  });
});

describe('PUBLISH packets a second per connection', () => {
  it('off by default: a burst of 150 is all recorded and acknowledged', async () => {
    const e = await emulatorWith({});
    const sent = texts('free', 150);
    expect(await burst(e, 'dev-a', sent)).toEqual(sent.map(() => 'acked'));
    expect(recorded(e, 'dev-a')).toEqual(sent);
  });

  it('drop: those over the rate are neither recorded nor acknowledged, and the connection stays up', async () => {
    const e = await emulatorWith({ connectionMessageRate: 5, rateOverrun: 'drop' });
    const sent = texts('drop', 8);
    expect(await burst(e, 'dev-a', sent)).toEqual([...Array(5).fill('acked'), ...Array(3).fill('unacked')]);
    expect(recorded(e, 'dev-a')).toEqual(sent.slice(0, 5));
    // A dropped PUBLISH takes no room: once the second has passed, five more go through.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const again = texts('drop-later', 5);
    expect(await burst(e, 'dev-a', again)).toEqual(again.map(() => 'acked'));
  });

  it('close: the PUBLISH over the rate closes the connection, lastErrorStatus RESOURCE_EXHAUSTED', async () => {
    const e = await emulatorWith({ connectionMessageRate: 5, rateOverrun: 'close' });
    const sent = texts('close', 7);
    expect(await burst(e, 'dev-a', sent)).toEqual([...Array(5).fill('acked'), 'closed', 'closed']);
    expect(recorded(e, 'dev-a')).toEqual(sent.slice(0, 5));
    expect(e.registry.getDevice(fleet.registryId, 'dev-a').lastErrorStatus).toMatchObject({ code: 8, message: expect.stringContaining('5 PUBLISH messages a second') });
  });

  it('slow: every PUBLISH is recorded and acknowledged, in order, at the rate', async () => {
    const e = await emulatorWith({ connectionMessageRate: 5, rateOverrun: 'slow' });
    const sent = texts('slow', 11);
    const started = Date.now();
    expect(await burst(e, 'dev-a', sent)).toEqual(sent.map(() => 'acked'));
    // Five in the first second, five in the second, the eleventh once two seconds have passed.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1950);
    expect(recorded(e, 'dev-a')).toEqual(sent);
  });

  it('counts each connection on its own', async () => {
    const e = await emulatorWith({ connectionMessageRate: 5, rateOverrun: 'drop' });
    const [a, b] = await Promise.all([burst(e, 'dev-a', texts('a', 5)), burst(e, 'dev-b', texts('b', 5))]);
    expect([...a, ...b]).toEqual(Array(10).fill('acked'));
  });
});

describe('payload bytes a second per device', () => {
  const kb = (label: string): string => label.padEnd(400, '.');

  it('drop: the PUBLISH that would go over the byte rate is dropped; another device is not held back', async () => {
    const e = await emulatorWith({ deviceByteRate: 1000, rateOverrun: 'drop' });
    const [a, b] = await Promise.all([burst(e, 'dev-a', ['a1', 'a2', 'a3'].map(kb)), burst(e, 'dev-b', ['b1', 'b2'].map(kb))]);
    expect(a).toEqual(['acked', 'acked', 'unacked']);
    expect(b).toEqual(['acked', 'acked']);
  });

  it('close: the connection closes with the device named', async () => {
    const e = await emulatorWith({ deviceByteRate: 1000, rateOverrun: 'close' });
    expect(await burst(e, 'dev-a', ['a1', 'a2', 'a3'].map(kb))).toEqual(['acked', 'acked', 'closed']);
    expect(e.registry.getDevice(fleet.registryId, 'dev-a').lastErrorStatus?.message).toContain('1000 bytes a second for dev-a');
  });

  it('slow: the third waits until the first has left the second', async () => {
    const e = await emulatorWith({ deviceByteRate: 1000, rateOverrun: 'slow' });
    const started = Date.now();
    expect(await burst(e, 'dev-a', ['a1', 'a2', 'a3'].map(kb))).toEqual(['acked', 'acked', 'acked']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });
});
