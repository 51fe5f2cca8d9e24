/**
 * The config store: the latest config per device, which devices the relay relayed for recently, and how a
 * device's request for its config is answered.
 *
 * @example
 * const store = configStoreFromEnv(); // CONFIG_TABLE, optional CONFIG_RETENTION_DAYS
 * const newer = await newerConfigFor('pump-0042', 3); // the stored config, unless the device holds version 3
 */
export {
  ConfigStore,
  DEFAULT_RETENTION_DAYS,
  sha256Hex,
  type ConfigReader,
  type ConfigStoreOptions,
  type ConfigWriter,
  type DownlinkState,
  type DownlinkStore,
  type PutConfigOptions,
  type PutConfigResult,
  type StoredConfig,
} from './config-store.js';
export {
  decideByLocalVersion,
  etagOf,
  ifNoneMatchMatches,
  newerConfigFor,
  parseHeldConfigVersion,
  parseLocalVersion,
  type LocalVersionAnswer,
} from './config-delivery.js';
export { configStoreFromEnv, sharedConfigStore } from './store-from-env.js';
export { ATTR, TTL_ATTRIBUTE, configTableDefinition } from './table.js';
