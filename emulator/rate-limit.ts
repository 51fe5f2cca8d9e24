/**
 * Per-minute quotas of the device-manager calls, by kind, as ClearBlade enforces them per project: over the quota,
 * a call is answered 429 RESOURCE_EXHAUSTED and changes nothing. Off unless asked for (`rateLimits` option).
 *
 * The defaults, and where they come from (docs/emulator.md has the table):
 * - reads (get, list): 30,000 per minute, ClearBlade's "Device manager API read calls per project";
 * - creates and deletes: 3,000 per minute each, ClearBlade's "Device manager API create and delete calls per
 *   project" (ClearBlade counts both kinds against one quota of 3,000; here each kind has its own);
 * - binds and unbinds: ClearBlade names no quota for them; 3,000 per minute, Cloud IoT Core's "Device manager API
 *   write calls per project".
 *
 * A minute is a fixed window (`windowMs`, 60 s) that opens with the first call after the previous window closed,
 * so a test that sets a small quota sees exactly that many calls pass, wherever the wall clock is.
 *
 * @example
 * const quota = new CallQuota({ create: 2 });
 * quota.take('create'); quota.take('create');
 * quota.take('create'); // throws ApiError RESOURCE_EXHAUSTED (429)
 */
import { ApiError } from './registry.js';

export type CallKind = 'create' | 'delete' | 'bind' | 'read';
export const CALL_KINDS: readonly CallKind[] = ['create', 'delete', 'bind', 'read'];

/** Calls of each kind allowed per window. */
export type CallQuotas = Record<CallKind, number>;

export const DEFAULT_CALL_QUOTAS: Readonly<CallQuotas> = { create: 3_000, delete: 3_000, bind: 3_000, read: 30_000 };
export const DEFAULT_QUOTA_WINDOW_MS = 60_000;

const WHAT: Record<CallKind, string> = {
  create: 'device creates',
  delete: 'device deletes',
  bind: 'binds and unbinds',
  read: 'device reads and lists',
};

/** Fills defaults in and checks every quota; throws TypeError on a bad one. */
export function resolveCallQuotas(input: Partial<CallQuotas> = {}): CallQuotas {
  const out = { ...DEFAULT_CALL_QUOTAS };
  for (const [kind, value] of Object.entries(input)) {
    if (!CALL_KINDS.includes(kind as CallKind)) throw new TypeError(`unknown call kind ${kind} (use ${CALL_KINDS.join(', ')})`);
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(`the ${kind} quota must be a non-negative integer (got ${String(value)})`);
    }
    out[kind as CallKind] = value;
  }
  return out;
}

export class CallQuota {
  readonly quotas: Readonly<CallQuotas>;
  readonly windowMs: number;
  readonly #now: () => number;
  /** When the current window opened; it closes `windowMs` later. */
  #opened = Number.NEGATIVE_INFINITY;
  #used: Record<CallKind, number> = { create: 0, delete: 0, bind: 0, read: 0 };

  constructor(quotas: Partial<CallQuotas> = {}, windowMs = DEFAULT_QUOTA_WINDOW_MS, now: () => number = Date.now) {
    if (!Number.isSafeInteger(windowMs) || windowMs < 1) throw new TypeError(`the quota window must be a positive integer of ms (got ${windowMs})`);
    this.quotas = resolveCallQuotas(quotas);
    this.windowMs = windowMs;
    this.#now = now;
  }

  /** Counts one call of `kind`; throws RESOURCE_EXHAUSTED when the window's quota is already used up. */
  take(kind: CallKind): void {
    const now = this.#now();
    if (now >= this.#opened + this.windowMs) {
      this.#opened = now;
      this.#used = { create: 0, delete: 0, bind: 0, read: 0 };
    }
    const quota = this.quotas[kind];
    if (this.#used[kind] >= quota) {
      const resetIn = Math.ceil((this.#opened + this.windowMs - now) / 1000);
      throw new ApiError(
        'RESOURCE_EXHAUSTED',
        `quota exceeded: at most ${quota} ${WHAT[kind]} per ${this.windowMs === 60_000 ? 'minute' : `${this.windowMs} ms`}; the window resets in ${resetIn} s`,
      );
    }
    this.#used[kind] += 1;
  }
}

/** [CB-QUOTA] and [GCP-QUOTAS] "Configuration updates per device": one a second. */
export const CONFIG_UPDATE_INTERVAL_MS = 1000;

/**
 * The per-device limit on modifyCloudToDeviceConfig, shared by both REST forms: an update within
 * `intervalMs` of the device's last accepted one is refused 429 RESOURCE_EXHAUSTED and changes nothing. A refused
 * or failed update does not count.
 *
 * @example
 * const rate = new ConfigUpdateRate();
 * rate.update('reg', 'pump-1', () => registry.modifyConfig('reg', 'pump-1', data)); // a second one at once: 429
 */
export class ConfigUpdateRate {
  readonly intervalMs: number;
  readonly #now: () => number;
  /** Time of each device's last accepted update, keyed `registry/device`. */
  readonly #last = new Map<string, number>();

  constructor(intervalMs = CONFIG_UPDATE_INTERVAL_MS, now: () => number = Date.now) {
    this.intervalMs = intervalMs;
    this.#now = now;
  }

  /** Runs `apply` unless the device's last update is too recent (then throws RESOURCE_EXHAUSTED). */
  update<T>(registryId: string, deviceId: string, apply: () => T): T {
    const key = `${registryId}/${deviceId}`;
    const now = this.#now();
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.intervalMs) {
      throw new ApiError('RESOURCE_EXHAUSTED', `config updates of ${deviceId} exceed 1 per second (the last was ${now - last} ms ago)`);
    }
    const result = apply();
    // Entries older than the interval limit nothing: dropped now and then, so the map holds recent devices only.
    if (this.#last.size >= 10_000) for (const [k, t] of this.#last) if (now - t >= this.intervalMs) this.#last.delete(k);
    this.#last.set(key, now);
    return result;
  }
}
