/**
 * Reading fields out of a network server's JSON, where every refusal names the field by its dotted path as the
 * network server's documentation writes it (`uplink_message.f_cnt`, `deviceInfo.devEui`), and says what was there
 * instead. The bodies come from the network, so nothing is assumed about their shape.
 *
 * Both stacks marshal Protocol Buffers to JSON and leave out fields holding their default value: a frame counter of
 * 0, an empty payload or `false` is absent, not null. `uintAt` therefore reads an absent number as 0.
 *
 * @example
 * const uplink = objectAt(doc, 'uplink_message');
 * const fCnt = uintAt(uplink, 'f_cnt', 'uplink_message.f_cnt', 0xffff_ffff); // 0 when absent
 */
import { describeInput, RelayError } from '../errors.js';

export type JsonObject = Record<string, unknown>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const invalid = (path: string, why: string, value: unknown): RelayError =>
  new RelayError('ERR_INVALID_FIELD', `${path} ${why} (got ${describeInput(value)})`, { field: path });

/** A required nested object. */
export function objectAt(parent: JsonObject, key: string, path = key): JsonObject {
  const value = parent[key];
  if (!isJsonObject(value)) throw invalid(path, 'must be an object', value);
  return value;
}

/** An optional nested object: undefined when absent. */
export function optionalObjectAt(parent: JsonObject, key: string, path = key): JsonObject | undefined {
  const value = parent[key];
  if (value === undefined) return undefined;
  if (!isJsonObject(value)) throw invalid(path, 'must be an object', value);
  return value;
}

/** A required non-empty string of at most `maxLength` characters. */
export function stringAt(parent: JsonObject, key: string, path = key, maxLength = 256): string {
  const value = parent[key];
  if (typeof value !== 'string' || value.length === 0) throw invalid(path, 'must be a non-empty string', value);
  if (value.length > maxLength) throw invalid(path, `must be at most ${maxLength} characters`, value);
  return value;
}

/** An optional string: undefined when absent or empty (an empty string is a default value, left out or not). */
export function optionalStringAt(parent: JsonObject, key: string, path = key, maxLength = 256): string | undefined {
  const value = parent[key];
  if (value === undefined || value === '') return undefined;
  return stringAt(parent, key, path, maxLength);
}

/** An unsigned integer up to `max`; 0 when absent. */
export function uintAt(parent: JsonObject, key: string, path: string, max: number): number {
  const value = parent[key];
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw invalid(path, `must be an integer from 0 to ${max}`, value);
  }
  return value;
}

/** An optional finite number (RSSI, SNR): undefined when absent. */
export function optionalNumberAt(parent: JsonObject, key: string, path: string): number | undefined {
  const value = parent[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(path, 'must be a number', value);
  return value;
}

/** An optional array: empty when absent. */
export function arrayAt(parent: JsonObject, key: string, path: string): unknown[] {
  const value = parent[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(path, 'must be an array', value);
  return value;
}

/** A DevEUI: 16 hexadecimal digits, returned in lower case so both stacks name a device the same way. */
export function devEuiAt(parent: JsonObject, key: string, path: string): string {
  const value = stringAt(parent, key, path, 16);
  if (!/^[0-9A-Fa-f]{16}$/.test(value)) throw invalid(path, 'must be 16 hexadecimal digits', value);
  return value.toLowerCase();
}

/** An optional DevEUI. */
export function optionalDevEuiAt(parent: JsonObject, key: string, path: string): string | undefined {
  return parent[key] === undefined || parent[key] === '' ? undefined : devEuiAt(parent, key, path);
}
