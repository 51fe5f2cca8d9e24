/**
 * What a gateway session is given: where the bridge is, the gateway's JWT, the deadline, and the timeouts and window
 * that bound each wait (docs/relay.md lists the environment variables that set them).
 *
 * @example
 * const options = sessionOptions({ registry, gatewayId: 'gw-1', host, port: 8883, jwt, deadline: Date.now() + 20_000 });
 * options.publishWindow; // 32
 */
import type { RegistryPath } from '../iotcore/topics.js';

/**
 * The default grace window for late errors: one round trip of the benchmarks' 25 ms network (bench/round-trips.ts),
 * the wall time every session with records to confirm pays for it. test/reliability/late-errors.test.ts measures
 * what it buys; SECURITY.md ("Delivery") has the figures.
 */
export const LATE_ERROR_GRACE_MS = 25;

export interface GatewaySessionOptions {
  registry: RegistryPath;
  gatewayId: string;
  host: string;
  port: number;
  /** PEM of extra trusted roots, added to the system roots. */
  extraCaPem?: string | undefined;
  /**
   * The gateway's JWT, or the promise of it: the TCP and TLS handshakes with the bridge run while it is being made
   * (on a cold start, while the key is fetched). A rejection ends the session with that error. Never logged.
   */
  jwt: string | Promise<string>;
  /**
   * Absolute time (ms since the epoch) by which `close()` has returned. Work stops earlier, leaving
   * `closeTimeoutMs` (at most half of the session's time) to detach and disconnect.
   */
  deadline: number;
  connectTimeoutMs?: number;
  /** Wait for an attach's PUBACK (or its error), and for SUBACKs. */
  attachTimeoutMs?: number;
  pubackTimeoutMs?: number;
  /** Bound on the detach barrier plus DISCONNECT. */
  closeTimeoutMs?: number;
  /** QoS 1 publishes allowed unacknowledged at once. */
  publishWindow?: number;
  /**
   * PUBLISH packets (attaches, records, detaches) the session sends in any one second at most; 0 for no pace
   * (lib/gateway/publish-pace.ts). A packet's timeout counts from when it leaves.
   */
  publishRate?: number;
  /** Send the errors-topic SUBSCRIBE right behind the CONNECT (default); false waits for the CONNACK first. */
  subscribeBeforeConnack?: boolean;
  /**
   * How long the session keeps listening for late errors after the final barrier before it confirms anything
   * (lib/gateway/late-errors.ts); 0 confirms at the barrier.
   */
  lateErrorGraceMs?: number;
  /** 4 speaks MQTT 3.1.1 (default); 5 speaks MQTT 5.0, whose PUBACK reason codes refuse a publish at once. */
  protocolVersion?: 4 | 5;
  log?: SessionLog;
}

/** What the session logs through; Powertools' Logger fits. Nothing secret is ever passed to it. */
export interface SessionLog {
  debug(message: string, extra?: Record<string, unknown>): void;
  info(message: string, extra?: Record<string, unknown>): void;
  warn(message: string, extra?: Record<string, unknown>): void;
}

export interface AttachRequest {
  deviceId: string;
  /** The device's own JWT, for gateways that authenticate devices by token. */
  token?: string;
}

export const SESSION_DEFAULTS = {
  connectTimeoutMs: 5000,
  attachTimeoutMs: 5000,
  pubackTimeoutMs: 5000,
  closeTimeoutMs: 2000,
  publishWindow: 32,
  subscribeBeforeConnack: true,
  publishRate: 0,
  lateErrorGraceMs: LATE_ERROR_GRACE_MS,
  protocolVersion: 4 as 4 | 5,
};

export type ResolvedSessionOptions = GatewaySessionOptions & typeof SESSION_DEFAULTS;

/** The options with every unset value at its default. */
export function sessionOptions(options: GatewaySessionOptions): ResolvedSessionOptions {
  const set = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<GatewaySessionOptions>;
  return { ...SESSION_DEFAULTS, ...set } as ResolvedSessionOptions;
}

export const noLog: SessionLog = { debug() {}, info() {}, warn() {} };
