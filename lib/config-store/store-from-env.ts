/**
 * The config store the handlers use, built from their environment.
 *
 * | variable | meaning |
 * |---|---|
 * | `CONFIG_TABLE` | the DynamoDB table (key `deviceId`, TTL attribute `expiresAt`) |
 * | `CONFIG_RETENTION_DAYS` | days an item outlives the last poll or relay that touched it (default 30) |
 * | `AWS_ENDPOINT_URL_DYNAMODB` | read by the SDK; points the store at a local server |
 *
 * @example
 * const store = sharedConfigStore(); // one per process, built on first use
 */
import { RelayError } from '../errors.js';
import { ConfigStore } from './config-store.js';

export function configStoreFromEnv(env: NodeJS.ProcessEnv = process.env): ConfigStore {
  const tableName = env.CONFIG_TABLE?.trim() ?? '';
  if (tableName === '') throw new RelayError('ERR_CONFIG', 'CONFIG_TABLE must name the config table');
  const days = env.CONFIG_RETENTION_DAYS?.trim();
  if (days === undefined || days === '') return new ConfigStore({ tableName });
  const retentionDays = Number(days);
  if (!Number.isFinite(retentionDays) || retentionDays <= 0) {
    throw new RelayError('ERR_CONFIG', `CONFIG_RETENTION_DAYS must be a positive number (got ${JSON.stringify(days)})`);
  }
  return new ConfigStore({ tableName, retentionDays });
}

let shared: ConfigStore | undefined;

/** A store from `process.env`, built once per process so a warm Lambda container reuses its connections. */
export function sharedConfigStore(): ConfigStore {
  shared ??= configStoreFromEnv(process.env);
  return shared;
}
