/**
 * LoRaWAN end to end, on the pieces the other end-to-end tests use: webhooks of The Things Stack and ChirpStack into
 * the lorawan handler, the record on the FIFO queue (local SQS), a batch given to the relay handler, the reading at
 * the bridge emulator over TLS; the poller bringing the device's config into the config table (dynalite); and the
 * config going back as a downlink to the network-server stand-in on the device's next uplink.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { SQSClient } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLorawanHandler, type LorawanHandler } from '../../handlers/lorawan.js';
import { ConfigStore } from '../../lib/config-store/config-store.js';
import { LorawanService, parseIntegrations, integrationSecretsFromEnv } from '../../lib/lorawan/index.js';
import { SqsRelayQueue } from '../../lib/queue/relay-queue.js';
import { startNetworkServerStandIn, type NetworkServerStandIn } from '../../local/network-server-stand-in.js';
import { LOCAL_CREDENTIALS } from '../../local/sqs-server.js';
import { httpApiEvent } from '../helpers/apigw-events.js';
import { closedPort } from '../helpers/local-sqs.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../helpers/secrets-manager-endpoint.js';
import { startRelayPipeline, type RelayPipeline } from './relay-pipeline.js';

const GATEWAY = 'gw-field';
/** The fixtures' device, as each integration names it in IoT Core. */
const TTS_DEVICE = 'soil-probe-07';
const CS_DEVICE = 'lora-70b3d57ed0061a2c';
/** A device whose config is larger than the integration's frames. */
const BIG_DEVICE = 'valve-big';
const FRAME = Buffer.from('017b00e60c1f', 'hex');
const CONFIG_V1 = '{"interval_s":900}';
const CONFIG_V2 = '{"interval_s":60}';
const BIG_CONFIG = `{"schedule":"${'x'.repeat(60)}"}`;

const SECRETS = {
  'farm-ttn': { webhookSecret: 'farm-ttn-webhook-secret-0123456789', apiKey: 'NNSXS.E2ETESTKEYTTS' },
  'farm-ttn-decoded': { webhookSecret: 'farm-ttn-decoded-secret-0123456789' },
  'plant-cs': { webhookSecret: 'plant-cs-webhook-secret-0123456789', apiKey: 'e2e-test-key-chirpstack' },
};
const API_KEYS = { tts: SECRETS['farm-ttn'].apiKey, chirpstack: SECRETS['plant-cs'].apiKey };

const fixture = (name: string): any => JSON.parse(readFileSync(new URL(`../lib/lorawan/fixtures/${name}`, import.meta.url), 'utf8'));

let pipeline: RelayPipeline;
let standIn: NetworkServerStandIn;
let handle: LorawanHandler;
let dir: string;
let integrationsJson: string;
let scheduleMinute = 0;
/** Frame counters unique to each uplink of the run: SQS remembers deduplication IDs for 5 minutes. */
let nextCnt = 5000;

beforeAll(async () => {
  standIn = await startNetworkServerStandIn({ apiKeys: API_KEYS });
  pipeline = await startRelayPipeline({
    gateways: [{ id: GATEWAY, bound: [TTS_DEVICE, CS_DEVICE, BIG_DEVICE] }],
    devices: [
      { id: TTS_DEVICE, keyless: true, config: CONFIG_V1 },
      { id: CS_DEVICE, keyless: true, config: CONFIG_V1 },
      { id: BIG_DEVICE, keyless: true, config: BIG_CONFIG },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), 'lorawan-e2e-'));
  const secretsFile = join(dir, 'lorawan-secrets.json');
  await writeFile(secretsFile, JSON.stringify(SECRETS), { mode: 0o600 });
  const downlink = { apiUrl: standIn.url, fPort: 10, maxBytes: 24 };
  integrationsJson = JSON.stringify([
    { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}', payload: 'raw', subfolder: 'lorawan/{f_port}', downlink: { ...downlink, webhookId: 'iotcore-relay' } },
    { id: 'farm-ttn-decoded', networkServer: 'tts', deviceId: '{device_id}', payload: 'decoded' },
    { id: 'plant-cs', networkServer: 'chirpstack', deviceId: 'lora-{dev_eui}', payload: 'envelope', subfolder: 'lorawan/{f_port}', relayEvents: ['status'], downlink },
  ]);
  handle = createLorawanHandler({
    env: { ...pipeline.env, LORAWAN_INTEGRATIONS: integrationsJson, LORAWAN_SECRETS_FILE: secretsFile },
    logger: new Logger({ serviceName: 'iotcore-relay-lorawan', logLevel: 'DEBUG' }),
    metrics: new Metrics({ namespace: 'IotCoreRelayE2E', serviceName: 'iotcore-relay-lorawan' }),
  });
});
afterEach(() => pipeline.clearLogs());
afterAll(async () => {
  await pipeline?.close();
  await standIn?.close();
  await rm(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: any;
  headers: Record<string, unknown>;
}

interface PostOptions {
  secret?: string | null;
  event?: string;
  headers?: Record<string, string>;
  /** A raw body instead of JSON. */
  raw?: string | Buffer;
  method?: string;
}

async function post(integration: string, doc: unknown, options: PostOptions = {}): Promise<Answer> {
  const known = (SECRETS as Record<string, { webhookSecret: string }>)[integration];
  const secret = options.secret === undefined ? known?.webhookSecret : options.secret;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(secret !== null && secret !== undefined ? { 'x-webhook-secret': secret } : {}), ...options.headers };
  const event = httpApiEvent({
    method: options.method ?? 'POST',
    path: `/lorawan/${integration}`,
    body: options.raw ?? JSON.stringify(doc),
    headers,
    ...(options.event !== undefined ? { query: { event: options.event } } : {}),
  });
  const result = (await handle(event)) as APIGatewayProxyStructuredResultV2;
  return { status: result.statusCode ?? 200, body: JSON.parse(result.body ?? 'null'), headers: (result.headers ?? {}) as Record<string, unknown> };
}

/** The fixture's frame with a frame counter of its own (and, for ChirpStack, a deduplication ID of its own). */
function ttsUplink(fCnt = nextCnt++, edit: (d: any) => void = () => {}): any {
  const doc = fixture('tts-uplink.json');
  doc.uplink_message.f_cnt = fCnt;
  edit(doc);
  return doc;
}

function chirpstackUplink(fCnt = nextCnt++, edit: (d: any) => void = () => {}): any {
  const doc = fixture('chirpstack-up.json');
  doc.fCnt = fCnt;
  doc.deduplicationId = `5f0c3a9e-7b41-4d2a-9c63-${String(fCnt).padStart(12, '0')}`;
  edit(doc);
  return doc;
}

const eventsOf = (deviceId: string) => pipeline.emulator.registry.events.filter((e) => e.attributes.deviceId === deviceId);

/** Relays everything on the queue, batch by batch. */
async function relayAll(): Promise<number> {
  let relayed = 0;
  for (;;) {
    const { records, response } = await pipeline.relayQueueOnce();
    if (records.length === 0) return relayed;
    expect(response).toEqual({ batchItemFailures: [] });
    relayed += records.length;
  }
}

/** One run of the poller and the relay serving its job: the devices relayed for recently get their config stored. */
async function poll(): Promise<void> {
  const summary = await pipeline.poll({ time: new Date(Date.UTC(2025, 5, 1, 0, scheduleMinute++)).toISOString() });
  expect(summary.jobs).toBeGreaterThan(0);
  await relayAll();
}

const metricDocs = () => pipeline.logLines().filter((l) => '_aws' in l);
const logsWith = (message: string) => pipeline.logLines().filter((l) => l.message === message);

describe('uplinks to the bridge', () => {
  it('relays a The Things Stack uplink: its bytes, in subfolder lorawan/{f_port}, on the device\'s gateway group', async () => {
    const before = eventsOf(TTS_DEVICE).length;
    const answer = await post('farm-ttn', ttsUplink());
    expect(answer.status).toBe(202);
    expect(answer.body).toMatchObject({ deviceId: TTS_DEVICE, messageId: expect.any(String) });

    const { records, response } = await pipeline.relayQueueOnce();
    expect(records.map((r) => r.messageId)).toEqual([answer.body.messageId]);
    expect(records[0]!.attributes.MessageGroupId).toBe(GATEWAY);
    expect(response).toEqual({ batchItemFailures: [] });
    const received = eventsOf(TTS_DEVICE).slice(before);
    expect(received).toHaveLength(1);
    expect(Buffer.from(received[0]!.data, 'base64')).toEqual(FRAME);
    expect(received[0]!.attributes).toMatchObject({ deviceId: TTS_DEVICE, subFolder: 'lorawan/2', gatewayId: GATEWAY });
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
  });

  it('relays the same frame from ChirpStack as the envelope, radio values from the best gateway', async () => {
    const fCnt = nextCnt++;
    const answer = await post('plant-cs', chirpstackUplink(fCnt), { event: 'up' });
    expect(answer.status).toBe(202);
    expect(await relayAll()).toBe(1);
    const [received] = eventsOf(CS_DEVICE).slice(-1);
    expect(received!.attributes.subFolder).toBe('lorawan/2');
    expect(JSON.parse(Buffer.from(received!.data, 'base64').toString('utf8'))).toEqual({
      payload: FRAME.toString('base64'),
      fPort: 2,
      fCnt,
      time: '2025-03-14T07:42:18.695120437+00:00',
      rssi: -97,
      snr: 7.25,
      gatewayId: 'b827ebfffe61a2c1',
    });
  });

  it('relays a decoded payload as JSON, and refuses an uplink without one with 422', async () => {
    const before = eventsOf(TTS_DEVICE).length;
    expect((await post('farm-ttn-decoded', ttsUplink())).status).toBe(202);
    const missing = await post('farm-ttn-decoded', ttsUplink(undefined, (d) => delete d.uplink_message.decoded_payload));
    expect(missing.status).toBe(422);
    expect(missing.body.error.message).toMatch(/uplink_message.decoded_payload is missing/);
    expect(await relayAll()).toBe(1);
    const [received] = eventsOf(TTS_DEVICE).slice(before);
    expect(JSON.parse(Buffer.from(received!.data, 'base64').toString())).toEqual({ moisture: 123, temperature: 23, battery_mv: 3103 });
    expect(received!.attributes.subFolder ?? '').toBe('');
  });

  it('queues a webhook the network server retries once', async () => {
    const before = { tts: eventsOf(TTS_DEVICE).length, cs: eventsOf(CS_DEVICE).length };
    const tts = ttsUplink();
    const cs = chirpstackUplink();
    const answers = [
      ...(await Promise.all([post('farm-ttn', tts), post('farm-ttn', tts)])),
      await post('farm-ttn', tts),
      await post('plant-cs', cs, { event: 'up' }),
      await post('plant-cs', cs, { event: 'up' }),
    ];
    expect(answers.map((a) => a.status)).toEqual([202, 202, 202, 202, 202]);
    // SQS answers a duplicate with the first message's ID.
    expect(new Set(answers.slice(0, 3).map((a) => a.body.messageId)).size).toBe(1);
    expect(new Set(answers.slice(3).map((a) => a.body.messageId)).size).toBe(1);
    expect(await relayAll()).toBe(2);
    expect(eventsOf(TTS_DEVICE).length - before.tts).toBe(1);
    expect(eventsOf(CS_DEVICE).length - before.cs).toBe(1);
  });
});

describe('configs as downlinks', () => {
  /** An uplink relayed, so the relay notes the device and the poller polls its config. */
  async function uplinkAndPoll(): Promise<void> {
    expect((await post('farm-ttn', ttsUplink())).status).toBe(202);
    expect((await post('plant-cs', chirpstackUplink(), { event: 'up' })).status).toBe(202);
    expect((await post('farm-ttn', ttsUplink(undefined, (d) => (d.end_device_ids.device_id = BIG_DEVICE)))).status).toBe(202);
    await relayAll();
    await poll();
  }

  it('sends the stored config on the next uplink, marks it delivered once accepted, and sends a changed one after a refusal', async () => {
    await uplinkAndPoll();
    const store = pipeline.store;
    expect((await store.getConfig(TTS_DEVICE))?.bytes.toString()).toBe(CONFIG_V1);
    const recorded = standIn.downlinks().length;

    // The next uplink of each: the config goes out, on the integration's port, as its raw bytes.
    const tts = await post('farm-ttn', ttsUplink());
    const cs = await post('plant-cs', chirpstackUplink(), { event: 'up' });
    expect(tts.body.downlink).toEqual({ status: 'sent', version: 1 });
    expect(cs.body.downlink).toEqual({ status: 'sent', version: 1 });
    const sent = standIn.downlinks().slice(recorded);
    expect(sent).toEqual([
      expect.objectContaining({ networkServer: 'tts', operation: 'replace', applicationId: 'orchard-sensors', webhookId: 'iotcore-relay', deviceId: TTS_DEVICE, fPort: 10, data: Buffer.from(CONFIG_V1).toString('base64') }),
      expect.objectContaining({ networkServer: 'chirpstack', operation: 'replace', devEui: '70b3d57ed0061a2c', fPort: 10, data: Buffer.from(CONFIG_V1).toString('base64') }),
    ]);
    expect((await store.getDownlinkState(TTS_DEVICE)).delivered).toMatchObject({ version: 1, via: 'farm-ttn' });
    expect((await store.getDownlinkState(CS_DEVICE)).delivered).toMatchObject({ version: 1, via: 'plant-cs' });

    // Delivered: the uplink after that sends nothing.
    expect((await post('farm-ttn', ttsUplink())).body.downlink).toEqual({ status: 'up-to-date', version: 1 });
    expect(standIn.downlinks()).toHaveLength(recorded + 2);

    // The config changes at the bridge; the poller brings version 2 into the store.
    for (const id of [TTS_DEVICE, CS_DEVICE]) pipeline.emulator.registry.modifyConfig(pipeline.fleet.registryId, id, Buffer.from(CONFIG_V2).toString('base64'));
    await relayAll();
    await poll();
    expect((await store.getConfig(TTS_DEVICE))?.version).toBe(2);

    // The network servers refuse: nothing is recorded, nothing is marked, the uplink is still queued.
    standIn.refuse(503);
    const refusedTts = await post('farm-ttn', ttsUplink());
    const refusedCs = await post('plant-cs', chirpstackUplink(), { event: 'up' });
    standIn.refuse(undefined);
    expect([refusedTts.status, refusedCs.status]).toEqual([202, 202]);
    expect(refusedTts.body.downlink).toEqual({ status: 'failed', version: 2 });
    expect(refusedCs.body.downlink).toEqual({ status: 'failed', version: 2 });
    expect(standIn.downlinks()).toHaveLength(recorded + 2);
    expect((await store.getDownlinkState(TTS_DEVICE)).delivered?.version).toBe(1);
    const warnings = logsWith('config downlink not accepted; the next uplink tries again');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({ level: 'WARN', status: 'failed', httpStatus: 503, deviceId: TTS_DEVICE });
    expect(await relayAll()).toBe(2);

    // The next uplink, with the network servers back: version 2 goes out and is marked.
    expect((await post('farm-ttn', ttsUplink())).body.downlink).toEqual({ status: 'sent', version: 2 });
    expect((await post('plant-cs', chirpstackUplink(), { event: 'up' })).body.downlink).toEqual({ status: 'sent', version: 2 });
    expect(standIn.downlinks().slice(recorded + 2).map((d) => [d.networkServer, d.fPort, Buffer.from(d.data, 'base64').toString()])).toEqual([
      ['tts', 10, CONFIG_V2],
      ['chirpstack', 10, CONFIG_V2],
    ]);
    expect((await store.getDownlinkState(TTS_DEVICE)).delivered?.version).toBe(2);
    expect((await store.getDownlinkState(CS_DEVICE)).delivered?.version).toBe(2);
    expect(await relayAll()).toBe(2);
  });

  it('does not send a config larger than the integration\'s frames: noted, logged and counted once', async () => {
    if ((await pipeline.store.getConfig(BIG_DEVICE)) === undefined) await uplinkAndPoll();
    const recorded = standIn.downlinks().length;
    const big = (d: any) => (d.end_device_ids.device_id = BIG_DEVICE);
    const first = await post('farm-ttn', ttsUplink(undefined, big));
    const second = await post('farm-ttn', ttsUplink(undefined, big));
    expect(first.status).toBe(202);
    expect(first.body.downlink).toEqual({ status: 'too-large', version: 1 });
    expect(second.body.downlink).toEqual({ status: 'too-large', version: 1 });
    expect(standIn.downlinks()).toHaveLength(recorded);
    const state = await pipeline.store.getDownlinkState(BIG_DEVICE);
    expect(state.delivered).toBeUndefined();
    expect(state.refused).toMatchObject({ version: 1, reason: `config version 1 is ${BIG_CONFIG.length} bytes; integration farm-ttn sends at most 24 per downlink` });
    const warnings = logsWith('config not sent as a downlink: too large');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 'WARN', deviceId: BIG_DEVICE, version: 1, reason: expect.stringContaining(`${BIG_CONFIG.length} bytes`) });
    expect(Object.assign({}, ...metricDocs())).toMatchObject({ LoRaWANDownlinksTooLarge: 1 });
    expect(await relayAll()).toBe(2);
  });
});

describe('refusals', () => {
  it('answers each hostile body with its own 4xx, and relays the uplinks around them', async () => {
    const goodCnts = [nextCnt++, nextCnt++];
    const hostile: [string, () => Promise<Answer>, number, RegExp][] = [
      ['not JSON', () => post('farm-ttn', null, { raw: '{"end_device_ids": ' }), 400, /not JSON/],
      ['a JSON list', () => post('farm-ttn', [ttsUplink()]), 400, /JSON object/],
      ['no end_device_ids', () => post('farm-ttn', ttsUplink(undefined, (d) => delete d.end_device_ids)), 400, /end_device_ids must be an object/],
      ['f_cnt as text', () => post('farm-ttn', ttsUplink(undefined, (d) => (d.uplink_message.f_cnt = 'seven'))), 400, /uplink_message.f_cnt must be an integer/],
      ['bad base64', () => post('farm-ttn', ttsUplink(undefined, (d) => (d.uplink_message.frm_payload = '@@@@'))), 400, /uplink_message.frm_payload is not valid base64/],
      ['rx_metadata of 500 gateways', () => post('farm-ttn', ttsUplink(undefined, (d) => (d.uplink_message.rx_metadata = Array(500).fill(d.uplink_message.rx_metadata[0])))), 413, /rx_metadata lists 500 receptions/],
      ['a body over 1 MiB', () => post('farm-ttn', ttsUplink(undefined, (d) => (d.padding = 'x'.repeat(1_100_000)))), 413, /body is \d+ bytes/],
      ['Protobuf instead of JSON', () => post('plant-cs', null, { event: 'up', raw: Buffer.from([0x0a, 0x24]), headers: { 'content-type': 'application/octet-stream' } }), 415, /payload marshaler to JSON/],
      ['a device ID IoT Core refuses', () => post('farm-ttn', ttsUplink(undefined, (d) => (d.end_device_ids.device_id = 'goog-probe'))), 422, /deviceId/],
      ['a decoded payload nested 100,000 deep', () => post('farm-ttn-decoded', null, { raw: ttsJsonWithDeepDecoded() }), 422, /nested too deeply/],
      ['no event query (ChirpStack)', () => post('plant-cs', chirpstackUplink()), 400, /event query parameter is missing/],
      ['an unknown event (ChirpStack)', () => post('plant-cs', chirpstackUplink(), { event: 'uplink' }), 400, /not an event of ChirpStack/],
      ['no DevEUI (ChirpStack)', () => post('plant-cs', chirpstackUplink(undefined, (d) => delete d.deviceInfo.devEui), { event: 'up' }), 400, /deviceInfo.devEui/],
      ['an unknown integration', () => post('no-such-integration', ttsUplink()), 404, /no LoRaWAN integration named/],
      ['a GET', () => post('farm-ttn', ttsUplink(), { method: 'GET' }), 405, /use POST/],
    ];
    const good = [() => post('farm-ttn', ttsUplink(goodCnts[0])), () => post('plant-cs', chirpstackUplink(goodCnts[1]), { event: 'up' })];
    // Interleaved and concurrent, so a refusal would show on a neighbour if it could.
    const all = await Promise.all([good[0]!(), ...hostile.map(([, send]) => send()), good[1]!()]);
    const [first, ...rest] = all;
    const last = rest.pop()!;
    expect([first!.status, last.status]).toEqual([202, 202]);
    hostile.forEach(([what, , status, message], i) => {
      expect(rest[i]!.status, what).toBe(status);
      expect(rest[i]!.body.error.message, what).toMatch(message);
    });
    expect(rest[hostile.length - 1]!.headers.allow).toBe('POST');
    // Only the two uplinks reached the queue, and the bridge.
    const { records } = await pipeline.relayQueueOnce();
    expect(records.map((r) => r.messageId).sort()).toEqual([first!.body.messageId, last.body.messageId].sort());
    expect(await relayAll()).toBe(0);
  });

  it('answers 401 to a missing or wrong webhook secret, and queues nothing', async () => {
    const wrongSameLength = SECRETS['farm-ttn'].webhookSecret.replace(/.$/, 'X');
    const answers = [
      await post('farm-ttn', ttsUplink(), { secret: null }),
      await post('farm-ttn', ttsUplink(), { secret: wrongSameLength }),
      await post('farm-ttn', ttsUplink(), { secret: 'short' }),
      // Another integration's secret is not this one's.
      await post('farm-ttn', ttsUplink(), { secret: SECRETS['plant-cs'].webhookSecret }),
      // The right value in another header.
      await post('farm-ttn', ttsUplink(), { secret: null, headers: { authorization: `Bearer ${SECRETS['farm-ttn'].webhookSecret}` } }),
    ];
    for (const a of answers) {
      expect(a.status).toBe(401);
      expect(a.body.error).toMatchObject({ status: 'UNAUTHENTICATED', message: 'the webhook secret in header x-webhook-secret is missing or wrong' });
    }
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
    // No secret appears in any log line.
    const text = JSON.stringify(pipeline.logLines());
    for (const s of Object.values(SECRETS)) expect(text).not.toContain(s.webhookSecret);
  });
});

describe('other events', () => {
  it('acknowledges ChirpStack\'s join, ack, txack, log and location events, counts them, and relays none', async () => {
    const events = ['join', 'ack', 'txack', 'log', 'location'];
    const join = fixture('chirpstack-join.json');
    for (const event of events) {
      const answer = await post('plant-cs', event === 'join' ? join : { time: '2025-03-14T07:39:57.311414029+00:00', deviceInfo: join.deviceInfo }, { event });
      expect(answer.status, event).toBe(200);
      expect(answer.body, event).toEqual({ acknowledged: event });
    }
    // The Things Stack's too.
    expect((await post('farm-ttn', fixture('tts-join-accept.json'))).body).toEqual({ acknowledged: 'join_accept' });
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
    const counted = metricDocs()
      .filter((d) => d.LoRaWANEventsAcknowledged === 1)
      .map((d) => d.event);
    expect(counted).toEqual([...events, 'join_accept']);
  });

  it('relays an event the integration lists in relayEvents, in its event subfolder', async () => {
    const status = fixture('chirpstack-status.json');
    status.deduplicationId = `a3d9e41c-0b57-4f3e-8d21-${String(nextCnt++).padStart(12, '0')}`;
    const answer = await post('plant-cs', status, { event: 'status' });
    expect(answer.status).toBe(202);
    expect(await relayAll()).toBe(1);
    const [received] = eventsOf(CS_DEVICE).slice(-1);
    expect(received!.attributes.subFolder).toBe('lorawan/status');
    expect(JSON.parse(Buffer.from(received!.data, 'base64').toString())).toEqual(status);
    expect(Object.assign({}, ...metricDocs())).toMatchObject({ LoRaWANEventsRelayed: 1 });
  });
});

describe('when a dependency fails', () => {
  it('answers 503 with Retry-After when the queue cannot take the uplink, and sends no downlink', async () => {
    const port = await closedPort();
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
    const service = new LorawanService({
      integrations: parseIntegrations(integrationsJson),
      secrets: integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: join(dir, 'lorawan-secrets.json') })!,
      gatewayIds: [GATEWAY],
      queue: new SqsRelayQueue({ queueUrl: `http://127.0.0.1:${port}/123456789012/relay.fifo`, client }),
      downlinks: pipeline.store,
    });
    const recorded = standIn.downlinks().length;
    const doc = ttsUplink();
    const answer = await service.handle({
      method: 'POST',
      path: '/lorawan/farm-ttn',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRETS['farm-ttn'].webhookSecret },
      body: Buffer.from(JSON.stringify(doc)),
      requestId: 'r-503',
      query: {},
    });
    client.destroy();
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toBe('5');
    expect(answer.log.error).toMatchObject({ code: 'ERR_QUEUE_UNAVAILABLE' });
    expect(standIn.downlinks()).toHaveLength(recorded);
  });

  describe('with the secrets in Secrets Manager', () => {
    let sm: SecretsManagerEndpoint;
    let smHandle: LorawanHandler;
    beforeAll(async () => {
      sm = await startSecretsManagerEndpoint();
      sm.putSecret('iotcore-relay/e2e/lorawan', JSON.stringify(SECRETS));
      const provider = new SecretsProvider({ awsSdkV3Client: sm.client() });
      const env = { ...pipeline.env, LORAWAN_INTEGRATIONS: integrationsJson, LORAWAN_SECRETS_SECRET: 'iotcore-relay/e2e/lorawan', LORAWAN_SECRETS_CACHE_SECONDS: '0' };
      const service = new LorawanService({
        integrations: parseIntegrations(integrationsJson),
        secrets: integrationSecretsFromEnv(env, { secretsProvider: provider })!,
        gatewayIds: [GATEWAY],
        queue: new SqsRelayQueue({ queueUrl: pipeline.sqs.queueUrl, client: pipeline.sqs.client }),
        downlinks: new ConfigStore({ tableName: pipeline.db.tableName, client: pipeline.db.client }),
        enqueueDownlink: async () => ({ accepted: false, reason: 'not under test here' }),
      });
      smHandle = createLorawanHandler({ env, service, logger: new Logger({ serviceName: 'iotcore-relay-lorawan', logLevel: 'DEBUG' }) });
    });
    afterAll(() => sm?.close());

    it('reads the webhook secret from the secret, and answers 503 while it cannot be read', async () => {
      const send = async () => {
        const result = (await smHandle(
          httpApiEvent({ path: '/lorawan/farm-ttn', body: JSON.stringify(ttsUplink()), headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRETS['farm-ttn'].webhookSecret } }),
        )) as APIGatewayProxyStructuredResultV2;
        return result.statusCode;
      };
      expect(await send()).toBe(202);
      sm.throttle();
      expect(await send()).toBe(503);
      sm.throttle(false);
      expect(await send()).toBe(202);
      expect(sm.calls('iotcore-relay/e2e/lorawan')).toBe(3);
      expect(await relayAll()).toBe(2);
      expect(JSON.stringify(pipeline.logLines())).not.toContain(SECRETS['farm-ttn'].webhookSecret);
    });
  });
});

/** A valid uplink whose decoded payload nests deeper than JSON.stringify's stack allows, written as text. */
function ttsJsonWithDeepDecoded(): string {
  const doc = ttsUplink();
  const text = JSON.stringify(doc);
  const depth = 100_000;
  return text.replace('"decoded_payload":{', `"decoded_payload":{"deep":${'['.repeat(depth)}${']'.repeat(depth)},`);
}
