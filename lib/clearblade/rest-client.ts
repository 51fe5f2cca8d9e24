/**
 * A small client of ClearBlade IoT Core's device manager, the REST form ClearBlade documents
 * (https://docs.clearblade.com/iotcore/): the service account's admin endpoint hands out the registry's regional
 * endpoint and token (`getRegistryCredentials`), and every device call goes there:
 *
 * - `POST  {regional}/api/v/4/webhook/execute/{systemKey}/cloudiot_devices`                 create a device
 * - `GET   …/cloudiot_devices?name=ID`                                                        get one
 * - `GET   …/cloudiot_devices?parent=…&pageSize=…&pageToken=…&gatewayListOptions.…=…`       list, a page at a time
 * - `DELETE …/cloudiot_devices?name=ID`                                                      delete
 * - `POST  …/cloudiot?method=bindDeviceToGateway|unbindDeviceFromGateway&parent=…`            bind, unbind
 *
 * What it adds over a bare fetch: errors typed with the HTTP status and ClearBlade's status name (a non-JSON error
 * body is kept as text); retries with capped, jittered exponential backoff on 429, 5xx and network failures,
 * honouring Retry-After; a token bucket per kind of call, sized to ClearBlade's per-project quotas by default
 * (https://clearblade.atlassian.net/wiki/spaces/IC/pages/2203385926/Quotas+and+limits); a limit on calls in flight;
 * and a count of the calls made, by operation. Tokens never appear in errors or logs.
 *
 * It does not retry a call the server refused for a reason (400, 404, 409): the caller decides what an
 * ALREADY_EXISTS or NOT_FOUND means for it.
 *
 * @example
 * const client = new ClearBladeClient({ serviceAccount, registry: { project, location, registry } });
 * await client.createDevice({ id: 'pump-0042' });
 * await client.bindDeviceToGateway('gw-007', 'pump-0042');
 * for await (const page of client.listDevices({ associationsGatewayId: 'gw-007' })) console.log(page.length);
 */
import { setMaxListeners } from 'node:events';
import type { RegistryPath } from '../iotcore/topics.js';
import { ConcurrencyLimit, TokenBucket, sleep } from './rate-limit.js';
import { checkEndpointUrl, type ServiceAccount } from './service-account.js';

/** ClearBlade's separate per-project quotas. Binds and unbinds are device-manager update calls. */
export type CallKind = 'reads' | 'creates' | 'binds';
export const CALL_KINDS: readonly CallKind[] = ['reads', 'creates', 'binds'];

/**
 * Calls a minute by kind: the quotas page's defaults for device-manager read calls (30,000), create and delete
 * calls (3,000) and update calls (3,000).
 */
export const DEFAULT_RATES_PER_MINUTE: Readonly<Record<CallKind, number>> = { reads: 30_000, creates: 3_000, binds: 3_000 };
/** The quotas page's "maximum page size for list request". */
export const MAX_PAGE_SIZE = 500;

export type Operation = 'getRegistryCredentials' | 'create' | 'get' | 'list' | 'delete' | 'bind' | 'unbind';
const KIND_OF: Readonly<Record<Operation, CallKind>> = {
  getRegistryCredentials: 'reads',
  get: 'reads',
  list: 'reads',
  create: 'creates',
  delete: 'creates',
  bind: 'binds',
  unbind: 'binds',
};

export type KeyFormat = 'RSA_PEM' | 'RSA_X509_PEM' | 'ES256_PEM' | 'ES256_X509_PEM';

/** The Device resource, as far as this client reads or writes it. */
export interface DeviceResource {
  id: string;
  name?: string;
  numId?: string;
  credentials?: { publicKey: { format: KeyFormat; key: string }; expirationTime?: string }[];
  gatewayConfig?: { gatewayType?: string; gatewayAuthMethod?: string };
  metadata?: Record<string, string>;
  blocked?: boolean;
}

export interface ListOptions {
  gatewayType?: 'GATEWAY' | 'NON_GATEWAY';
  /** Devices bound to this gateway. */
  associationsGatewayId?: string;
  /** Gateways this device is bound to. */
  associationsDeviceId?: string;
  /** Fields beyond `id`, `name` and `numId`, e.g. `['gatewayConfig', 'metadata', 'credentials']`. */
  fieldMask?: readonly string[];
  pageSize?: number;
}

/** A call that failed for good: refused by the server, or still failing when the retries ran out. */
export class ClearBladeError extends Error {
  override readonly name = 'ClearBladeError';
  constructor(
    message: string,
    readonly operation: Operation,
    /** The HTTP status; undefined when no response came (network failure, timeout). */
    readonly httpStatus: number | undefined,
    /** ClearBlade's status name from the error body (`ALREADY_EXISTS`, `NOT_FOUND`, …), when it sent one. */
    readonly status: string | undefined,
    /** Attempts made, the last one included. */
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get retryable(): boolean {
    return isRetryableStatus(this.httpStatus);
  }
}

export function isClearBladeError(e: unknown, status?: string): e is ClearBladeError {
  return e instanceof ClearBladeError && (status === undefined || e.status === status);
}

/** 429, 5xx, and no response at all are worth another try; every other status is the server's answer. */
export function isRetryableStatus(httpStatus: number | undefined): boolean {
  return httpStatus === undefined || httpStatus === 429 || httpStatus === 408 || httpStatus >= 500;
}

export interface RetryPolicy {
  /** Attempts for a 5xx or network failure, the first included. */
  attempts: number;
  /** Attempts for a 429: these wait for the quota to refill, so they get more. */
  rateLimitedAttempts: number;
  baseMs: number;
  maxMs: number;
}

export const DEFAULT_RETRY: Readonly<RetryPolicy> = { attempts: 6, rateLimitedAttempts: 30, baseMs: 250, maxMs: 30_000 };

export interface ClientOptions {
  serviceAccount: ServiceAccount;
  registry: RegistryPath;
  /** Calls a minute by kind; `Infinity` for no limit. Defaults: DEFAULT_RATES_PER_MINUTE. */
  ratesPerMinute?: Partial<Record<CallKind, number>>;
  /** Calls in flight at once. Default 16. */
  concurrency?: number;
  retry?: Partial<RetryPolicy>;
  /** One attempt's time limit. Default 30 s. */
  timeoutMs?: number;
  /** Stops waiting (for a token, a slot, a backoff): calls not yet sent fail with the signal's reason. */
  signal?: AbortSignal;
  /** Told about every retry, e.g. for a progress line. */
  onRetry?: (info: { operation: Operation; attempt: number; delayMs: number; httpStatus: number | undefined; status: string | undefined }) => void;
  /** For tests: a fetch of one's own. */
  fetch?: typeof fetch;
  random?: () => number;
}

interface RegionalCredentials {
  systemKey: string;
  token: string;
  base: string;
}

interface Response_ {
  status: number;
  body: unknown;
}

export class ClearBladeClient {
  /** Calls sent (attempts, retries included), by operation. */
  readonly calls: Record<Operation, number> = { getRegistryCredentials: 0, create: 0, get: 0, list: 0, delete: 0, bind: 0, unbind: 0 };
  /** Responses 429 received, by kind. */
  readonly rateLimited: Record<CallKind, number> = { reads: 0, creates: 0, binds: 0 };
  readonly buckets: Record<CallKind, TokenBucket>;
  readonly parent: string;
  private readonly slots: ConcurrencyLimit;
  private readonly retry: RetryPolicy;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;
  private readonly random: () => number;
  private regional: Promise<RegionalCredentials> | undefined;

  constructor(private readonly options: ClientOptions) {
    const rates = { ...DEFAULT_RATES_PER_MINUTE, ...options.ratesPerMinute };
    this.buckets = {
      reads: new TokenBucket(rates.reads / 60_000),
      creates: new TokenBucket(rates.creates / 60_000),
      binds: new TokenBucket(rates.binds / 60_000),
    };
    this.slots = new ConcurrencyLimit(options.concurrency ?? 16);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.fetchImpl = options.fetch ?? fetch;
    this.random = options.random ?? Math.random;
    const { project, location, registry } = options.registry;
    this.parent = `projects/${project}/locations/${location}/registries/${registry}`;
    // Every call waiting for its turn (a token, a slot, a backoff) listens to the signal: dozens at once is normal.
    if (options.signal !== undefined) setMaxListeners(0, options.signal);
  }

  get totalCalls(): number {
    return Object.values(this.calls).reduce((a, b) => a + b, 0);
  }

  /** Calls made, by kind of quota. */
  callsByKind(): Record<CallKind, number> {
    const out: Record<CallKind, number> = { reads: 0, creates: 0, binds: 0 };
    for (const [op, n] of Object.entries(this.calls)) out[KIND_OF[op as Operation]] += n;
    return out;
  }

  /** ClearBlade documents no query parameter for a create: the regional system key names the registry. */
  async createDevice(device: DeviceResource): Promise<DeviceResource> {
    return (await this.regionalCall('create', 'POST', 'cloudiot_devices', {}, device)) as DeviceResource;
  }

  async getDevice(id: string, fieldMask?: readonly string[]): Promise<DeviceResource> {
    const query: Record<string, string> = { name: `${this.parent}/devices/${id}` };
    if (fieldMask !== undefined && fieldMask.length > 0) query.fieldMask = fieldMask.join(',');
    return (await this.regionalCall('get', 'GET', 'cloudiot_devices', query)) as DeviceResource;
  }

  async deleteDevice(id: string): Promise<void> {
    await this.regionalCall('delete', 'DELETE', 'cloudiot_devices', { name: `${this.parent}/devices/${id}` });
  }

  async bindDeviceToGateway(gatewayId: string, deviceId: string): Promise<void> {
    await this.regionalCall('bind', 'POST', 'cloudiot', { method: 'bindDeviceToGateway', parent: this.parent }, { gatewayId, deviceId });
  }

  async unbindDeviceFromGateway(gatewayId: string, deviceId: string): Promise<void> {
    await this.regionalCall('unbind', 'POST', 'cloudiot', { method: 'unbindDeviceFromGateway', parent: this.parent }, { gatewayId, deviceId });
  }

  /** The devices a list selects, one page at a time (each page one call). */
  async *listDevices(options: ListOptions = {}): AsyncGenerator<DeviceResource[]> {
    const query: Record<string, string> = { parent: this.parent, pageSize: String(Math.min(options.pageSize ?? MAX_PAGE_SIZE, MAX_PAGE_SIZE)) };
    if (options.gatewayType !== undefined) query['gatewayListOptions.gatewayType'] = options.gatewayType;
    if (options.associationsGatewayId !== undefined) query['gatewayListOptions.associationsGatewayId'] = options.associationsGatewayId;
    if (options.associationsDeviceId !== undefined) query['gatewayListOptions.associationsDeviceId'] = options.associationsDeviceId;
    if (options.fieldMask !== undefined && options.fieldMask.length > 0) query.fieldMask = options.fieldMask.join(',');
    let pageToken: string | undefined;
    const seen = new Set<string>();
    do {
      const page = (await this.regionalCall('list', 'GET', 'cloudiot_devices', pageToken === undefined ? query : { ...query, pageToken })) as {
        devices?: unknown;
        nextPageToken?: unknown;
      };
      const devices = Array.isArray(page?.devices) ? (page.devices as DeviceResource[]) : [];
      if (devices.some((d) => typeof d?.id !== 'string')) throw this.protocolError('list', 'a listed device has no "id"');
      yield devices;
      pageToken = typeof page?.nextPageToken === 'string' && page.nextPageToken !== '' ? page.nextPageToken : undefined;
      // A server that hands the same token back would keep this loop going for ever.
      if (pageToken !== undefined) {
        if (seen.has(pageToken)) throw this.protocolError('list', 'the server returned the same page token twice');
        seen.add(pageToken);
      }
    } while (pageToken !== undefined);
  }

  /** Every device a list selects. */
  async listAllDevices(options: ListOptions = {}): Promise<DeviceResource[]> {
    const all: DeviceResource[] = [];
    for await (const page of this.listDevices(options)) all.push(...page);
    return all;
  }

  // --- plumbing -------------------------------------------------------------------------------------------------

  private protocolError(operation: Operation, why: string): ClearBladeError {
    return new ClearBladeError(`${operation}: unexpected answer from ClearBlade: ${why}`, operation, undefined, undefined, 1);
  }

  /** The registry's regional endpoint and token, fetched once and shared by every call. */
  private credentials(): Promise<RegionalCredentials> {
    if (this.regional === undefined) {
      const pending = this.fetchCredentials();
      this.regional = pending;
      // A failure is not kept: the next call asks again.
      pending.catch(() => {
        if (this.regional === pending) this.regional = undefined;
      });
    }
    return this.regional;
  }

  private async fetchCredentials(): Promise<RegionalCredentials> {
    const account = this.options.serviceAccount;
    const { project, location, registry } = this.options.registry;
    const url = `${account.url}/api/v/1/code/${encodeURIComponent(account.systemKey)}/getRegistryCredentials`;
    const res = await this.send('getRegistryCredentials', 'POST', url, account.token, { project, region: location, registry });
    const body = res.body as Record<string, unknown> | undefined;
    if (typeof body?.systemKey !== 'string' || typeof body.serviceAccountToken !== 'string' || typeof body.url !== 'string') {
      throw this.protocolError('getRegistryCredentials', 'the answer lacks systemKey, serviceAccountToken or url');
    }
    const base = checkEndpointUrl(body.url, 'the regional URL getRegistryCredentials returned');
    // An https service account never sends the registry's token to a plain-http endpoint it is handed.
    if (account.url.startsWith('https:') && !base.startsWith('https:')) {
      throw this.protocolError('getRegistryCredentials', 'the regional URL is not https while the service account URL is');
    }
    return { systemKey: body.systemKey, token: body.serviceAccountToken, base };
  }

  private async regionalCall(operation: Operation, method: string, resource: string, query: Record<string, string>, body?: unknown): Promise<unknown> {
    let creds = await this.credentials();
    const search = new URLSearchParams(query).toString();
    const url = (c: RegionalCredentials): string =>
      `${c.base}/api/v/4/webhook/execute/${encodeURIComponent(c.systemKey)}/${resource}${search === '' ? '' : `?${search}`}`;
    try {
      return (await this.send(operation, method, url(creds), creds.token, body)).body;
    } catch (e) {
      // The registry's token may have been rotated since it was fetched: fetch it again, once.
      if (!(e instanceof ClearBladeError) || e.httpStatus !== 401) throw e;
      if (this.regional !== undefined && (await this.regional.catch(() => undefined)) === creds) this.regional = undefined;
      creds = await this.credentials();
      return (await this.send(operation, method, url(creds), creds.token, body)).body;
    }
  }

  /** One call with its retries. */
  private async send(operation: Operation, method: string, url: string, token: string, body?: unknown): Promise<Response_> {
    const kind = KIND_OF[operation];
    const signal = this.options.signal;
    let failures = 0;
    let rateLimits = 0;
    for (let attempt = 1; ; attempt++) {
      await this.buckets[kind].take(signal);
      const release = await this.slots.acquire(signal);
      let outcome: { response: Response_ } | { error: ClearBladeError; retryAfterMs: number | undefined };
      try {
        this.calls[operation] += 1;
        outcome = await this.attempt(operation, method, url, token, body, attempt);
      } finally {
        release();
      }
      if ('response' in outcome) return outcome.response;
      const { error, retryAfterMs } = outcome;
      if (!error.retryable) throw error;
      if (error.httpStatus === 429) {
        rateLimits += 1;
        this.rateLimited[kind] += 1;
      } else {
        failures += 1;
      }
      if (failures >= this.retry.attempts || rateLimits >= this.retry.rateLimitedAttempts) throw error;
      const exponential = Math.min(this.retry.maxMs, this.retry.baseMs * 2 ** (failures + rateLimits - 1));
      // Full jitter, so that many callers failing together do not come back together.
      let delayMs = this.random() * exponential;
      if (retryAfterMs !== undefined) delayMs = Math.min(Math.max(retryAfterMs, delayMs), Math.max(this.retry.maxMs, 60_000)) + this.random() * 250;
      if (error.httpStatus === 429) this.buckets[kind].slowDown(delayMs);
      this.options.onRetry?.({ operation, attempt, delayMs, httpStatus: error.httpStatus, status: error.status });
      await sleep(delayMs, signal);
    }
  }

  private async attempt(
    operation: Operation,
    method: string,
    url: string,
    token: string,
    body: unknown,
    attempt: number,
  ): Promise<{ response: Response_ } | { error: ClearBladeError; retryAfterMs: number | undefined }> {
    const headers: Record<string, string> = { 'ClearBlade-UserToken': token, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    let text: string;
    try {
      res = await this.fetchImpl(url, {
        method,
        headers,
        // As bytes: with 16 calls in flight on loopback, fetch sends a string body 2 to 3 times slower.
        body: body === undefined ? undefined : Buffer.from(JSON.stringify(body)),
        signal: AbortSignal.timeout(this.timeoutMs),
        redirect: 'error',
      });
      text = await res.text();
    } catch (e) {
      const why = (e as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : networkReason(e);
      return { error: new ClearBladeError(`${operation}: ${why}`, operation, undefined, undefined, attempt, { cause: e }), retryAfterMs: undefined };
    }
    let parsed: unknown;
    let isJson = false;
    if (text.trim() !== '') {
      try {
        parsed = JSON.parse(text);
        isJson = true;
      } catch {
        parsed = undefined;
      }
    }
    if (res.status >= 200 && res.status < 300) {
      if (text.trim() !== '' && !isJson) return { error: this.protocolErrorAt(operation, attempt, 'the answer is not JSON'), retryAfterMs: undefined };
      return { response: { status: res.status, body: parsed ?? {} } };
    }
    const { status, message } = errorDetails(parsed, text);
    const error = new ClearBladeError(
      `${operation}: HTTP ${res.status}${status === undefined ? '' : ` ${status}`}${message === '' ? '' : `: ${message}`}`,
      operation,
      res.status,
      status,
      attempt,
    );
    return { error, retryAfterMs: retryAfter(res.headers.get('retry-after')) };
  }

  private protocolErrorAt(operation: Operation, attempt: number, why: string): ClearBladeError {
    return new ClearBladeError(`${operation}: unexpected answer from ClearBlade: ${why}`, operation, undefined, undefined, attempt);
  }
}

function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return `network error ${cause.code}`;
  return `network error: ${(e as Error).message}`;
}

/**
 * The status name and message of an error body: Google's envelope `{"error": {"code", "message", "status"}}`,
 * a flat `{"status", "message"}` or `{"error": "text"}`, or plain text (cut short, one line).
 */
export function errorDetails(parsed: unknown, text: string): { status: string | undefined; message: string } {
  const clip = (s: string): string => {
    const line = s.replace(/\s+/g, ' ').trim();
    return line.length > 200 ? `${line.slice(0, 200)}…` : line;
  };
  if (typeof parsed === 'object' && parsed !== null) {
    const o = parsed as Record<string, unknown>;
    const inner = typeof o.error === 'object' && o.error !== null ? (o.error as Record<string, unknown>) : o;
    const status = typeof inner.status === 'string' && /^[A-Z_]{2,40}$/.test(inner.status) ? inner.status : undefined;
    const message = typeof inner.message === 'string' ? inner.message : typeof o.error === 'string' ? o.error : '';
    return { status, message: clip(message) };
  }
  return { status: undefined, message: clip(text) };
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfter(header: string | null, now = Date.now()): number | undefined {
  if (header === null || header.trim() === '') return undefined;
  const v = header.trim();
  if (/^\d{1,7}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
