import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigStore,
  decideByLocalVersion,
  etagOf,
  ifNoneMatchMatches,
  newerConfigFor,
  parseHeldConfigVersion,
  parseLocalVersion,
  sha256Hex,
  type StoredConfig,
} from '../../../lib/config-store/index.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';

const stored = (version: number, text = 'cfg'): StoredConfig => ({
  deviceId: 'pump-0042',
  version,
  bytes: Buffer.from(text),
  sha256: sha256Hex(Buffer.from(text)),
  receivedAt: '2025-01-01T00:00:00.000Z',
});

describe('decideByLocalVersion (IoT Core local_version semantics)', () => {
  it('answers 0 with the current config', () => {
    expect(decideByLocalVersion(stored(3), 0)).toEqual({ kind: 'config', config: stored(3) });
  });
  it('answers an older version with the current config', () => {
    expect(decideByLocalVersion(stored(3), 2)).toMatchObject({ kind: 'config', config: { version: 3 } });
  });
  it('answers the latest version with the current config too (documented choice)', () => {
    expect(decideByLocalVersion(stored(3), 3)).toMatchObject({ kind: 'config', config: { version: 3 } });
  });
  it('answers a version above the latest with out-of-range', () => {
    expect(decideByLocalVersion(stored(3), 4)).toEqual({ kind: 'out-of-range', latest: 3 });
  });
  it('answers not-found when nothing is stored, whatever the version', () => {
    expect(decideByLocalVersion(undefined, 0)).toEqual({ kind: 'not-found' });
    expect(decideByLocalVersion(undefined, 5)).toEqual({ kind: 'not-found' });
  });
});

describe('parseLocalVersion', () => {
  it('reads absent as 0 and integers as themselves', () => {
    expect(parseLocalVersion(undefined)).toBe(0);
    expect(parseLocalVersion('')).toBe(0);
    expect(parseLocalVersion('17')).toBe(17);
  });
  it.each(['-1', '1.5', 'abc', '1e3', ' 2', '99999999999999999'])('refuses %j', (raw) => {
    expect(() => parseLocalVersion(raw)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FIELD', field: 'local_version' }));
  });
});

describe('ifNoneMatchMatches', () => {
  const sha = sha256Hex(Buffer.from('x'));
  it('matches the strong tag, a weak one, a list member and *', () => {
    expect(ifNoneMatchMatches(etagOf({ sha256: sha }), sha)).toBe(true);
    expect(ifNoneMatchMatches(`W/"${sha}"`, sha)).toBe(true);
    expect(ifNoneMatchMatches(`"other", "${sha}"`, sha)).toBe(true);
    expect(ifNoneMatchMatches('*', sha)).toBe(true);
  });
  it('does not match another tag, an unquoted one, or nothing', () => {
    expect(ifNoneMatchMatches('"other"', sha)).toBe(false);
    expect(ifNoneMatchMatches(sha, sha)).toBe(false);
    expect(ifNoneMatchMatches(undefined, sha)).toBe(false);
  });
});

describe('parseHeldConfigVersion', () => {
  it('reads a non-negative integer and ignores anything else', () => {
    expect(parseHeldConfigVersion('4')).toBe(4);
    expect(parseHeldConfigVersion(' 4 ')).toBe(4);
    expect(parseHeldConfigVersion(undefined)).toBeUndefined();
    expect(parseHeldConfigVersion('four')).toBeUndefined();
    expect(parseHeldConfigVersion('-1')).toBeUndefined();
  });
});

describe('newerConfigFor', () => {
  let db: LocalDynamoDb;
  let store: ConfigStore;
  beforeAll(async () => {
    db = await startLocalDynamoDb();
    store = new ConfigStore({ tableName: db.tableName, client: db.client });
    await store.putConfig('held-dev', Buffer.from('v1'), new Date('2025-01-01T00:00:00Z'));
    await store.putConfig('held-dev', Buffer.from('v2'), new Date('2025-01-01T01:00:00Z'));
  });
  afterAll(() => db.stop());

  it('gives the stored config to a device holding an older version', async () => {
    const newer = await newerConfigFor('held-dev', 1, store);
    expect(newer).toMatchObject({ version: 2, bytes: Buffer.from('v2') });
  });
  it('gives nothing to a device holding the latest version', async () => {
    expect(await newerConfigFor('held-dev', 2, store)).toBeUndefined();
  });
  it('gives the stored config to a device holding a version the store no longer knows (the item was re-created)', async () => {
    expect(await newerConfigFor('held-dev', 9, store)).toMatchObject({ version: 2 });
  });
  it('gives nothing when no config is stored', async () => {
    expect(await newerConfigFor('unknown-dev', 0, store)).toBeUndefined();
  });
});
