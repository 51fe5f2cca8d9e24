import { describe, expect, it } from 'vitest';
import { configStoreOptionsFromEnv } from '../../../lib/config-store/store-options-from-env.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

describe('configStoreOptionsFromEnv', () => {
  it('trims the table name and leaves the retention to the store when unset or empty', () => {
    expect(configStoreOptionsFromEnv({ CONFIG_TABLE: '  config  ' })).toEqual({ tableName: 'config' });
    expect(configStoreOptionsFromEnv({ CONFIG_TABLE: 'config', CONFIG_RETENTION_DAYS: ' ' })).toEqual({ tableName: 'config' });
    expect(configStoreOptionsFromEnv({ CONFIG_TABLE: 'config', CONFIG_RETENTION_DAYS: '7.5' })).toEqual({ tableName: 'config', retentionDays: 7.5 });
    expect(configStoreOptionsFromEnv({ CONFIG_TABLE: 'config', CONFIG_RETENTION_DAYS: ' 30 ' })).toEqual({ tableName: 'config', retentionDays: 30 });
  });

  it('needs the table', () => {
    for (const env of [{}, { CONFIG_TABLE: '' }, { CONFIG_TABLE: '   ' }]) {
      expect(thrownRelayError(() => configStoreOptionsFromEnv(env), 'ERR_CONFIG')).toMatchObject({ field: 'CONFIG_TABLE', message: 'CONFIG_TABLE must name the config table' });
    }
  });

  it('refuses a retention that is not a positive number, quoting it', () => {
    for (const days of ['0', '-1', 'a month', 'Infinity', 'NaN']) {
      expect(thrownRelayError(() => configStoreOptionsFromEnv({ CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: days }), 'ERR_CONFIG')).toMatchObject({
        field: 'CONFIG_RETENTION_DAYS',
        message: `CONFIG_RETENTION_DAYS must be a positive number (got ${JSON.stringify(days)})`,
      });
    }
  });
});
