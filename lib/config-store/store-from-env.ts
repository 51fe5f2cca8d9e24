/**
 * The config store the handlers use, built from their environment.
 *
 * | variable | meaning |
 * |---|---|
 * | `CONFIG_TABLE` | the DynamoDB table (key `deviceId`, TTL attribute `expiresAt`) |
 * | `CONFIG_RETENTION_DAYS` | days an item outlives the last poll or relay that touched it (default 30) |
 * | `AWS_ENDPOINT_URL_DYNAMODB` | read by the SDK; points the store at a local server |
 *
 * Building the store loads nothing of the AWS SDK: its first call to the table does (config-store.ts). The relay,
 * which writes only once a session is over, defers the store's module too (lazy-store-from-env.ts).
 *
 * @example
 * const store = sharedConfigStore(); // one per process, built on first use
 */
import { ConfigStore } from './config-store.js';
import { configStoreOptionsFromEnv } from './store-options-from-env.js';

/** Throws RelayError ERR_CONFIG when `CONFIG_TABLE` is unset or `CONFIG_RETENTION_DAYS` is not a positive number. */
export function configStoreFromEnv(env: NodeJS.ProcessEnv = process.env): ConfigStore {
  return new ConfigStore(configStoreOptionsFromEnv(env));
}

let shared: ConfigStore | undefined;

/** A store from `process.env`, built once per process so a warm Lambda container reuses its connections. */
export function sharedConfigStore(): ConfigStore {
  shared ??= configStoreFromEnv(process.env);
  return shared;
}
