/**
 * The config table's shape, in one place, so the store, the deployment and the local test server agree on it.
 *
 * One item per device, keyed by `deviceId`. The item carries independent parts that different writers fill: the
 * latest config the bridge pushed (written by the relay after a poll), the time the relay last relayed for the
 * device (written on every relayed record), and, for devices behind a LoRaWAN network server, which config version
 * a network server accepted as a downlink or why one was not sent (written by lib/lorawan). Any part may exist
 * without the others.
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
  /** The config version a network server last accepted as a downlink, when, and through which integration. */
  downlinkVersion: 'downlinkVersion',
  downlinkAt: 'downlinkAt',
  downlinkVia: 'downlinkVia',
  /** The config version that was not sent as a downlink, and why (too large for the integration's frames). */
  downlinkRefusedVersion: 'downlinkRefusedVersion',
  downlinkRefusedReason: 'downlinkRefusedReason',
  downlinkRefusedAt: 'downlinkRefusedAt',
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
