import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey, deviceAuthenticatorFromEnv, masterKeyFromText, type DeviceAuthenticator } from '../../../lib/auth/index.js';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { deviceDeduplicationId } from '../../../lib/ingest/deduplication.js';
import { IngestService, MAX_REQUEST_BODY_BYTES, type IngestRequest, type IngestServiceOptions } from '../../../lib/ingest/ingest-service.js';
import { parseQueueMessage, type TelemetryMessage } from '../../../lib/queue/message.js';
import { SqsRelayQueue } from '../../../lib/queue/relay-queue.js';
import { closedPort, startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';
import { deviceJwt, ecDevice, keyDocument, PROJECT } from '../auth/device-credentials.js';

const REGISTRY = { project: PROJECT, location: 'us-central1', registry: 'demo-registry' };
const BRIDGE = `/v1/projects/${PROJECT}/locations/us-central1/registries/demo-registry/devices`;
const GATEWAYS = ['gw-1', 'gw-2', 'gw-3'];
const MASTER = 'ingest-service-master-secret-0123456789abcdef';
const pump = ecDevice('pump-0042');
const JSON_TYPE = { 'content-type': 'application/json' };

let sqs: LocalSqs;
let dir: string;
let authenticator: DeviceAuthenticator;
let ingest: IngestService;

const serviceWith = (options: Partial<IngestServiceOptions> = {}): IngestService =>
  new IngestService({ registry: REGISTRY, gatewayIds: GATEWAYS, authenticator, queue: new SqsRelayQueue({ queueUrl: sqs.queueUrl, client: sqs.client }), ...options });

beforeAll(async () => {
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'ingest-service-'));
  writeFileSync(join(dir, 'device-keys.json'), keyDocument([pump]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  authenticator = deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: join(dir, 'device-keys.json'), DEVICE_KEY_MASTER_FILE: join(dir, 'master') });
  ingest = serviceWith();
});
afterAll(async () => {
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => sqs.purge());

const keyAuth = (id: string): Record<string, string> => ({ authorization: `Device-Key ${deriveDeviceKey(masterKeyFromText(MASTER, 'test'), id)}` });

/** A fresh request ID each time: SQS drops a deduplication ID it saw in the last 5 minutes. */
function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): IngestRequest {
  return { method: 'POST', path, headers, body: Buffer.from(body), requestId: randomUUID() };
}

const telemetry = (body: string): TelemetryMessage => parseQueueMessage(body) as TelemetryMessage;

describe('routes', () => {
  it('answers 404 for a path that is no route, or a registry not served, queueing nothing', async () => {
    const unknown = await ingest.handle(post('/devices/pump-0042/commands', 'x', keyAuth('pump-0042')));
    expect(unknown).toMatchObject({ statusCode: 404, headers: JSON_TYPE, body: { error: { code: 404, status: 'NOT_FOUND' } }, log: { queued: 0 } });
    const other = await ingest.handle(post(`/v1/projects/${PROJECT}/locations/us-central1/registries/other/devices/pump-0042:publishEvent`, '{}'));
    expect(other.body).toEqual({ error: { code: 404, status: 'NOT_FOUND', message: `registry projects/${PROJECT}/locations/us-central1/registries/other is not served here` } });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('answers 405 with Allow: POST for another method on a route', async () => {
    const answer = await ingest.handle({ ...post('/devices/pump-0042/events', ''), method: 'GET' });
    expect(answer).toMatchObject({ statusCode: 405, headers: { allow: 'POST' }, body: { error: { code: 405, status: 'UNIMPLEMENTED' } } });
  });
});

describe('checks, in order, before anything is queued', () => {
  it('refuses an invalid device ID with 400 before asking for credentials', async () => {
    const answer = await ingest.handle(post('/devices/goog-pump/events', 'x'));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toMatchObject({ error: { status: 'INVALID_ARGUMENT', details: [{ fieldViolations: [{ field: 'deviceId' }] }] } });
    expect(answer.log).toMatchObject({ deviceId: 'goog-pump', route: 'event', queued: 0 });
  });

  it.each([
    ['the simple form', '/devices/pump+x/events'],
    ['the bridge form', `${BRIDGE}/pump+x:publishEvent`],
  ])('refuses, in %s, a device ID IoT Core allows but MQTT forbids in a topic, with its own Device-Key', async (_form, path) => {
    const answer = await ingest.handle(post(path, '{"binary_data":"eA=="}', keyAuth('pump+x')));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toEqual({
      error: {
        code: 400,
        status: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/^deviceId "pump\+x" is a valid IoT Core device ID, but its '\+' is an MQTT wildcard, which a topic name may not contain/),
        details: [expect.objectContaining({ fieldViolations: [expect.objectContaining({ field: 'deviceId' })] })],
      },
    });
    expect(answer.log).toMatchObject({ deviceId: 'pump+x', queued: 0, error: { code: 'ERR_DEVICE_ID_MQTT_WILDCARD' } });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('refuses a request without credentials with 401 naming the schemes, even with a body too large', async () => {
    const answer = await ingest.handle(post('/devices/pump-0042/events', Buffer.alloc(MAX_REQUEST_BODY_BYTES + 1)));
    expect(answer.statusCode).toBe(401);
    expect(answer.headers).toEqual({ ...JSON_TYPE, 'www-authenticate': 'Bearer realm="iotcore-relay", Device-Key realm="iotcore-relay"' });
    expect(answer.log.error).toMatchObject({ code: 'ERR_AUTH_MISSING' });
  });

  it('refuses a body over the limit with 413 once the device is known', async () => {
    const answer = await ingest.handle(post('/devices/pump-0042/events', Buffer.alloc(MAX_REQUEST_BODY_BYTES + 1), keyAuth('pump-0042')));
    expect(answer.statusCode).toBe(413);
    expect(answer.body).toMatchObject({ error: { code: 413, status: 'INVALID_ARGUMENT' } });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('refuses an X-Message-Id that is no message ID, naming the header', async () => {
    const answer = await ingest.handle(post('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-message-id': 'has space' }));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toMatchObject({ error: { details: [{ fieldViolations: [{ field: 'X-Message-Id' }] }] } });
    expect(await sqs.receiveAll()).toEqual([]);
  });
});

describe('one reading', () => {
  it("queues a raw event in its gateway's group, deduplicated by the request ID", async () => {
    const request = post('/devices/pump-0042/events/alarms/high', Buffer.from([0x00, 0xff]), keyAuth('pump-0042'));
    const answer = await ingest.handle(request);

    const [message, ...rest] = await sqs.receiveAll();
    expect(rest).toEqual([]);
    expect(answer).toEqual({
      statusCode: 202,
      headers: JSON_TYPE,
      body: { messageIds: [message!.messageId] },
      log: { deviceId: 'pump-0042', route: 'event', queued: 1 },
    });
    expect(message!.groupId).toBe(gatewayFor('pump-0042', GATEWAYS));
    expect(message!.deduplicationId).toBe(request.requestId);
    expect(telemetry(message!.body)).toEqual({ v: 1, type: 'event', deviceId: 'pump-0042', subfolder: 'alarms/high', payload: Buffer.from([0x00, 0xff]) });
  });

  it("deduplicates by the device's X-Message-Id, so a retry is dropped by SQS", async () => {
    const id = `m-${randomUUID()}`;
    const headers = { ...keyAuth('pump-0042'), 'x-message-id': id };
    const first = await ingest.handle(post('/devices/pump-0042/state', 'on', headers));
    const retry = await ingest.handle(post('/devices/pump-0042/state', 'on', headers));
    expect([first.statusCode, retry.statusCode]).toEqual([202, 202]);
    const messages = await sqs.receiveAll();
    expect(messages).toHaveLength(1);
    expect(messages[0]!.deduplicationId).toBe(deviceDeduplicationId('pump-0042', 'state', id));
  });

  it('carries the device JWT on the record of a bridge setState', async () => {
    const token = await deviceJwt(pump);
    const body = JSON.stringify({ state: { binary_data: Buffer.from('running').toString('base64') } });
    const answer = await ingest.handle(post(`${BRIDGE}/pump-0042:setState`, body, { authorization: `Bearer ${token}` }));
    expect(answer.log).toMatchObject({ route: 'state', queued: 1 });
    expect(telemetry((await sqs.receiveAll())[0]!.body)).toEqual({ v: 1, type: 'state', deviceId: 'pump-0042', payload: Buffer.from('running'), deviceToken: token });
  });

  it('answers 503 with Retry-After and a fixed message when the queue cannot be reached', async () => {
    const port = await closedPort();
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
    const unreachable = serviceWith({ queue: new SqsRelayQueue({ queueUrl: `http://127.0.0.1:${port}/123456789012/relay.fifo`, client }) });
    try {
      const answer = await unreachable.handle(post('/devices/pump-0042/events', 'x', keyAuth('pump-0042')));
      expect(answer).toMatchObject({
        statusCode: 503,
        headers: { ...JSON_TYPE, 'retry-after': '5' },
        body: { error: { code: 503, status: 'UNAVAILABLE', message: 'the service is unavailable; retry later' } },
        log: { queued: 0, error: { code: 'ERR_QUEUE_UNAVAILABLE' } },
      });
    } finally {
      client.destroy();
    }
  });
});

describe('a batch', () => {
  it('queues the valid readings and says what became of each', async () => {
    const readings = [{ payload: 'a' }, { type: 'bogus', payload: 'b' }, { type: 'state', payload: 'Yw==', encoding: 'base64' }];
    const request = post('/devices/pump-0042/batch', JSON.stringify({ readings }), keyAuth('pump-0042'));
    const answer = await ingest.handle(request);

    const messages = await sqs.receiveAll();
    expect(messages.map((m) => m.deduplicationId)).toEqual([`${request.requestId}#0`, `${request.requestId}#2`]);
    expect(messages.map((m) => telemetry(m.body).payload.toString())).toEqual(['a', 'c']);
    expect(answer.statusCode).toBe(202);
    expect(answer.body).toEqual({
      messageIds: messages.map((m) => m.messageId),
      readings: [
        { index: 0, status: 'QUEUED', messageId: messages[0]!.messageId },
        { index: 1, status: 'REJECTED', error: expect.objectContaining({ code: 400, status: 'INVALID_ARGUMENT' }) },
        { index: 2, status: 'QUEUED', messageId: messages[1]!.messageId },
      ],
    });
    expect(answer.log).toEqual({ deviceId: 'pump-0042', route: 'batch', queued: 2 });
  });

  it('answers 400 with each reason when no reading is valid', async () => {
    const answer = await ingest.handle(post('/devices/pump-0042/batch', JSON.stringify({ readings: [{ payload: 1 }] }), keyAuth('pump-0042')));
    expect(answer.statusCode).toBe(400);
    expect(answer.body).toMatchObject({ messageIds: [], readings: [{ index: 0, status: 'REJECTED' }], error: { message: 'no reading of the batch is valid; see readings' } });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('refuses X-Message-Id, which names a single reading', async () => {
    const answer = await ingest.handle(post('/devices/pump-0042/batch', JSON.stringify({ readings: [{ payload: 'a' }] }), { ...keyAuth('pump-0042'), 'x-message-id': 'm-1' }));
    expect(answer.statusCode).toBe(400);
    expect(await sqs.receiveAll()).toEqual([]);
  });
});

describe('the config in the answer', () => {
  const config = { version: '4', binaryData: 'Y29uZmln' };

  it('asks for it with the version the device holds, and puts it into the answer', async () => {
    const asked: [string, number][] = [];
    const service = serviceWith({
      latestConfig: async (deviceId, held) => {
        asked.push([deviceId, held]);
        return config;
      },
    });
    const answer = await service.handle(post('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-config-version': '3' }));
    expect(answer.body).toEqual({ messageIds: [expect.any(String)], config });
    expect(answer.log.configVersion).toBe('4');
    expect(asked).toEqual([['pump-0042', 3]]);
  });

  it('does not ask when the device names no version, names none readable, or was refused', async () => {
    const asked: number[] = [];
    const service = serviceWith({
      latestConfig: async (_, held) => {
        asked.push(held);
        return config;
      },
    });
    const answers = [
      await service.handle(post('/devices/pump-0042/events', 'x', keyAuth('pump-0042'))),
      await service.handle(post('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-config-version': 'latest' })),
      await service.handle(post('/devices/pump-0042/events', 'x', { 'x-config-version': '3' })),
    ];
    expect(answers.map((a) => a.statusCode)).toEqual([202, 202, 401]);
    for (const a of answers) expect(a.body).not.toHaveProperty('config');
    expect(asked).toEqual([]);
  });

  it('answers without it when the lookup fails: the reading is queued all the same', async () => {
    const failure = new Error('the table is gone');
    const service = serviceWith({ latestConfig: () => Promise.reject(failure) });
    const answer = await service.handle(post('/devices/pump-0042/events', 'x', { ...keyAuth('pump-0042'), 'x-config-version': '0' }));
    expect(answer.statusCode).toBe(202);
    expect(answer.body).not.toHaveProperty('config');
    expect(answer.log).toMatchObject({ queued: 1, configError: failure });
    expect(await sqs.receiveAll()).toHaveLength(1);
  });
});
