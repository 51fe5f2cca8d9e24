/**
 * Where the relay keeps the latest config the bridge pushed for each device, so a device that sleeps through
 * every poll can fetch it later over HTTP; and where it notes which devices it relayed for recently, so the
 * poller knows whom to poll.
 *
 * The `version` here is the store's own counter, not IoT Core's: the bridge pushes config bytes over MQTT without
 * their version number (docs/protocol.md §2), so the store counts changes of the bytes. It grows by exactly one
 * per change, whatever the number of writers and retries: every change is a conditional write on the version it
 * replaces, and the same bytes seen again never count as a change.
 *
 * For devices behind a LoRaWAN network server it also keeps which config version a network server accepted as a
 * downlink, and which was not sent and why (lib/lorawan/config-downlink.ts).
 *
 * Nothing here touches MQTT: the config and ingest handlers import this module and stay small. Nor is the DynamoDB
 * client evaluated with it: the first call to the table loads it (dynamodb-sdk.ts), so an HTTP request refused
 * before it reads its config, or a relay batch that writes nothing, never pays for it. Keep the imports of the AWS
 * SDK here type-only (test/deploy/bundles-lazy-sdk.test.ts).
 *
 * @example
 * const store = new ConfigStore({ tableName: 'iotcore-relay-config' });
 * await store.putConfig('pump-0042', Buffer.from('{"rate":5}'), new Date()); // { version: 1, changed: true }
 * await store.getConfig('pump-0042'); // { version: 1, bytes: <Buffer ...>, sha256: '…', receivedAt: '…' }
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { RelayError } from '../errors.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import { MAX_CONFIG_BYTES } from '../iotcore/limits.js';
import { lazy } from '../lazy.js';
import { ATTR } from './table.js';

export interface StoredConfig {
  deviceId: string;
  /** The store's change counter: 1 for the first config seen, +1 each time the bytes change. */
  version: number;
  bytes: Buffer;
  /** Lowercase hex SHA-256 of `bytes`; the HTTP ETag. */
  sha256: string;
  /** ISO time the bridge last pushed this config to us, changed or not. */
  receivedAt: string;
  /** IoT Core's own version number, when the writer knew it. */
  bridgeVersion?: number;
}

export interface PutConfigResult {
  version: number;
  /** false when the bytes equal the stored ones: only `receivedAt` moved. */
  changed: boolean;
}

export interface PutConfigOptions {
  /** IoT Core's version number of this config, when known (e.g. from the device-manager API). */
  bridgeVersion?: number;
}

/** What `runConfigPoll` needs of the store; tests and other writers can supply just this. */
export interface ConfigWriter {
  putConfig(deviceId: string, bytes: Uint8Array, receivedAt: Date, options?: PutConfigOptions): Promise<PutConfigResult>;
}

/** What the delivery routes need of the store. */
export interface ConfigReader {
  getConfig(deviceId: string): Promise<StoredConfig | undefined>;
}

/**
 * A device's stored config next to what became of it as a LoRaWAN downlink: the version a network server accepted
 * last, and the last version that was not sent and why.
 */
export interface DownlinkState {
  config?: StoredConfig;
  delivered?: { version: number; at: string; via: string };
  refused?: { version: number; reason: string; at: string };
}

/** What the LoRaWAN config downlinks need of the store (lib/lorawan/config-downlink.ts). */
export interface DownlinkStore {
  getDownlinkState(deviceId: string): Promise<DownlinkState>;
  /**
   * Records that a network server accepted `version` as a downlink. Never moves the mark back to an older version
   * (two uplinks may deliver two versions and finish out of order), and never creates an item: false when nothing
   * was written for either reason.
   */
  markDownlinkDelivered(deviceId: string, version: number, at: Date, via: string): Promise<boolean>;
  /** Records that `version` was not sent, with the reason. Writes nothing when the device has no item. */
  noteDownlinkRefused(deviceId: string, version: number, reason: string, at: Date): Promise<void>;
}

export interface ConfigStoreOptions {
  tableName: string;
  /** Defaults to a client built from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL_DYNAMODB`, credentials). */
  client?: DynamoDBClient;
  /**
   * Days an item lives after the last time a poll or a relay touched it (DynamoDB TTL). Default 30.
   * It must exceed `POLL_RECENT_HOURS` by far, or a device still being polled could lose its item.
   */
  retentionDays?: number;
}

export const DEFAULT_RETENTION_DAYS = 30;
/** A change lost to another writer is retried on the new version; each round lets at least one writer through. */
const MAX_WRITE_ATTEMPTS = 8;
/** BatchGetItem takes at most 100 keys per request. */
const BATCH_GET_LIMIT = 100;
/** UpdateItem calls in flight at once in `noteRelayed` (BatchWriteItem would replace whole items, config included). */
const NOTE_CONCURRENCY = 10;

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

type DynamoDbSdk = typeof import('./dynamodb-sdk.js');

export class ConfigStore implements ConfigWriter, ConfigReader, DownlinkStore {
  readonly tableName: string;
  private readonly retentionSeconds: number;
  /**
   * The document client and the SDK's commands, loaded by the first call to the table; a load that failed is tried
   * again by the next call.
   */
  private readonly sdk: () => Promise<{ doc: DynamoDBDocumentClient; sdk: DynamoDbSdk }>;

  constructor(options: ConfigStoreOptions) {
    if (options.tableName.length === 0) throw new RelayError('ERR_CONFIG', 'the config table name is empty (set CONFIG_TABLE)');
    const retentionDays = options.retentionDays ?? DEFAULT_RETENTION_DAYS;
    if (!Number.isFinite(retentionDays) || retentionDays <= 0) {
      throw new RelayError('ERR_CONFIG', `config retention must be a positive number of days (got ${retentionDays})`);
    }
    this.tableName = options.tableName;
    this.retentionSeconds = Math.round(retentionDays * 86_400);
    this.sdk = lazy(async () => {
      const sdk = await import('./dynamodb-sdk.js');
      const doc = sdk.DynamoDBDocumentClient.from(options.client ?? new sdk.DynamoDBClient({}), { marshallOptions: { removeUndefinedValues: true } });
      return { doc, sdk };
    });
  }

  /**
   * Records the config the bridge pushed for a device at `receivedAt`. The version grows only when the bytes differ
   * from the stored ones; a retry with the same bytes, or a second writer that lost the race with the same bytes,
   * only moves `receivedAt`.
   *
   * @example
   * const { version, changed } = await store.putConfig('pump-0042', payload, new Date());
   */
  async putConfig(deviceId: string, bytes: Uint8Array, receivedAt: Date, options: PutConfigOptions = {}): Promise<PutConfigResult> {
    assertDeviceId(deviceId);
    if (bytes.byteLength > MAX_CONFIG_BYTES) {
      throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `config of ${deviceId} is ${bytes.byteLength} bytes; the bridge sends at most ${MAX_CONFIG_BYTES}`);
    }
    const at = isoTime(receivedAt, 'receivedAt');
    const sha = sha256Hex(bytes);
    const common = {
      ':at': at,
      ':exp': this.expiry(receivedAt),
      ...(options.bridgeVersion === undefined ? {} : { ':bv': options.bridgeVersion }),
    };
    const setCommon = `${ATTR.receivedAt} = :at, ${ATTR.expiresAt} = :exp${options.bridgeVersion === undefined ? '' : `, ${ATTR.bridgeVersion} = :bv`}`;
    const { doc, sdk } = await this.sdk();

    for (let attempt = 1; attempt <= MAX_WRITE_ATTEMPTS; attempt++) {
      // A strongly consistent read: with an eventually consistent one a writer would often start from a version
      // that was already replaced, and spend a round trip losing the condition below.
      const current = await this.readVersion(deviceId);
      try {
        if (current !== undefined && current.sha256 === sha) {
          // Seen again, unchanged. The condition keeps us from stamping a fresh receivedAt on bytes that another
          // writer replaced between our read and this write.
          await doc.send(
            new sdk.UpdateCommand({
              TableName: this.tableName,
              Key: { [ATTR.deviceId]: deviceId },
              UpdateExpression: `SET ${setCommon}`,
              ConditionExpression: `${ATTR.version} = :expected AND ${ATTR.sha256} = :sha`,
              ExpressionAttributeValues: { ...common, ':expected': current.version, ':sha': sha },
            }),
          );
          return { version: current.version, changed: false };
        }
        const next = (current?.version ?? 0) + 1;
        // The item may already exist without a config (noteRelayed wrote it first), so "no config yet" is
        // attribute_not_exists(version), not of the key; UpdateItem keeps lastRelayedAt where PutItem would drop it.
        await doc.send(
          new sdk.UpdateCommand({
            TableName: this.tableName,
            Key: { [ATTR.deviceId]: deviceId },
            UpdateExpression: `SET ${ATTR.version} = :next, ${ATTR.bytes} = :bytes, ${ATTR.sha256} = :sha, ${setCommon}`,
            ConditionExpression:
              current === undefined
                ? `attribute_not_exists(${ATTR.version})`
                : `${ATTR.version} = :expected AND ${ATTR.sha256} <> :sha`,
            ExpressionAttributeValues: {
              ...common,
              ':next': next,
              ':bytes': Buffer.from(bytes),
              ':sha': sha,
              ...(current === undefined ? {} : { ':expected': current.version }),
            },
          }),
        );
        return { version: next, changed: true };
      } catch (e) {
        if (!(e instanceof sdk.ConditionalCheckFailedException)) throw e;
        // Another writer got there first: read its version and decide again. A short random pause keeps writers
        // that collided from colliding again in lockstep.
        await sleep(Math.floor(Math.random() * 10 * attempt));
      }
    }
    throw new RelayError('ERR_STORE_CONFLICT', `config of ${deviceId} kept changing under ${MAX_WRITE_ATTEMPTS} attempts to write it`);
  }

  /** The latest config of a device, or undefined when none was ever received (or the item expired). */
  async getConfig(deviceId: string): Promise<StoredConfig | undefined> {
    assertDeviceId(deviceId);
    const { doc, sdk } = await this.sdk();
    const out = await doc.send(
      new sdk.GetCommand({
        TableName: this.tableName,
        Key: { [ATTR.deviceId]: deviceId },
        ProjectionExpression: CONFIG_PROJECTION,
      }),
    );
    return out.Item === undefined ? undefined : toStoredConfig(out.Item);
  }

  /** The latest configs of many devices; devices without one are absent from the map. */
  async getConfigs(deviceIds: readonly string[]): Promise<Map<string, StoredConfig>> {
    const found = new Map<string, StoredConfig>();
    for (const item of await this.batchGet(deviceIds, CONFIG_PROJECTION)) {
      const config = toStoredConfig(item);
      if (config !== undefined) found.set(config.deviceId, config);
    }
    return found;
  }

  /** A device's config and its downlink marks, in one read. */
  async getDownlinkState(deviceId: string): Promise<DownlinkState> {
    assertDeviceId(deviceId);
    const { doc, sdk } = await this.sdk();
    const out = await doc.send(
      new sdk.GetCommand({ TableName: this.tableName, Key: { [ATTR.deviceId]: deviceId }, ProjectionExpression: DOWNLINK_PROJECTION }),
    );
    return out.Item === undefined ? {} : toDownlinkState(out.Item);
  }

  /** The downlink states of many devices (the local dashboard); devices without an item are absent. */
  async getDownlinkStates(deviceIds: readonly string[]): Promise<Map<string, DownlinkState>> {
    const found = new Map<string, DownlinkState>();
    for (const item of await this.batchGet(deviceIds, DOWNLINK_PROJECTION)) {
      const id = item[ATTR.deviceId];
      if (typeof id === 'string') found.set(id, toDownlinkState(item));
    }
    return found;
  }

  async markDownlinkDelivered(deviceId: string, version: number, at: Date, via: string): Promise<boolean> {
    return this.updateIf(
      deviceId,
      `SET ${ATTR.downlinkVersion} = :v, ${ATTR.downlinkAt} = :at, ${ATTR.downlinkVia} = :via`,
      // An item that expired is not brought back without its TTL attribute (it would never expire again).
      `attribute_exists(${ATTR.deviceId}) AND (attribute_not_exists(${ATTR.downlinkVersion}) OR ${ATTR.downlinkVersion} < :v)`,
      { ':v': version, ':at': isoTime(at, 'at'), ':via': via },
    );
  }

  async noteDownlinkRefused(deviceId: string, version: number, reason: string, at: Date): Promise<void> {
    await this.updateIf(
      deviceId,
      `SET ${ATTR.downlinkRefusedVersion} = :v, ${ATTR.downlinkRefusedReason} = :reason, ${ATTR.downlinkRefusedAt} = :at`,
      `attribute_exists(${ATTR.deviceId})`,
      { ':v': version, ':reason': reason, ':at': isoTime(at, 'at') },
    );
  }

  /** A conditional UpdateItem on a device's item: true when written, false when the condition did not hold. */
  private async updateIf(deviceId: string, update: string, condition: string, values: Record<string, unknown>): Promise<boolean> {
    assertDeviceId(deviceId);
    const { doc, sdk } = await this.sdk();
    try {
      await doc.send(
        new sdk.UpdateCommand({
          TableName: this.tableName,
          Key: { [ATTR.deviceId]: deviceId },
          UpdateExpression: update,
          ConditionExpression: condition,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (e) {
      if (e instanceof sdk.ConditionalCheckFailedException) return false;
      throw e;
    }
  }

  /** BatchGetItem over any number of devices, with DynamoDB's unprocessed keys asked again. */
  private async batchGet(deviceIds: readonly string[], projection: string): Promise<Record<string, unknown>[]> {
    const ids = [...new Set(deviceIds)];
    ids.forEach((id, i) => assertDeviceId(id, `deviceIds[${i}]`));
    const items: Record<string, unknown>[] = [];
    const { doc, sdk } = await this.sdk();
    for (let i = 0; i < ids.length; i += BATCH_GET_LIMIT) {
      let keys: Record<string, unknown>[] = ids.slice(i, i + BATCH_GET_LIMIT).map((id) => ({ [ATTR.deviceId]: id }));
      // DynamoDB may answer part of a batch and return the rest as UnprocessedKeys (throughput or 16 MB response
      // limit); those are asked again after a growing pause, as the service's documentation advises.
      for (let round = 0; keys.length > 0; round++) {
        if (round > 0) await sleep(Math.min(1000, 25 * 2 ** round));
        const out = await doc.send(
          new sdk.BatchGetCommand({
            RequestItems: { [this.tableName]: { Keys: keys, ProjectionExpression: projection } },
          }),
        );
        items.push(...(out.Responses?.[this.tableName] ?? []));
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys ?? [];
      }
    }
    return items;
  }

  /**
   * Notes that the relay relayed for these devices at `at`, so the poller polls their config, and pushes their
   * item's expiry forward.
   */
  async noteRelayed(deviceIds: readonly string[], at: Date): Promise<void> {
    const ids = [...new Set(deviceIds)];
    ids.forEach((id, i) => assertDeviceId(id, `deviceIds[${i}]`));
    const when = isoTime(at, 'at');
    const exp = this.expiry(at);
    const { doc, sdk } = await this.sdk();
    for (let i = 0; i < ids.length; i += NOTE_CONCURRENCY) {
      await Promise.all(
        ids.slice(i, i + NOTE_CONCURRENCY).map((id) =>
          doc.send(
            new sdk.UpdateCommand({
              TableName: this.tableName,
              Key: { [ATTR.deviceId]: id },
              UpdateExpression: `SET ${ATTR.lastRelayedAt} = :at, ${ATTR.expiresAt} = :exp`,
              ExpressionAttributeValues: { ':at': when, ':exp': exp },
            }),
          ),
        ),
      );
    }
  }

  /**
   * Devices relayed for at or after `since`, sorted.
   *
   * This is a Scan with a filter, read one page (1 MB) at a time. A Scan is charged for every item it reads, in
   * full, configs included, whatever the filter and projection keep: 10,000 devices with 1 KB configs cost about
   * 1,250 read units per run (a few cents a day at a run every 15 minutes). That is acceptable at the scale this
   * relay targets; a much larger fleet would index `lastRelayedAt` by a time bucket (a GSI) and query it instead.
   */
  async recentlyRelayed(since: Date): Promise<string[]> {
    const from = isoTime(since, 'since');
    const { doc, sdk } = await this.sdk();
    const ids: string[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const out = await doc.send(
        new sdk.ScanCommand({
          TableName: this.tableName,
          ProjectionExpression: ATTR.deviceId,
          // ISO 8601 UTC times of one fixed format sort as strings in time order.
          FilterExpression: `${ATTR.lastRelayedAt} >= :since`,
          ExpressionAttributeValues: { ':since': from },
          ExclusiveStartKey: start,
        }),
      );
      for (const item of out.Items ?? []) {
        const id = item[ATTR.deviceId];
        if (typeof id === 'string') ids.push(id);
      }
      start = out.LastEvaluatedKey;
    } while (start !== undefined);
    return ids.sort();
  }

  private async readVersion(deviceId: string): Promise<{ version: number; sha256: string } | undefined> {
    const { doc, sdk } = await this.sdk();
    const out = await doc.send(
      new sdk.GetCommand({
        TableName: this.tableName,
        Key: { [ATTR.deviceId]: deviceId },
        ProjectionExpression: `${ATTR.version}, ${ATTR.sha256}`,
        ConsistentRead: true,
      }),
    );
    const version = out.Item?.[ATTR.version];
    const sha = out.Item?.[ATTR.sha256];
    return typeof version === 'number' && typeof sha === 'string' ? { version, sha256: sha } : undefined;
  }

  private expiry(from: Date): number {
    return Math.floor(from.getTime() / 1000) + this.retentionSeconds;
  }
}

const CONFIG_PROJECTION = [ATTR.deviceId, ATTR.version, ATTR.bytes, ATTR.sha256, ATTR.receivedAt, ATTR.bridgeVersion].join(', ');
const DOWNLINK_PROJECTION = [
  CONFIG_PROJECTION,
  ATTR.downlinkVersion,
  ATTR.downlinkAt,
  ATTR.downlinkVia,
  ATTR.downlinkRefusedVersion,
  ATTR.downlinkRefusedReason,
  ATTR.downlinkRefusedAt,
].join(', ');

function toDownlinkState(item: Record<string, unknown>): DownlinkState {
  const state: DownlinkState = {};
  const config = toStoredConfig(item);
  if (config !== undefined) state.config = config;
  const { downlinkVersion, downlinkAt, downlinkVia, downlinkRefusedVersion, downlinkRefusedReason, downlinkRefusedAt } = item;
  if (typeof downlinkVersion === 'number' && typeof downlinkAt === 'string') {
    state.delivered = { version: downlinkVersion, at: downlinkAt, via: typeof downlinkVia === 'string' ? downlinkVia : '' };
  }
  if (typeof downlinkRefusedVersion === 'number' && typeof downlinkRefusedReason === 'string' && typeof downlinkRefusedAt === 'string') {
    state.refused = { version: downlinkRefusedVersion, reason: downlinkRefusedReason, at: downlinkRefusedAt };
  }
  return state;
}

/** An item that only has `lastRelayedAt` holds no config yet: undefined. */
function toStoredConfig(item: Record<string, unknown>): StoredConfig | undefined {
  const { deviceId, version, bytes, sha256, receivedAt, bridgeVersion } = item;
  if (typeof deviceId !== 'string' || typeof version !== 'number' || typeof sha256 !== 'string' || typeof receivedAt !== 'string') {
    return undefined;
  }
  // An empty config is legal (IoT Core's default is empty bytes), and DynamoDB rejects empty binary values only
  // in keys, so it is stored and read back as an empty B.
  if (!(bytes instanceof Uint8Array)) return undefined;
  const config: StoredConfig = { deviceId, version, bytes: Buffer.from(bytes), sha256, receivedAt };
  if (typeof bridgeVersion === 'number') config.bridgeVersion = bridgeVersion;
  return config;
}

function isoTime(d: Date, field: string): string {
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) throw new RelayError('ERR_INVALID_FIELD', `${field} must be a valid Date`, { field });
  return d.toISOString();
}
