import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../lib/config-store/config-store.js';
import { ATTR, configTableDefinition, TTL_ATTRIBUTE } from '../../../lib/config-store/table.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';

let db: LocalDynamoDb;
beforeAll(async () => {
  db = await startLocalDynamoDb();
});
afterAll(() => db.stop());

describe('configTableDefinition', () => {
  it('is a table keyed by deviceId alone, billed per request', () => {
    expect(configTableDefinition('t')).toEqual({
      TableName: 't',
      AttributeDefinitions: [{ AttributeName: 'deviceId', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'deviceId', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    });
  });

  it('creates a table on the local server that the store writes and reads', async () => {
    await db.createConfigTable('table-shape');
    const described = await db.client.send(new DescribeTableCommand({ TableName: 'table-shape' }));
    expect(described.Table?.KeySchema).toEqual([{ AttributeName: ATTR.deviceId, KeyType: 'HASH' }]);
    const store = new ConfigStore({ tableName: 'table-shape', client: db.client });
    await store.putConfig('shape-device', Buffer.from('c'), new Date('2025-01-01T00:00:00Z'));
    expect(await store.getConfig('shape-device')).toMatchObject({ deviceId: 'shape-device', version: 1 });
  });
});

describe('attribute names', () => {
  it('name every attribute the store writes, each once, the TTL one in epoch seconds', async () => {
    await db.createConfigTable('table-attributes');
    const store = new ConfigStore({ tableName: 'table-attributes', client: db.client, retentionDays: 1 });
    const at = new Date('2025-03-01T00:00:00Z');
    await store.putConfig('attr-device', Buffer.from('c'), at, { bridgeVersion: 3 });
    await store.noteRelayed(['attr-device'], at);
    await store.markDownlinkDelivered('attr-device', 1, at, 'farm-ttn');
    await store.noteDownlinkRefused('attr-device', 1, 'too large', at);
    const item = (await db.client.send(new GetCommand({ TableName: 'table-attributes', Key: { deviceId: 'attr-device' } }))).Item!;
    expect(Object.keys(item).sort()).toEqual(Object.values(ATTR).sort());
    expect(item[TTL_ATTRIBUTE]).toBe(Date.parse('2025-03-02T00:00:00Z') / 1000);
  });
});
