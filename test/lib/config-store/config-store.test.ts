import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigStore, sha256Hex } from '../../../lib/config-store/index.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';

let db: LocalDynamoDb;
let store: ConfigStore;
let tables = 0;

beforeAll(async () => {
  db = await startLocalDynamoDb();
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
});
afterAll(() => db.stop());

/** A store on a table of its own, for tests that read the whole table. */
async function freshStore(retentionDays?: number): Promise<ConfigStore> {
  const name = `config-${++tables}`;
  await db.createConfigTable(name);
  return new ConfigStore({ tableName: name, client: db.client, ...(retentionDays === undefined ? {} : { retentionDays }) });
}

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');
const t = (iso: string): Date => new Date(iso);

describe('putConfig / getConfig', () => {
  it('stores the first config as version 1 with its SHA-256', async () => {
    const r = await store.putConfig('dev-first', bytes('{"rate":5}'), t('2025-01-01T00:00:00.000Z'));
    expect(r).toEqual({ version: 1, changed: true });
    const got = await store.getConfig('dev-first');
    expect(got).toEqual({
      deviceId: 'dev-first',
      version: 1,
      bytes: bytes('{"rate":5}'),
      sha256: sha256Hex(bytes('{"rate":5}')),
      receivedAt: '2025-01-01T00:00:00.000Z',
    });
  });

  it('keeps the version for the same bytes and moves receivedAt', async () => {
    await store.putConfig('dev-same', bytes('a'), t('2025-01-01T00:00:00.000Z'));
    const again = await store.putConfig('dev-same', bytes('a'), t('2025-01-01T01:00:00.000Z'));
    expect(again).toEqual({ version: 1, changed: false });
    expect(await store.getConfig('dev-same')).toMatchObject({ version: 1, receivedAt: '2025-01-01T01:00:00.000Z' });
  });

  it('bumps the version by one when the bytes change, and again when they change back', async () => {
    await store.putConfig('dev-bump', bytes('a'), t('2025-01-01T00:00:00.000Z'));
    expect(await store.putConfig('dev-bump', bytes('b'), t('2025-01-01T00:01:00.000Z'))).toEqual({ version: 2, changed: true });
    // Returning to earlier bytes is a change too: devices holding version 2 must get them.
    expect(await store.putConfig('dev-bump', bytes('a'), t('2025-01-01T00:02:00.000Z'))).toEqual({ version: 3, changed: true });
    const got = await store.getConfig('dev-bump');
    expect(got?.bytes).toEqual(bytes('a'));
    expect(got?.version).toBe(3);
  });

  it('stores empty and binary configs byte for byte', async () => {
    await store.putConfig('dev-empty', new Uint8Array(0), t('2025-01-01T00:00:00.000Z'));
    expect((await store.getConfig('dev-empty'))?.bytes.length).toBe(0);
    const binary = Buffer.from([0, 255, 1, 254, 0x80]);
    await store.putConfig('dev-binary', binary, t('2025-01-01T00:00:00.000Z'));
    expect((await store.getConfig('dev-binary'))?.bytes).toEqual(binary);
  });

  it('keeps bridgeVersion when the writer knows it', async () => {
    await store.putConfig('dev-bridge', bytes('x'), t('2025-01-01T00:00:00.000Z'), { bridgeVersion: 17 });
    expect(await store.getConfig('dev-bridge')).toMatchObject({ version: 1, bridgeVersion: 17 });
  });

  it('returns undefined for a device without config, even when it was relayed for', async () => {
    await store.noteRelayed(['dev-noconfig'], t('2025-01-01T00:00:00.000Z'));
    expect(await store.getConfig('dev-noconfig')).toBeUndefined();
    expect(await store.getConfig('dev-never-seen')).toBeUndefined();
  });

  it('keeps lastRelayedAt when a config arrives after it, and the reverse', async () => {
    await store.noteRelayed(['dev-both'], t('2025-01-01T00:00:00.000Z'));
    await store.putConfig('dev-both', bytes('c'), t('2025-01-01T00:05:00.000Z'));
    await store.noteRelayed(['dev-both'], t('2025-01-01T00:10:00.000Z'));
    const doc = DynamoDBDocumentClient.from(db.client);
    const item = (await doc.send(new GetCommand({ TableName: db.tableName, Key: { deviceId: 'dev-both' } }))).Item;
    expect(item).toMatchObject({ lastRelayedAt: '2025-01-01T00:10:00.000Z', version: 1, receivedAt: '2025-01-01T00:05:00.000Z' });
  });

  it('refuses an invalid device ID and an oversized config before writing', async () => {
    await expect(store.putConfig('a/b', bytes('x'), new Date())).rejects.toMatchObject({ code: 'ERR_INVALID_DEVICE_ID' });
    await expect(store.putConfig('dev-big', Buffer.alloc(64 * 1024 + 1), new Date())).rejects.toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE' });
    expect(await store.getConfig('dev-big')).toBeUndefined();
  });

  it('sets the TTL attribute from the retention period, on config writes and on relays', async () => {
    const s = await freshStore(2);
    await s.putConfig('dev-ttl', bytes('x'), t('2025-01-01T00:00:00.000Z'));
    const doc = DynamoDBDocumentClient.from(db.client);
    const read = async (): Promise<unknown> =>
      (await doc.send(new GetCommand({ TableName: s.tableName, Key: { deviceId: 'dev-ttl' } }))).Item?.expiresAt;
    expect(await read()).toBe(Date.parse('2025-01-03T00:00:00.000Z') / 1000);
    await s.noteRelayed(['dev-ttl'], t('2025-02-01T00:00:00.000Z'));
    expect(await read()).toBe(Date.parse('2025-02-03T00:00:00.000Z') / 1000);
  });
});

describe('concurrent writers', () => {
  it('two writers of different bytes bump the version once each: 2 and 3, never the same, never skipping', async () => {
    await store.putConfig('dev-race', bytes('base'), t('2025-01-01T00:00:00.000Z'));
    const at = t('2025-01-01T00:01:00.000Z');
    const [a, b] = await Promise.all([store.putConfig('dev-race', bytes('A'), at), store.putConfig('dev-race', bytes('B'), at)]);
    expect(a.changed && b.changed).toBe(true);
    expect([a.version, b.version].sort()).toEqual([2, 3]);
    const final = await store.getConfig('dev-race');
    // The last writer's bytes are what the latest version holds.
    const last = a.version === 3 ? 'A' : 'B';
    expect(final).toMatchObject({ version: 3, bytes: bytes(last) });
  });

  it('many writers of the same new bytes bump the version exactly once', async () => {
    await store.putConfig('dev-herd', bytes('old'), t('2025-01-01T00:00:00.000Z'));
    const at = t('2025-01-01T00:01:00.000Z');
    const results = await Promise.all(Array.from({ length: 6 }, () => store.putConfig('dev-herd', bytes('new'), at)));
    expect(results.filter((r) => r.changed)).toHaveLength(1);
    expect(results.every((r) => r.version === 2)).toBe(true);
    expect((await store.getConfig('dev-herd'))?.version).toBe(2);
  });

  it('concurrent first writes of different bytes give versions 1 and 2', async () => {
    const at = t('2025-01-01T00:00:00.000Z');
    const [a, b] = await Promise.all([store.putConfig('dev-first-race', bytes('A'), at), store.putConfig('dev-first-race', bytes('B'), at)]);
    expect([a.version, b.version].sort()).toEqual([1, 2]);
  });
});

describe('getConfigs', () => {
  it('reads many devices across batch pages and leaves out those without config', async () => {
    const s = await freshStore();
    const ids = Array.from({ length: 130 }, (_, i) => `dev-batch-${String(i).padStart(3, '0')}`);
    const at = t('2025-01-01T00:00:00.000Z');
    await Promise.all(ids.slice(0, 120).map((id) => s.putConfig(id, bytes(id), at)));
    const got = await s.getConfigs([...ids, ids[0]!]);
    expect(got.size).toBe(120);
    expect(got.get('dev-batch-119')?.bytes).toEqual(bytes('dev-batch-119'));
    expect(got.has('dev-batch-125')).toBe(false);
  });
});

describe('noteRelayed / recentlyRelayed', () => {
  it('finds devices relayed for since a time, through several scan pages', async () => {
    const s = await freshStore();
    const old = Array.from({ length: 5 }, (_, i) => `dev-old-${i}`);
    // Large items make the scan span several 1 MB pages.
    const recent = Array.from({ length: 40 }, (_, i) => `dev-new-${String(i).padStart(2, '0')}`);
    await s.noteRelayed(old, t('2025-01-01T00:00:00.000Z'));
    await s.noteRelayed(recent, t('2025-01-02T12:00:00.000Z'));
    await Promise.all(recent.map((id) => s.putConfig(id, Buffer.alloc(60 * 1024, id), t('2025-01-02T12:00:00.000Z'))));
    // A device with a config but never relayed for is not "recently relayed".
    await s.putConfig('dev-config-only', bytes('x'), t('2025-01-02T12:00:00.000Z'));

    // The table really spans several pages, so the store must follow LastEvaluatedKey to find them all.
    const firstPage = await db.client.send(new ScanCommand({ TableName: s.tableName }));
    expect(firstPage.LastEvaluatedKey).toBeDefined();

    const found = await s.recentlyRelayed(t('2025-01-02T00:00:00.000Z'));
    expect(found).toEqual([...recent].sort());
    expect(await s.recentlyRelayed(t('2024-12-31T00:00:00.000Z'))).toHaveLength(45);
    expect(await s.recentlyRelayed(t('2025-01-03T00:00:00.000Z'))).toEqual([]);
  });

  it('moves lastRelayedAt forward for a device relayed again', async () => {
    const s = await freshStore();
    await s.noteRelayed(['dev-again'], t('2025-01-01T00:00:00.000Z'));
    await s.noteRelayed(['dev-again', 'dev-again'], t('2025-01-05T00:00:00.000Z'));
    expect(await s.recentlyRelayed(t('2025-01-04T00:00:00.000Z'))).toEqual(['dev-again']);
  });
});
