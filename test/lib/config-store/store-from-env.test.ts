import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { configStoreFromEnv, sharedConfigStore } from '../../../lib/config-store/store-from-env.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

let db: LocalDynamoDb;
beforeAll(async () => {
  db = await startLocalDynamoDb();
});
afterEach(() => {
  vi.unstubAllEnvs();
});
afterAll(() => db.stop());

/** The environment of a Lambda container pointed at the local server: the store builds its own client from it. */
function stubDynamoDbEnv(): void {
  for (const [name, value] of Object.entries(db.env)) vi.stubEnv(name, value);
}

const storedItem = async (deviceId: string, table = db.tableName) => (await db.client.send(new GetCommand({ TableName: table, Key: { deviceId } }))).Item;

describe('configStoreFromEnv', () => {
  it('builds a store on CONFIG_TABLE through a client configured by the environment alone', async () => {
    stubDynamoDbEnv();
    const store = configStoreFromEnv({ CONFIG_TABLE: ` ${db.tableName} ` });
    expect(store.tableName).toBe(db.tableName);
    expect(await store.putConfig('env-device', Buffer.from('a'), new Date('2025-01-01T00:00:00Z'))).toEqual({ version: 1, changed: true });
    expect(await storedItem('env-device')).toMatchObject({ deviceId: 'env-device', version: 1 });
  });

  it('keeps relayed devices for CONFIG_RETENTION_DAYS', async () => {
    stubDynamoDbEnv();
    await db.createConfigTable('retention-2');
    const store = configStoreFromEnv({ CONFIG_TABLE: 'retention-2', CONFIG_RETENTION_DAYS: '2' });
    await store.noteRelayed(['kept-device'], new Date('2025-02-01T00:00:00Z'));
    expect((await storedItem('kept-device', 'retention-2'))?.expiresAt).toBe(Date.parse('2025-02-03T00:00:00Z') / 1000);
  });

  it('needs CONFIG_TABLE and a sane retention', () => {
    expect(thrownRelayError(() => configStoreFromEnv({}), 'ERR_CONFIG').field).toBe('CONFIG_TABLE');
    expect(thrownRelayError(() => configStoreFromEnv({ CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: '-1' }), 'ERR_CONFIG').field).toBe('CONFIG_RETENTION_DAYS');
    expect(configStoreFromEnv({ CONFIG_TABLE: 't', CONFIG_RETENTION_DAYS: '7' }).tableName).toBe('t');
  });
});

describe('sharedConfigStore', () => {
  it('is built from process.env on first use, and is the same store after', async () => {
    vi.stubEnv('CONFIG_TABLE', '');
    expect(thrownRelayError(() => sharedConfigStore(), 'ERR_CONFIG').field).toBe('CONFIG_TABLE');

    stubDynamoDbEnv();
    const store = sharedConfigStore();
    expect(store.tableName).toBe(db.tableName);
    vi.stubEnv('CONFIG_TABLE', 'another-table');
    expect(sharedConfigStore()).toBe(store);
    await store.putConfig('shared-device', Buffer.from('s'), new Date('2025-01-01T00:00:00Z'));
    expect(await storedItem('shared-device')).toMatchObject({ version: 1 });
  });
});
