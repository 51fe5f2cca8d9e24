/**
 * The JSON messages of the admin API's v1 routes: the request bodies each route takes (checked field by field, as
 * Google's API does) and the list responses it gives. Field names and limits are the device manager's (docs/protocol.md
 * §6.1, §2, §4); a bad field is INVALID_ARGUMENT. The emulator's own fault body (/emulator/faults) is here too.
 *
 * @example
 * const { payload, subfolder } = commandRequest({ binaryData: 'aGk=', subfolder: 'reboot' });
 */
import { MAX_COMMAND_BYTES } from '../../lib/iotcore/limits.js';
import { subfolderProblem } from '../../lib/iotcore/topics.js';
import { FAULT_NAMES, checkFaults, noFaults } from '../faults.js';
import type { Faults } from '../faults.js';
import type { DeviceInput, Registry } from '../registry.js';
import { BINDING_SHAPE, DEVICE_SHAPE, MODIFY_CONFIG_SHAPE, SEND_COMMAND_SHAPE, badArg, decodeBytes, deviceInput, isObject, optString, requiredString, toCamelPath } from '../rest-json.js';
import type { Json, Shape } from '../rest-json.js';

/** The message a route's body holds, and its name in error messages. */
export interface BodyMessage {
  shape: Shape;
  name: string;
}

export const DEVICE_BODY: BodyMessage = { shape: DEVICE_SHAPE, name: 'device' };
export const MODIFY_CONFIG_BODY: BodyMessage = { shape: MODIFY_CONFIG_SHAPE, name: 'request' };
export const SEND_COMMAND_BODY: BodyMessage = { shape: SEND_COMMAND_SHAPE, name: 'request' };
export const BINDING_BODY: BodyMessage = { shape: BINDING_SHAPE, name: 'request' };
/** Taken as it is (`null` must reach faultsRequest, where it clears a fault), and checked there. */
export const FAULTS_BODY: BodyMessage = { shape: 'map', name: 'faults' };

/** devices.create's Device: it carries the ID; the name is the server's to set (§6.1). */
export function newDevice(body: Json): DeviceInput {
  const input = deviceInput(body);
  const name = body.name;
  if (name !== undefined && name !== '') throw badArg('device.name must be empty: the server sets it from the registry and device.id');
  if (input.id === undefined || input.id === '') throw badArg('device.id is required');
  return input as DeviceInput;
}

/** ModifyCloudToDeviceConfigRequest: the config as base64, and the version it replaces ('0': any). */
export function configRequest(body: Json): { binaryData: string; versionToUpdate: string } {
  if (body.binaryData === undefined) throw badArg('binaryData is required (use "" for an empty config)');
  const data = decodeBytes(body.binaryData, 'binaryData');
  return { binaryData: data.toString('base64'), versionToUpdate: int64(body.versionToUpdate, 'versionToUpdate') };
}

/** SendCommandToDeviceRequest: the payload, and the subfolder after `/devices/{id}/commands` if any. */
export function commandRequest(body: Json): { payload: Buffer; subfolder: string | undefined } {
  if (body.binaryData === undefined) throw badArg('binaryData is required');
  const payload = decodeBytes(body.binaryData, 'binaryData');
  if (payload.byteLength > MAX_COMMAND_BYTES) throw badArg(`binaryData is larger than ${MAX_COMMAND_BYTES} bytes`);
  const subfolder = optString(body, 'subfolder', 'request') || undefined;
  // The empty subfolder is the bare /devices/{id}/commands topic; any other goes after it and must not add a
  // wildcard, a NUL or an empty level (docs/protocol.md §2).
  const problem = subfolder === undefined ? undefined : subfolderProblem(subfolder);
  if (problem !== undefined) throw badArg(`subfolder ${problem}`);
  return { payload, subfolder };
}

/** BindDeviceToGatewayRequest and UnbindDeviceFromGatewayRequest. */
export function bindingRequest(body: Json): { gatewayId: string; deviceId: string } {
  return { gatewayId: requiredString(body, 'gatewayId', 'request'), deviceId: requiredString(body, 'deviceId', 'request') };
}

/** An int64 field: a JSON number or a decimal string; absent means 0. Returned in canonical decimal. */
export function int64(value: unknown, field: string): string {
  if (value === undefined) return '0';
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
  if (typeof text !== 'string' || !/^-?\d{1,19}$/.test(text)) throw badArg(`${field} must be an integer`);
  const n = BigInt(text);
  if (n < 0n || n > 2n ** 63n - 1n) throw badArg(`${field} must be between 0 and 2^63-1`);
  return n.toString();
}

/** A list response: the items under `field`, and `nextPageToken` only when there is a next page. */
export function listPage<T>(field: string, { page, nextPageToken }: { page: T[]; nextPageToken?: string }): Json {
  return { [field]: page, ...(nextPageToken === undefined ? {} : { nextPageToken }) };
}

/**
 * PATCH /emulator/faults: the faults to change, checked as `checkFaults` checks them; the ones left out stay as they
 * are. `null` turns a fault off, as in a JSON merge patch (RFC 7396): `latencyMs` to 0, a topic filter list to [], the
 * others to unset.
 */
export function faultsRequest(body: unknown): Partial<Faults> {
  if (!isObject(body)) throw badArg('the body must be a JSON object of faults');
  const off: Partial<Faults> = noFaults();
  const change: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    const name = toCamelPath(key);
    if (!(FAULT_NAMES as readonly string[]).includes(name)) throw badArg(`unknown fault "${key}"; the faults are ${FAULT_NAMES.join(', ')}`);
    if (Object.hasOwn(change, name)) throw badArg(`fault "${name}" is set twice`);
    change[name] = value === null ? off[name as keyof Faults] : value;
  }
  try {
    return checkFaults(change as Partial<Faults>);
  } catch (e) {
    if (e instanceof TypeError) throw badArg(e.message);
    throw e;
  }
}

/** /emulator/health. */
export function health(registry: Registry): Json {
  return { status: 'ok', project: registry.project, location: registry.location, registries: registry.registries().map((r) => r.id) };
}
