/**
 * CONNECT as the bridge judges it (docs/protocol.md §1): MQTT 3.1.1 only, the client ID naming a known device,
 * a non-empty username, a device JWT as the password; the connection ends when the token expires; one live
 * connection per client ID.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator, EmulatorOptions } from '../../emulator/index.js';
import {
  closed,
  connackCode,
  connectDevice,
  credentialOf,
  makeDeviceKey,
  makeFleet,
  rawConnectPacket,
  rawSession,
  signDeviceJwt,
} from '../helpers/emulator-fixtures.js';
import type { Fleet, RawSession } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;
const now = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  fleet = await makeFleet({
    devices: [
      'dev-es',
      { id: 'dev-es-x509', x509: true },
      { id: 'dev-rs', alg: 'RS256' },
      { id: 'dev-rs-x509', alg: 'RS256', x509: true },
      { id: 'dev-blocked', blocked: true },
      'dev-other',
    ],
  });
  // A second registry, with MQTT disabled.
  const disabledKey = fleet.keys['dev-other']!;
  fleet.document.registries.push({
    id: 'quiet-registry',
    mqttConfig: { mqttEnabledState: 'MQTT_DISABLED' },
    devices: [{ id: 'dev-quiet', credentials: [credentialOf(disabledKey)] }],
  });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

async function withEmulator<T>(options: EmulatorOptions, run: (e: Emulator) => Promise<T>): Promise<T> {
  const e = await startEmulator({ registry: fleet.document, adminPort: null, ...options });
  try {
    return await run(e);
  } finally {
    await e.close();
  }
}

describe('protocol level', () => {
  it.each([
    [3, 'MQIsdp'],
    [5, 'MQTT'],
  ] as const)('answers a protocol level %i CONNECT with CONNACK 1 and closes', async (protocolVersion, protocolId) => {
    const raw = await rawSession(emulator, protocolVersion);
    raw.send(await rawConnectPacket(fleet, 'dev-es', { protocolVersion, protocolId }));
    // A 3.1.1 server answers in 3.1.1 form (return code, no properties), whatever the client spoke.
    const connack = await raw.next();
    expect(connack).toMatchObject({ cmd: 'connack', sessionPresent: false });
    expect((connack as { returnCode?: number; reasonCode?: number }).returnCode ?? (connack as { reasonCode?: number }).reasonCode).toBe(1);
    await raw.closed;
  });

  it('accepts a 3.1.1 CONNECT with CONNACK 0', async () => {
    const raw = await rawSession(emulator, 4);
    raw.send(await rawConnectPacket(fleet, 'dev-es'));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    raw.end();
  });
});

describe('credentials', () => {
  it.each(['dev-es', 'dev-es-x509', 'dev-rs', 'dev-rs-x509'])('accepts a JWT signed with the key of %s', async (id) => {
    expect(await connackCode(emulator, fleet, id)).toBe(0);
  });

  it('refuses a client ID that is not a device path with CONNACK 2', async () => {
    expect(await connackCode(emulator, fleet, 'dev-es', { clientId: 'dev-es' })).toBe(2);
  });

  it.each([
    ['an unknown device', 'projects/test-project/locations/us-central1/registries/test-registry/devices/nobody'],
    ['another project', 'projects/other/locations/us-central1/registries/test-registry/devices/dev-es'],
    ['another location', 'projects/test-project/locations/europe-west1/registries/test-registry/devices/dev-es'],
    ['an unknown registry', 'projects/test-project/locations/us-central1/registries/nope-registry/devices/dev-es'],
    ['a device ID in the wrong case', 'projects/test-project/locations/us-central1/registries/test-registry/devices/DEV-ES'],
  ])('refuses %s with CONNACK 4', async (_what, clientId) => {
    expect(await connackCode(emulator, fleet, 'dev-es', { clientId })).toBe(4);
  });

  it('refuses an empty username', async () => {
    expect(await connackCode(emulator, fleet, 'dev-es', { username: '' })).toBe(4);
  });

  it('refuses a CONNECT without password', async () => {
    const raw = await rawSession(emulator);
    const packet = await rawConnectPacket(fleet, 'dev-es');
    delete packet.password;
    raw.send(packet);
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 4 });
    await raw.closed;
  });

  it.each<[string, (f: Fleet) => Promise<string>]>([
    ['aud is another project', (f) => f.jwt('dev-es', { aud: 'other-project' })],
    ['aud is an array', (f) => f.jwt('dev-es', { aud: [f.project] })],
    ['aud is missing', (f) => f.jwt('dev-es', { aud: undefined })],
    ['iat is missing', (f) => f.jwt('dev-es', { claims: { iat: undefined } })],
    ['the token expired beyond the skew', (f) => f.jwt('dev-es', { iat: now() - 7200, exp: now() - 601 })],
    ['iat is in the future beyond the skew', (f) => f.jwt('dev-es', { iat: now() + 700, exp: now() + 3600 })],
    ['exp - iat exceeds 24 h', (f) => f.jwt('dev-es', { iat: now(), exp: now() + 24 * 3600 + 1 })],
    ['exp is before iat', (f) => f.jwt('dev-es', { iat: now(), exp: now() - 1 })],
    ['typ is missing', (f) => f.jwt('dev-es', { typ: null })],
    ['alg is RS256 but the device has only an ES256 key', (f) => f.jwt('dev-es', { alg: 'RS256' })],
    ['alg is HS256', (f) => f.jwt('dev-es', { alg: 'HS256' })],
    ['alg is none', (f) => f.jwt('dev-es', { alg: 'none' })],
    ['it is signed with another device key', (f) => f.jwt('dev-other')],
    ['it is not a JWT at all', async () => 'not-a-jwt'],
    ['it has base64 padding', async (f) => `${await f.jwt('dev-es')}=`],
  ])('refuses a JWT where %s with CONNACK 4', async (_what, token) => {
    expect(await connackCode(emulator, fleet, 'dev-es', { password: await token(fleet) })).toBe(4);
  });

  it('accepts iat within the skew in the future, and a token expired less than the skew ago', async () => {
    expect(await connackCode(emulator, fleet, 'dev-es', { password: await fleet.jwt('dev-es', { iat: now() + 500, exp: now() + 3600 }) })).toBe(0);
    expect(await connackCode(emulator, fleet, 'dev-es', { password: await fleet.jwt('dev-es', { iat: now() - 3600, exp: now() - 500 }) })).toBe(0);
  });

  it('accepts a 24 h token and ignores nbf', async () => {
    const token = await fleet.jwt('dev-es', { iat: now(), exp: now() + 24 * 3600, claims: { nbf: now() + 7200 } });
    expect(await connackCode(emulator, fleet, 'dev-es', { password: token })).toBe(0);
  });

  it('ignores an expired credential and uses the others', async () => {
    const fresh = await makeDeviceKey('ES256');
    const stale = await makeDeviceKey('ES256');
    const past = new Date(Date.now() - 60_000).toISOString();
    const e = await startEmulator({ registry: fleet.document, adminPort: null });
    try {
      e.registry.createDevice(fleet.registryId, { id: 'dev-rotating', credentials: [credentialOf(stale, past), credentialOf(fresh)] });
      const tokenOf = async (key: typeof fresh) => signDeviceJwt(key, fleet.project);
      expect(await connackCode(e, fleet, 'dev-rotating', { password: await tokenOf(stale) })).toBe(4);
      expect(await connackCode(e, fleet, 'dev-rotating', { password: await tokenOf(fresh) })).toBe(0);
    } finally {
      await e.close();
    }
  });

  it('refuses a blocked device and a registry with MQTT disabled with the credential code', async () => {
    expect(await connackCode(emulator, fleet, 'dev-blocked')).toBe(4);
    const quietClientId = 'projects/test-project/locations/us-central1/registries/quiet-registry/devices/dev-quiet';
    expect(await connackCode(emulator, fleet, 'dev-other', { clientId: quietClientId })).toBe(4);
    // The same key is accepted where MQTT is enabled: the refusal is the registry's.
    expect(await connackCode(emulator, fleet, 'dev-other')).toBe(0);
  });

  it('answers 5 instead of 4 with authFailureCode 5, as Google did', async () => {
    await withEmulator({ authFailureCode: 5 }, async (e) => {
      expect(await connackCode(e, fleet, 'dev-es', { password: await fleet.jwt('dev-other') })).toBe(5);
      expect(await connackCode(e, fleet, 'dev-blocked')).toBe(5);
      expect(await connackCode(e, fleet, 'dev-es')).toBe(0);
    });
  });
});

describe('CONNECT flags', () => {
  it('refuses a Will message with CONNACK 2', async () => {
    const code = await connackCode(emulator, fleet, 'dev-es', { will: { topic: '/devices/dev-es/state', payload: Buffer.from('gone'), qos: 0, retain: false } });
    expect(code).toBe(2);
  });

  it('accepts cleanSession=0 but keeps no session (sessionPresent is 0 on reconnect)', async () => {
    const first = await connectDevice(emulator, fleet, 'dev-es', { clean: false });
    await first.subscribeAsync('/devices/dev-es/config', { qos: 1 });
    await first.endAsync();
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-es', { clean: false }));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    // Nothing is replayed: the next packet is the PINGRESP to our PINGREQ, not a stored config delivery.
    raw.send({ cmd: 'pingreq' });
    expect(await raw.next()).toMatchObject({ cmd: 'pingresp' });
    raw.end();
  });

  it('refuses cleanSession=0 with CONNACK 2 when uncleanSession is refuse', async () => {
    await withEmulator({ uncleanSession: 'refuse' }, async (e) => {
      expect(await connackCode(e, fleet, 'dev-es', { clean: false })).toBe(2);
      expect(await connackCode(e, fleet, 'dev-es', { clean: true })).toBe(0);
    });
  });
});

describe('connection lifetime', () => {
  it('closes the connection at exp + skew, and says so in lastErrorStatus', async () => {
    await withEmulator({ clockSkewSeconds: 1 }, async (e) => {
      const start = Date.now();
      const client = await connectDevice(e, fleet, 'dev-es', { password: await fleet.jwt('dev-es', { lifetimeSeconds: 1 }) });
      await closed(client, 5_000);
      const elapsed = Date.now() - start;
      // exp is at most 1 s away (iat is rounded down), plus 1 s of skew.
      expect(elapsed).toBeGreaterThanOrEqual(900);
      expect(e.registry.getDevice(fleet.registryId, 'dev-es').lastErrorStatus?.message).toMatch(/token expired/);
    });
  });

  it('keeps a connection whose token is still valid', async () => {
    await withEmulator({ clockSkewSeconds: 1 }, async (e) => {
      const client = await connectDevice(e, fleet, 'dev-es', { password: await fleet.jwt('dev-es', { lifetimeSeconds: 30 }) });
      await expect(closed(client, 1_500)).rejects.toThrow(/did not close/);
      await client.endAsync();
    });
  });

  it('drops a client silent for 1.5 keep-alive periods', async () => {
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-es', { keepalive: 1 }));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    const start = Date.now();
    await raw.closed;
    expect(Date.now() - start).toBeGreaterThanOrEqual(1_400);
    expect(Date.now() - start).toBeLessThan(3_000);
  });

  it('drops a client silent for the idle limit, whatever its keep-alive', async () => {
    await withEmulator({ idleTimeoutSeconds: 1 }, async (e) => {
      const raw = await rawSession(e);
      raw.send(await rawConnectPacket(fleet, 'dev-es', { keepalive: 0 }));
      expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
      await raw.closed;
      expect(e.registry.getDevice(fleet.registryId, 'dev-es').lastErrorStatus?.message).toMatch(/idle/);
    });
  });

  it('refuses any packet before CONNECT by closing', async () => {
    const raw = await rawSession(emulator);
    raw.send({ cmd: 'pingreq' });
    await raw.closed;
  });

  it('closes on a second CONNECT', async () => {
    const raw = await rawSession(emulator);
    raw.send(await rawConnectPacket(fleet, 'dev-es'));
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    raw.send(await rawConnectPacket(fleet, 'dev-es'));
    await raw.closed;
  });
});

describe('one connection per client ID', () => {
  it('closes the older connection when a newer one connects, and counts the takeover', async () => {
    await withEmulator({}, async (e) => {
      const older = await connectDevice(e, fleet, 'dev-es');
      expect(e.takeovers).toBe(0);
      const newer = await connectDevice(e, fleet, 'dev-es');
      await closed(older);
      expect(e.takeovers).toBe(1);
      expect(newer.connected).toBe(true);
      expect(e.connections().map((c) => c.deviceId)).toEqual(['dev-es']);
      expect(e.registry.getDevice(fleet.registryId, 'dev-es').lastErrorStatus?.code).toBe(6);
      await newer.endAsync();
    });
  });

  it('refuses the newer connection with CONNACK 2 when duplicateClientId is refuse', async () => {
    await withEmulator({ duplicateClientId: 'refuse' }, async (e) => {
      const older = await connectDevice(e, fleet, 'dev-es');
      expect(await connackCode(e, fleet, 'dev-es')).toBe(2);
      expect(older.connected).toBe(true);
      expect(e.takeovers).toBe(0);
      await older.endAsync();
      // Once the older one is gone, the ID is free again.
      await new Promise((r) => setTimeout(r, 50));
      expect(await connackCode(e, fleet, 'dev-es')).toBe(0);
    });
  });

  it('does not count sequential connections as takeovers', async () => {
    await withEmulator({}, async (e) => {
      for (let i = 0; i < 3; i++) {
        const c = await connectDevice(e, fleet, 'dev-es');
        await c.endAsync();
      }
      expect(e.takeovers).toBe(0);
    });
  });

  it('counts every accepted CONNECT, and none that was refused', async () => {
    await withEmulator({}, async (e) => {
      expect(e.connectionsAccepted).toBe(0);
      for (let i = 0; i < 3; i++) {
        const c = await connectDevice(e, fleet, 'dev-es');
        await c.endAsync();
      }
      expect(await connackCode(e, fleet, 'dev-blocked')).not.toBe(0);
      // A takeover is a session too: the newer connection was accepted.
      const older = await connectDevice(e, fleet, 'dev-rs');
      const newer = await connectDevice(e, fleet, 'dev-rs');
      await closed(older);
      await newer.endAsync();
      expect(e.connectionsAccepted).toBe(5);
    });
  });
});

describe('packets sent behind CONNECT, before the CONNACK', () => {
  /** CONNECT and a SUBSCRIBE to the device's own config topic in one write, as a pipelining client sends them. */
  async function connectAndSubscribe(bridge: Emulator): Promise<RawSession> {
    const raw = await rawSession(bridge);
    raw.sendTogether(await rawConnectPacket(fleet, 'dev-es'), { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: '/devices/dev-es/config', qos: 0 }] });
    return raw;
  }

  it('are processed once the CONNECT is accepted, in order (MQTT 3.1.1 §3.1.4, the default)', async () => {
    const raw = await connectAndSubscribe(emulator);
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    expect(await raw.next()).toMatchObject({ cmd: 'suback', messageId: 7, granted: [0] });
    raw.end();
  });

  it('are not processed behind a refused CONNECT (MQTT-3.1.4-5)', async () => {
    const raw = await rawSession(emulator);
    const refused = await rawConnectPacket(fleet, 'dev-es');
    delete refused.password;
    raw.sendTogether(refused, { cmd: 'subscribe', messageId: 7, subscriptions: [{ topic: '/devices/dev-es/config', qos: 0 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 4 });
    await raw.closed;
    await expect(raw.next()).rejects.toThrow('connection closed');
  });

  it('are dropped unread with packetsBeforeConnack: drop, while the same packet after the CONNACK is answered', async () => {
    await withEmulator({ packetsBeforeConnack: 'drop' }, async (bridge) => {
      const raw = await connectAndSubscribe(bridge);
      expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
      await expect(raw.next(300)).rejects.toThrow('no packet from the bridge');
      raw.send({ cmd: 'subscribe', messageId: 8, subscriptions: [{ topic: '/devices/dev-es/config', qos: 0 }] });
      // The SUBACK, and the device's current config with it.
      const answers = [await raw.next(), await raw.next()];
      expect(answers).toContainEqual(expect.objectContaining({ cmd: 'suback', messageId: 8 }));
      expect(answers).toContainEqual(expect.objectContaining({ cmd: 'publish', topic: '/devices/dev-es/config' }));
      raw.end();
    });
  });

  it('close the connection with packetsBeforeConnack: close', async () => {
    await withEmulator({ packetsBeforeConnack: 'close' }, async (bridge) => {
      const raw = await connectAndSubscribe(bridge);
      await raw.closed;
      expect(bridge.connections()).toEqual([]);
    });
  });
});
