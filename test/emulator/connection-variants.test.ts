/**
 * The connection-level variants where ClearBlade's behaviour is open or where a limit is documented: commands
 * resent at QoS 1 until acknowledged (`commandResendMs`), the maximum connection lifetime
 * (`connectionLifetimeSeconds`), an empty username (`emptyUsername`), a Will (`willMessage`) and a JWT living
 * 24 h plus the skew (`jwtLifetime`). The defaults are in connect.test.ts and commands.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import type { Emulator } from '../../emulator/index.js';
import { MAX_JWT_LIFETIME_SECONDS } from '../../lib/iotcore/limits.js';
import { connackCode, eventually, makeFleet, rawConnectPacket, rawSession } from '../helpers/emulator-fixtures.js';
import type { Fleet, RawSession } from '../helpers/emulator-fixtures.js';
import { variantEmulators } from '../helpers/variant-emulators.js';

let fleet: Fleet;
beforeAll(async () => {
  fleet = await makeFleet({ devices: ['dev-1', 'dev-2'] });
});

const { start, track } = variantEmulators(() => fleet.document);

async function connectRaw(e: Emulator, deviceId: string, overrides: Parameters<typeof rawConnectPacket>[2] = {}): Promise<RawSession> {
  const raw = track(await rawSession(e));
  raw.send(await rawConnectPacket(fleet, deviceId, overrides));
  expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
  return raw;
}

function publishOf(p: Packet): IPublishPacket {
  expect(p.cmd).toBe('publish');
  return p as IPublishPacket;
}

const eventsOf = (e: Emulator, deviceId: string): string[] =>
  e.registry.events.filter((m) => m.attributes.deviceId === deviceId).map((m) => Buffer.from(m.data, 'base64').toString());

describe('commandResendMs', () => {
  const RESEND_MS = 100;

  async function subscribedForCommands(e: Emulator, deviceId: string): Promise<RawSession> {
    const raw = await connectRaw(e, deviceId);
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `/devices/${deviceId}/commands/#`, qos: 1 }] });
    expect(await raw.next()).toMatchObject({ cmd: 'suback', granted: [1] });
    return raw;
  }

  it('resends a QoS 1 command with DUP and the same packet ID until its PUBACK', async () => {
    const e = await start({ commandResendMs: RESEND_MS });
    const raw = await subscribedForCommands(e, 'dev-1');
    expect(e.sendCommand(fleet.registryId, 'dev-1', 'reboot', Buffer.from('now'))).toBe(true);
    const first = publishOf(await raw.next());
    expect(first).toMatchObject({ topic: '/devices/dev-1/commands/reboot', qos: 1, dup: false });
    const again = publishOf(await raw.next(RESEND_MS * 5));
    expect(again).toMatchObject({ topic: first.topic, qos: 1, dup: true, messageId: first.messageId });
    expect(String(again.payload)).toBe('now');
    raw.send({ cmd: 'puback', messageId: first.messageId! });
    // What was already on its way drains; then nothing more comes.
    raw.send({ cmd: 'pingreq' });
    let p = await raw.next();
    while (p.cmd === 'publish') p = await raw.next();
    expect(p.cmd).toBe('pingresp');
    await expect(raw.next(RESEND_MS * 4)).rejects.toThrow(/no packet/);
  });

  it('sends a command once with commandResendMs 0', async () => {
    const e = await start({ commandResendMs: 0 });
    const raw = await subscribedForCommands(e, 'dev-1');
    e.sendCommand(fleet.registryId, 'dev-1', undefined, Buffer.from('once'));
    expect(publishOf(await raw.next())).toMatchObject({ dup: false, qos: 1 });
    await expect(raw.next(RESEND_MS * 4)).rejects.toThrow(/no packet/);
  });
});

describe('connectionLifetimeSeconds', () => {
  it('closes a connection that long after it opened, however valid its JWT and however busy it is', async () => {
    const e = await start({ connectionLifetimeSeconds: 1 });
    const opened = Date.now();
    const raw = await connectRaw(e, 'dev-1');
    const pinging = setInterval(() => raw.send({ cmd: 'pingreq' }), 200);
    try {
      await raw.closed;
    } finally {
      clearInterval(pinging);
    }
    const elapsed = Date.now() - opened;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3000);
    // Ending a connection at its lifetime is no error of the device's.
    expect(e.registry.getDevice(fleet.registryId, 'dev-1').lastErrorStatus).toBeUndefined();
  });
});

describe('emptyUsername', () => {
  it("accepts an empty username with 'accept'", async () => {
    const e = await start({ emptyUsername: 'accept' });
    expect(await connackCode(e, fleet, 'dev-1', { username: '' })).toBe(0);
  });

  it("refuses it as a credential failure with 'refuse', the default", async () => {
    const e = await start({ emptyUsername: 'refuse', authFailureCode: 5 });
    expect(await connackCode(e, fleet, 'dev-1', { username: '' })).toBe(5);
    expect(await connackCode(e, fleet, 'dev-1')).toBe(0);
  });
});

describe('willMessage', () => {
  const will = (deviceId: string, text: string) => ({ topic: `/devices/${deviceId}/events/lwt`, payload: Buffer.from(text), qos: 0 as const, retain: false });

  it("accepts a Will with 'accept' and never publishes it", async () => {
    const e = await start({ willMessage: 'accept' });
    const raw = await connectRaw(e, 'dev-1', { will: will('dev-1', 'accepted-only') });
    raw.end();
    await eventually(() => e.connections().length === 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(eventsOf(e, 'dev-1')).not.toContain('accepted-only');
  });

  it("publishes it as the device's telemetry with 'publish' when the connection drops", async () => {
    const e = await start({ willMessage: 'publish' });
    const raw = await connectRaw(e, 'dev-1', { will: will('dev-1', 'gone') });
    raw.end();
    await eventually(() => eventsOf(e, 'dev-1').includes('gone'));
    expect(e.registry.events.find((m) => Buffer.from(m.data, 'base64').toString() === 'gone')?.attributes.subFolder).toBe('lwt');
  });

  it("does not publish it after a DISCONNECT, nor for another device's topic", async () => {
    const e = await start({ willMessage: 'publish' });
    const polite = await connectRaw(e, 'dev-1', { will: will('dev-1', 'after disconnect') });
    polite.send({ cmd: 'disconnect' });
    await polite.closed;
    const foreign = await connectRaw(e, 'dev-1', { will: will('dev-2', 'not mine') });
    foreign.end();
    await eventually(() => e.connections().length === 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(eventsOf(e, 'dev-1')).not.toContain('after disconnect');
    expect(eventsOf(e, 'dev-2')).toEqual([]);
  });
});

describe('jwtLifetime', () => {
  const SKEW = 600;
  const token = (lifetimeSeconds: number) => fleet.jwt('dev-1', { lifetimeSeconds });

  it("refuses exp - iat over 24 h with 'strict', the default", async () => {
    const e = await start({});
    expect(await connackCode(e, fleet, 'dev-1', { password: Buffer.from(await token(MAX_JWT_LIFETIME_SECONDS)) })).toBe(0);
    expect(await connackCode(e, fleet, 'dev-1', { password: Buffer.from(await token(MAX_JWT_LIFETIME_SECONDS + 60)) })).toBe(4);
  });

  it("accepts up to 24 h plus the clock skew with 'with-skew', and no more", async () => {
    const e = await start({ jwtLifetime: 'with-skew', clockSkewSeconds: SKEW });
    expect(await connackCode(e, fleet, 'dev-1', { password: Buffer.from(await token(MAX_JWT_LIFETIME_SECONDS + SKEW)) })).toBe(0);
    expect(await connackCode(e, fleet, 'dev-1', { password: Buffer.from(await token(MAX_JWT_LIFETIME_SECONDS + SKEW + 1)) })).toBe(4);
  });
});
