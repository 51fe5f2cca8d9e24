/**
 * Hostile input at every place it enters: the HTTP routes, the queue body, the device token that goes into an
 * attach, and the errors topic (a hostile bridge). Topic injection, NUL bytes, huge and deeply nested JSON,
 * oversize bodies, bad base64, prototype keys. What must hold everywhere: the input is refused with the project's
 * own error (a 4xx answer, or a dead letter with a specific code), nothing of it reaches the bridge or the queue,
 * well-behaved neighbours are unaffected, and nothing crashes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Packet } from 'mqtt-packet';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { GatewaySession } from '../../lib/gateway/session.js';
import { relayBatch } from '../../lib/relay/relay-batch.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';
import { httpApiEvent, httpApiPost, httpApiPostJson } from '../helpers/apigw-events.js';
import { attachRequests, eventBody, GW, inbound, makeRelayFleet, METERS, PUMPS, publishRequests, record, relayDeps, sessionOptions, stateBody } from '../helpers/relay-fixtures.js';
import { expectOutcomeInvariant, sessionOutcomes } from '../helpers/outcome-invariant.js';
import { DeliveryLedger } from '../reliability/delivery-ledger.js';
import { startInterceptingProxy, type InterceptingProxy, type ProxyLink } from '../reliability/mqtt-intercepting-proxy.js';
import { startHttpRoutes, type HttpRoutes } from './http-routes.js';

/** `depth` levels of nested arrays. V8's JSON.parse takes any depth; recursive code on the result may not. */
const nested = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
const DEEP = 100_000;

describe('HTTP routes', () => {
  let http: HttpRoutes;
  let auth: Record<string, string>;
  beforeAll(async () => {
    http = await startHttpRoutes();
    auth = await http.bearer('dev-a');
  });
  afterAll(() => http?.stop());

  const bridge = (verb: string): string => `/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/dev-a:${verb}`;

  it('refuses every hostile request with a 4xx naming the field, and queues nothing', async () => {
    const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
    const cases: [string, ReturnType<typeof httpApiEvent>, number, string | undefined][] = [
      ['a + level in the subfolder path', httpApiPost('/devices/dev-a/events/a/+/b', 'x', auth), 400, 'subfolder'],
      ['a # subfolder path', httpApiPost('/devices/dev-a/events/#', 'x', auth), 400, 'subfolder'],
      ['NUL in the subfolder path', httpApiPost('/devices/dev-a/events/a\u0000b', 'x', auth), 400, 'subfolder'],
      ['an empty subfolder path', httpApiPost('/devices/dev-a/events/', 'x', auth), 400, 'subfolder'],
      ['an empty level in the subfolder path', httpApiPost('/devices/dev-a/events/a//b', 'x', auth), 400, 'subfolder'],
      ['a newline in sub_folder', httpApiPostJson(bridge('publishEvent'), { binary_data: b64('x'), sub_folder: 'a\nb' }, auth), 400, 'sub_folder'],
      ['a wildcard in subFolder', httpApiPostJson(bridge('publishEvent'), { binaryData: b64('x'), subFolder: 'alarms/#' }, auth), 400, 'subFolder'],
      ['NUL in the device ID', httpApiPost('/devices/dev-a\u0000/events', 'x', auth), 400, 'deviceId'],
      ['a goog device ID', httpApiPost('/devices/google-dev/events', 'x', auth), 400, 'deviceId'],
      ['an event payload over 256 KB', httpApiPost('/devices/dev-a/events', Buffer.alloc(256 * 1024 + 1, 7), auth), 413, 'body'],
      ['a state over 64 KB', httpApiPost('/devices/dev-a/state', Buffer.alloc(64 * 1024 + 1, 7), auth), 413, 'body'],
      ['a body over 6 MB', httpApiPost('/devices/dev-a/batch', Buffer.alloc(6 * 1024 * 1024 + 1, 0x20), auth), 413, undefined],
      ['501 readings', httpApiPostJson('/devices/dev-a/batch', { readings: Array.from({ length: 501 }, () => ({ payload: 'x' })) }, auth), 400, 'readings'],
      ['deeply nested binary_data', httpApiEvent({ path: bridge('publishEvent'), body: `{"binary_data":${nested(DEEP)}}`, headers: auth }), 400, 'binary_data'],
      ['a deeply nested state', httpApiEvent({ path: bridge('setState'), body: `{"state":${nested(DEEP)}}`, headers: auth }), 400, 'state'],
      ['a deeply nested body', httpApiEvent({ path: bridge('publishEvent'), body: nested(DEEP), headers: auth }), 400, undefined],
      ['deeply nested readings', httpApiEvent({ path: '/devices/dev-a/batch', body: `{"readings":${nested(DEEP)}}`, headers: auth }), 400, undefined],
      ['base64 with bad characters', httpApiPostJson(bridge('publishEvent'), { binary_data: 'not base64!' }, auth), 400, 'binary_data'],
      ['base64 without padding', httpApiPostJson(bridge('publishEvent'), { binary_data: 'YWJjZA' }, auth), 400, 'binary_data'],
      ['base64url', httpApiPostJson(bridge('setState'), { state: { binary_data: '-_-_' } }, auth), 400, 'state.binary_data'],
      ['base64 with a space', httpApiPostJson(bridge('publishEvent'), { binary_data: 'YW Jj' }, auth), 400, 'binary_data'],
      ['a __proto__ field', httpApiEvent({ path: bridge('publishEvent'), body: `{"binary_data":"eA==","__proto__":{"polluted":true}}`, headers: auth }), 400, '__proto__'],
      ['a constructor field', httpApiEvent({ path: bridge('publishEvent'), body: `{"binary_data":"eA==","constructor":{"prototype":{"polluted":true}}}`, headers: auth }), 400, 'constructor'],
      ['a body that is not UTF-8 JSON', httpApiPost(bridge('publishEvent'), Buffer.from([0xff, 0xfe, 0x00, 0x7b]), auth), 400, undefined],
      ['an Authorization header of 100 KB', httpApiPost('/devices/dev-a/events', 'x', { authorization: `Bearer ${'a'.repeat(100_000)}.b.c` }), 401, undefined],
      ['NUL in the Authorization header', httpApiPost('/devices/dev-a/events', 'x', { authorization: `Bearer ${auth.authorization!.slice(7, 20)}\u0000${auth.authorization!.slice(20)}` }), 401, undefined],
      [
        'a token whose header nests 3000 levels',
        httpApiPost('/devices/dev-a/events', 'x', { authorization: `Bearer ${Buffer.from(`{"alg":${nested(3000)},"typ":"JWT"}`).toString('base64url')}.eyJhIjoxfQ.c2ln` }),
        401,
        undefined,
      ],
    ];
    for (const [what, event, status, field] of cases) {
      const answer = await http.call(event);
      expect(answer.status, `${what}: ${answer.body.slice(0, 200)}`).toBe(status);
      const error = JSON.parse(answer.body).error as { message: string; details?: { fieldViolations?: { field: string }[] }[] };
      if (field !== undefined) expect(JSON.stringify(error), what).toContain(field);
      // A refusal may quote a little of the input, never more than a token can hold (8 KB).
      expect(answer.body.length, what).toBeLessThan(10_000);
    }
    expect(await http.queued()).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('takes NUL and any other byte in a raw payload as data, unchanged (payloads are opaque)', async () => {
    const bytes = Buffer.from([0x00, 0x2b, 0x23, 0x2f, 0x00, 0xff, 0x0a, 0x7b]);
    const answer = await http.call(httpApiPost('/devices/dev-a/events', bytes, await http.bearer('dev-a')));
    expect(answer.status).toBe(202);
    const [queued, ...rest] = await http.queued();
    expect(rest).toEqual([]);
    expect(queued!.payload).toEqual(bytes);
    expect(queued!.subfolder).toBeUndefined();
  });
});

describe('queue bodies and device tokens, relayed through the emulated bridge', () => {
  let fleet: Fleet;
  let emulator: Emulator;
  let proxy: InterceptingProxy;
  const emulatorLog: string[] = [];
  beforeAll(async () => {
    fleet = await makeRelayFleet();
    emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, log: (l) => emulatorLog.push(l) });
    proxy = await startInterceptingProxy(emulator);
  });
  afterAll(async () => {
    await proxy?.close();
    await emulator?.close();
  });

  const deps = (): ReturnType<typeof relayDeps> => {
    const d = relayDeps(emulator, fleet);
    return { ...d, settings: { ...d.settings, mqttHost: proxy.host, mqttPort: proxy.port, extraCaPem: proxy.ca } };
  };

  it('dead-letters every hostile body with its own code; only the good neighbours reach the bridge', async () => {
    const base = { v: 1, deviceId: PUMPS[0], payload: 'x' };
    const body = (o: Record<string, unknown>): string => JSON.stringify({ ...base, ...o });
    const hostile: [string, string, string][] = [
      ['a device ID climbing a level', body({ deviceId: `${PUMPS[0]}/../${GW.assoc}` }), 'ERR_INVALID_DEVICE_ID'],
      ['a device ID naming a control topic', body({ deviceId: `${PUMPS[0]}/attach` }), 'ERR_INVALID_DEVICE_ID'],
      ['a wildcard device ID', body({ deviceId: 'pump-#' }), 'ERR_INVALID_DEVICE_ID'],
      ['NUL in the device ID', body({ deviceId: `${PUMPS[0]}\u0000` }), 'ERR_INVALID_DEVICE_ID'],
      ['a subfolder with +', body({ subfolder: 'a/+' }), 'ERR_INVALID_SUBFOLDER'],
      ['a # subfolder', body({ subfolder: '#' }), 'ERR_INVALID_SUBFOLDER'],
      ['NUL in the subfolder', body({ subfolder: 'a\u0000' }), 'ERR_INVALID_SUBFOLDER'],
      ['a body over 1 MB', body({ payload: 'p'.repeat(1024 * 1024) }), 'ERR_INVALID_MESSAGE'],
      ['deeply nested payload', `{"v":1,"deviceId":"${PUMPS[0]}","payload":${nested(DEEP)}}`, 'ERR_INVALID_FIELD'],
      ['deeply nested device ID', `{"v":1,"deviceId":${nested(DEEP)},"payload":"x"}`, 'ERR_INVALID_DEVICE_ID'],
      ['deeply nested subfolder', `{"v":1,"deviceId":"${PUMPS[0]}","subfolder":${nested(DEEP)},"payload":"x"}`, 'ERR_INVALID_SUBFOLDER'],
      ['deeply nested encoding', `{"v":1,"deviceId":"${PUMPS[0]}","encoding":${nested(DEEP)},"payload":"x"}`, 'ERR_INVALID_FIELD'],
      ['deeply nested device token', `{"v":1,"deviceId":"${PUMPS[0]}","deviceToken":${nested(DEEP)},"payload":"x"}`, 'ERR_INVALID_FIELD'],
      ['deeply nested unknown field', `{"v":1,"deviceId":"${PUMPS[0]}","extra":${nested(DEEP)},"payload":"x"}`, 'ERR_INVALID_FIELD'],
      ['deeply nested poll devices', `{"v":1,"type":"config-poll","deviceIds":[${nested(DEEP)}]}`, 'ERR_INVALID_DEVICE_ID'],
      ['a deeply nested body', nested(DEEP), 'ERR_INVALID_MESSAGE'],
      ['deeply nested version', `{"v":${nested(DEEP)},"deviceId":"${PUMPS[0]}","payload":"x"}`, 'ERR_UNSUPPORTED_VERSION'],
      ['deeply nested type', `{"v":1,"type":${nested(DEEP)},"deviceId":"${PUMPS[0]}","payload":"x"}`, 'ERR_UNKNOWN_TYPE'],
      ['an empty field name', `{"v":1,"deviceId":"${PUMPS[0]}","payload":"x","":1}`, 'ERR_INVALID_FIELD'],
      ['base64 with bad characters', body({ encoding: 'base64', payload: 'e30=!' }), 'ERR_INVALID_BASE64'],
      ['base64 with a newline', body({ encoding: 'base64', payload: 'e30=\ne30=' }), 'ERR_INVALID_BASE64'],
      ['a __proto__ key', `{"v":1,"deviceId":"${PUMPS[0]}","payload":"x","__proto__":{"deviceId":"${GW.assoc}"}}`, 'ERR_INVALID_FIELD'],
      ['a constructor key', body({ constructor: { prototype: { polluted: 1 } } }), 'ERR_INVALID_FIELD'],
      ['a device token that would close the attach JSON', body({ deviceToken: 'a.b.c"}, "x": "' }), 'ERR_INVALID_FIELD'],
      ['a device token over 8192 characters', body({ deviceToken: `${'a'.repeat(8190)}.b.c` }), 'ERR_INVALID_FIELD'],
    ];
    const nul = Buffer.from('\u0000+#/\u0000');
    const good = [
      inbound(eventBody(PUMPS[1]!, { subfolder: 'ok' }), { groupId: GW.assoc }),
      inbound(stateBody(PUMPS[1]!), { groupId: GW.assoc }),
      inbound(eventBody(PUMPS[2]!, { encoding: 'base64', payload: nul.toString('utf8') }), { groupId: GW.assoc }),
    ];
    const records = [...hostile.map(([, b]) => inbound(b, { groupId: GW.assoc })), ...good];
    const ledger = new DeliveryLedger(emulator, fleet.registryId, [...PUMPS, GW.assoc]);
    const publishedBefore = proxy.published.length;

    const { outcomes } = await relayBatch(records, deps());

    hostile.forEach(([what, , code], i) => expect({ what, outcome: outcomes[i]!.outcome, code: outcomes[i]!.code }).toEqual({ what, outcome: 'dead-letter', code }));
    expect(outcomes.slice(hostile.length).map((o) => o.outcome)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
    expect(ledger.deliveries().map((d) => [d.kind, d.deviceId])).toEqual([
      ['event', PUMPS[1]],
      ['event', PUMPS[2]],
      ['state', PUMPS[1]],
    ]);
    expect(emulator.registry.events.at(-1)!.data).toBe(nul.toString('base64'));
    // On the wire: the good neighbours' topics only, and every topic a well-formed device topic.
    const topics = proxy.published.slice(publishedBefore).map((p) => p.topic);
    expect(new Set(topics)).toEqual(
      new Set([`/devices/${PUMPS[1]}/attach`, `/devices/${PUMPS[2]}/attach`, `/devices/${PUMPS[1]}/events/ok`, `/devices/${PUMPS[1]}/state`, `/devices/${PUMPS[2]}/events`, `/devices/${PUMPS[1]}/detach`, `/devices/${PUMPS[2]}/detach`]),
    );
    expect(emulatorLog.filter((l) => l.includes('closing'))).toEqual([]);
  });

  it('puts a device token into the attach as one JSON string, and dead-letters every token the bridge refuses', async () => {
    const claims = { aud: fleet.project, iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 };
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const tokens: [string, string][] = [
      ['garbage of the right shape', 'aaaa.bbbb.cccc'],
      ['unsigned (alg none)', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`],
      ["another device's valid token", await fleet.jwt(METERS[1]!)],
      ['an expired token', await fleet.jwt(METERS[0]!, { iat: claims.iat - 7200, lifetimeSeconds: 3600 })],
      ['the longest token the contract takes', `${'a'.repeat(8188)}.b.c`],
    ];
    const records = tokens.map(([, t]) => inbound(eventBody(METERS[0]!, { deviceToken: t }), { groupId: GW.token }));
    for (const [i, r] of records.entries()) {
      const publishedBefore = proxy.published.length;
      const { outcomes } = await relayBatch([r], deps());
      expect({ what: tokens[i]![0], outcome: outcomes[0]!.outcome, code: outcomes[0]!.code }).toEqual({ what: tokens[i]![0], outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED' });
      const attaches = proxy.published.slice(publishedBefore).filter((p) => p.topic.endsWith('/attach'));
      expect(attaches.map((a) => a.topic)).toEqual([`/devices/${METERS[0]}/attach`]);
      expect(JSON.parse(attaches[0]!.payload.toString('utf8'))).toEqual({ authorization: tokens[i]![1] });
      // Refused at the attach: nothing was published for the device.
      expect(proxy.published.slice(publishedBefore).filter((p) => p.topic.includes('/events'))).toEqual([]);
      // The reason logged and sent with the dead letter never carries the token.
      expect(outcomes[0]!.reason).not.toContain(tokens[i]![1].split('.')[0]!.slice(0, 40));
    }
  });
});

describe('a hostile bridge on the errors topic', () => {
  let fleet: Fleet;
  let emulator: Emulator;
  let proxy: InterceptingProxy;
  beforeAll(async () => {
    fleet = await makeRelayFleet();
    emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
    proxy = await startInterceptingProxy(emulator);
  });
  afterAll(async () => {
    await proxy?.close();
    await emulator?.close();
  });

  const errorsTopic = `/devices/${GW.assoc}/errors`;
  const publish = (topic: string, payload: Buffer | string): Packet => ({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain: false, dup: false });

  /** Slips `payloads` onto the errors topic right before the first PUBACK of a telemetry publish. */
  function injectBeforeFirstTelemetryAck(payloads: (Buffer | string)[], topic = errorsTopic): { injected: () => number } {
    const telemetryIds = new Set<number>();
    let injected = 0;
    proxy.hooks = {
      fromClient: (packet) => {
        if (packet.cmd === 'publish' && /\/(events|state)/.test(packet.topic) && packet.messageId !== undefined) telemetryIds.add(packet.messageId);
      },
      fromBridge: (packet, link: ProxyLink) => {
        if (injected === 0 && packet.cmd === 'puback' && telemetryIds.has(packet.messageId ?? -1)) {
          for (const p of payloads) link.toClient(publish(topic, p));
          injected = payloads.length;
        }
        return 'forward';
      },
    };
    return { injected: () => injected };
  }

  async function runThroughProxy(records: ReturnType<typeof record>[]): Promise<ReturnType<typeof sessionOutcomes> & { uncorrelated: number }> {
    const session = new GatewaySession(await sessionOptions(emulator, fleet, GW.assoc, { host: proxy.host, port: proxy.port, extraCaPem: proxy.ca }));
    const report = await session.run(async (s) => {
      await s.attach(attachRequests(records));
      await s.publish(publishRequests(records));
    });
    const outcomes = sessionOutcomes(report, records);
    expectOutcomeInvariant({ records, outcomes, emulator, registryId: fleet.registryId });
    return Object.assign(outcomes, { uncorrelated: report.uncorrelatedErrors });
  }

  it('ignores what it cannot read or match, confirms the batch all the same, and pollutes nothing', async () => {
    const crafted: (Buffer | string)[] = [
      'not json at all',
      Buffer.from([0x00, 0xff, 0xfe, 0x00]),
      `{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"${PUMPS[0]}","description":"${'d'.repeat(70 * 1024)}"}`,
      `{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"not-in-session","x":${nested(30_000)}}`,
      nested(30_000),
      Buffer.alloc(1024 * 1024, 0x7b),
      '{"error_type":{"$gt":""},"device_id":"pump-01"}',
      '{"error_type":"__proto__","device_id":"__proto__","mqtt_message_info":{"topic":"__proto__","packet_id":"constructor"}}',
      '{"__proto__":{"polluted":true},"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"constructor"}',
      '{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"some-device-not-in-this-session"}',
      '{"error_type":"GATEWAY_DEVICE_NOT_FOUND","mqtt_message_info":{"topic":"/devices/+/events","packet_id":-1}}',
      '{"error_type":"GATEWAY_DEVICE_NOT_FOUND","mqtt_message_info":{"topic":"/devices/#","packet_id":1.5}}',
      `{"error_type":"GATEWAY_ATTACHMENT_ERROR","device_id":"${GW.assoc}"}`,
    ];
    const hook = injectBeforeFirstTelemetryAck(crafted);
    const records = [record(eventBody(PUMPS[0]!)), record(eventBody(PUMPS[1]!, { subfolder: 'a' })), record(stateBody(PUMPS[1]!))];

    const outcomes = await runThroughProxy(records);

    expect(hook.injected()).toBe(crafted.length);
    expect(outcomes.map((o) => o.outcome)).toEqual(['confirmed', 'confirmed', 'confirmed']);
    expect(outcomes.uncorrelated).toBe(crafted.length);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
  });

  it('takes nothing but the errors topic: a message on a topic never subscribed is dropped', async () => {
    const hook = injectBeforeFirstTelemetryAck([`{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"${PUMPS[2]}"}`], `/devices/${PUMPS[2]}/errors`);
    const outcomes = await runThroughProxy([record(eventBody(PUMPS[2]!))]);
    expect(hook.injected()).toBe(1);
    expect(outcomes.map((o) => o.outcome)).toEqual(['confirmed']);
    expect(outcomes.uncorrelated).toBe(0);
  });

  it('a crafted error naming a device can only send its records back: nothing is falsely confirmed', async () => {
    const hook = injectBeforeFirstTelemetryAck([`{"error_type":"GATEWAY_DEVICE_NOT_FOUND","device_id":"${PUMPS[3]}","description":"forged"}`]);
    const named = record(eventBody(PUMPS[3]!));
    const other = record(eventBody(PUMPS[4]!));
    const outcomes = await runThroughProxy([named, other]);
    expect(hook.injected()).toBe(1);
    expect(outcomes.map((o) => [o.outcome, o.code])).toEqual([
      ['retry', 'ERR_DEVICE_NOT_FOUND'],
      ['confirmed', undefined],
    ]);
  });
});
