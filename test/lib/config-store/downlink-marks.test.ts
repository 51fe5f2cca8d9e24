/**
 * The config store's downlink marks, on dynalite: which version a network server accepted, which was refused, read
 * back with the config in one call.
 */
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../lib/config-store/index.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';

let db: LocalDynamoDb;
let store: ConfigStore;

beforeAll(async () => {
  db = await startLocalDynamoDb();
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
});
afterAll(() => db.stop());

const t = (iso: string): Date => new Date(iso);

describe('downlink marks', () => {
  it('read back with the config, and move only forward', async () => {
    await store.putConfig('lora-mark', Buffer.from('a'), t('2025-01-01T00:00:00.000Z'));
    await store.putConfig('lora-mark', Buffer.from('b'), t('2025-01-01T00:01:00.000Z'));
    expect(await store.getDownlinkState('lora-mark')).toEqual({ config: expect.objectContaining({ version: 2, bytes: Buffer.from('b') }) });

    expect(await store.markDownlinkDelivered('lora-mark', 2, t('2025-01-01T00:02:00.000Z'), 'farm-ttn')).toBe(true);
    // An older version finishing later does not move the mark back; the same version again does not either.
    expect(await store.markDownlinkDelivered('lora-mark', 1, t('2025-01-01T00:03:00.000Z'), 'farm-ttn')).toBe(false);
    expect(await store.markDownlinkDelivered('lora-mark', 2, t('2025-01-01T00:04:00.000Z'), 'farm-ttn')).toBe(false);
    expect((await store.getDownlinkState('lora-mark')).delivered).toEqual({ version: 2, at: '2025-01-01T00:02:00.000Z', via: 'farm-ttn' });
  });

  it('note a refusal with its reason, and keep the config and expiry untouched', async () => {
    await store.putConfig('lora-big', Buffer.from('x'.repeat(80)), t('2025-01-01T00:00:00.000Z'));
    const doc = DynamoDBDocumentClient.from(db.client);
    const expiresBefore = (await doc.send(new GetCommand({ TableName: db.tableName, Key: { deviceId: 'lora-big' } }))).Item?.expiresAt;
    await store.noteDownlinkRefused('lora-big', 1, 'config version 1 is 80 bytes; integration farm-ttn sends at most 51 per downlink', t('2025-01-01T00:05:00.000Z'));
    const state = await store.getDownlinkState('lora-big');
    expect(state.refused).toEqual({ version: 1, reason: 'config version 1 is 80 bytes; integration farm-ttn sends at most 51 per downlink', at: '2025-01-01T00:05:00.000Z' });
    expect(state.config?.bytes.byteLength).toBe(80);
    expect(state.delivered).toBeUndefined();
    expect((await doc.send(new GetCommand({ TableName: db.tableName, Key: { deviceId: 'lora-big' } }))).Item?.expiresAt).toBe(expiresBefore);
  });

  it('never create an item: one without its TTL attribute would never expire', async () => {
    expect(await store.markDownlinkDelivered('lora-none', 1, t('2025-01-01T00:00:00.000Z'), 'farm-ttn')).toBe(false);
    await store.noteDownlinkRefused('lora-none', 1, 'too large', t('2025-01-01T00:00:00.000Z'));
    expect(await store.getDownlinkState('lora-none')).toEqual({});
    expect([...(await store.getDownlinkStates(['lora-none', 'lora-mark'])).keys()]).toEqual(['lora-mark']);
  });
});
