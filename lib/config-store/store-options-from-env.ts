/**
 * The config store's settings, read from the environment and checked, without building a store: both the store
 * (store-from-env.ts) and the relay's deferred one (lazy-store-from-env.ts) start from here, so they accept and
 * refuse the same settings with the same errors. It imports nothing of the AWS SDK.
 *
 * @example
 * configStoreOptionsFromEnv({ CONFIG_TABLE: 'iotcore-relay-config' }); // { tableName: 'iotcore-relay-config' }
 */
import { RelayError } from '../errors.js';
import type { ConfigStoreOptions } from './config-store.js';

/**
 * `CONFIG_TABLE` and `CONFIG_RETENTION_DAYS`: throws RelayError ERR_CONFIG when the table is unset or the retention
 * is not a positive number of days.
 */
export function configStoreOptionsFromEnv(env: NodeJS.ProcessEnv): ConfigStoreOptions {
  const tableName = env.CONFIG_TABLE?.trim() ?? '';
  if (tableName === '') throw new RelayError('ERR_CONFIG', 'CONFIG_TABLE must name the config table', { field: 'CONFIG_TABLE' });
  const days = env.CONFIG_RETENTION_DAYS?.trim();
  if (days === undefined || days === '') return { tableName };
  const retentionDays = Number(days);
  if (!Number.isFinite(retentionDays) || retentionDays <= 0) {
    throw new RelayError('ERR_CONFIG', `CONFIG_RETENTION_DAYS must be a positive number (got ${JSON.stringify(days)})`, { field: 'CONFIG_RETENTION_DAYS' });
  }
  return { tableName, retentionDays };
}
