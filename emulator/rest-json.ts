/**
 * The JSON-over-HTTP plumbing both REST forms of the emulator share (Google's v1 paths in `admin-api.ts`, ClearBlade's
 * webhook form in `clearblade-api.ts`): query strings, request bodies read the way Google's proto3 JSON parser reads
 * them, the Device message's fields and field masks, and the answer with its error envelope.
 *
 * @example
 * const query = new Query('pageSize=10&gateway_list_options.gateway_type=GATEWAY');
 * query.one('gatewayListOptions.gatewayType'); // 'GATEWAY'
 * const device = parseBody(Buffer.from('{"id":"pump-1"}'), DEVICE_SHAPE, 'device');
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './registry.js';
import type { Device, DeviceInput, GatewayAuthMethod, GatewayType } from './registry.js';

export type Json = Record<string, unknown>;

/** Request bodies larger than this are refused with 413 before they are parsed. */
export const MAX_BODY_BYTES = 1024 * 1024;

export const badArg = (message: string): ApiError => new ApiError('INVALID_ARGUMENT', message);

// --- query strings ----------------------------------------------------------------------------------------------

/**
 * System parameters every Google API takes (discovery-based clients send `alt` and `$.xgafv`). They are accepted
 * and ignored: the emulator always answers pretty-printed JSON with every field.
 */
const SYSTEM_PARAMS = new Set(['alt', 'key', 'prettyPrint', 'fields', 'quotaUser', 'accessToken', 'oauthToken', 'callback', 'uploadType', 'uploadProtocol', '$.xgafv']);

export class Query {
  private readonly values = new Map<string, string[]>();

  constructor(raw: string) {
    for (const pair of raw.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const key = toCamelPath(decodeComponent(eq < 0 ? pair : pair.slice(0, eq), 'query parameter name'));
      // A literal `+` stays a `+`: device IDs may contain it, none of these parameters ever holds a space, and
      // people type IDs into curl without encoding them.
      const value = eq < 0 ? '' : decodeComponent(pair.slice(eq + 1), `query parameter ${key}`);
      this.values.set(key, [...(this.values.get(key) ?? []), value]);
    }
  }

  /** Refuses parameters the route does not know, so a typo (`pagesize`) is an error and not a silent default. */
  checkKnown(known: readonly string[]): void {
    for (const key of this.values.keys()) {
      if (!known.includes(key) && !SYSTEM_PARAMS.has(key)) throw badArg(`unknown query parameter "${key}"`);
    }
  }

  one(key: string): string | undefined {
    const v = this.values.get(key);
    return v === undefined ? undefined : v[v.length - 1];
  }

  /** A repeated field: `?deviceIds=a&deviceIds=b`, and for convenience `?deviceIds=a,b` (no ID holds a comma). */
  list(key: string): string[] {
    return (this.values.get(key) ?? []).flatMap((v) => v.split(',')).filter((v) => v !== '');
  }

  /** A non-negative int32, or `fallback` when absent or empty. */
  count(key: string, fallback: number): number {
    const v = this.one(key);
    if (v === undefined || v === '') return fallback;
    if (!/^\d{1,10}$/.test(v) || Number(v) > 2 ** 31 - 1) throw badArg(`${key} must be a non-negative integer`);
    return Number(v);
  }
}

export function decodeComponent(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badArg(`${what} is not valid percent-encoding`);
  }
}

/** `gateway_list_options.gateway_type` -> `gatewayListOptions.gatewayType`: proto3 accepts both spellings. */
export function toCamelPath(path: string): string {
  return path.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

// --- JSON bodies ------------------------------------------------------------------------------------------------

/** The fields of a message, for checking names the way Google's JSON parser does. */
export type Shape = 'value' | 'map' | readonly [Shape] | { readonly [field: string]: Shape };

const DEVICE_CONFIG_SHAPE: Shape = { version: 'value', cloudUpdateTime: 'value', deviceAckTime: 'value', binaryData: 'value' };
export const DEVICE_SHAPE: Shape = {
  id: 'value',
  name: 'value',
  numId: 'value',
  credentials: [{ publicKey: { format: 'value', key: 'value' }, expirationTime: 'value' }],
  lastHeartbeatTime: 'value',
  lastEventTime: 'value',
  lastStateTime: 'value',
  lastConfigAckTime: 'value',
  lastConfigSendTime: 'value',
  blocked: 'value',
  lastErrorTime: 'value',
  lastErrorStatus: { code: 'value', message: 'value', details: 'value' },
  config: DEVICE_CONFIG_SHAPE,
  state: { updateTime: 'value', binaryData: 'value' },
  logLevel: 'value',
  metadata: 'map',
  gatewayConfig: { gatewayType: 'value', gatewayAuthMethod: 'value', lastAccessedGatewayId: 'value', lastAccessedGatewayTime: 'value' },
};
export const MODIFY_CONFIG_SHAPE: Shape = { versionToUpdate: 'value', binaryData: 'value' };
export const SEND_COMMAND_SHAPE: Shape = { binaryData: 'value', subfolder: 'value' };
export const BINDING_SHAPE: Shape = { gatewayId: 'value', deviceId: 'value' };

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Renames snake_case fields to camelCase and refuses unknown ones, as Google's JSON parser does: a misspelt field
 * is an INVALID_ARGUMENT there, never silently dropped. JSON `null` means "not set" (proto3 JSON).
 */
function normalize(value: unknown, shape: Shape, where: string): unknown {
  if (shape === 'value' || shape === 'map') return value;
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) throw badArg(`${where} must be a list`);
    const [item] = shape as readonly [Shape];
    return value.map((v, i) => normalize(v, item, `${where}[${i}]`));
  }
  if (!isObject(value)) throw badArg(`${where} must be an object`);
  const fields = shape as { readonly [field: string]: Shape };
  const out: Json = {};
  for (const [key, v] of Object.entries(value)) {
    const name = toCamelPath(key);
    const sub = Object.hasOwn(fields, name) ? fields[name] : undefined;
    if (sub === undefined) throw badArg(`unknown field "${key}" in ${where}`);
    if (Object.hasOwn(out, name)) throw badArg(`field "${name}" is set twice in ${where}`);
    if (v === null) continue;
    out[name] = normalize(v, sub, `${where}.${name}`);
  }
  return out;
}

export function parseBody(raw: Buffer, shape: Shape, where: string): Json {
  if (raw.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw badArg(`request body is not valid JSON: ${(e as Error).message}`);
  }
  return normalize(value, shape, where) as Json;
}

export function optString(o: Json, field: string, where: string): string | undefined {
  const v = o[field];
  if (v !== undefined && typeof v !== 'string') throw badArg(`${where}.${field} must be a string`);
  return v;
}

export function requiredString(o: Json, field: string, where: string): string {
  const v = optString(o, field, where);
  if (v === undefined || v === '') throw badArg(`${where}.${field} is required`);
  return v;
}

export function optObject(o: Json, field: string): Json | undefined {
  const v = o[field];
  return isObject(v) ? v : undefined;
}

/**
 * Decodes a proto3 JSON `bytes` field. Like Google's parser it takes standard or URL-safe base64, with or without
 * padding; anything else (stray characters, bits past the last byte, mixed alphabets) is refused instead of being
 * skipped the way Buffer.from would.
 */
export function decodeBytes(value: unknown, field: string): Buffer {
  if (typeof value !== 'string') throw badArg(`${field} must be a base64 string`);
  const bare = value.replace(/=+$/, '');
  const padding = value.length - bare.length;
  const urlSafe = /[-_]/.test(bare);
  const alphabet = urlSafe ? /^[A-Za-z0-9\-_]*$/ : /^[A-Za-z0-9+/]*$/;
  const paddingOk = padding === 0 || (padding <= 2 && value.length % 4 === 0);
  if (!alphabet.test(bare) || bare.length % 4 === 1 || !paddingOk) throw badArg(`${field} is not valid base64`);
  const bytes = Buffer.from(bare, urlSafe ? 'base64url' : 'base64');
  if (bytes.toString(urlSafe ? 'base64url' : 'base64').replace(/=+$/, '') !== bare) throw badArg(`${field} is not valid base64`);
  return bytes;
}

/** A Device from a request body, type-checked; the registry checks the values (ID rule, key formats, limits). */
export function deviceInput(body: Json): Partial<DeviceInput> {
  const where = 'device';
  const input: Partial<DeviceInput> = {};
  const id = optString(body, 'id', where);
  if (id !== undefined) input.id = id;
  if (body.credentials !== undefined) {
    const credentials = body.credentials as Json[];
    credentials.forEach((c, i) => {
      const key = optObject(c, 'publicKey') ?? {};
      optString(key, 'format', `${where}.credentials[${i}].publicKey`);
      optString(key, 'key', `${where}.credentials[${i}].publicKey`);
      optString(c, 'expirationTime', `${where}.credentials[${i}]`);
    });
    // Formats, PEMs, expiry times and the count of three are the registry's checks.
    input.credentials = credentials as unknown as DeviceInput['credentials'];
  }
  if (body.blocked !== undefined) {
    if (typeof body.blocked !== 'boolean') throw badArg(`${where}.blocked must be true or false`);
    input.blocked = body.blocked;
  }
  const gatewayConfig = optObject(body, 'gatewayConfig');
  if (gatewayConfig) {
    const gatewayType = optString(gatewayConfig, 'gatewayType', `${where}.gatewayConfig`);
    const gatewayAuthMethod = optString(gatewayConfig, 'gatewayAuthMethod', `${where}.gatewayConfig`);
    // The registry refuses values outside the enums; here only the JSON types are checked.
    input.gatewayConfig = {};
    if (gatewayType !== undefined) input.gatewayConfig.gatewayType = gatewayType as GatewayType;
    if (gatewayAuthMethod !== undefined) input.gatewayConfig.gatewayAuthMethod = gatewayAuthMethod as GatewayAuthMethod;
  }
  const config = optObject(body, 'config');
  if (config?.binaryData !== undefined) {
    input.config = { binaryData: decodeBytes(config.binaryData, `${where}.config.binaryData`).toString('base64') };
  }
  if (body.metadata !== undefined) {
    if (!isObject(body.metadata)) throw badArg(`${where}.metadata must be an object of strings`);
    input.metadata = body.metadata as Record<string, string>;
  }
  const logLevel = optString(body, 'logLevel', where);
  if (logLevel !== undefined) input.logLevel = logLevel;
  return input;
}

// --- field masks and pages --------------------------------------------------------------------------------------

/** Checks a FieldMask (comma-separated paths, either spelling) against the Device message; returns camelCase paths. */
export function deviceFieldMask(raw: string | undefined, param: string): string[] {
  if (raw === undefined || raw === '') return [];
  return raw.split(',').map((p) => {
    const path = toCamelPath(p.trim());
    let shape: Shape = DEVICE_SHAPE;
    for (const part of path.split('.')) {
      const fields = typeof shape === 'object' && !Array.isArray(shape) ? (shape as { readonly [f: string]: Shape }) : undefined;
      const next = fields && Object.hasOwn(fields, part) ? fields[part] : undefined;
      if (next === undefined) throw badArg(`${param}: Device has no field "${p.trim()}"`);
      shape = next;
    }
    return path;
  });
}

/** The fields a field mask asks for; `id`, `name` and `numId` always. */
export function projectDevice(device: Device, paths: readonly string[]): Json {
  const out: Json = { id: device.id, name: device.name, numId: device.numId };
  for (const path of paths) {
    const parts = path.split('.');
    let from: unknown = device;
    for (const part of parts) from = isObject(from) ? from[part] : undefined;
    if (from === undefined) continue;
    let to = out;
    for (const part of parts.slice(0, -1)) {
      const child = isObject(to[part]) ? (to[part] as Json) : {};
      to[part] = child;
      to = child;
    }
    to[parts[parts.length - 1]!] = structuredClone(from);
  }
  return out;
}

// --- HTTP -------------------------------------------------------------------------------------------------------

/** Reads the body up to MAX_BODY_BYTES; a larger one is answered 413 without being buffered. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (): ApiError =>
      new ApiError('INVALID_ARGUMENT', `request body is larger than the limit of ${MAX_BODY_BYTES} bytes`, 413);
    const declared = Number(req.headers['content-length']);
    if (declared > MAX_BODY_BYTES) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        chunks.length = 0;
        reject(tooLarge());
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Answers an error as the envelope `{"error":{"code","message","status"}}`. An ApiError says what went wrong; anything
 * else is a bug: the operator gets the cause on stderr (under `label`), the client only `internal error`.
 */
export function sendError(req: IncomingMessage, res: ServerResponse, e: unknown, label: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (e instanceof ApiError) {
    // The rest of an oversized body is not kept: close the connection rather than reuse a half-read one.
    send(res, e.httpCode, e.toEnvelope(), e.httpCode === 413 ? { connection: 'close' } : {});
    return;
  }
  process.stderr.write(`${label}: ${req.method ?? ''} ${req.url ?? ''} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  send(res, 500, new ApiError('INTERNAL', 'internal error').toEnvelope());
}
