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
import { deviceIdProblem } from '../iotcore/device-id.js';
import { SettingsCheck } from '../settings-check.js';
import { SqsRelayQueue } from '../queue/relay-queue.js';
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
export { matchRoute, type IngestRoute, type RouteMatch } from './routes.js';
export { MAX_BATCH_READINGS, type Reading } from './readings.js';
export { deviceDeduplicationId, requestDeduplicationId, MAX_MESSAGE_ID_LENGTH } from './deduplication.js';

export interface IngestFromEnvOptions extends DeviceAuthFromEnvOptions {
  /** Defaults to a client from the environment with request timeouts (`defaultSqsClient`). */
  sqsClient?: SQSClient;
  /** For the config table; defaults to a client from the environment (`AWS_ENDPOINT_URL_DYNAMODB`...). */
  dynamoDbClient?: DynamoDBClient;
}

/** Throws one RelayError ERR_CONFIG listing every wrong or missing variable (lib/settings-check.ts). */
export function ingestServiceFromEnv(env: NodeJS.ProcessEnv = process.env, options: IngestFromEnvOptions = {}): IngestService {
  const check = new SettingsCheck();
  const required = (name: string): string | undefined => {
    const value = env[name]?.trim() ?? '';
    if (value === '') check.add(new RelayError('ERR_CONFIG', `${name} must be set`, { field: name }));
    return value === '' ? undefined : value;
  };
  const project = required('IOTCORE_PROJECT');
  const location = required('IOTCORE_LOCATION');
  const registryId = required('IOTCORE_REGISTRY');
  // A registry ID follows the device ID rule (docs/protocol.md §4).
  const registryProblem = registryId === undefined ? undefined : deviceIdProblem(registryId);
  if (registryProblem !== undefined) check.add(new RelayError('ERR_CONFIG', `IOTCORE_REGISTRY ${registryProblem}`, { field: 'IOTCORE_REGISTRY' }));
  const gatewayIds = check.read(() => parseGatewayIds(env.IOTCORE_GATEWAY_IDS));
  const queueUrl = required('RELAY_QUEUE_URL');
  const authenticator = check.read(() => deviceAuthenticatorFromEnv(env, options));
  const table = env.CONFIG_TABLE?.trim() ?? '';
  const store = table === '' ? undefined : check.read(() => (options.dynamoDbClient === undefined ? configStoreFromEnv(env) : new ConfigStore({ tableName: table, client: options.dynamoDbClient })));
  check.throwIfAny();

  const service: IngestServiceOptions = {
    registry: { project: project!, location: location!, registry: registryId! },
    gatewayIds: gatewayIds!,
    authenticator: authenticator!,
    queue: new SqsRelayQueue({ queueUrl: queueUrl!, ...(options.sqsClient ? { client: options.sqsClient } : {}) }),
  };
  if (store !== undefined) service.latestConfig = latestConfigFrom(store);
  return new IngestService(service);
}

/** The config a device gets in its answer, in the shape of IoT Core's HTTP getConfig answer. */
function latestConfigFrom(store: ConfigReader): NonNullable<IngestServiceOptions['latestConfig']> {
  return async (deviceId, heldVersion): Promise<AnswerConfig | undefined> => {
    const config = await newerConfigFor(deviceId, heldVersion, store);
    return config === undefined ? undefined : { version: String(config.version), binaryData: config.bytes.toString('base64') };
  };
}
