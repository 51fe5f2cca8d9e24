/**
 * `config-poll` records, served inside the batch's gateway session: subscribe to each device's config topic and
 * take the config the bridge sends right after the subscription (the latest version, iotcore-protocol.md §2).
 * What is done with a config belongs to the `ConfigSink`; a poll record is confirmed once every one of its devices
 * delivered a config and the sink accepted it.
 *
 * @example
 * const results = await pollConfigs(session, polls, { timeoutMs: 5000, sink: (c) => store.put(c) });
 */
import { isRelayError, type RelayErrorCode } from '../errors.js';
import type { GatewaySession } from '../gateway/session.js';
import { dispositionOf } from './outcomes.js';
import type { PollItem } from './route-records.js';

export interface DeviceConfigDelivery {
  gatewayId: string;
  deviceId: string;
  /** The raw config bytes; MQTT carries no version number (iotcore-protocol.md §2). */
  payload: Buffer;
  receivedAt: Date;
}

/** Where polled configs go. Throwing a RelayError fails the poll records of that device with its code. */
export type ConfigSink = (delivery: DeviceConfigDelivery) => Promise<void> | void;

export type PollResult = { ok: true } | { ok: false; code: RelayErrorCode; reason: string };

export interface PollOptions {
  timeoutMs: number;
  sink: ConfigSink;
}

/** A failure that a retry could fix outranks one that it could not: the record is then retried, not dead-lettered. */
const RANK = { retry: 0, 'retry-backoff': 1, 'dead-letter': 2 } as const;

export async function pollConfigs(session: GatewaySession, polls: readonly PollItem[], options: PollOptions): Promise<Map<string, PollResult>> {
  const deviceIds = [...new Set(polls.flatMap((p) => p.message.deviceIds))];
  const perDevice = new Map<string, PollResult>();
  await Promise.all(deviceIds.map(async (d) => perDevice.set(d, await pollDevice(session, d, options))));
  const results = new Map<string, PollResult>();
  for (const poll of polls) {
    let worst: PollResult = { ok: true };
    for (const d of poll.message.deviceIds) {
      const r = perDevice.get(d)!;
      if (r.ok) continue;
      if (worst.ok || RANK[dispositionOf(r.code)] < RANK[dispositionOf(worst.code)]) worst = r;
    }
    results.set(poll.messageId, worst);
  }
  return results;
}

async function pollDevice(session: GatewaySession, deviceId: string, options: PollOptions): Promise<PollResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    let received: (payload: Buffer) => void = () => {};
    const first = new Promise<Buffer>((resolve) => (received = resolve));
    await session.subscribeConfig(deviceId, (payload) => received(payload));
    const outcome = await Promise.race([
      first.then((payload) => ({ kind: 'config' as const, payload })),
      session.whenStopped().then((stop) => ({ kind: 'stopped' as const, stop })),
      new Promise<{ kind: 'timeout' }>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), options.timeoutMs))),
    ]);
    if (outcome.kind === 'stopped') return { ok: false, code: outcome.stop.code, reason: outcome.stop.reason };
    if (outcome.kind === 'timeout') {
      return { ok: false, code: 'ERR_DEVICE_CONFIG_TIMEOUT', reason: `no config for ${deviceId} within ${options.timeoutMs} ms of subscribing` };
    }
    await options.sink({ gatewayId: session.gatewayId, deviceId, payload: outcome.payload, receivedAt: new Date() });
    return { ok: true };
  } catch (e) {
    if (isRelayError(e)) return { ok: false, code: e.code, reason: e.message };
    return { ok: false, code: 'ERR_INTERNAL', reason: `unexpected: ${(e as Error)?.message ?? String(e)}` };
  } finally {
    clearTimeout(timer);
  }
}
