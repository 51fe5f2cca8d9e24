/**
 * The device-facing HTTP routes as deployed (serverless.yml `httpApi` events), served by the real ingest and
 * config handlers over a local SQS queue and a local DynamoDB config table, with devices that authenticate by
 * JWT (ES256 keys in a key file) or by device key (derived from a master secret in a file).
 *
 * @example
 * const http = await startHttpRoutes();
 * const answer = await http.call(httpApiPost('/devices/dev-a/events', 'x', await http.bearer('dev-a')));
 * expect(await http.queued()).toEqual([]);
 * await http.stop();
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { createConfigHandler } from '../../handlers/config.js';
import { createIngestHandler } from '../../handlers/ingest.js';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/index.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import { ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { parseQueueMessage, type TelemetryMessage } from '../../lib/queue/message.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { deviceJwt, ecDevice, keyDocument, PROJECT, type TestDevice } from '../lib/auth/device-credentials.js';

export const LOCATION = 'us-central1';
export const REGISTRY = 'demo-registry';
const MASTER = 'the master secret of the device keys, 32 bytes or more';

/** Devices with keys (JWT); any other valid ID can use a device key. */
export const JWT_DEVICES = ['dev-a', 'dev-b'] as const;

/** The deployed routes, one request each, for a device; `GET` routes read config, `POST` routes write. */
export function deployedRoutes(deviceId: string): { method: 'GET' | 'POST'; path: string }[] {
  const bridge = `/v1/projects/${PROJECT}/locations/${LOCATION}/registries/${REGISTRY}/devices/${deviceId}`;
  return [
    { method: 'POST', path: `${bridge}:publishEvent` },
    { method: 'POST', path: `${bridge}:setState` },
    { method: 'POST', path: `/devices/${deviceId}/events` },
    { method: 'POST', path: `/devices/${deviceId}/events/alarms/high` },
    { method: 'POST', path: `/devices/${deviceId}/state` },
    { method: 'POST', path: `/devices/${deviceId}/batch` },
    { method: 'GET', path: `${bridge}/config` },
    { method: 'GET', path: `/devices/${deviceId}/config` },
  ];
}

/** A body each route accepts. */
export function validBody(path: string): string {
  if (path.endsWith(':publishEvent')) return JSON.stringify({ binary_data: Buffer.from('{"t":1}').toString('base64') });
  if (path.endsWith(':setState')) return JSON.stringify({ state: { binary_data: Buffer.from('{"on":1}').toString('base64') } });
  if (path.endsWith('/batch')) return JSON.stringify({ readings: [{ payload: 'r1' }] });
  return 'raw reading';
}

export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface HttpRoutes {
  devices: Record<(typeof JWT_DEVICES)[number], TestDevice>;
  /** The config bytes stored for each JWT device. */
  configs: Record<string, Buffer>;
  /** Routes an event to the ingest or the config handler, as API Gateway would. */
  call(event: APIGatewayProxyEventV2): Promise<HttpAnswer>;
  bearer(deviceId: (typeof JWT_DEVICES)[number], claims?: Record<string, unknown>, header?: Record<string, unknown>): Promise<Record<string, string>>;
  deviceKey(deviceId: string): string;
  /** Telemetry queued since the last call (received and deleted from the queue). */
  queued(): Promise<TelemetryMessage[]>;
  stop(): Promise<void>;
}

export async function startHttpRoutes(): Promise<HttpRoutes> {
  const devices = { 'dev-a': ecDevice('dev-a'), 'dev-b': ecDevice('dev-b') };
  const [sqs, db]: [LocalSqs, LocalDynamoDb] = await Promise.all([startLocalSqs(), startLocalDynamoDb()]);
  const dir = await mkdtemp(join(tmpdir(), 'http-routes-'));
  await writeFile(join(dir, 'device-keys.json'), keyDocument(Object.values(devices)));
  await writeFile(join(dir, 'master'), MASTER, { mode: 0o600 });
  const env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: LOCATION,
    IOTCORE_REGISTRY: REGISTRY,
    IOTCORE_GATEWAY_IDS: 'gw-1',
    RELAY_QUEUE_URL: sqs.queueUrl,
    CONFIG_TABLE: db.tableName,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
  };
  const store = new ConfigStore({ tableName: db.tableName, client: db.client });
  const configs = { 'dev-a': Buffer.from('{"secret-of":"dev-a"}'), 'dev-b': Buffer.from('{"secret-of":"dev-b"}') };
  for (const [id, bytes] of Object.entries(configs)) await store.putConfig(id, bytes, new Date());
  const silent = new Logger({ logLevel: 'SILENT' });
  const ingest = createIngestHandler({ service: ingestServiceFromEnv(env, { sqsClient: sqs.client }), logger: silent });
  const config = createConfigHandler({ env, store, logger: silent });
  const master = masterKeyFromText(MASTER, 'test');

  return {
    devices,
    configs,
    call: async (event) => {
      const handler = event.requestContext.http.method === 'GET' ? config : ingest;
      const r = (await handler(event)) as APIGatewayProxyStructuredResultV2;
      return { status: r.statusCode ?? 200, headers: (r.headers ?? {}) as Record<string, string>, body: String(r.body ?? '') };
    },
    bearer: async (id, claims = {}, header = {}) => ({ authorization: `Bearer ${await deviceJwt(devices[id], claims, header)}` }),
    deviceKey: (id) => deriveDeviceKey(master, id),
    queued: async () => (await sqs.receiveAll()).map((m) => parseQueueMessage(m.body) as TelemetryMessage),
    stop: async () => {
      await Promise.all([sqs.stop(), db.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
