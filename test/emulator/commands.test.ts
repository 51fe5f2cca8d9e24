/**
 * Commands (docs/protocol.md §2, "Commands"): delivered only to a client connected and subscribed when sent,
 * on `/devices/{id}/commands[/{subfolder}]`, at the subscription's QoS; through the admin API's
 * sendCommandToDevice too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { ApiError } from '../../emulator/registry.js';
import { MAX_COMMAND_BYTES } from '../../lib/iotcore/limits.js';
import { collectMessages, makeFleet, nextMessage, publishOutcome, subscribeGranted } from '../helpers/emulator-fixtures.js';
import { deviceConnections } from '../helpers/device-connections.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-2'] }], devices: ['dev-1', 'dev-2'] });
  emulator = await startEmulator({ registry: fleet.document });
});
afterAll(() => emulator.close());

const connected = deviceConnections(() => ({ bridge: emulator, fleet }));

const send = (deviceId: string, subfolder: string | undefined, text: string) =>
  emulator.sendCommand(fleet.registryId, deviceId, subfolder, Buffer.from(text));

describe('sendCommand', () => {
  it('is false for a device that is not connected, or connected but not subscribed', async () => {
    expect(send('dev-1', undefined, 'nobody home')).toBe(false);
    await connected('dev-1');
    expect(send('dev-1', undefined, 'not listening')).toBe(false);
  });

  it('delivers with and without subfolder at the granted QoS, and is true', async () => {
    const c = await connected('dev-1');
    expect(await subscribeGranted(c, { '/devices/dev-1/commands/#': { qos: 1 } })).toEqual([1]);
    const plain = nextMessage(c, '/devices/dev-1/commands');
    expect(send('dev-1', undefined, 'reboot')).toBe(true);
    expect(await plain).toMatchObject({ topic: '/devices/dev-1/commands', qos: 1 });
    const nested = nextMessage(c, '/devices/dev-1/commands/valves/close');
    expect(send('dev-1', 'valves/close', 'now')).toBe(true);
    expect((await nested).payload.toString()).toBe('now');
    // An empty subfolder is no subfolder.
    const empty = nextMessage(c, '/devices/dev-1/commands');
    expect(send('dev-1', '', 'empty')).toBe(true);
    expect((await empty).payload.toString()).toBe('empty');
  });

  it('delivers at QoS 0 to a QoS 0 subscription', async () => {
    const c = await connected('dev-1');
    await c.subscribeAsync('/devices/dev-1/commands/#', { qos: 0 });
    const msg = nextMessage(c, '/devices/dev-1/commands/#');
    expect(send('dev-1', 'x', 'q0')).toBe(true);
    expect((await msg).qos).toBe(0);
  });

  it('reaches a gateway subscribed for an attached device, and no longer after detach', async () => {
    const c = await connected('gw-1');
    expect(await publishOutcome(c, '/devices/dev-2/attach', '{}')).toBe('acked');
    await c.subscribeAsync('/devices/dev-2/commands/#', { qos: 1 });
    const msg = nextMessage(c, '/devices/dev-2/commands/#');
    expect(send('dev-2', 'lights', 'on')).toBe(true);
    expect(await msg).toMatchObject({ topic: '/devices/dev-2/commands/lights' });
    expect(await publishOutcome(c, '/devices/dev-2/detach', '{}')).toBe('acked');
    expect(send('dev-2', 'lights', 'off')).toBe(false);
  });

  it.each([
    ['a + in the subfolder', 'a/+'],
    ['a # in the subfolder', '#'],
    ['an empty level', 'a//b'],
    ['a NUL', 'a\u0000b'],
  ])('refuses %s with INVALID_ARGUMENT', async (_what, subfolder) => {
    expect(() => send('dev-1', subfolder, 'x')).toThrow(ApiError);
    expect(() => send('dev-1', subfolder, 'x')).toThrow(/subfolder/);
  });

  it('refuses a payload over 256 KB', () => {
    expect(() => emulator.sendCommand(fleet.registryId, 'dev-1', undefined, Buffer.alloc(MAX_COMMAND_BYTES + 1))).toThrow(ApiError);
  });
});

describe('subfolder subscriptions', () => {
  it('are refused by default: only /commands/# is supported', async () => {
    const c = await connected('dev-1');
    expect(await subscribeGranted(c, { '/devices/dev-1/commands/valves': { qos: 1 }, '/devices/dev-1/commands': { qos: 0 } })).toEqual([128, 128]);
  });

  it('are accepted with commandSubfolderSubscriptions, and match as MQTT filters', async () => {
    const e = await startEmulator({ registry: fleet.document, adminPort: null, commandSubfolderSubscriptions: true });
    try {
      const c = await connected('dev-1', e);
      expect(await subscribeGranted(c, { '/devices/dev-1/commands/valves/+': { qos: 1 } })).toEqual([1]);
      const seen = collectMessages(c);
      expect(e.sendCommand(fleet.registryId, 'dev-1', 'lights', Buffer.from('no'))).toBe(false);
      const msg = nextMessage(c, '/devices/dev-1/commands/valves/#');
      expect(e.sendCommand(fleet.registryId, 'dev-1', 'valves/close', Buffer.from('yes'))).toBe(true);
      await msg;
      expect(seen.map((m) => m.topic)).toEqual(['/devices/dev-1/commands/valves/close']);
    } finally {
      await connected.closeAll();
      await e.close();
    }
  });
});

it('is what the admin API sendCommandToDevice calls: FAILED_PRECONDITION when nobody listens', async () => {
  const url = `${emulator.adminUrl}/v1/projects/${fleet.project}/locations/${fleet.location}/registries/${fleet.registryId}/devices/dev-1:sendCommandToDevice`;
  const post = (text: string) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ binaryData: Buffer.from(text).toString('base64'), subfolder: 'admin' }) });
  const refused = await post('nobody');
  expect(refused.status).toBe(400);
  expect(await refused.json()).toMatchObject({ error: { status: 'FAILED_PRECONDITION' } });
  const c = await connected('dev-1');
  await c.subscribeAsync('/devices/dev-1/commands/#', { qos: 1 });
  const msg = nextMessage(c, '/devices/dev-1/commands/admin');
  expect((await post('via REST')).status).toBe(200);
  expect((await msg).payload.toString()).toBe('via REST');
});
