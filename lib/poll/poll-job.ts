/**
 * Runs one `config-poll` job inside an open gateway session: attach the devices, subscribe to each one's config
 * topic, take the config the bridge pushes, and keep it in the config store for the device to fetch later.
 *
 * The bridge sends the latest config version at once after each subscription (iotcore-protocol.md §2, "Config"),
 * so one subscription per device per poll is enough and nothing has to stay subscribed. The subscription is QoS 1
 * by default: mqtt.js acknowledges each config, so the bridge stops resending it, and the device's
 * `deviceAckTime` in IoT Core then means "the relay holds it for the device". The acknowledgement goes out before
 * the store write; a write that fails loses nothing, because the next subscription is sent the latest version
 * again, acknowledged or not.
 *
 * A device whose config did not arrive is reported as missing, with the reason; nothing is guessed for it and the
 * store keeps what it had. A config pushed after the wait ended (a change made while the session was closing) is
 * still acknowledged by mqtt.js but not stored; the next poll stores it, since a subscription always brings the
 * latest version.
 *
 * @example
 * const report = await session.run(async (s) => {
 *   result = await runConfigPoll(s, job.deviceIds, store, { waitMs: settings.configTimeoutMs, metrics });
 * });
 */
import { MetricUnit, type Metrics } from '@aws-lambda-powertools/metrics';
import { isRelayError, type RelayErrorCode } from '../errors.js';
import type { ConfigWriter } from '../config-store/config-store.js';
import type { GatewaySession, SessionLog } from '../gateway/session.js';

/** The part of a gateway session a poll needs. */
export type ConfigPollSession = Pick<GatewaySession, 'gatewayId' | 'attach' | 'subscribeConfig' | 'stoppedBy' | 'whenStopped'>;

export type ConfigPollOutcome =
  | { deviceId: string; status: 'changed' | 'unchanged'; version: number }
  | {
      deviceId: string;
      status: 'missing';
      /**
       * `attach-rejected`: the bridge refused the attach (unknown device, not bound to this gateway, needs a token);
       * `attach-failed`: the attach was not answered (timeout, connection lost, deadline);
       * `not-delivered`: attached, but no config arrived within the wait (or the subscription was refused).
       */
      reason: 'attach-rejected' | 'attach-failed' | 'not-delivered';
      code: RelayErrorCode;
      detail: string;
    }
  /** The config arrived but could not be written; the next poll delivers it again. */
  | { deviceId: string; status: 'store-failed'; code: RelayErrorCode; detail: string };

export interface ConfigPollResult {
  /** One outcome per distinct device, in the order of the job. */
  outcomes: ConfigPollOutcome[];
  changed: number;
  unchanged: number;
  missing: number;
  storeFailed: number;
  durationMs: number;
}

export interface ConfigPollOptions {
  /** How long to wait for the configs after the subscriptions went out. */
  waitMs: number;
  /** Default 1 (see the module comment); 0 leaves the acknowledgement to the device itself. */
  qos?: 0 | 1;
  /** Receives ConfigsChanged, ConfigsUnchanged, ConfigsMissing and ConfigPollDuration; the caller publishes them. */
  metrics?: Pick<Metrics, 'addMetric'>;
  log?: SessionLog;
}

/** Store writes in flight at once. */
const WRITE_CONCURRENCY = 10;

interface Pending {
  deviceId: string;
  config: { bytes: Buffer; receivedAt: Date } | undefined;
  failure: { reason: 'attach-rejected' | 'attach-failed' | 'not-delivered'; code: RelayErrorCode; detail: string } | undefined;
}

export async function runConfigPoll(
  session: ConfigPollSession,
  deviceIds: readonly string[],
  store: ConfigWriter,
  options: ConfigPollOptions,
): Promise<ConfigPollResult> {
  const started = Date.now();
  const qos = options.qos ?? 1;
  const devices = new Map<string, Pending>();
  for (const deviceId of deviceIds) devices.set(deviceId, { deviceId, config: undefined, failure: undefined });

  const attachments = await session.attach([...devices.keys()].map((deviceId) => ({ deviceId })));
  const attached: Pending[] = [];
  for (const d of devices.values()) {
    const a = attachments.get(d.deviceId);
    if (a?.ok === true) attached.push(d);
    else if (a === undefined) d.failure = { reason: 'attach-failed', code: 'ERR_INTERNAL', detail: 'the session reported no attach result' };
    else d.failure = { reason: a.code === 'ERR_ATTACH_REJECTED' ? 'attach-rejected' : 'attach-failed', code: a.code, detail: a.reason };
  }

  let wake: () => void = () => {};
  const allIn = new Promise<void>((resolve) => (wake = resolve));
  let waiting = attached.length;
  let closed = false;
  const arrived = (d: Pending, payload: Buffer): void => {
    if (closed) return;
    const first = d.config === undefined;
    // A later push during the wait is a newer version written meanwhile (or a QoS 1 resend of the same bytes);
    // the newest is kept.
    d.config = { bytes: Buffer.from(payload), receivedAt: new Date() };
    if (first && --waiting === 0) wake();
  };

  const deadline = Date.now() + Math.max(0, options.waitMs);
  const subscribe = async (d: Pending): Promise<void> => {
    try {
      await session.subscribeConfig(d.deviceId, (payload) => arrived(d, payload), qos);
    } catch (e) {
      if (closed || d.config !== undefined) return;
      d.failure = { reason: 'not-delivered', code: isRelayError(e) ? e.code : 'ERR_INTERNAL', detail: (e as Error).message };
      if (--waiting === 0) wake();
    }
  };
  // All subscriptions go out together, not awaited one by one: each config can arrive right behind its SUBACK.
  for (const d of attached) void subscribe(d);

  if (waiting > 0) await waitUntil(allIn, deadline, session);
  // From here on, late configs and late subscription failures change nothing: a subscription still waiting for
  // its SUBACK ends with the session, and its device is reported as not delivered below.
  closed = true;

  for (const d of attached) {
    if (d.config !== undefined || d.failure !== undefined) continue;
    const stopped = session.stoppedBy;
    d.failure =
      stopped !== undefined
        ? { reason: 'not-delivered', code: stopped.code, detail: `the session stopped before the config arrived: ${stopped.reason}` }
        : { reason: 'not-delivered', code: 'ERR_DEVICE_CONFIG_TIMEOUT', detail: `no config arrived within ${options.waitMs} ms of subscribing` };
  }

  const outcomes = await writeConfigs([...devices.values()], store, options.log, session.gatewayId);
  const result: ConfigPollResult = {
    outcomes,
    changed: outcomes.filter((o) => o.status === 'changed').length,
    unchanged: outcomes.filter((o) => o.status === 'unchanged').length,
    missing: outcomes.filter((o) => o.status === 'missing').length,
    storeFailed: outcomes.filter((o) => o.status === 'store-failed').length,
    durationMs: Date.now() - started,
  };
  options.metrics?.addMetric('ConfigsChanged', MetricUnit.Count, result.changed);
  options.metrics?.addMetric('ConfigsUnchanged', MetricUnit.Count, result.unchanged);
  options.metrics?.addMetric('ConfigsMissing', MetricUnit.Count, result.missing + result.storeFailed);
  options.metrics?.addMetric('ConfigPollDuration', MetricUnit.Milliseconds, result.durationMs);
  options.log?.info('config poll done', {
    gatewayId: session.gatewayId,
    devices: devices.size,
    changed: result.changed,
    unchanged: result.unchanged,
    missing: result.missing,
    storeFailed: result.storeFailed,
    durationMs: result.durationMs,
  });
  return result;
}

/** Resolves when every config is in, the deadline passes, or the session stops working. */
async function waitUntil(allIn: Promise<void>, deadline: number, session: ConfigPollSession): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))));
  try {
    await Promise.race([allIn, bounded, session.whenStopped()]);
  } finally {
    clearTimeout(timer);
  }
}

async function writeConfigs(devices: Pending[], store: ConfigWriter, log: SessionLog | undefined, gatewayId: string): Promise<ConfigPollOutcome[]> {
  const outcomes = new Map<string, ConfigPollOutcome>();
  const toWrite: Pending[] = [];
  for (const d of devices) {
    if (d.config !== undefined) toWrite.push(d);
    else {
      const f = d.failure ?? { reason: 'not-delivered' as const, code: 'ERR_INTERNAL' as const, detail: 'no outcome' };
      outcomes.set(d.deviceId, { deviceId: d.deviceId, status: 'missing', ...f });
      log?.warn('config missing', { gatewayId, deviceId: d.deviceId, reason: f.reason, code: f.code, detail: f.detail });
    }
  }
  for (let i = 0; i < toWrite.length; i += WRITE_CONCURRENCY) {
    await Promise.all(
      toWrite.slice(i, i + WRITE_CONCURRENCY).map(async (d) => {
        const { bytes, receivedAt } = d.config!;
        try {
          const { version, changed } = await store.putConfig(d.deviceId, bytes, receivedAt);
          outcomes.set(d.deviceId, { deviceId: d.deviceId, status: changed ? 'changed' : 'unchanged', version });
        } catch (e) {
          const code: RelayErrorCode = isRelayError(e) ? e.code : 'ERR_INTERNAL';
          outcomes.set(d.deviceId, { deviceId: d.deviceId, status: 'store-failed', code, detail: (e as Error).message });
          log?.warn('config not stored', { gatewayId, deviceId: d.deviceId, code, error: (e as Error).message });
        }
      }),
    );
  }
  return devices.map((d) => outcomes.get(d.deviceId)!);
}
