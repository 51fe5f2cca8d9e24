/**
 * Configs as downlinks. A LoRaWAN device sleeps between uplinks and a network server can reach it only in the
 * receive windows right after one, so its config travels as a downlink queued on the network server when the device
 * is heard from. On each uplink of an integration with `downlink` settings:
 *
 * 1. read the device's stored config and its downlink marks (config store, one GetItem);
 * 2. nothing to do when no config is stored, or the stored version is the one a network server last accepted;
 * 3. a config larger than the integration's `maxBytes` is not sent: the refusal is noted on the device's item (the
 *    local dashboard shows it) and reported once per version (`firstTime`), for the log and the metric;
 * 4. otherwise the raw config bytes are enqueued with the integration's fPort (network-server-api.ts), and only
 *    when the network server accepted them is the version marked delivered. A refusal or timeout leaves the mark
 *    where it was, so the next uplink tries again.
 *
 * Accepted means queued by the network server for the device's next receive window; whether the device received
 * it, the network server reports later (`downlink_ack`, ChirpStack's `ack`/`txack`), and those events are
 * acknowledged like any other.
 *
 * Two uplinks of one device handled at once may both send the same version; with `queue: "replace"` (the default)
 * the second replaces the first in the network server's queue, so the device still gets it once.
 *
 * @example
 * const outcome = await deliverConfig({ integration, deviceId, device, store, apiKey, now: new Date() });
 * // { status: 'sent', version: 3, marked: true } | { status: 'too-large', ... } | ...
 */
import { isRelayError } from '../errors.js';
import type { DownlinkStore } from '../config-store/config-store.js';
import type { Integration } from './integrations.js';
import { enqueueDownlink, type EnqueueDownlink } from './network-server-api.js';
import type { LoraDevice } from './uplink.js';

export type DownlinkOutcome =
  /** No config is stored for the device yet (the poller has not fetched one). */
  | { status: 'no-config' }
  | { status: 'up-to-date'; version: number }
  | { status: 'too-large'; version: number; bytes: number; maxBytes: number; firstTime: boolean }
  | { status: 'sent'; version: number; bytes: number; marked: boolean }
  | { status: 'failed'; version: number; reason: string; httpStatus?: number }
  /** The store could not be read, or there is no API key: nothing was sent. */
  | { status: 'error'; reason: string };

export interface DeliverConfigInput {
  integration: Integration;
  /** The IoT Core device ID, the config store's key. */
  deviceId: string;
  /** The device as the network server names it, for the API path. */
  device: LoraDevice;
  store: DownlinkStore;
  /** Undefined when neither the secret document nor the request provides one. */
  apiKey: string | undefined;
  now: Date;
  enqueue?: EnqueueDownlink;
  timeoutMs?: number;
}

export async function deliverConfig(input: DeliverConfigInput): Promise<DownlinkOutcome> {
  const { integration, deviceId, store, now } = input;
  const settings = integration.downlink;
  if (settings === undefined) throw new Error(`integration ${integration.id} has no downlink settings`);
  let state;
  try {
    state = await store.getDownlinkState(deviceId);
  } catch (e) {
    return { status: 'error', reason: `the config store could not be read (${describe(e)})` };
  }
  const config = state.config;
  if (config === undefined) return { status: 'no-config' };
  // As for configs in ingest answers (newerConfigFor): any version other than the one delivered is sent, so a store
  // that restarted its count after an item expired does not leave the device waiting for a number it will not see.
  if (state.delivered?.version === config.version) return { status: 'up-to-date', version: config.version };

  if (config.bytes.byteLength > settings.maxBytes) {
    const firstTime = state.refused?.version !== config.version;
    if (firstTime) {
      const reason = `config version ${config.version} is ${config.bytes.byteLength} bytes; integration ${integration.id} sends at most ${settings.maxBytes} per downlink`;
      await store.noteDownlinkRefused(deviceId, config.version, reason, now).catch(() => undefined);
    }
    return { status: 'too-large', version: config.version, bytes: config.bytes.byteLength, maxBytes: settings.maxBytes, firstTime };
  }
  if (input.apiKey === undefined) {
    return { status: 'error', reason: `no API key for integration ${integration.id}: set apiKey in the secret document` };
  }

  const enqueue = input.enqueue ?? enqueueDownlink;
  const answer = await enqueue(
    { networkServer: integration.networkServer, settings, device: input.device, bytes: config.bytes, apiKey: input.apiKey },
    input.timeoutMs === undefined ? {} : { timeoutMs: input.timeoutMs },
  );
  if (!answer.accepted) {
    return { status: 'failed', version: config.version, reason: answer.reason, ...(answer.status !== undefined ? { httpStatus: answer.status } : {}) };
  }
  let marked = false;
  try {
    marked = await store.markDownlinkDelivered(deviceId, config.version, now, integration.id);
  } catch {
    // Accepted but not marked: the next uplink sends the same version again, which `replace` makes harmless.
  }
  return { status: 'sent', version: config.version, bytes: config.bytes.byteLength, marked };
}

function describe(e: unknown): string {
  if (isRelayError(e)) return e.code;
  return e instanceof Error ? e.name : 'error';
}
