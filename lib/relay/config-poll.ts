/**
 * `config-poll` jobs, served inside the batch's gateway session: attach the devices, subscribe to each one's
 * `/devices/{d}/config` at QoS 1 (and to the gateway's own, which needs no attach), take the config the bridge
 * pushes, write it to the config store, and report every device. The session's close detaches the devices.
 *
 * The bridge sends the latest config version right behind each SUBACK (docs/protocol.md §2, "Config"), so one
 * subscription per device per poll is enough and nothing stays subscribed. The poll ends when every device has
 * delivered, when `waitMs` has passed since the subscriptions went out, or when the session stops.
 *
 * QoS 1, as ClearBlade's gateway sample subscribes: at QoS 1 the bridge resends the latest version until it is
 * acknowledged, and mqtt.js acknowledges each config once the handler ran, so the bridge stops resending it and the
 * device's `deviceAckTime` in IoT Core means "the relay holds it for the device". The acknowledgement goes out before
 * the store write; a write that fails loses nothing, because the next subscription is sent the latest version
 * again, acknowledged or not.
 *
 * A device whose config did not arrive is reported missing, with the reason; nothing is guessed for it and the
 * store keeps what it had. A config pushed after the wait ended (a change made while the session was closing) is
 * still acknowledged by mqtt.js but not stored; the next poll stores it.
 *
 * Several poll jobs of one batch share the session and are polled as one: `admitPollJobs` keeps the devices to
 * attach within what one gateway may have attached at once (1,000, docs/protocol.md §3.1), leaving whole jobs
 * that would go over to the gateway's next batch. The session cannot detach before it closes, so a job is served
 * whole by one session or not at all.
 *
 * @example
 * const admission = admitPollJobs(work.polls, ['pump-01'], 'gw-1');
 * const result = await runConfigPoll(session, admission.deviceIds, store, { waitMs: 5000, deadline, metrics, log });
 * result.outcomes; // [{ deviceId: 'valve-01', status: 'changed', version: 2 }, { deviceId: 'valve-09', status: 'missing', ... }]
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import type { ConfigWriter } from '../config-store/config-store.js';
import { withDeadline } from '../deadline.js';
import { isRelayError, type RelayErrorCode } from '../errors.js';
import type { AttachResult, GatewaySession, SessionLog } from '../gateway/session.js';
import { MAX_ATTACHED_PER_GATEWAY } from '../iotcore/limits.js';
import type { PollItem } from './route-records.js';

/** The part of a gateway session a poll needs. */
export type ConfigPollSession = Pick<GatewaySession, 'gatewayId' | 'attach' | 'subscribeConfig' | 'stoppedBy' | 'whenStopped'>;

/**
 * Why a device's config is missing:
 * - `attach-rejected`: the bridge refused the attach (unknown device, not bound to this gateway, or the gateway
 *   authenticates devices by token, which a poll job does not carry);
 * - `attach-failed`: the attach was not answered (timeout, connection lost, deadline);
 * - `attach-limit`: attaching it would have taken the gateway over the devices it may have attached at once;
 * - `not-delivered`: attached, but no config arrived within the wait, or the subscription was refused.
 */
export type MissingReason = 'attach-rejected' | 'attach-failed' | 'attach-limit' | 'not-delivered';

export type ConfigPollOutcome =
  | { deviceId: string; status: 'changed' | 'unchanged'; version: number }
  /** The config arrived and there is no store to keep it in: counted only. */
  | { deviceId: string; status: 'received' }
  | { deviceId: string; status: 'missing'; reason: MissingReason; code: RelayErrorCode; detail: string }
  /** The config arrived but could not be written; the next poll delivers it again. */
  | { deviceId: string; status: 'store-failed'; code: RelayErrorCode; detail: string };

export interface ConfigPollResult {
  /** One outcome per distinct device, in the order given, then the gateway's own. */
  outcomes: ConfigPollOutcome[];
  /** Devices polled, the gateway included. */
  polled: number;
  changed: number;
  unchanged: number;
  /** Received while no store was configured. */
  received: number;
  missing: number;
  storeFailed: number;
  durationMs: number;
  /**
   * Set when the session stopped (connection lost, deadline) while a device could still have delivered: the poll
   * did not run to completion. Undefined when every device delivered or the wait ended on its own.
   */
  interrupted: { code: RelayErrorCode; reason: string } | undefined;
}

export interface ConfigPollOptions {
  /** How long to wait for the configs after the subscriptions went out. */
  waitMs: number;
  /** Also poll the gateway's own config topic. Default true. */
  gatewayConfig?: boolean;
  /** Devices of the jobs that were left out to respect the attach limit (`PollAdmission.overLimit`). */
  overLimit?: readonly string[];
  /** Absolute time (ms since the epoch) by which store writes must be done; later ones are reported store-failed. */
  deadline?: number;
  /** Receives DevicesPolled, ConfigsChanged, ConfigsUnchanged, ConfigsMissing, ConfigsNotStored, ConfigPollDuration. */
  metrics?: Pick<Metrics, 'addMetric'>;
  log?: SessionLog;
}

export interface PollAdmission {
  /** Jobs served in this session, in queue order. */
  admitted: PollItem[];
  /** Jobs left for the gateway's next batch: serving them too would attach more devices than it may hold. */
  deferred: PollItem[];
  /** Every distinct device of the admitted jobs that fits, in job order. */
  deviceIds: string[];
  /** Devices of the first job that did not fit beside the batch's telemetry devices; reported, not polled. */
  overLimit: string[];
}

/** Store writes in flight at once. */
const WRITE_CONCURRENCY = 10;
/** Per-device log lines per poll, so a gateway whose 1,000 devices all fail does not flood the log. */
const MAX_DEVICE_LINES = 50;

/**
 * Which poll jobs this session serves. The devices of the batch's telemetry are attached anyway and count against
 * the limit; a job is admitted whole when its new devices still fit. The first job is always admitted, so a job
 * can never be deferred forever by telemetry beside it: its devices that do not fit are reported as missing
 * (`attach-limit`) and polled again by the next schedule.
 */
export function admitPollJobs(
  polls: readonly PollItem[],
  attachedForTelemetry: Iterable<string>,
  gatewayId: string,
  limit: number = MAX_ATTACHED_PER_GATEWAY,
): PollAdmission {
  const attached = new Set(attachedForTelemetry);
  const admission: PollAdmission = { admitted: [], deferred: [], deviceIds: [], overLimit: [] };
  const planned = new Set<string>();
  const overLimit = new Set<string>();
  for (const poll of polls) {
    // The gateway's own config needs no attach.
    const fresh = [...new Set(poll.message.deviceIds)].filter((d) => d !== gatewayId && !attached.has(d));
    if (attached.size + fresh.length > limit && admission.admitted.length > 0) {
      admission.deferred.push(poll);
      continue;
    }
    admission.admitted.push(poll);
    for (const d of fresh) {
      if (attached.size < limit) attached.add(d);
      else overLimit.add(d);
    }
    for (const d of poll.message.deviceIds) {
      if (planned.has(d) || overLimit.has(d)) continue;
      planned.add(d);
      admission.deviceIds.push(d);
    }
  }
  admission.overLimit = [...overLimit];
  return admission;
}

interface Entry {
  deviceId: string;
  /** The gateway itself: subscribed without an attach. */
  own: boolean;
  config: { bytes: Buffer; receivedAt: Date } | undefined;
  failure: { reason: MissingReason; code: RelayErrorCode; detail: string } | undefined;
}

/**
 * Polls the configs of `deviceIds` (and of the gateway) in an open session and writes them to `store`; without a
 * store, received configs are only counted. Never throws for what the bridge or the store does: every device ends
 * in an outcome, and a session that stopped midway is reported in `interrupted`.
 */
export async function runConfigPoll(
  session: ConfigPollSession,
  deviceIds: readonly string[],
  store: ConfigWriter | undefined,
  options: ConfigPollOptions,
): Promise<ConfigPollResult> {
  const started = Date.now();
  const gatewayId = session.gatewayId;
  const entries = new Map<string, Entry>();
  const add = (deviceId: string): Entry => {
    let e = entries.get(deviceId);
    if (e === undefined) {
      e = { deviceId, own: deviceId === gatewayId, config: undefined, failure: undefined };
      entries.set(deviceId, e);
    }
    return e;
  };
  for (const id of deviceIds) add(id);
  for (const id of options.overLimit ?? []) {
    const e = add(id);
    e.failure ??= {
      reason: 'attach-limit',
      code: 'ERR_ATTACH_LIMIT',
      detail: `a gateway may have at most ${MAX_ATTACHED_PER_GATEWAY} devices attached at once, and this session had no room left`,
    };
  }
  if (options.gatewayConfig ?? true) add(gatewayId);

  await attachDevices(session, [...entries.values()].filter((e) => !e.own && e.failure === undefined));
  const subscribed = [...entries.values()].filter((e) => e.failure === undefined);

  let wake: () => void = () => {};
  const allIn = new Promise<void>((resolve) => (wake = resolve));
  let waiting = subscribed.length;
  let closed = false;
  const arrived = (e: Entry, payload: Buffer): void => {
    if (closed) return;
    const first = e.config === undefined;
    // A later push during the wait is a newer version written meanwhile (or a QoS 1 resend of the same bytes);
    // the newest is kept.
    e.config = { bytes: Buffer.from(payload), receivedAt: new Date() };
    if (first && --waiting === 0) wake();
  };
  const subscribe = async (e: Entry): Promise<void> => {
    try {
      await session.subscribeConfig(e.deviceId, (payload) => arrived(e, payload), 1);
    } catch (err) {
      if (closed || e.config !== undefined) return;
      e.failure = { reason: 'not-delivered', code: codeOf(err), detail: messageOf(err) };
      if (--waiting === 0) wake();
    }
  };
  const deadline = Date.now() + Math.max(0, options.waitMs);
  // All subscriptions go out together, not awaited one by one: each config can arrive right behind its SUBACK.
  for (const e of subscribed) void subscribe(e);
  if (waiting > 0) await waitUntil(allIn, deadline, session);
  // From here on, late configs and late subscription failures change nothing: a subscription still waiting for
  // its SUBACK ends with the session, and its device is reported as not delivered below.
  closed = true;

  const stop = session.stoppedBy;
  for (const e of subscribed) {
    if (e.config !== undefined || e.failure !== undefined) continue;
    e.failure =
      stop !== undefined
        ? { reason: 'not-delivered', code: stop.code, detail: `the session stopped before the config arrived: ${stop.reason}` }
        : { reason: 'not-delivered', code: 'ERR_DEVICE_CONFIG_TIMEOUT', detail: `no config arrived within ${options.waitMs} ms of subscribing` };
  }
  // A refused attach or the attach limit would have left the device out of a complete run as well.
  const couldStillDeliver = [...entries.values()].some((e) => e.config === undefined && e.failure?.reason !== 'attach-rejected' && e.failure?.reason !== 'attach-limit');
  const interrupted = stop !== undefined && couldStillDeliver ? { code: stop.code, reason: stop.reason } : undefined;

  const outcomes = await storeConfigs([...entries.values()], store, options.deadline);
  const count = (status: ConfigPollOutcome['status']): number => outcomes.filter((o) => o.status === status).length;
  const result: ConfigPollResult = {
    outcomes,
    polled: outcomes.length,
    changed: count('changed'),
    unchanged: count('unchanged'),
    received: count('received'),
    missing: count('missing'),
    storeFailed: count('store-failed'),
    durationMs: Date.now() - started,
    interrupted,
  };
  report(result, gatewayId, store !== undefined, options);
  return result;
}

/** Attaches the devices; any that cannot be attached gets its failure. */
async function attachDevices(session: ConfigPollSession, devices: Entry[]): Promise<void> {
  if (devices.length === 0) return;
  let results: Map<string, AttachResult>;
  try {
    // Devices attached earlier in the session (for telemetry) are not attached again; their result is reused.
    results = await session.attach(devices.map((e) => ({ deviceId: e.deviceId })));
  } catch (err) {
    // The session stopped before the attaches could go out.
    for (const e of devices) e.failure = { reason: 'attach-failed', code: codeOf(err), detail: messageOf(err) };
    return;
  }
  for (const e of devices) {
    const a = results.get(e.deviceId);
    if (a?.ok === true) continue;
    if (a === undefined) e.failure = { reason: 'attach-failed', code: 'ERR_INTERNAL', detail: 'the session reported no attach result' };
    else e.failure = { reason: a.code === 'ERR_ATTACH_REJECTED' ? 'attach-rejected' : 'attach-failed', code: a.code, detail: a.reason };
  }
}

/** Resolves when every config is in, the deadline passes, or the session stops working. */
async function waitUntil(allIn: Promise<void>, deadline: number, session: ConfigPollSession): Promise<void> {
  try {
    await withDeadline(Promise.race([allIn, session.whenStopped()]), deadline, 'ERR_DEVICE_CONFIG_TIMEOUT');
  } catch (e) {
    // The wait ending is no failure here: the devices still without a config are reported as such.
    if (!isRelayError(e) || e.code !== 'ERR_DEVICE_CONFIG_TIMEOUT') throw e;
  }
}

/**
 * Writes the received configs, a few at a time. The writes are bounded by `deadline`: a store that hangs must not
 * hold the session open past the invocation's end, which would fail back every record of the batch.
 */
async function storeConfigs(entries: Entry[], store: ConfigWriter | undefined, deadline: number | undefined): Promise<ConfigPollOutcome[]> {
  const outcomes = new Map<string, ConfigPollOutcome>();
  const toWrite: Entry[] = [];
  for (const e of entries) {
    if (e.config === undefined) {
      const f = e.failure ?? { reason: 'not-delivered' as const, code: 'ERR_INTERNAL' as const, detail: 'no outcome' };
      outcomes.set(e.deviceId, { deviceId: e.deviceId, status: 'missing', ...f });
    } else if (store === undefined) {
      outcomes.set(e.deviceId, { deviceId: e.deviceId, status: 'received' });
    } else {
      toWrite.push(e);
    }
  }
  for (let i = 0; i < toWrite.length; i += WRITE_CONCURRENCY) {
    const writes = toWrite.slice(i, i + WRITE_CONCURRENCY).map(async (e) => {
      const { bytes, receivedAt } = e.config!;
      try {
        const { version, changed } = await store!.putConfig(e.deviceId, bytes, receivedAt);
        outcomes.set(e.deviceId, { deviceId: e.deviceId, status: changed ? 'changed' : 'unchanged', version });
      } catch (err) {
        outcomes.set(e.deviceId, { deviceId: e.deviceId, status: 'store-failed', code: storeCode(err), detail: messageOf(err) });
      }
    });
    try {
      await withDeadline(Promise.all(writes), deadline ?? Infinity, 'ERR_DEADLINE');
    } catch (e) {
      // Each write settles its own outcome, so only the deadline lands here.
      if (!isRelayError(e) || e.code !== 'ERR_DEADLINE') throw e;
      break;
    }
  }
  for (const e of toWrite) {
    if (outcomes.has(e.deviceId)) continue;
    // A write still running past the deadline may yet land; either way the next poll writes the same bytes.
    outcomes.set(e.deviceId, { deviceId: e.deviceId, status: 'store-failed', code: 'ERR_DEADLINE', detail: 'the invocation deadline came before the config was written' });
  }
  return entries.map((e) => outcomes.get(e.deviceId)!);
}

function report(result: ConfigPollResult, gatewayId: string, stored: boolean, options: ConfigPollOptions): void {
  const m = options.metrics;
  if (m !== undefined) {
    m.addMetric('DevicesPolled', MetricUnit.Count, result.polled);
    m.addMetric('ConfigsChanged', MetricUnit.Count, result.changed);
    m.addMetric('ConfigsUnchanged', MetricUnit.Count, result.unchanged);
    m.addMetric('ConfigsMissing', MetricUnit.Count, result.missing);
    m.addMetric('ConfigsNotStored', MetricUnit.Count, result.received + result.storeFailed);
    m.addMetric('ConfigPollDuration', MetricUnit.Milliseconds, result.durationMs);
  }
  const log = options.log;
  if (log === undefined) return;
  let lines = 0;
  let withheld = 0;
  for (const o of result.outcomes) {
    if (o.status !== 'missing' && o.status !== 'store-failed') continue;
    if (lines++ >= MAX_DEVICE_LINES) {
      withheld++;
      continue;
    }
    if (o.status === 'missing') log.warn('config missing', { gatewayId, deviceId: o.deviceId, reason: o.reason, code: o.code, detail: o.detail });
    else log.warn('config not stored', { gatewayId, deviceId: o.deviceId, code: o.code, detail: o.detail });
  }
  if (withheld > 0) log.warn('more devices without a stored config', { gatewayId, devices: withheld });
  log.info('config poll', {
    gatewayId,
    devices: result.polled,
    changed: result.changed,
    unchanged: result.unchanged,
    missing: result.missing,
    storeFailed: result.storeFailed,
    // Without CONFIG_TABLE the relay only counts what it received.
    ...(stored ? {} : { notStored: result.received }),
    durationMs: result.durationMs,
    ...(result.interrupted === undefined ? {} : { interruptedBy: result.interrupted.code }),
  });
}

const codeOf = (e: unknown): RelayErrorCode => (isRelayError(e) ? e.code : 'ERR_INTERNAL');
const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** A RelayError from the store keeps its code; anything else is the table or the network failing. */
function storeCode(e: unknown): RelayErrorCode {
  return isRelayError(e) ? e.code : 'ERR_STORE_UNAVAILABLE';
}
