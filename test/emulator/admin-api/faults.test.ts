/**
 * The fault routes of the admin API (/emulator/faults, /emulator/connections/{client}:kick) over real HTTP, against a
 * running emulator, each fault shown to act on a real MQTT connection over TLS.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdminHandler } from '../../../emulator/admin-api.js';
import { startEmulator } from '../../../emulator/index.js';
import type { Emulator } from '../../../emulator/index.js';
import { Registry } from '../../../emulator/registry.js';
import { deviceConnections } from '../../helpers/device-connections.js';
import { closed, connackCode, makeFleet, publishOutcome } from '../../helpers/emulator-fixtures.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['dev-1'] }], devices: ['dev-1', 'dev-2'] });
  emulator = await startEmulator({ registry: fleet.document, adminPort: 0 });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

const connected = deviceConnections(() => ({ bridge: emulator, fleet }));

interface Reply {
  status: number;
  headers: Headers;
  /** Parsed JSON of several shapes, indexed freely by the assertions. */
  body: any;
}

async function call(method: string, path: string, body?: unknown, origin = emulator.adminUrl!): Promise<Reply> {
  const res = await fetch(`${origin}${path}`, {
    method,
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? undefined : JSON.parse(text) };
}

const NONE = { latencyMs: 0, withholdPuback: [], dropPublish: [] };

describe('GET, PATCH and DELETE /emulator/faults', () => {
  it('lists none at start, sets some that a real connection then meets, and clears them all', async () => {
    expect(await call('GET', '/emulator/faults')).toMatchObject({ status: 200, body: NONE });

    const set = await call('PATCH', '/emulator/faults', { withholdPuback: ['/devices/+/events/#'], latencyMs: 150 });
    expect(set).toMatchObject({ status: 200, body: { latencyMs: 150, withholdPuback: ['/devices/+/events/#'], dropPublish: [] } });
    expect((await call('GET', '/emulator/faults')).body).toEqual(set.body);
    expect(emulator.faults).toMatchObject(set.body);

    const c = await connected('dev-1');
    const before = emulator.registry.events.length;
    let t = Date.now();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'recorded, never acknowledged')).toBe('unacked');
    expect(Date.now() - t).toBeGreaterThanOrEqual(140);
    expect(emulator.registry.events.length).toBe(before + 1);

    expect(await call('DELETE', '/emulator/faults')).toMatchObject({ status: 200, body: NONE });
    expect((await call('GET', '/emulator/faults')).body).toEqual(NONE);
    t = Date.now();
    expect(await publishOutcome(c, '/devices/dev-1/events', 'acknowledged again', { barrier: false })).toBe('acked');
    expect(Date.now() - t).toBeLessThan(140);
  });

  it('changes only the faults a PATCH names; null turns one off; snake_case is taken', async () => {
    await call('PATCH', '/emulator/faults', { dropPublish: ['/devices/dev-2/state'], close_at_phase: 'detach', latency_ms: 20 });
    expect(emulator.faults).toMatchObject({ dropPublish: ['/devices/dev-2/state'], closeAtPhase: 'detach', latencyMs: 20 });

    const answer = await call('PATCH', '/emulator/faults', { closeAtPhase: null, dropPublish: null, withholdPuback: ['/devices/+/attach'] });
    expect(answer.body).toEqual({ latencyMs: 20, withholdPuback: ['/devices/+/attach'], dropPublish: [] });
    expect((await call('PATCH', '/emulator/faults', { latencyMs: null })).body).toEqual({ ...NONE, withholdPuback: ['/devices/+/attach'] });
    // An empty body changes nothing and answers the faults in force.
    expect((await call('PATCH', '/emulator/faults')).body).toEqual({ ...NONE, withholdPuback: ['/devices/+/attach'] });
  });

  it('refuseConnect set over REST answers a real CONNECT with that code until cleared', async () => {
    await call('PATCH', '/emulator/faults', { refuseConnect: 3 });
    expect(await connackCode(emulator, fleet, 'dev-2')).toBe(3);
    await call('PATCH', '/emulator/faults', { refuseConnect: null });
    expect(await connackCode(emulator, fleet, 'dev-2')).toBe(0);
  });

  it('closeAfterPackets set over REST closes a real connection after that many packets', async () => {
    await call('PATCH', '/emulator/faults', { closeAfterPackets: 2 });
    const c = await connected('dev-1');
    expect(await publishOutcome(c, '/devices/dev-1/events', 'the second packet', { barrier: false })).toBe('acked');
    await closed(c);
  });

  it.each([
    ['an unknown fault', { latency: 5 }, /unknown fault "latency"; the faults are latencyMs, withholdPuback, dropPublish, closeAfterPackets, closeAtPhase, refuseConnect, closeAtPhaseOnce/],
    ['a fault named twice', { closeAtPhase: 'attach', close_at_phase: 'detach' }, /fault "closeAtPhase" is set twice/],
    ['a negative latency', { latencyMs: -1 }, /latencyMs must be a non-negative number/],
    ['a latency as text', { latencyMs: '5' }, /latencyMs must be a non-negative number/],
    ['a filter list that is no list', { withholdPuback: '/devices/+/events' }, /withholdPuback must be an array of topic filters/],
    ['a filter MQTT does not allow', { dropPublish: ['/devices/#/x'] }, /dropPublish: "\/devices\/#\/x" uses '#' other than as the whole last level/],
    ['a filter that is no string', { dropPublish: [5] }, /dropPublish: 5 must be a non-empty string/],
    ['closeAfterPackets 0', { closeAfterPackets: 0 }, /closeAfterPackets must be a positive integer/],
    ['an unknown phase', { closeAtPhase: 'teardown' }, /closeAtPhase must be one of connect, subscribe, attach, publish, detach/],
    ['a CONNACK code out of range', { refuseConnect: 6 }, /refuseConnect must be a CONNACK refusal code 1 to 5/],
    ['a fire-once that is no boolean', { closeAtPhase: 'attach', closeAtPhaseOnce: 'yes' }, /closeAtPhaseOnce must be true or false/],
    ['a fire-once without its phase', { closeAtPhaseOnce: true }, /closeAtPhaseOnce goes with a closeAtPhase set in the same call/],
    ['a fire-once with its phase cleared', { closeAtPhase: null, closeAtPhaseOnce: true }, /closeAtPhaseOnce goes with a closeAtPhase/],
    ['a list for a body', [{ latencyMs: 5 }], /the body must be a JSON object of faults/],
    ['a body that is not JSON', '{"latencyMs": ', /request body is not valid JSON/],
  ])('refuses %s with 400 INVALID_ARGUMENT, changing nothing', async (_what, body, message) => {
    emulator.setFaults({ latencyMs: 7 });
    const answer = await call('PATCH', '/emulator/faults', body);
    expect(answer.status).toBe(400);
    expect(answer.body).toEqual({ error: { code: 400, status: 'INVALID_ARGUMENT', message: expect.stringMatching(message) } });
    expect((await call('GET', '/emulator/faults')).body).toEqual({ ...NONE, latencyMs: 7 });
  });

  it('answers another method with 405 and the methods it has', async () => {
    const answer = await call('POST', '/emulator/faults', {});
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('GET, PATCH, DELETE');
  });
});

describe('closeAtPhase over REST', () => {
  it('fire-once: closes the first attach on a real connection, clears itself, and lets the next ones through', async () => {
    const set = await call('PATCH', '/emulator/faults', { closeAtPhase: 'attach', closeAtPhaseOnce: true });
    expect(set.body).toEqual({ ...NONE, closeAtPhase: 'attach', closeAtPhaseOnce: true });

    const first = await connected('gw-1');
    expect(await publishOutcome(first, '/devices/dev-1/attach', '{}')).toBe('closed');
    expect((await call('GET', '/emulator/faults')).body).toEqual(NONE);

    for (let i = 0; i < 2; i++) {
      const next = await connected('gw-1');
      expect(await publishOutcome(next, '/devices/dev-1/attach', '{}')).toBe('acked');
      expect(await publishOutcome(next, '/devices/dev-1/events', `after the fault, ${i}`)).toBe('acked');
    }
  });

  it('persistent: closes every connection at that phase, also when it replaces a fire-once one', async () => {
    await call('PATCH', '/emulator/faults', { closeAtPhase: 'detach', closeAtPhaseOnce: true });
    expect((await call('PATCH', '/emulator/faults', { closeAtPhase: 'attach' })).body).toEqual({ ...NONE, closeAtPhase: 'attach' });
    for (let i = 0; i < 2; i++) {
      const c = await connected('gw-1');
      expect(await publishOutcome(c, '/devices/dev-1/attach', '{}')).toBe('closed');
    }
    expect((await call('GET', '/emulator/faults')).body).toEqual({ ...NONE, closeAtPhase: 'attach' });
  });
});

describe('POST /emulator/connections/{client}:kick', () => {
  it('closes a live connection named by device ID or by its percent-encoded client ID, as a takeover would', async () => {
    const byDevice = await connected('dev-2');
    const takeovers = emulator.takeovers;
    expect(await call('POST', '/emulator/connections/dev-2:kick')).toMatchObject({ status: 200, body: {} });
    await closed(byDevice);
    expect(emulator.takeovers).toBe(takeovers);
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-2').lastErrorStatus?.code).toBe(6);

    const byClientId = await connected('dev-2');
    expect(await call('POST', `/emulator/connections/${encodeURIComponent(fleet.clientId('dev-2'))}%3Akick`)).toMatchObject({ status: 200, body: {} });
    await closed(byClientId);
  });

  it('answers 404 when no connection of that client is live', async () => {
    const answer = await call('POST', '/emulator/connections/dev-2:kick');
    expect(answer).toMatchObject({ status: 404, body: { error: { code: 404, status: 'NOT_FOUND', message: 'no live connection with client ID or device ID dev-2' } } });
  });
});

describe('an admin handler without the MQTT side', () => {
  it('answers the fault and kick routes with 501 UNIMPLEMENTED', async () => {
    const registry = new Registry('p', 'us-central1');
    const server = createServer(createAdminHandler(registry, { sendCommand: () => false }));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const [method, path] of [['GET', '/emulator/faults'], ['PATCH', '/emulator/faults'], ['DELETE', '/emulator/faults'], ['POST', '/emulator/connections/dev-1:kick']] as const) {
        const answer = await call(method, path, undefined, origin);
        expect(answer, `${method} ${path}`).toMatchObject({ status: 501, body: { error: { code: 501, status: 'UNIMPLEMENTED' } } });
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
