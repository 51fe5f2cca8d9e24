/**
 * HTTP ingestion from devices onto the relay's FIFO queue. See docs/ingest.md for the routes, the
 * answers and the queue contract for other producers.
 *
 * | variable | meaning |
 * |---|---|
 * | `IOTCORE_PROJECT`, `IOTCORE_LOCATION`, `IOTCORE_REGISTRY` | the registry the bridge-compatible routes serve |
 * | `IOTCORE_GATEWAY_IDS` | the gateways; a device's records go to message group `gatewayFor(deviceId)` |
 * | `RELAY_QUEUE_URL` | the FIFO queue (the SDK honours `AWS_ENDPOINT_URL_SQS`) |
 * | `CONFIG_TABLE` | optional: the config table; answers then carry a newer config (see docs/ingest.md, "Answers") |
 * | device authentication | see `lib/auth/index.ts` |
 *
 * @example
 * const ingest = ingestServiceFromEnv(process.env);
 * const answer = await ingest.handle(request);
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { deviceAuthenticatorFromEnv, type DeviceAuthFromEnvOptions } from '../auth/index.js';
import { newerConfigFor } from '../config-store/config-delivery.js';
import { ConfigStore, type ConfigReader } from '../config-store/config-store.js';
import { configStoreFromEnv } from '../config-store/store-from-env.js';
import { RelayError } from '../errors.js';
import { parseGatewayIds } from '../gateway-pool.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import { SqsRelayQueue } from '../sqs-send/relay-queue-sender.js';
import { IngestService, type AnswerConfig, type IngestServiceOptions } from './ingest-service.js';

export {
  IngestService,
  MAX_REQUEST_BODY_BYTES,
  type AcceptedAnswer,
  type AnswerBody,
  type AnswerConfig,
  type IngestRequest,
  type IngestResponse,
  type IngestServiceOptions,
  type ReadingOutcome,
} from './ingest-service.js';
export { errorEnvelope, errorEnvelopeFor, type ApiErrorBody, type ApiStatus, type ErrorEnvelope } from './error-envelope.js';
export { matchRoute, type IngestRoute, type RouteMatch } from './routes.js';
export { MAX_BATCH_READINGS, type Reading } from './readings.js';
export { deviceDeduplicationId, requestDeduplicationId, MAX_MESSAGE_ID_LENGTH } from './deduplication.js';

export interface IngestFromEnvOptions extends DeviceAuthFromEnvOptions {
  /** Defaults to a client from the environment with request timeouts (`defaultSqsClient`). */
  sqsClient?: SQSClient;
  /** For the config table; defaults to a client from the environment (`AWS_ENDPOINT_URL_DYNAMODB`...). */
  dynamoDbClient?: DynamoDBClient;
}

export function ingestServiceFromEnv(env: NodeJS.ProcessEnv = process.env, options: IngestFromEnvOptions = {}): IngestService {
  const required = (name: string): string => {
    const value = env[name]?.trim() ?? '';
    if (value === '') throw new RelayError('ERR_CONFIG', `${name} must be set`);
    return value;
  };
  const registry = { project: required('IOTCORE_PROJECT'), location: required('IOTCORE_LOCATION'), registry: required('IOTCORE_REGISTRY') };
  // A registry ID follows the device ID rule (iotcore-protocol.md §4).
  assertDeviceId(registry.registry, 'IOTCORE_REGISTRY');
  const service: IngestServiceOptions = {
    registry,
    gatewayIds: parseGatewayIds(env.IOTCORE_GATEWAY_IDS),
    authenticator: deviceAuthenticatorFromEnv(env, options),
    queue: new SqsRelayQueue({ queueUrl: required('RELAY_QUEUE_URL'), ...(options.sqsClient ? { client: options.sqsClient } : {}) }),
  };
  const table = env.CONFIG_TABLE?.trim() ?? '';
  if (table !== '') {
    const store = options.dynamoDbClient === undefined ? configStoreFromEnv(env) : new ConfigStore({ tableName: table, client: options.dynamoDbClient });
    service.latestConfig = latestConfigFrom(store);
  }
  return new IngestService(service);
}

/** The config a device gets in its answer, in the shape of IoT Core's HTTP getConfig answer. */
function latestConfigFrom(store: ConfigReader): NonNullable<IngestServiceOptions['latestConfig']> {
  return async (deviceId, heldVersion): Promise<AnswerConfig | undefined> => {
    const config = await newerConfigFor(deviceId, heldVersion, store);
    return config === undefined ? undefined : { version: String(config.version), binaryData: config.bytes.toString('base64') };
  };
}
