/**
 * Which dead letters an operator means, which of them would only fail again, and where a replayed one goes.
 *
 * - A filter selects by reason code (`ERR_ATTACH_REJECTED`, a prefix such as `ERR_INVALID_*`, or `redrive` for
 *   records SQS moved, which carry no code), by device, by record type and by age in the dead-letter queue.
 * - A dead letter is *permanent* when replaying it cannot change its fate: the relay refused it for its own content
 *   (the validation codes, and the bridge calling its topic invalid), or its body fails the queue contract as the
 *   relay reads it today. Those are skipped by a replay unless forced. Everything else was parked for something
 *   outside the record (a device not bound, a refused token), which an operator can fix before replaying.
 * - On a FIFO relay queue a replayed record goes to its gateway's message group: `gatewayFor()` of its device when
 *   the gateway IDs are known (as the ingest handler picks it), else the group it was dead-lettered from.
 *
 * @example
 * const filter = { codes: parseCodes('ERR_ATTACH_REJECTED'), devices: ['ghost-0001'], olderThanSeconds: parseDuration('10m', '--older-than') };
 * matchesFilter(dl, filter, Date.now()); // true or false
 * permanentFailure(dl);                  // { code: 'ERR_INVALID_BASE64', reason: '...' } or undefined
 * replayGroupId(dl, ['gw-1', 'gw-2']);   // 'gw-2'
 */
import { isRelayError, RelayError, type RelayErrorCode } from '../errors.js';
import { gatewayFor } from '../gateway-pool.js';
import { parseQueueMessage } from '../queue/message.js';
import { devicesOf, type DeadLetter, type RecordType } from './dead-letter.js';

export interface DeadLetterFilter {
  /** Codes, `PREFIX*` patterns, or `redrive`; any one matches. */
  codes?: readonly string[];
  /** Device IDs, or `PREFIX*` patterns; any one matches any device of the record. */
  devices?: readonly string[];
  types?: readonly RecordType[];
  /** In the dead-letter queue for at least this long. */
  olderThanSeconds?: number;
  /** In the dead-letter queue for less than this long. */
  newerThanSeconds?: number;
}

/** The pseudo code of records SQS moved after `maxReceiveCount` receives: they carry no code of the relay's. */
export const REDRIVE_CODE = 'redrive';

/**
 * Codes that say the record itself is wrong: the queue contract's validation codes, and GATEWAY_INVALID_MQTT_TOPIC,
 * the bridge's verdict on the topic built from the record's own device ID and subfolder. Every one of them is a
 * `dead-letter` disposition in lib/relay/outcomes.ts.
 */
export const PERMANENT_CODES: ReadonlySet<RelayErrorCode> = new Set<RelayErrorCode>([
  'ERR_INVALID_MESSAGE',
  'ERR_INVALID_FIELD',
  'ERR_INVALID_DEVICE_ID',
  'ERR_DEVICE_ID_MQTT_WILDCARD',
  'ERR_INVALID_SUBFOLDER',
  'ERR_INVALID_BASE64',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_UNKNOWN_TYPE',
  'ERR_INVALID_TOPIC',
]);

const CODE_PATTERN = /^[A-Z][A-Z0-9_]*\*?$/;
const DEVICE_PATTERN = /^[-a-zA-Z0-9._+~%]+\*?$/;
const TYPES: readonly RecordType[] = ['event', 'state', 'config-poll', 'unknown'];

/** A comma-separated list of codes (`ERR_ATTACH_REJECTED,ERR_INVALID_*,redrive`); throws a RelayError naming `flag`. */
export function parseCodes(text: string, flag = '--code'): string[] {
  return list(text, flag, (item) => item === REDRIVE_CODE || CODE_PATTERN.test(item), 'an error code (ERR_...), a prefix ending in *, or redrive');
}

/** A comma-separated list of device IDs or `PREFIX*` patterns. */
export function parseDevices(text: string, flag = '--device'): string[] {
  return list(text, flag, (item) => DEVICE_PATTERN.test(item), 'a device ID, or a prefix ending in *');
}

export function parseTypes(text: string, flag = '--type'): RecordType[] {
  return list(text, flag, (item) => (TYPES as readonly string[]).includes(item), TYPES.join(', ')) as RecordType[];
}

function list(text: string, flag: string, valid: (item: string) => boolean, what: string): string[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new RelayError('ERR_INVALID_FIELD', `${flag} needs at least one value`, { field: flag });
  for (const item of items) {
    if (!valid(item)) throw new RelayError('ERR_INVALID_FIELD', `${flag} ${JSON.stringify(item.slice(0, 64))} is not ${what}`, { field: flag });
  }
  return items;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `90s`, `15m`, `2h`, `3d`, or plain seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (m === null) throw new RelayError('ERR_INVALID_FIELD', `${flag} must be a duration such as 90s, 15m, 2h or 3d (got ${JSON.stringify(text.slice(0, 32))})`, { field: flag });
  return Number(m[1]) * UNIT_SECONDS[m[2] || 's']!;
}

function matchesPattern(value: string, pattern: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : value === pattern;
}

export function matchesFilter(dl: DeadLetter, filter: DeadLetterFilter, now: number): boolean {
  if (filter.codes !== undefined) {
    const code = dl.code ?? REDRIVE_CODE;
    if (!filter.codes.some((p) => (p === REDRIVE_CODE ? dl.code === undefined : dl.code !== undefined && matchesPattern(code, p)))) return false;
  }
  if (filter.devices !== undefined) {
    const devices = devicesOf(dl);
    if (!filter.devices.some((p) => devices.some((d) => matchesPattern(d, p)))) return false;
  }
  if (filter.types !== undefined && !filter.types.includes(dl.type)) return false;
  const ageSeconds = (now - dl.deadLetteredAt) / 1000;
  if (filter.olderThanSeconds !== undefined && ageSeconds < filter.olderThanSeconds) return false;
  if (filter.newerThanSeconds !== undefined && ageSeconds >= filter.newerThanSeconds) return false;
  return true;
}

export interface PermanentFailure {
  code: string;
  reason: string;
}

/** Why replaying `dl` would only fail again, or undefined when a replay can succeed once its cause is fixed. */
export function permanentFailure(dl: DeadLetter): PermanentFailure | undefined {
  if (dl.code !== undefined && PERMANENT_CODES.has(dl.code as RelayErrorCode)) return { code: dl.code, reason: dl.reason };
  // Records SQS moved carry no code; and the contract is checked as this release reads it.
  try {
    parseQueueMessage(dl.body);
  } catch (e) {
    if (isRelayError(e)) return { code: e.code, reason: e.message };
    throw e;
  }
  return undefined;
}

/**
 * The message group of a replayed record on a FIFO relay queue; undefined when there is none to give (no device to
 * hash, and no group it came from).
 */
export function replayGroupId(dl: DeadLetter, gatewayIds: readonly string[] | undefined): string | undefined {
  if (gatewayIds !== undefined && gatewayIds.length > 0 && dl.deviceId !== undefined && dl.type !== 'config-poll') {
    return gatewayFor(dl.deviceId, gatewayIds);
  }
  // A poll job belongs to the gateway that polls those devices: the group it came from.
  return dl.groupId ?? dl.gatewayId;
}
