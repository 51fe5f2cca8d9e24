/**
 * The relay's config store, built from the environment with the DynamoDB client loaded at its first call: it must
 * accept and refuse exactly what `configStoreFromEnv` does, and write exactly what `ConfigStore` writes, through the
 * SDK's default client configured by the environment alone, as in Lambda.
 */
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ConfigStore, configStoreFromEnv, sha256Hex } from '../../../lib/config-store/index.js';
import { lazyConfigStoreFromEnv } from '../../../lib/config-store/lazy-store-from-env.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

let db: LocalDynamoDb;
let reader: ConfigStore;
let tables = 0;

beforeAll(async () => {
  db = await startLocalDynamoDb();
  reader = new ConfigStore({ tableName: db.tableName, client: db.client });
});
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(() => db.stop());

/** The environment of a Lambda container pointed at the local server: the store builds its own client from it. */
function stubDynamoDbEnv(): void {
  for (const [name, value] of Object.entries(db.env)) if (name !== 'CONFIG_TABLE') vi.stubEnv(name, value);
}

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const t = (iso: string): Date => new Date(iso);

describe('lazyConfigStoreFromEnv', () => {
  it('refuses at once, with the eager store\'s code and message, what the eager store refuses', () => {
    const refused = [{}, { CONFIG_TABLE: '  ' }, { CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: '0' }, { CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: '-1' }, { CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: 'a month' }];
    for (const env of refused) {
      const lazy = thrownRelayError(() => lazyConfigStoreFromEnv(env), 'ERR_CONFIG');
      const eager = thrownRelayError(() => configStoreFromEnv(env), 'ERR_CONFIG');
      expect(lazy.message).toBe(eager.message);
    }
    expect(thrownRelayError(() => lazyConfigStoreFromEnv({ CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: 'a month' })).message).toContain('"a month"');
  });

  it('writes configs with the same versions as ConfigStore, through a client built from the environment', async () => {
    stubDynamoDbEnv();
    const store = lazyConfigStoreFromEnv({ CONFIG_TABLE: db.tableName });
    expect(store.tableName).toBe(db.tableName);

    expect(await store.putConfig('lazy-first', bytes('a'), t('2025-01-01T00:00:00.000Z'))).toEqual({ version: 1, changed: true });
    expect(await store.putConfig('lazy-first', bytes('a'), t('2025-01-01T00:01:00.000Z'))).toEqual({ version: 1, changed: false });
    expect(await store.putConfig('lazy-first', bytes('b'), t('2025-01-01T00:02:00.000Z'), { bridgeVersion: 4 })).toEqual({ version: 2, changed: true });
    expect(await reader.getConfig('lazy-first')).toEqual({
      deviceId: 'lazy-first',
      version: 2,
      bytes: bytes('b'),
      sha256: sha256Hex(bytes('b')),
      receivedAt: '2025-01-01T00:02:00.000Z',
      bridgeVersion: 4,
    });
  });

  it('keeps the write semantics for calls made while the client is still loading', async () => {
    stubDynamoDbEnv();
    const store = lazyConfigStoreFromEnv({ CONFIG_TABLE: db.tableName });
    const at = t('2025-01-01T00:00:00.000Z');
    // Six writers of the same new bytes race on the conditional write: exactly one of them counts as a change.
    const results = await Promise.all(Array.from({ length: 6 }, () => store.putConfig('lazy-herd', bytes('x'), at)));
    expect(results.filter((r) => r.changed)).toHaveLength(1);
    expect(results.every((r) => r.version === 1)).toBe(true);
  });

  it('notes relayed devices with the configured retention', async () => {
    stubDynamoDbEnv();
    const name = `lazy-${++tables}`;
    await db.createConfigTable(name);
    const store = lazyConfigStoreFromEnv({ CONFIG_TABLE: name, CONFIG_RETENTION_DAYS: '2' });
    await store.noteRelayed(['lazy-noted', 'lazy-noted'], t('2025-02-01T00:00:00.000Z'));
    const item = await db.client.send(new GetCommand({ TableName: name, Key: { deviceId: 'lazy-noted' } }));
    expect(item.Item).toEqual({
      deviceId: 'lazy-noted',
      lastRelayedAt: '2025-02-01T00:00:00.000Z',
      expiresAt: Date.parse('2025-02-03T00:00:00.000Z') / 1000,
    });
    expect(await new ConfigStore({ tableName: name, client: db.client }).recentlyRelayed(t('2025-01-31T00:00:00.000Z'))).toEqual(['lazy-noted']);
  });

  it('refuses an invalid device ID as ConfigStore does', async () => {
    stubDynamoDbEnv();
    const store = lazyConfigStoreFromEnv({ CONFIG_TABLE: db.tableName });
    await expect(store.putConfig('pump/../x', bytes('a'), t('2025-01-01T00:00:00.000Z'))).rejects.toMatchObject({ code: 'ERR_INVALID_DEVICE_ID' });
    await expect(store.noteRelayed(['ok-device', '#'], t('2025-01-01T00:00:00.000Z'))).rejects.toMatchObject({ code: 'ERR_INVALID_DEVICE_ID' });
  });
});
