/**
 * LoRaWAN network servers onto the relay's FIFO queue, and configs back to their devices as downlinks. See
 * docs/lorawan.md for setting up The Things Stack and ChirpStack.
 *
 * | variable | meaning |
 * |---|---|
 * | `LORAWAN_INTEGRATIONS` | the integrations, JSON (integrations.ts) |
 * | `LORAWAN_SECRETS_SECRET` / `LORAWAN_SECRETS_FILE` | their webhook secrets and API keys (integration-secrets.ts) |
 * | `LORAWAN_SECRETS_CACHE_SECONDS` | how long the secret document is reused (default 300) |
 * | `LORAWAN_DOWNLINK_TIMEOUT_MS` | how long a network server's API may take to accept a downlink (default 2500) |
 * | `IOTCORE_GATEWAY_IDS` | the gateways; a device's records go to message group `gatewayFor(deviceId)` |
 * | `RELAY_QUEUE_URL` | the FIFO queue (the SDK honours `AWS_ENDPOINT_URL_SQS`) |
 * | `CONFIG_TABLE` | the config table: the configs to send, and which versions were delivered |
 *
 * @example
 * const lorawan = lorawanServiceFromEnv(process.env);
 * const answer = await lorawan.handle(request);
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { ConfigStore } from '../config-store/config-store.js';
import { configStoreFromEnv } from '../config-store/store-from-env.js';
import { RelayError } from '../errors.js';
import { parseGatewayIds } from '../gateway-pool.js';
import { SqsRelayQueue } from '../queue/relay-queue.js';
import { integrationSecretsFromEnv } from './integration-secrets.js';
import { parseIntegrations } from './integrations.js';
import { LorawanService, type LorawanServiceOptions } from './lorawan-service.js';
import { DEFAULT_DOWNLINK_TIMEOUT_MS } from './network-server-api.js';

export { LorawanService, lorawanDeduplicationId, MAX_WEBHOOK_BODY_BYTES, type LorawanAnswer, type LorawanRequest, type LorawanResponse, type LorawanServiceOptions } from './lorawan-service.js';
export { parseIntegrations, type DownlinkSettings, type Integration, type NetworkServer } from './integrations.js';
export { integrationSecrets, integrationSecretsFromEnv, parseSecretDocument, type IntegrationSecret, type IntegrationSecrets } from './integration-secrets.js';
export { deliverConfig, type DownlinkOutcome } from './config-downlink.js';
export { downlinkHttpRequest, enqueueDownlink, type DownlinkAnswer, type DownlinkRequest, type EnqueueDownlink } from './network-server-api.js';

export interface LorawanFromEnvOptions {
  sqsClient?: SQSClient;
  dynamoDbClient?: DynamoDBClient;
  secretsProvider?: SecretsProvider;
}

export function lorawanServiceFromEnv(env: NodeJS.ProcessEnv = process.env, options: LorawanFromEnvOptions = {}): LorawanService {
  const queueUrl = env.RELAY_QUEUE_URL?.trim() ?? '';
  if (queueUrl === '') throw new RelayError('ERR_CONFIG', 'RELAY_QUEUE_URL must be set');
  const service: LorawanServiceOptions = {
    integrations: parseIntegrations(env.LORAWAN_INTEGRATIONS),
    gatewayIds: parseGatewayIds(env.IOTCORE_GATEWAY_IDS),
    queue: new SqsRelayQueue({ queueUrl, ...(options.sqsClient ? { client: options.sqsClient } : {}) }),
    downlinkTimeoutMs: timeoutOf(env.LORAWAN_DOWNLINK_TIMEOUT_MS),
  };
  const secrets = integrationSecretsFromEnv(env, options.secretsProvider ? { secretsProvider: options.secretsProvider } : {});
  if (secrets !== undefined) service.secrets = secrets;
  const table = env.CONFIG_TABLE?.trim() ?? '';
  if (table !== '') {
    service.downlinks = options.dynamoDbClient === undefined ? configStoreFromEnv(env) : new ConfigStore({ tableName: table, client: options.dynamoDbClient });
  }
  return new LorawanService(service);
}

function timeoutOf(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_DOWNLINK_TIMEOUT_MS;
  const ms = /^\d{1,5}$/.test(value.trim()) ? Number(value) : Number.NaN;
  // Below the shorter of the two network servers' webhook timeouts (ChirpStack's 5 s), with room for the queue.
  if (!(ms >= 100 && ms <= 4000)) throw new RelayError('ERR_CONFIG', `LORAWAN_DOWNLINK_TIMEOUT_MS must be a whole number from 100 to 4000 (got ${JSON.stringify(value.slice(0, 20))})`);
  return ms;
}
