/**
 * The config table's shape, in one place, so the store, the deployment and the local test server agree on it.
 *
 * One item per device, keyed by `deviceId`. The item carries two independent parts that different writers fill:
 * the latest config the bridge pushed (written by the relay after a poll) and the time the relay last relayed for
 * the device (written on every relayed record). Either part may exist without the other.
 *
 * @example
 * await dynamo.send(new CreateTableCommand(configTableDefinition('iotcore-relay-config')));
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

/** Attribute names. `expiresAt` is the table's TTL attribute (epoch seconds, as DynamoDB TTL requires). */
export const ATTR = {
  deviceId: 'deviceId',
  version: 'version',
  bytes: 'bytes',
  sha256: 'sha256',
  receivedAt: 'receivedAt',
  bridgeVersion: 'bridgeVersion',
  lastRelayedAt: 'lastRelayedAt',
  expiresAt: 'expiresAt',
} as const;

/** The TTL attribute, for `UpdateTimeToLive` in the deployment. */
export const TTL_ATTRIBUTE = ATTR.expiresAt;

export function configTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    AttributeDefinitions: [{ AttributeName: ATTR.deviceId, AttributeType: 'S' }],
    KeySchema: [{ AttributeName: ATTR.deviceId, KeyType: 'HASH' }],
    BillingMode: 'PAY_PER_REQUEST',
  };
}
