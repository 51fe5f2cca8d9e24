import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createIngestHandler, type IngestHandler } from '../../handlers/ingest.js';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/index.js';
import { gatewayFor } from '../../lib/gateway-pool.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import { deviceDeduplicationId, ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { parseQueueMessage, type TelemetryMessage } from '../../lib/queue/message.js';
import { httpApiEvent, httpApiPost, httpApiPostJson } from '../helpers/apigw-events.js';
import { captureOutput, withCapturedOutput, type CapturedOutput } from '../helpers/captured-output.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { closedPort, startLocalSqs, startSqsStandIn, THROTTLED, type LocalSqs, type SqsStandIn, type StandInCall } from '../helpers/local-sqs.js';
import { deviceJwt, ecDevice, keyDocument, nowSeconds, PROJECT, rsaDevice } from '../lib/auth/device-credentials.js';

const GATEWAYS = ['gw-1', 'gw-2', 'gw-3'];
const MASTER = 'ingest-test-master-secret-0123456789abcdef';
const BRIDGE = `/v1/projects/${PROJECT}/locations/us-central1/registries/demo-registry/devices`;
const pump = ecDevice('pump-0042');
const valve = ecDevice('valve-0007');
const meter = rsaDevice('meter-0001');
const deviceKey = (id: string): string => deriveDeviceKey(masterKeyFromText(MASTER, 'test'), id);
const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');
const silent = new Logger({ logLevel: 'SILENT' });

let sqs: LocalSqs;
let dir: string;
let env: Record<string, string>;
let ingest: IngestHandler;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown> & { error?: { code: number; message: string; status: string; details?: unknown[] } };
}

async function call(event: APIGatewayProxyEventV2, handler = ingest): Promise<Answer> {
  const result = (await handler(event)) as APIGatewayProxyStructuredResultV2;
  return { status: result.statusCode ?? 200, headers: result.headers as Record<string, string>, body: JSON.parse(result.body ?? 'null') };
}

const telemetry = (body: string): TelemetryMessage => parseQueueMessage(body) as TelemetryMessage;
const bearer = async (...args: Parameters<typeof deviceJwt>): Promise<Record<string, string>> => ({ authorization: `Bearer ${await deviceJwt(...args)}` });
const keyAuth = (id: string): Record<string, string> => ({ authorization: `Device-Key ${deviceKey(id)}` });

beforeAll(async () => {
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'ingest-handler-'));
  writeFileSync(join(dir, 'device-keys.json'), keyDocument([pump, valve, meter]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: 'us-central1',
    IOTCORE_REGISTRY: 'demo-registry',
    IOTCORE_GATEWAY_IDS: GATEWAYS.join(','),
    RELAY_QUEUE_URL: sqs.queueUrl,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
  };
  ingest = createIngestHandler({ service: ingestServiceFromEnv(env, { sqsClient: sqs.client }), logger: silent });
});
afterAll(async () => {
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => sqs.purge());

describe('routes that queue', () => {
  it('takes an IoT Core publishEvent with a device JWT: group, deduplication ID and body as the relay reads them', async () => {
    const auth = await bearer(pump);
    const event = httpApiPostJson(`${BRIDGE}/pump-0042:publishEvent`, { binary_data: b64('{"temp":21}'), sub_folder: 'alarms/high' }, auth);

    const answer = await call(event);

    expect(answer.status).toBe(202);
    const [message, ...rest] = await sqs.receiveAll();
    expect(rest).toEqual([]);
    expect(answer.body).toEqual({ messageIds: [message!.messageId] });
    expect(message!.groupId).toBe(gatewayFor('pump-0042', GATEWAYS));
    expect(message!.deduplicationId).toBe(event.requestContext.requestId);
    expect(telemetry(message!.body)).toEqual({
      v: 1,
      type: 'event',
      deviceId: 'pump-0042',
      subfolder: 'alarms/high',
      payload: Buffer.from('{"temp":21}'),
      deviceToken: auth.authorization!.slice('Bearer '.length),
    });
  });

  it('puts each reading in the message group of its device\'s gateway (rendezvous over the pool)', async () => {
    await call(httpApiPost('/devices/pump-0042/events', 'a', keyAuth('pump-0042')));
    await call(httpApiPost('/devices/valve-0007/events', 'b', keyAuth('valve-0007')));

    const groups = (await sqs.receiveAll()).map((m) => m.groupId);
    expect(groups).toEqual([gatewayFor('pump-0042', GATEWAYS), gatewayFor('valve-0007', GATEWAYS)]);
    for (const g of groups) expect(GATEWAYS).toContain(g);
  });

  it('takes publishEvent with the colon still encoded, camelCase fields, and an RS256 token', async () => {
    const answer = await call(httpApiPostJson(`${BRIDGE}/meter-0001%3ApublishEvent`, { binaryData: b64('42') }, await bearer(meter)));

    expect(answer.status).toBe(202);
    const [message] = await sqs.receiveAll();
    expect(telemetry(message!.body)).toMatchObject({ type: 'event', deviceId: 'meter-0001', payload: Buffer.from('42') });
    expect(telemetry(message!.body).subfolder).toBeUndefined();
  });

  it('takes an IoT Core setState', async () => {
    const answer = await call(httpApiPostJson(`${BRIDGE}/pump-0042:setState`, { state: { binary_data: b64('running') } }, await bearer(pump)));

    expect(answer.status).toBe(202);
    expect(telemetry((await sqs.receiveAll())[0]!.body)).toMatchObject({ type: 'state', deviceId: 'pump-0042', payload: Buffer.from('running') });
  });

  it('takes a binary body as an event with a subfolder, by device key, without a deviceToken', async () => {
    const payload = Buffer.from([0x00, 0xff, 0x10, 0x80]);

    const answer = await call(httpApiPost('/devices/valve-0007/events/sensors/flow', payload, keyAuth('valve-0007')));

    expect(answer.status).toBe(202);
    const message = telemetry((await sqs.receiveAll())[0]!.body);
    expect(message).toEqual({ v: 1, type: 'event', deviceId: 'valve-0007', subfolder: 'sensors/flow', payload });
  });

  it('takes a text body as state, whatever its content type', async () => {
    const event = httpApiEvent({ path: '/devices/valve-0007/state', body: 'open', headers: { ...keyAuth('valve-0007'), 'content-type': 'application/x-whatever' } });

    expect((await call(event)).status).toBe(202);
    expect(telemetry((await sqs.receiveAll())[0]!.body)).toMatchObject({ type: 'state', payload: Buffer.from('open') });
  });

  it('deduplicates by X-Message-Id, namespaced by the device: a retry is dropped, another device is not', async () => {
    const headers = { ...keyAuth('pump-0042'), 'x-message-id': 'reading-17' };

    const first = await call(httpApiPost('/devices/pump-0042/events', '1', headers));
    const retry = await call(httpApiPost('/devices/pump-0042/events', '1', headers));
    const otherDevice = await call(httpApiPost('/devices/valve-0007/events', '1', { ...keyAuth('valve-0007'), 'x-message-id': 'reading-17' }));

    expect([first.status, retry.status, otherDevice.status]).toEqual([202, 202, 202]);
    const received = await sqs.receiveAll();
    expect(received.map((m) => m.deduplicationId)).toEqual([
      deviceDeduplicationId('pump-0042', 'event', 'reading-17'),
      deviceDeduplicationId('valve-0007', 'event', 'reading-17'),
    ]);
  });

  it('serves a named stage, whose name API Gateway leaves in rawPath', async () => {
    const event = httpApiEvent({ path: '/devices/pump-0042/state', body: 'x', stage: 'prod', headers: keyAuth('pump-0042') });

    expect(event.rawPath).toBe('/prod/devices/pump-0042/state');
    expect((await call(event)).status).toBe(202);
    await sqs.receiveAll();
  });
});

describe('the batch route', () => {
  it('queues the valid readings in order, refuses the invalid ones, and says which is which', async () => {
    const event = httpApiPostJson(
      '/devices/pump-0042/batch',
      {
        readings: [
          { payload: '20.1', messageId: 'm-1' },
          { type: 'state', payload: b64('idle'), encoding: 'base64' },
          { payload: 'x', subfolder: 'a/#' },
          { subfolder: 'alarms', payload: 'high' },
        ],
      },
      await bearer(pump),
    );

    const answer = await call(event);

    expect(answer.status).toBe(202);
    const received = await sqs.receiveAll();
    const readings = answer.body['readings'] as Record<string, unknown>[];
    expect(readings.map((r) => r['status'])).toEqual(['QUEUED', 'QUEUED', 'REJECTED', 'QUEUED']);
    expect(readings[2]).toMatchObject({ index: 2, error: { code: 400, status: 'INVALID_ARGUMENT', message: 'readings[2].subfolder must not contain the MQTT wildcards + or #' } });
    expect(answer.body['messageIds']).toEqual(received.map((m) => m.messageId));
    expect(received.map((m) => telemetry(m.body))).toMatchObject([
      { type: 'event', payload: Buffer.from('20.1') },
      { type: 'state', payload: Buffer.from('idle') },
      { type: 'event', subfolder: 'alarms', payload: Buffer.from('high') },
    ]);
    const requestId = event.requestContext.requestId;
    expect(received.map((m) => m.deduplicationId)).toEqual([deviceDeduplicationId('pump-0042', 'event', 'm-1'), `${requestId}#1`, `${requestId}#3`]);
    expect(new Set(received.map((m) => m.groupId))).toEqual(new Set([gatewayFor('pump-0042', GATEWAYS)]));
  });

  it('queues 25 readings over three SendMessageBatch calls, in order', async () => {
    const readings = Array.from({ length: 25 }, (_, i) => ({ payload: `r${i}` }));

    const answer = await call(httpApiPostJson('/devices/valve-0007/batch', { readings }, keyAuth('valve-0007')));

    expect(answer.status).toBe(202);
    expect((await sqs.receiveAll()).map((m) => telemetry(m.body).payload.toString())).toEqual(readings.map((r) => r.payload));
  });

  it('answers 400 with every reading refused when none is valid', async () => {
    const answer = await call(httpApiPostJson('/devices/valve-0007/batch', { readings: [{ payload: 1 }, { type: 'x', payload: '' }] }, keyAuth('valve-0007')));

    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: 400, status: 'INVALID_ARGUMENT' }, messageIds: [], readings: [{ status: 'REJECTED' }, { status: 'REJECTED' }] });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('refuses X-Message-Id on a batch: each reading carries its own', async () => {
    const answer = await call(httpApiPostJson('/devices/valve-0007/batch', { readings: [{ payload: 'x' }] }, { ...keyAuth('valve-0007'), 'x-message-id': 'm' }));

    expect(answer).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('give each batch reading its own messageId') } } });
  });
});

describe('answers that queue nothing', () => {
  const expectError = (answer: Answer, status: number, apiStatus: string, message?: string | RegExp): void => {
    expect(answer.status).toBe(status);
    expect(answer.body.error).toMatchObject({ code: status, status: apiStatus });
    if (message !== undefined) expect(answer.body.error?.message).toMatch(message);
    expect(answer.headers['content-type']).toBe('application/json');
  };
  afterEach(async () => {
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('404 for an unknown path and for another registry', async () => {
    expectError(await call(httpApiPost('/devices/pump-0042/commands', 'x', keyAuth('pump-0042'))), 404, 'NOT_FOUND');
    const other = `/v1/projects/${PROJECT}/locations/us-central1/registries/other-registry/devices/pump-0042:publishEvent`;
    expectError(await call(httpApiPostJson(other, { binary_data: 'aGk=' }, await bearer(pump))), 404, 'NOT_FOUND', /other-registry is not served here/);
  });

  it('405 for another method on a route, with Allow: POST', async () => {
    const answer = await call(httpApiEvent({ method: 'GET', path: '/devices/pump-0042/events', headers: keyAuth('pump-0042') }));

    expectError(answer, 405, 'UNIMPLEMENTED');
    expect(answer.headers['allow']).toBe('POST');
  });

  it('400 naming the field: device ID in the path, base64, subfolder, message ID', async () => {
    const cases: [APIGatewayProxyEventV2, string][] = [
      [httpApiPost('/devices/goog-1/events', 'x', keyAuth('pump-0042')), 'deviceId'],
      [httpApiPostJson(`${BRIDGE}/pump-0042:publishEvent`, { binary_data: 'not base64' }, await bearer(pump)), 'binary_data'],
      [httpApiPost('/devices/pump-0042/events/a//b', 'x', keyAuth('pump-0042')), 'subfolder'],
      [httpApiPost('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-message-id': 'has space' }), 'X-Message-Id'],
    ];
    for (const [event, field] of cases) {
      const answer = await call(event);
      expectError(answer, 400, 'INVALID_ARGUMENT');
      expect(answer.body.error?.details).toEqual([
        { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field, description: answer.body.error?.message }] },
      ]);
    }
  });

  it('400 for a bridge body that is not JSON', async () => {
    expectError(await call(httpApiPost(`${BRIDGE}/pump-0042:setState`, '{', await bearer(pump))), 400, 'INVALID_ARGUMENT', 'the body is not JSON');
  });

  it('413 for a payload over the bridge limit', async () => {
    expectError(await call(httpApiPost('/devices/pump-0042/state', Buffer.alloc(64 * 1024 + 1), keyAuth('pump-0042'))), 413, 'INVALID_ARGUMENT', /65537 bytes; a state takes at most 65536/);
  });
});

describe('authentication failures', () => {
  const expect401 = async (headers: Record<string, string>, message: RegExp, path = '/devices/pump-0042/events'): Promise<void> => {
    const answer = await call(httpApiPost(path, 'x', headers));
    expect(answer.status).toBe(401);
    expect(answer.body.error).toMatchObject({ code: 401, status: 'UNAUTHENTICATED' });
    expect(answer.body.error?.message).toMatch(message);
    expect(answer.headers['www-authenticate']).toBe('Bearer realm="iotcore-relay", Device-Key realm="iotcore-relay"');
  };
  afterEach(async () => {
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('missing credentials', async () => {
    await expect401({}, /Authorization header is required/);
  });

  it('a bad signature', async () => {
    const token = await deviceJwt(pump);
    const [h, p, s] = token.split('.') as [string, string, string];
    const tampered = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;

    await expect401({ authorization: `Bearer ${tampered}` }, /signature does not match a registered key of device pump-0042/);
  });

  it('a wrong audience', async () => {
    await expect401(await bearer(pump, { aud: 'someone-elses-project' }), /aud must be the project ID demo-project/);
  });

  it('an expired token', async () => {
    await expect401(await bearer(pump, { iat: nowSeconds() - 7200, exp: nowSeconds() - 3600 }), /the token expired \d+ s ago/);
  });

  it("another device's token, anonymous: it does not verify for this device", async () => {
    await expect401(await bearer(valve), /signature does not match a registered key of device pump-0042/);
  });

  it("another device's token that names its device: 403", async () => {
    const answer = await call(httpApiPost('/devices/pump-0042/events', 'x', await bearer(valve, { uid: 'valve-0007' })));

    expect(answer.status).toBe(403);
    expect(answer.body.error).toEqual({ code: 403, status: 'PERMISSION_DENIED', message: "the token is device valve-0007's; it may not act for device pump-0042" });
  });

  it("another device's device key, and an unknown scheme", async () => {
    await expect401(keyAuth('valve-0007'), /the device key is not device pump-0042's/);
    await expect401({ authorization: 'Basic cHVtcDpwdW1w' }, /must be "Bearer <device JWT>" or "Device-Key <key>"/);
  });

  it('is checked before the body: an unauthenticated bad body gets 401, not 400', async () => {
    await expect401({}, /Authorization header is required/, `${BRIDGE}/pump-0042:publishEvent`);
  });
});

describe('queue failures', () => {
  let standIn: SqsStandIn | undefined;
  afterEach(async () => {
    await standIn?.stop();
    standIn = undefined;
  });
  const handlerOn = (queueUrl: string, client: SqsStandIn['client'] | LocalSqs['client']): IngestHandler =>
    createIngestHandler({ service: ingestServiceFromEnv({ ...env, RELAY_QUEUE_URL: queueUrl }, { sqsClient: client }), logger: silent });

  it('429 with Retry-After when SQS throttles (a stand-in endpoint: local-aws-sqs never throttles)', async () => {
    standIn = await startSqsStandIn(() => THROTTLED);

    const answer = await call(httpApiPost('/devices/pump-0042/events', 'x', keyAuth('pump-0042')), handlerOn(standIn.queueUrl, standIn.client));

    expect(answer.status).toBe(429);
    expect(answer.body).toEqual({ error: { code: 429, status: 'RESOURCE_EXHAUSTED', message: 'too many requests; retry after a pause' } });
    expect(answer.headers['retry-after']).toBe('1');
    expect(standIn.calls.map((c) => c.action)).toEqual(['SendMessage']);
  });

  it('503 when the queue is unreachable (a closed port), without a word of the cause', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}/123456789012/relay.fifo`;
    const { SQSClient } = await import('@aws-sdk/client-sqs');
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });

    const answer = await call(httpApiPost('/devices/pump-0042/events', 'x', keyAuth('pump-0042')), handlerOn(url, client));

    expect(answer.status).toBe(503);
    expect(answer.body).toEqual({ error: { code: 503, status: 'UNAVAILABLE', message: 'the service is unavailable; retry later' } });
    expect(answer.headers['retry-after']).toBe('5');
    client.destroy();
  });

  it('a batch cut short by throttling says which readings were taken', async () => {
    const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
    standIn = await startSqsStandIn((c: StandInCall, index) => {
      const entries = c.input['Entries'] as { Id: string; MessageBody: string }[];
      if (index > 0) return THROTTLED;
      return { status: 200, body: { Successful: entries.map((e) => ({ Id: e.Id, MessageId: `sqs-${e.Id}`, MD5OfMessageBody: md5(e.MessageBody) })), Failed: [] } };
    });
    const readings = Array.from({ length: 15 }, (_, i) => ({ payload: `r${i}` }));

    const answer = await call(httpApiPostJson('/devices/pump-0042/batch', { readings }, keyAuth('pump-0042')), handlerOn(standIn.queueUrl, standIn.client));

    expect(answer.status).toBe(429);
    expect(answer.body.error?.message).toBe('10 of 15 readings were queued; resend those marked NOT_QUEUED later');
    const outcomes = answer.body['readings'] as { index: number; status: string }[];
    expect(outcomes.map((r) => r.status)).toEqual([...Array(10).fill('QUEUED'), ...Array(5).fill('NOT_QUEUED')]);
    expect(answer.body['messageIds']).toHaveLength(10);
  });
});

describe('the newest config in the answer', () => {
  let db: LocalDynamoDb;
  let store: ConfigStore;
  let withConfig: IngestHandler;
  const v1 = '{"rate":60}';
  const v2 = '{"rate":5}';

  beforeAll(async () => {
    db = await startLocalDynamoDb();
    store = new ConfigStore({ tableName: db.tableName, client: db.client });
    await store.putConfig('pump-0042', Buffer.from(v1), new Date());
    await store.putConfig('pump-0042', Buffer.from(v2), new Date());
    withConfig = createIngestHandler({
      service: ingestServiceFromEnv({ ...env, CONFIG_TABLE: db.tableName }, { sqsClient: sqs.client, dynamoDbClient: db.client }),
      logger: silent,
    });
  });
  afterAll(() => db.stop());

  const post = async (version: string | undefined, path = '/devices/pump-0042/events', device = 'pump-0042'): Promise<Answer> =>
    call(httpApiPost(path, 'x', { ...keyAuth(device), ...(version === undefined ? {} : { 'x-config-version': version }) }), withConfig);

  it('carries the stored config, in getConfig\'s shape, to a device that holds another version', async () => {
    for (const held of ['0', '1', '7']) {
      const answer = await post(held);
      expect(answer.status, held).toBe(202);
      expect(answer.body['config'], held).toEqual({ version: '2', binaryData: b64(v2) });
    }
  });

  it('counts ConfigsDelivered for an answer that carries the config, not for one that does not', async () => {
    const { output } = await withCapturedOutput(async () => {
      expect((await post('1')).body).toHaveProperty('config');
      expect((await post('2')).body).not.toHaveProperty('config');
    });
    const emf = output.metricDocuments();
    expect(emf.map((l) => [l.IngestAccepted, l.ConfigsDelivered])).toEqual([
      [1, 1],
      [1, undefined],
    ]);
  });

  it('carries no config to a device that holds the newest, names no version, or names none readable', async () => {
    for (const held of ['2', undefined, 'latest', '-1']) {
      const answer = await post(held);
      expect(answer.status, String(held)).toBe(202);
      expect(answer.body, String(held)).not.toHaveProperty('config');
    }
    // Nothing stored for this device yet.
    expect((await post('0', '/devices/valve-0007/events', 'valve-0007')).body).not.toHaveProperty('config');
  });

  it('carries it in a batch answer too', async () => {
    const answer = await call(
      httpApiPostJson('/devices/pump-0042/batch', { readings: [{ payload: 'a' }] }, { ...keyAuth('pump-0042'), 'x-config-version': '1' }),
      withConfig,
    );
    expect(answer.status).toBe(202);
    expect(answer.body['config']).toEqual({ version: '2', binaryData: b64(v2) });
    expect(answer.body['readings']).toHaveLength(1);
  });

  it('answers without the config when the table cannot be read: the readings are queued all the same', async () => {
    const output = captureOutput();
    const broken = createIngestHandler({
      service: ingestServiceFromEnv({ ...env, CONFIG_TABLE: 'no-such-table' }, { sqsClient: sqs.client, dynamoDbClient: db.client }),
      logger: new Logger({ logLevel: 'WARN' }),
    });
    const answer = await call(httpApiPost('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-config-version': '1' }), broken);
    output.restore();

    expect(answer.status).toBe(202);
    expect(answer.body).toEqual({ messageIds: [expect.any(String)] });
    expect(await sqs.receiveAll()).toHaveLength(1);
    expect(output.jsonLines('stderr')[0]).toMatchObject({ level: 'WARN', message: 'config not put into the answer', deviceId: 'pump-0042' });
  });
});

describe('configuration and logs', () => {
  it('answers 500 without a stack trace or a path when the keys cannot be read', async () => {
    const broken = createIngestHandler({
      service: ingestServiceFromEnv({ ...env, DEVICE_KEYS_FILE: join(dir, 'missing.json') }, { sqsClient: sqs.client }),
      logger: silent,
    });

    const answer = await call(httpApiPost('/devices/pump-0042/events', 'x', await bearer(pump)), broken);

    expect(answer.status).toBe(500);
    expect(answer.body).toEqual({ error: { code: 500, status: 'INTERNAL', message: 'internal error' } });
  });

  it('answers 500 when the environment is incomplete, and heals once it is fixed', async () => {
    vi.stubEnv('RELAY_QUEUE_URL', '');
    const fromEnv = createIngestHandler({ logger: silent });
    const event = (): APIGatewayProxyEventV2 => httpApiPost('/devices/pump-0042/state', 'x', keyAuth('pump-0042'));

    expect((await call(event(), fromEnv)).body).toEqual({ error: { code: 500, status: 'INTERNAL', message: 'internal error' } });

    for (const [k, v] of Object.entries({ ...env, ...sqs.env })) vi.stubEnv(k, v);
    const healed = await call(event(), fromEnv);
    vi.unstubAllEnvs();

    expect(healed.status).toBe(202);
    // The SDK's own client found the local server through AWS_ENDPOINT_URL_SQS.
    expect(telemetry((await sqs.receiveAll())[0]!.body)).toMatchObject({ type: 'state', deviceId: 'pump-0042' });
  });

  describe('log lines', () => {
    let output: CapturedOutput;
    beforeEach(() => {
      output = captureOutput();
    });
    afterEach(() => output.restore());

    it('say who and what, and never carry a JWT or a device key', async () => {
      const logged = createIngestHandler({ service: ingestServiceFromEnv(env, { sqsClient: sqs.client }), logger: new Logger({ logLevel: 'DEBUG' }) });
      const token = await deviceJwt(pump);

      await logged(httpApiPost('/devices/pump-0042/events', 'x', { authorization: `Bearer ${token}` }));
      await logged(httpApiPost('/devices/pump-0042/events', 'x', keyAuth('valve-0007')));
      output.restore();
      await sqs.receiveAll();

      const lines = output.jsonLines().filter((l) => !('_aws' in l));
      expect(lines).toMatchObject([
        { level: 'INFO', message: 'ingest queued', deviceId: 'pump-0042', statusCode: 202, queued: 1 },
        { level: 'WARN', message: 'ingest refused', deviceId: 'pump-0042', statusCode: 401, error: { code: 'ERR_AUTH_INVALID' } },
      ]);
      // One EMF document per request, counting its answer's class.
      expect(output.metricDocuments().map(({ IngestAccepted, IngestRefused, IngestFailed }) => ({ IngestAccepted, IngestRefused, IngestFailed }))).toEqual([
        { IngestAccepted: 1, IngestRefused: undefined, IngestFailed: undefined },
        { IngestAccepted: undefined, IngestRefused: 1, IngestFailed: undefined },
      ]);
      const text = output.text();
      expect(text).not.toContain(token.split('.')[2]);
      expect(text).not.toContain(deviceKey('valve-0007'));
    });
  });
});
