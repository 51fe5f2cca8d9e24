/**
 * The relay's whole path on 127.0.0.1 for end-to-end tests: the bridge emulator over TLS, the relay's FIFO queue
 * (local-aws-sqs), the config table (dynalite), and the three handlers (ingest, poll, relay) configured the way
 * they are deployed, through their environment: a gateway key file, the emulator's CA file, a device-key master
 * file, CONFIG_TABLE, the queue URL, and AWS endpoints pointing at the local servers.
 *
 * `relayQueueOnce()` is one round of Lambda's SQS integration for the relay: receive a batch of up to 10, invoke
 * the handler, delete what it did not report as failed. Handler logs and EMF metrics are captured, not printed.
 *
 * @example
 * const pipeline = await startRelayPipeline({ gateways: [{ id: 'gw-1', bound: ['pump-01'] }], devices: [{ id: 'pump-01', keyless: true }] });
 * await pipeline.ingest(httpApiPost('/devices/pump-01/events', '21.5', pipeline.deviceAuth('pump-01')));
 * const { response } = await pipeline.relayQueueOnce();
 * await pipeline.close();
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, SQSBatchResponse, SQSRecord } from 'aws-lambda';
import { vi } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { createIngestHandler } from '../../handlers/ingest.js';
import { createPollHandler, type PollHandler } from '../../handlers/poll.js';
import { createRelayHandler, type RelayHandler } from '../../handlers/relay.js';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/index.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import { ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { makeFleet, type Fleet, type FleetSpec } from '../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { lambdaContext, sqsRecord } from '../helpers/relay-fixtures.js';

export const QUEUE_ARN = 'arn:aws:sqs:us-east-1:123456789012:relay.fifo';
/** The relay's Lambda timeout in these tests. */
export const RELAY_TIMEOUT_MS = 15_000;
const MASTER = 'end-to-end-device-key-master-0123456789';

export interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

export interface RelayPipeline {
  fleet: Fleet;
  emulator: Emulator;
  sqs: LocalSqs;
  db: LocalDynamoDb;
  /** The config table, read directly. */
  store: ConfigStore;
  /** Every function's environment, as one deployment would set it. */
  env: Record<string, string>;
  relay: RelayHandler;
  poll: PollHandler;
  /** The ingest handler, its answer parsed. */
  ingest(event: APIGatewayProxyEventV2): Promise<HttpAnswer>;
  /** The Authorization header of a device, by its device key. */
  deviceAuth(deviceId: string): Record<string, string>;
  /** One round of Lambda's SQS integration; an empty queue gives an empty batch and no invocation. */
  relayQueueOnce(): Promise<{ records: SQSRecord[]; response: SQSBatchResponse | undefined }>;
  /** Messages in the relay queue, visible or in flight. */
  queueDepth(): Promise<{ visible: number; inFlight: number }>;
  /** JSON lines the handlers wrote (logs and EMF documents), oldest first. */
  logLines(): Record<string, unknown>[];
  clearLogs(): void;
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** Extra environment (POLL_DEVICE_IDS...). */
  env?: Record<string, string>;
  /** The bridge emulator's added latency per packet. */
  latencyMs?: number;
}

export async function startRelayPipeline(spec: FleetSpec, options: PipelineOptions = {}): Promise<RelayPipeline> {
  const [fleet, sqs, db] = await Promise.all([makeFleet(spec), startLocalSqs(), startLocalDynamoDb()]);
  const emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, ...(options.latencyMs === undefined ? {} : { latencyMs: options.latencyMs }) });
  const dir = await mkdtemp(join(tmpdir(), 'relay-e2e-'));
  const gatewayIds = (spec.gateways ?? []).map((g) => g.id);
  const keyFile = join(dir, 'gateway-keys.json');
  await writeFile(keyFile, JSON.stringify(Object.fromEntries(gatewayIds.map((g) => [g, { privateKey: fleet.keys[g]!.pair.privateKeyPem }]))), { mode: 0o600 });
  const masterFile = join(dir, 'device-key-master');
  await writeFile(masterFile, MASTER, { mode: 0o600 });

  const env: Record<string, string> = {
    ...sqs.env,
    ...db.env,
    IOTCORE_PROJECT: fleet.project,
    IOTCORE_LOCATION: fleet.location,
    IOTCORE_REGISTRY: fleet.registryId,
    IOTCORE_GATEWAY_IDS: gatewayIds.join(','),
    IOTCORE_MQTT_HOST: emulator.host,
    IOTCORE_MQTT_PORT: String(emulator.port),
    IOTCORE_CA_FILE: emulator.caFile!,
    GATEWAY_KEY_FILE: keyFile,
    DEVICE_KEY_MASTER_FILE: masterFile,
    RELAY_CONFIG_TIMEOUT_MS: '2000',
    RELAY_DEADLINE_MARGIN_MS: '1000',
    POWERTOOLS_SERVICE_NAME: 'iotcore-relay',
    POWERTOOLS_METRICS_NAMESPACE: 'IotCoreRelayE2E',
    POWERTOOLS_LOG_LEVEL: 'DEBUG',
    ...options.env,
  };
  // The SDK clients the handlers build read their endpoints and credentials from the process environment.
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);

  const output: string[] = [];
  // Powertools writes INFO, DEBUG and metrics to stdout, WARN and ERROR to stderr.
  for (const stream of [process.stdout, process.stderr]) {
    vi.spyOn(stream, 'write').mockImplementation((chunk: string | Uint8Array) => {
      output.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      return true;
    });
  }
  const powertools = (name: string) => ({
    logger: new Logger({ serviceName: `iotcore-relay-${name}`, logLevel: 'DEBUG' }),
    metrics: new Metrics({ namespace: 'IotCoreRelayE2E', serviceName: `iotcore-relay-${name}` }),
  });

  const relay = createRelayHandler({ env, ...powertools('relay') });
  const poll = createPollHandler({ env, ...powertools('poll') });
  const ingestHandler = createIngestHandler({ service: ingestServiceFromEnv(env), logger: powertools('ingest').logger });
  const master = masterKeyFromText(MASTER, 'test');

  const relayQueueOnce = async (): Promise<{ records: SQSRecord[]; response: SQSBatchResponse | undefined }> => {
    const out = await sqs.client.send(
      // local-aws-sqs reads the older AttributeNames for system attributes; SQS itself takes either.
      new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, AttributeNames: ['All'], MessageSystemAttributeNames: ['All'] }),
    );
    const messages = out.Messages ?? [];
    if (messages.length === 0) return { records: [], response: undefined };
    const records = messages.map((m) => ({
      ...sqsRecord(m.Body ?? '', {
        messageId: m.MessageId!,
        arn: QUEUE_ARN,
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1'),
        ...(m.Attributes?.MessageGroupId === undefined ? {} : { groupId: m.Attributes.MessageGroupId }),
      }),
      receiptHandle: m.ReceiptHandle!,
    }));
    const response = await relay({ Records: records }, lambdaContext(RELAY_TIMEOUT_MS));
    // As Lambda does with a partial batch response: what is not reported failed is deleted.
    const failed = new Set(response.batchItemFailures.map((f) => f.itemIdentifier));
    const done = records.filter((r) => !failed.has(r.messageId));
    if (done.length > 0) {
      await sqs.client.send(new DeleteMessageBatchCommand({ QueueUrl: sqs.queueUrl, Entries: done.map((r, i) => ({ Id: `m${i}`, ReceiptHandle: r.receiptHandle })) }));
    }
    return { records, response };
  };

  return {
    fleet,
    emulator,
    sqs,
    db,
    store: new ConfigStore({ tableName: db.tableName, client: db.client }),
    env,
    relay,
    poll,
    ingest: async (event) => {
      const result = (await ingestHandler(event)) as APIGatewayProxyStructuredResultV2;
      return { status: result.statusCode ?? 200, body: JSON.parse(result.body ?? 'null') as Record<string, unknown> };
    },
    deviceAuth: (deviceId) => ({ authorization: `Device-Key ${deriveDeviceKey(master, deviceId)}` }),
    relayQueueOnce,
    queueDepth: async () => {
      const { Attributes: a } = await sqs.client.send(
        new GetQueueAttributesCommand({ QueueUrl: sqs.queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
      );
      // local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages too.
      const inFlight = Number(a?.ApproximateNumberOfMessagesNotVisible ?? 0);
      return { visible: Number(a?.ApproximateNumberOfMessages ?? 0) - inFlight, inFlight };
    },
    logLines: () =>
      output
        .join('')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    clearLogs: () => {
      output.length = 0;
    },
    close: async () => {
      vi.restoreAllMocks();
      vi.unstubAllEnvs();
      await Promise.all([emulator.close(), sqs.stop(), db.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
