import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { generateTlsMaterial } from '../../../emulator/tls.js';
import { RelayError } from '../../../lib/errors.js';
import { GatewaySession } from '../../../lib/gateway/session.js';
import { eventsTopic } from '../../../lib/iotcore/topics.js';
import { eventually, type Fleet } from '../../helpers/emulator-fixtures.js';
import { startInterceptingProxy } from '../../reliability/mqtt-intercepting-proxy.js';
import { expectOutcomeInvariant, sessionOutcomes } from '../../helpers/outcome-invariant.js';
import {
  eventBody,
  GW,
  makeRelayFleet,
  METERS,
  outcomeOf,
  PUMPS,
  record,
  runSession,
  sessionOptions,
  stateBody,
  UNBOUND,
  VALVES,
} from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeRelayFleet();
  // The 1/s state limit is exercised in session-variants.test.ts; here several tests touch the same devices.
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
});
afterEach(() => emulator.clearFaults());
afterAll(() => emulator.close());

describe('happy path', () => {
  it('goes through every phase in order and confirms events, subfolders and state', async () => {
    // Prepare
    const records = [
      record(eventBody(PUMPS[0]!)),
      record(eventBody(PUMPS[0]!, { subfolder: 'alarms/high' })),
      record(stateBody(PUMPS[0]!)),
      record(eventBody(PUMPS[1]!, { subfolder: 'diag' })),
    ];
    // Act
    const run = await runSession(emulator, fleet, GW.assoc, records);
    // Assess
    expect(run.report.phases).toEqual(['connecting', 'subscribing', 'attaching', 'publishing', 'detaching', 'closed']);
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed', 'confirmed', 'confirmed']);
    expect(run.report.failure).toBeUndefined();
    const relayed = emulator.registry.events.filter((e) => e.attributes.gatewayId === GW.assoc && e.attributes.subFolder === 'alarms/high');
    expect(relayed.length).toBeGreaterThanOrEqual(1);
    // Detached and disconnected: the session ends once DISCONNECT is flushed, and the bridge drops the connection
    // as soon as it reads it (well before a next session could finish its TCP and TLS handshakes).
    await eventually(() => emulator.connections().every((c) => c.deviceId !== GW.assoc), 200, 'the bridge still holds the gateway connection');
  });

  it('carries binary payloads byte for byte', async () => {
    const bytes = Buffer.from([0, 255, 1, 254, 0x80, 0x7f, 10, 13]);
    const binary = record(JSON.stringify({ v: 1, deviceId: PUMPS[2], subfolder: 'raw', encoding: 'base64', payload: bytes.toString('base64') }));
    const run = await runSession(emulator, fleet, GW.assoc, [binary]);
    expect(outcomeOf(run, binary).outcome).toBe('confirmed');
    const stored = emulator.registry.events.filter((e) => e.attributes.deviceId === PUMPS[2] && e.attributes.subFolder === 'raw');
    expect(stored.map((e) => Buffer.from(e.data, 'base64'))).toContainEqual(bytes);
  });

  it('keeps the records of one device in queue order on the wire', async () => {
    const device = PUMPS[3]!;
    const records = Array.from({ length: 8 }, (_, i) => record(eventBody(i % 2 === 0 ? device : PUMPS[4]!, { subfolder: `seq/${i}` })));
    const run = await runSession(emulator, fleet, GW.assoc, records);
    expect(run.outcomes.every((o) => o.outcome === 'confirmed')).toBe(true);
    const seen = emulator.registry.events.filter((e) => e.attributes.deviceId === device && e.attributes.subFolder.startsWith('seq/')).map((e) => e.attributes.subFolder);
    expect(seen.slice(-4)).toEqual(['seq/0', 'seq/2', 'seq/4', 'seq/6']);
  });

  it('coalesces several states of a device into the newest, and confirms all of them through it', async () => {
    const device = PUMPS[5]!;
    const states = [record(stateBody(device)), record(stateBody(device)), record(stateBody(device))];
    const run = await runSession(emulator, fleet, GW.assoc, [states[0]!, record(eventBody(device)), states[1]!, states[2]!]);
    const newest = states[2]!;
    expect(outcomeOf(run, newest)).toMatchObject({ outcome: 'confirmed' });
    expect(outcomeOf(run, states[0]!)).toMatchObject({ outcome: 'confirmed', coalescedInto: newest.messageId });
    expect(outcomeOf(run, states[1]!)).toMatchObject({ outcome: 'confirmed', coalescedInto: newest.messageId });
    // One PUBLISH: the device's stored states gained exactly the newest payload.
    const newestPayload = Buffer.from(JSON.parse(newest.body).payload as string).toString('base64');
    expect(emulator.registry.states(fleet.registryId, device)[0]?.binaryData).toBe(newestPayload);
    const older = states.slice(0, 2).map((r) => Buffer.from(JSON.parse(r.body).payload as string).toString('base64'));
    expect(emulator.registry.states(fleet.registryId, device).some((s) => older.includes(s.binaryData))).toBe(false);
  });

  it('sends every attach before the first acknowledgement returns', async () => {
    // With 150 ms before each packet the bridge sends, sequential attaches of 6 devices would take 900 ms or more.
    emulator.setFaults({ latencyMs: 150 });
    const records = VALVES.slice(0, 6).map((d) => record(eventBody(d)));
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc));
    let attachMs = 0;
    const report = await session.run(async (s) => {
      const started = Date.now();
      const results = await s.attach(VALVES.slice(0, 6).map((deviceId) => ({ deviceId })));
      attachMs = Date.now() - started;
      expect([...results.values()].every((r) => r.ok)).toBe(true);
      await s.publish(records.map((r, i) => ({ key: r.messageId, deviceId: VALVES[i]!, kind: 'event' as const, payload: Buffer.from(JSON.parse(r.body).payload as string) })));
    });
    expect(attachMs).toBeLessThan(600);
    const outcomes = sessionOutcomes(report, records);
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
    expect(outcomes.every((o) => o.outcome === 'confirmed')).toBe(true);
  });

  it('never has more record publishes unacknowledged than the window', async () => {
    emulator.setFaults({ latencyMs: 30 });
    const records = Array.from({ length: 12 }, (_, i) => record(eventBody(VALVES[i % 5]!)));
    const run = await runSession(emulator, fleet, GW.assoc, records, { options: { publishWindow: 3 } });
    expect(run.report.maxPublishesInFlight).toBe(3);
    expect(run.outcomes.every((o) => o.outcome === 'confirmed')).toBe(true);
    const wide = await runSession(emulator, fleet, GW.assoc, records.map((r) => record(eventBody(JSON.parse(r.body).deviceId as string))), { options: { publishWindow: 32 } });
    expect(wide.report.maxPublishesInFlight).toBe(12);
  });
});

describe('opening', () => {
  it('sends the errors SUBSCRIBE right behind the CONNECT, before any answer from the bridge', async () => {
    // Every packet of the bridge is held back, so whatever the client sends, it sends without having seen a CONNACK.
    const seen: string[] = [];
    const proxy = await startInterceptingProxy(emulator, {
      hooks: {
        fromClient: (p) => seen.push(p.cmd === 'subscribe' ? `subscribe ${p.subscriptions.map((s) => `${s.topic}@${s.qos}`).join(',')}` : p.cmd),
        fromBridge: () => 'withhold',
      },
    });
    try {
      const session = new GatewaySession({ ...(await sessionOptions(emulator, fleet, GW.assoc)), host: proxy.host, port: proxy.port, extraCaPem: proxy.ca, connectTimeoutMs: 800 });
      const report = await session.run(async (s) => {
        await s.attach([{ deviceId: PUMPS[0]! }]);
      });
      expect(seen.slice(0, 2)).toEqual(['connect', `subscribe /devices/${GW.assoc}/errors@0`]);
      // Nothing else goes out before the CONNACK and the SUBACK: no attach.
      expect(seen.filter((cmd) => cmd === 'publish')).toEqual([]);
      expect(report.failure).toMatchObject({ code: 'ERR_CONNECT_TIMEOUT', phase: 'connecting' });
    } finally {
      await proxy.close();
    }
  });

  it('completes the TCP and TLS handshakes while the JWT is still being made', async () => {
    const proxy = await startInterceptingProxy(emulator);
    try {
      const options = await sessionOptions(emulator, fleet, GW.assoc);
      let linkBeforeJwt = false;
      // The JWT comes only once the proxy has seen the TLS handshake finish (or after 2 s, which fails the test).
      const jwt = (async (): Promise<string> => {
        const until = Date.now() + 2000;
        while (Date.now() < until && proxy.openLinks() === 0) await new Promise((r) => setTimeout(r, 5));
        linkBeforeJwt = proxy.openLinks() === 1;
        return options.jwt;
      })();
      const r = record(eventBody(PUMPS[8]!));
      const session = new GatewaySession({ ...options, host: proxy.host, port: proxy.port, extraCaPem: proxy.ca, jwt });
      const report = await session.run(async (s) => {
        await s.attach([{ deviceId: PUMPS[8]! }]);
        await s.publish([{ key: r.messageId, deviceId: PUMPS[8]!, kind: 'event', payload: Buffer.from('21.5') }]);
      });
      expect(linkBeforeJwt).toBe(true);
      expect(report.failure).toBeUndefined();
      expect(report.records.get(r.messageId)).toMatchObject({ status: 'confirmed' });
    } finally {
      await proxy.close();
    }
  });

  it('ends with the key error when no JWT can be made, having sent nothing on the connection it opened', async () => {
    const seen: string[] = [];
    const proxy = await startInterceptingProxy(emulator, { hooks: { fromClient: (p) => seen.push(p.cmd) } });
    try {
      const jwt = new Promise<string>((_, reject) => setTimeout(() => reject(new RelayError('ERR_KEY_UNAVAILABLE', 'secret gw-keys was not found')), 100));
      const session = new GatewaySession({ ...(await sessionOptions(emulator, fleet, GW.assoc)), host: proxy.host, port: proxy.port, extraCaPem: proxy.ca, jwt });
      const report = await session.run(async (s) => {
        await s.attach([{ deviceId: PUMPS[0]! }]);
      });
      expect(report.failure).toMatchObject({ code: 'ERR_KEY_UNAVAILABLE', phase: 'connecting' });
      expect(report.phases).toEqual(['connecting', 'closed']);
      await eventually(() => proxy.openLinks() === 0, 2000, 'the connection opened for the session was left open');
      expect(seen).toEqual([]);
    } finally {
      await proxy.close();
    }
  });

  it('fails at once on a TLS refusal, without waiting for the JWT', async () => {
    const stranger = await generateTlsMaterial();
    const never = new Promise<string>(() => {});
    const started = Date.now();
    const session = new GatewaySession({ ...(await sessionOptions(emulator, fleet, GW.assoc)), extraCaPem: stranger.caPem!, jwt: never });
    const report = await session.run(async () => {});
    expect(report.failure).toMatchObject({ code: 'ERR_TLS', phase: 'connecting' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('returns by the deadline when the JWT never comes', async () => {
    const deadline = Date.now() + 600;
    const session = new GatewaySession({ ...(await sessionOptions(emulator, fleet, GW.assoc)), jwt: new Promise<string>(() => {}), deadline, closeTimeoutMs: 200 });
    const report = await session.run(async () => {});
    expect(Date.now()).toBeLessThanOrEqual(deadline + 50);
    expect(report.failure).toMatchObject({ code: 'ERR_DEADLINE', phase: 'connecting' });
  });

  it('fails the session with ERR_SUBSCRIBE_REJECTED when the bridge refuses the errors subscription', async () => {
    // A device that is not a gateway may connect, but the bridge refuses it a gateway's errors topic (SUBACK 0x80).
    const records = [record(eventBody(PUMPS[0]!))];
    const run = await runSession(emulator, fleet, METERS[0]!, records);
    expect(run.report.failure).toMatchObject({ code: 'ERR_SUBSCRIBE_REJECTED', phase: 'subscribing' });
    expect(run.report.phases).not.toContain('attaching');
    expect(run.outcomes.map((o) => o.code)).toEqual(['ERR_SUBSCRIBE_REJECTED']);
  });

  it('reports a refused CONNECT as such, with the SUBSCRIBE behind it left unprocessed', async () => {
    emulator.setFaults({ refuseConnect: 5 });
    const run = await runSession(emulator, fleet, GW.assoc, [record(eventBody(PUMPS[0]!))]);
    expect(run.report.failure).toMatchObject({ code: 'ERR_CONNECT_REFUSED_AUTH', phase: 'connecting' });
    expect(run.report.phases).toEqual(['connecting', 'closed']);
  });
});

describe('attach', () => {
  it('sends a device token in the attach payload to a DEVICE_AUTH_TOKEN_ONLY gateway', async () => {
    const token = await fleet.jwt(METERS[0]!);
    const records = [record(eventBody(METERS[0]!, { deviceToken: token })), record(stateBody(METERS[0]!, { deviceToken: token }))];
    const run = await runSession(emulator, fleet, GW.token, records);
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed']);
    expect(run.report.attachments.get(METERS[0]!)).toMatchObject({ ok: true });
  });

  it('fails the records of a device whose attach the bridge refuses, and delivers the others', async () => {
    // A token-only gateway with no token (meter-02), and an association-only gateway with a device not bound to it.
    const tokenless = await runSession(emulator, fleet, GW.token, [record(eventBody(METERS[1]!))]);
    expect(tokenless.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    expect(tokenless.outcomes[0]!.reason).toContain('GATEWAY_ATTACHMENT_ERROR');

    const good = record(eventBody(PUMPS[6]!));
    const refused = record(eventBody(UNBOUND));
    const unknown = record(eventBody('pump-not-registered'));
    const run = await runSession(emulator, fleet, GW.assoc, [refused, good, unknown]);
    expect(outcomeOf(run, good).outcome).toBe('confirmed');
    expect(outcomeOf(run, refused)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    expect(outcomeOf(run, unknown)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
    // Nothing was published for the refused devices (docs/design.md rule 2): the bridge reported no DEVICE_NOT_FOUND.
    expect(run.report.gatewayErrors.map((e) => e.errorType)).toEqual(['GATEWAY_ATTACHMENT_ERROR', 'GATEWAY_ATTACHMENT_ERROR']);
    expect(emulator.registry.events.some((e) => e.attributes.deviceId === UNBOUND)).toBe(false);
  });

  it('refuses a device token signed for another device', async () => {
    const wrong = await fleet.jwt(METERS[1]!);
    const run = await runSession(emulator, fleet, GW.token, [record(eventBody(METERS[0]!, { deviceToken: wrong }))]);
    expect(run.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
  });
});

describe('config subscription', () => {
  it('subscribes to a device config inside the session and receives the current config', async () => {
    const token = await fleet.jwt(METERS[0]!);
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.token));
    const received: Buffer[] = [];
    const report = await session.run(async (s) => {
      const attached = await s.attach([{ deviceId: METERS[0]!, token }]);
      expect(attached.get(METERS[0]!)).toMatchObject({ ok: true });
      let got: () => void = () => {};
      const first = new Promise<void>((resolve) => (got = resolve));
      await s.subscribeConfig(METERS[0]!, (payload) => {
        received.push(payload);
        got();
      });
      await first;
    });
    expect(report.failure).toBeUndefined();
    expect(received[0]?.toString()).toBe(`{"meter":"${METERS[0]}","rate":60}`);
  });

  it('reports a config subscription the bridge refuses (SUBACK 0x80) as ERR_SUBSCRIBE_REJECTED, not as a timeout', async () => {
    // The bridge grants the errors topic (the first SUBACK) and refuses the config subscription behind it.
    let subacks = 0;
    const proxy = await startInterceptingProxy(emulator, {
      hooks: {
        fromBridge: (p, link) => {
          if (p.cmd !== 'suback' || ++subacks === 1) return 'forward';
          link.toClient({ ...p, granted: [128] });
          return 'withhold';
        },
      },
    });
    try {
      const session = new GatewaySession({ ...(await sessionOptions(emulator, fleet, GW.assoc)), host: proxy.host, port: proxy.port, extraCaPem: proxy.ca });
      const report = await session.run(async (s) => {
        await s.attach([{ deviceId: VALVES[0]! }]);
        await expect(s.subscribeConfig(VALVES[0]!, () => {})).rejects.toMatchObject({ code: 'ERR_SUBSCRIBE_REJECTED' });
      });
      expect(subacks).toBe(2);
      expect(report.failure).toBeUndefined();
    } finally {
      await proxy.close();
    }
  });

  it('will not subscribe for a device that is not attached', async () => {
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc));
    const report = await session.run(async (s) => {
      await s.attach([{ deviceId: UNBOUND }]);
      await expect(s.subscribeConfig(UNBOUND, () => {})).rejects.toMatchObject({ code: 'ERR_ATTACH_REJECTED' });
      await expect(s.subscribeConfig(PUMPS[0]!, () => {})).rejects.toMatchObject({ code: 'ERR_DEVICE_NOT_FOUND' });
    });
    expect(report.failure).toBeUndefined();
  });
});

describe('topics', () => {
  it('publishes events under the subfolder topic the bridge routes on', async () => {
    const r = record(eventBody(PUMPS[7]!, { subfolder: 'a/b/c' }));
    const run = await runSession(emulator, fleet, GW.assoc, [r]);
    expect(outcomeOf(run, r).outcome).toBe('confirmed');
    expect(eventsTopic(PUMPS[7]!, 'a/b/c')).toBe('/devices/pump-08/events/a/b/c');
    expect(emulator.registry.events.some((e) => e.attributes.deviceId === PUMPS[7] && e.attributes.subFolder === 'a/b/c')).toBe(true);
  });
});
