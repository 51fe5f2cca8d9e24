/**
 * Late errors (BridgeOptions `lateErrorsMs`, `lateErrorsJitterMs`, `lateErrorsPastDetach`): errors-topic messages
 * held back behind the PUBACKs, over a raw MQTT session so that the order of every packet on the wire is seen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/index.js';
import { resolveBridgeOptions } from '../../emulator/options.js';
import { makeFleet, rawConnectPacket, rawSession, type Fleet, type RawSession } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
const started: Emulator[] = [];

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-1'] }], devices: ['dev-1', 'dev-unbound'] });
});
afterAll(async () => {
  for (const e of started) await e.close();
});

async function emulatorWith(options: EmulatorOptions): Promise<Emulator> {
  const e = await startEmulator({ registry: fleet.document, adminPort: null, ...options });
  started.push(e);
  return e;
}

/** gw-1 connected and subscribed to its errors topic. */
async function gateway(e: Emulator): Promise<RawSession> {
  const raw = await rawSession(e);
  raw.send(await rawConnectPacket(fleet, 'gw-1'));
  expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-1/errors', qos: 0 }] });
  expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [0] });
  return raw;
}

const publish = (topic: string, messageId: number, payload = '{}'): Packet => ({ cmd: 'publish', topic, messageId, qos: 1, payload: Buffer.from(payload), retain: false, dup: false });

/** Reads `n` packets, each as what it is and when it came (ms after `since`). */
async function read(raw: RawSession, n: number, since: number): Promise<{ what: string; atMs: number }[]> {
  const seen: { what: string; atMs: number }[] = [];
  for (let i = 0; i < n; i++) {
    const p = await raw.next();
    const what = p.cmd === 'puback' ? `puback ${p.messageId}` : p.cmd === 'publish' ? `error ${String(JSON.parse(String(p.payload))['error_type'])}` : p.cmd;
    seen.push({ what, atMs: Date.now() - since });
  }
  return seen;
}

describe('lateErrorsMs', () => {
  it('is off by default: an error comes before the PUBACKs of the packets behind it', async () => {
    const e = await emulatorWith({ ackFailedAttach: true });
    const raw = await gateway(e);
    raw.sendTogether(publish('/devices/dev-unbound/attach', 2), publish('/devices/dev-1/attach', 3));
    expect((await read(raw, 3, Date.now())).map((s) => s.what)).toEqual(['error GATEWAY_ATTACHMENT_ERROR', 'puback 2', 'puback 3']);
    raw.end();
  });

  it('holds the error back behind the PUBACK of its own packet and of later ones', async () => {
    const e = await emulatorWith({ ackFailedAttach: true, lateErrorsMs: 150 });
    const raw = await gateway(e);
    const sent = Date.now();
    raw.sendTogether(publish('/devices/dev-unbound/attach', 2), publish('/devices/dev-1/attach', 3), publish('/devices/dev-1/events', 4, 'x'));
    const seen = await read(raw, 4, sent);
    expect(seen.map((s) => s.what)).toEqual(['puback 2', 'puback 3', 'puback 4', 'error GATEWAY_ATTACHMENT_ERROR']);
    expect(seen[2]!.atMs).toBeLessThan(100);
    expect(seen[3]!.atMs).toBeGreaterThanOrEqual(145);
    // Recorded when it happened, whatever its delivery.
    expect(e.registry.errors.at(-1)).toMatchObject({ gatewayId: 'gw-1', delivered: true, payload: { error_type: 'GATEWAY_ATTACHMENT_ERROR' } });
    raw.end();
  });

  /** An event of dev-1, which is not attached (GATEWAY_DEVICE_NOT_FOUND, no PUBACK), then its detach. */
  async function eventThenDetach(options: EmulatorOptions): Promise<{ what: string; atMs: number }[]> {
    const raw = await gateway(await emulatorWith(options));
    const sent = Date.now();
    raw.sendTogether(publish('/devices/dev-1/events', 2, 'x'), publish('/devices/dev-1/detach', 3));
    const seen = await read(raw, 2, sent);
    raw.end();
    return seen;
  }

  it('sends what is held ahead of a detach PUBACK', async () => {
    const seen = await eventThenDetach({ lateErrorsMs: 2_000 });
    expect(seen.map((s) => s.what)).toEqual(['error GATEWAY_DEVICE_NOT_FOUND', 'puback 3']);
    expect(seen[1]!.atMs).toBeLessThan(1_000);
  });

  it('sends what is held ahead of a detach PUBACK on an MQTT 5.0 connection too', async () => {
    const e = await emulatorWith({ lateErrorsMs: 2_000, mqtt5: true });
    const raw = await rawSession(e, 5);
    raw.send(await rawConnectPacket(fleet, 'gw-1', { protocolVersion: 5 }));
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: '/devices/gw-1/errors', qos: 0, nl: false, rap: false, rh: 0 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'connack', reasonCode: 0 });
    expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [0] });
    const sent = Date.now();
    raw.sendTogether(publish('/devices/dev-1/events', 2, 'x'), publish('/devices/dev-1/detach', 3));
    // On 5.0 the refused event gets its own PUBACK with a reason code; the held error still precedes the detach's.
    const seen = await read(raw, 3, sent);
    raw.end();
    expect(seen.map((s) => s.what)).toEqual(['puback 2', 'error GATEWAY_DEVICE_NOT_FOUND', 'puback 3']);
    expect(seen[2]!.atMs).toBeLessThan(1_000);
  });

  it('with lateErrorsPastDetach, lets the error follow the detach PUBACK', async () => {
    const seen = await eventThenDetach({ lateErrorsMs: 150, lateErrorsPastDetach: true });
    expect(seen.map((s) => s.what)).toEqual(['puback 3', 'error GATEWAY_DEVICE_NOT_FOUND']);
    expect(seen[1]!.atMs).toBeGreaterThanOrEqual(145);
  });

  it('adds up to lateErrorsJitterMs to each delay', async () => {
    const e = await emulatorWith({ lateErrorsMs: 50, lateErrorsJitterMs: 100 });
    const raw = await gateway(e);
    const sent = Date.now();
    raw.sendTogether(...[2, 3, 4, 5, 6].map((id) => publish('/devices/dev-1/events', id, 'x')));
    const seen = await read(raw, 5, sent);
    for (const s of seen) {
      expect(s.what).toBe('error GATEWAY_DEVICE_NOT_FOUND');
      expect(s.atMs).toBeGreaterThanOrEqual(45);
      expect(s.atMs).toBeLessThan(400);
    }
    // Each message draws its own extra delay: five draws from 0..100 ms do not all land within 5 ms of each other
    // (odds about 1 in 30,000), as five fixed delays would.
    const times = seen.map((s) => s.atMs);
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(5);
    raw.end();
  });

  it('loses what is held when the connection ends first, but records it', async () => {
    const lines: string[] = [];
    const e = await emulatorWith({ lateErrorsMs: 300, lateErrorsPastDetach: true, log: (line) => lines.push(line) });
    const raw = await gateway(e);
    raw.sendTogether(publish('/devices/dev-1/events', 2, 'x'), publish('/devices/dev-1/detach', 3));
    expect(await raw.next()).toMatchObject({ cmd: 'puback', messageId: 3 });
    const before = e.registry.errors.length;
    raw.send({ cmd: 'disconnect' });
    await raw.closed;
    await new Promise((r) => setTimeout(r, 400));
    expect(e.registry.errors.length).toBe(before);
    expect(e.registry.errors.at(-1)).toMatchObject({ payload: { error_type: 'GATEWAY_DEVICE_NOT_FOUND' } });
    expect(lines.some((l) => l.includes('1 late errors-topic message(s) never sent'))).toBe(true);
  });
});

describe('options', () => {
  it('are off by default and checked', () => {
    expect(resolveBridgeOptions()).toMatchObject({ lateErrorsMs: 0, lateErrorsJitterMs: 0, lateErrorsPastDetach: false });
    expect(() => resolveBridgeOptions({ lateErrorsMs: -1 })).toThrow(/lateErrorsMs/);
    expect(() => resolveBridgeOptions({ lateErrorsJitterMs: Number.NaN })).toThrow(/lateErrorsJitterMs/);
    expect(() => resolveBridgeOptions({ lateErrorsPastDetach: 'yes' as unknown as boolean })).toThrow(/lateErrorsPastDetach/);
  });
});
