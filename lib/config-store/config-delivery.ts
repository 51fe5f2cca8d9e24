/**
 * What a device gets when it asks for its config, decided from the stored config and what the device says it
 * holds. The HTTP shapes live in lib/config-delivery/config-delivery-service.ts; the decisions live here so the
 * ingest can reuse them.
 *
 * `local_version` follows IoT Core's HTTP bridge (docs/protocol.md §5): 0 asks for the current config; N asks
 * for a config newer than N; N above the latest version is OUT_OF_RANGE. What IoT Core answers when N equals the
 * latest version is not documented (§8, question 12). We answer 200 with the current config: a device that
 * applies every answer it gets then re-applies the bytes it already holds, where an answer without data could be
 * read as an empty config, and a 304 without a body would break clients that parse every answer as JSON. Devices
 * that want to save the bytes use the raw route and its ETag instead.
 *
 * @example
 * decideByLocalVersion(await store.getConfig('pump-0042'), 3);
 * // { kind: 'config', config } | { kind: 'not-found' } | { kind: 'out-of-range', latest }
 */
import { RelayError } from '../errors.js';
import type { ConfigReader, StoredConfig } from './config-store.js';
import { sharedConfigStore } from './store-from-env.js';

export type LocalVersionAnswer =
  | { kind: 'config'; config: StoredConfig }
  | { kind: 'not-found' }
  | { kind: 'out-of-range'; latest: number };

/** The largest version a device can name; beyond it a number loses integer precision. */
const MAX_VERSION = Number.MAX_SAFE_INTEGER;

/**
 * Reads a `local_version` query value: absent means 0 (IoT Core's default). Anything but a non-negative integer
 * is refused with ERR_INVALID_FIELD.
 */
export function parseLocalVersion(raw: string | undefined, field = 'local_version'): number {
  if (raw === undefined || raw === '') return 0;
  if (!/^\d{1,16}$/.test(raw) || Number(raw) > MAX_VERSION) {
    throw new RelayError('ERR_INVALID_FIELD', `${field} must be a non-negative integer (got ${JSON.stringify(raw.slice(0, 40))})`, { field });
  }
  return Number(raw);
}

export function decideByLocalVersion(config: StoredConfig | undefined, localVersion: number): LocalVersionAnswer {
  if (config === undefined) return { kind: 'not-found' };
  if (localVersion > config.version) return { kind: 'out-of-range', latest: config.version };
  // 0, older than the latest, or equal to it (see the module comment): the current config.
  return { kind: 'config', config };
}

/**
 * RFC 9110 §13.1.2: If-None-Match compares entity tags weakly (a `W/` prefix does not matter), and `*` matches
 * any current representation.
 */
export function ifNoneMatchMatches(header: string | undefined, sha256: string): boolean {
  if (header === undefined) return false;
  const value = header.trim();
  if (value === '*') return true;
  for (const m of value.matchAll(/(?:W\/)?"([^"]*)"/g)) {
    if (m[1] === sha256) return true;
  }
  return false;
}

/** The strong entity tag of a config: its SHA-256 in quotes. */
export const etagOf = (config: Pick<StoredConfig, 'sha256'>): string => `"${config.sha256}"`;

/**
 * Reads an `X-Config-Version` request header: the version a device says it holds. Undefined when absent or not a
 * non-negative integer (the header is advisory; a bad one must not fail the request that carries it).
 */
export function parseHeldConfigVersion(header: string | undefined): number | undefined {
  const raw = header?.trim();
  if (raw === undefined || !/^\d{1,16}$/.test(raw) || Number(raw) > MAX_VERSION) return undefined;
  return Number(raw);
}

/**
 * The config a device should be sent along with another answer, given the version it says it holds; undefined
 * when it is up to date or nothing is stored.
 *
 * A held version above the stored one is answered with the stored config too: it means the store lost the item
 * (it expired after the retention period and was re-created from version 1), and without this the device would
 * wait for a version number it will not see again.
 *
 * The store defaults to the process's shared one (`CONFIG_TABLE`).
 *
 * @example
 * const held = parseHeldConfigVersion(event.headers['x-config-version']);
 * const newer = held === undefined ? undefined : await newerConfigFor('pump-0042', held);
 */
export async function newerConfigFor(
  deviceId: string,
  heldVersion: number,
  store: ConfigReader = sharedConfigStore(),
): Promise<StoredConfig | undefined> {
  const config = await store.getConfig(deviceId);
  if (config === undefined || config.version === heldVersion) return undefined;
  return config;
}
