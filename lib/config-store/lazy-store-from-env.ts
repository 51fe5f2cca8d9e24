/**
 * A config store, from the environment, whose module is loaded at its first write rather than at import.
 *
 * The relay's handler uses it: it writes to the table only once a session is over (configs it polled, devices it
 * relayed for), so even the store's own code can wait for the first invocation. The DynamoDB client is loaded at
 * first use by `ConfigStore` itself (config-store.ts), which is what keeps the AWS SDK out of every handler's import;
 * the HTTP handlers build that store directly (store-from-env.ts).
 *
 * Keep the import of `./config-store.js` here type-only: a value import would bring the store's module into the
 * relay's import.
 *
 * @example
 * const store = lazyConfigStoreFromEnv(process.env); // throws ERR_CONFIG now if CONFIG_TABLE is unset
 * await store.noteRelayed(['pump-0042'], new Date()); // the DynamoDB client is loaded here, once
 */
import type { ConfigStore } from './config-store.js';
import { lazy } from '../lazy.js';
import { configStoreOptionsFromEnv } from './store-options-from-env.js';

/** The writer side of `ConfigStore`, which is all the relay uses. */
export type LazyConfigStore = Pick<ConfigStore, 'tableName' | 'putConfig' | 'noteRelayed'>;

/**
 * Checks the settings now, with the same errors as `configStoreFromEnv` (RelayError ERR_CONFIG), and builds the
 * `ConfigStore` at the first call: every later call uses that one store, so one client and its connections.
 */
export function lazyConfigStoreFromEnv(env: NodeJS.ProcessEnv): LazyConfigStore {
  const options = configStoreOptionsFromEnv(env);
  // A failed load is not kept: a later call tries again instead of failing for the rest of the container's life.
  const loaded = lazy(async () => new (await import('./config-store.js')).ConfigStore(options));
  return {
    tableName: options.tableName,
    putConfig: async (deviceId, bytes, receivedAt, putOptions) => (await loaded()).putConfig(deviceId, bytes, receivedAt, putOptions),
    noteRelayed: async (deviceIds, at) => (await loaded()).noteRelayed(deviceIds, at),
  };
}
