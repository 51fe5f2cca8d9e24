/**
 * Faults the emulator injects so clients can be tested against a misbehaving network or bridge. The `Faults`
 * object is live: the bridge reads it at every packet, so tests change it between cases (or in the middle of one)
 * and the next packet sees the change.
 *
 * @example
 * emulator.setFaults({ withholdPuback: ['/devices/+/events/#'] }); // recorded, never acknowledged ("ack lost")
 * emulator.setFaults({ closeAtPhase: 'attach' });                    // drop the connection at the first attach
 * emulator.setFaults({ closeAtPhase: 'attach', closeAtPhaseOnce: true }); // ... once, then the fault clears itself
 * emulator.clearFaults();
 */
import type { Packet } from 'mqtt-packet';

/** The CONNACK return codes of MQTT 3.1.1 that refuse a connection. */
export type ConnackRefusal = 1 | 2 | 3 | 4 | 5;

/** Stages of a gateway session, as the first packet of each shows them. */
export type Phase = 'connect' | 'subscribe' | 'attach' | 'publish' | 'detach';
export const PHASES: readonly Phase[] = ['connect', 'subscribe', 'attach', 'publish', 'detach'];

export interface Faults {
  /** Delay, in ms, before every packet the bridge sends (CONNACK, SUBACK, PUBACK, PUBLISH, UNSUBACK, PINGRESP). */
  latencyMs: number;
  /** Topic filters (MQTT wildcards) whose client publishes are recorded but never PUBACKed: the "ack lost" fault. */
  withholdPuback: string[];
  /** Topic filters whose client publishes are neither recorded nor PUBACKed, as if lost on the way in. */
  dropPublish: string[];
  /** Close each connection once it has received and handled this many packets (CONNECT included). */
  closeAfterPackets?: number | undefined;
  /** Close each connection when the first packet of this phase arrives, before handling it. */
  closeAtPhase?: Phase | undefined;
  /** Answer every CONNECT with this CONNACK code and close. */
  refuseConnect?: ConnackRefusal | undefined;
  /**
   * With closeAtPhase: fire once, on the first packet of that phase on any connection, then clear both. Set it in
   * the same call as closeAtPhase; a call that sets or clears closeAtPhase without it makes the fault persistent.
   */
  closeAtPhaseOnce?: boolean | undefined;
  /**
   * Topic filters whose telemetry and state publishes are PUBACKed, then not recorded and reported on the errors
   * topic as GATEWAY_DEVICE_NOT_FOUND: a failure the bridge reports after acknowledging the message.
   */
  acknowledgeThenFail?: string[] | undefined;
  /**
   * Lose every errors-topic message on the way to the gateway, as a QoS 0 message may be ([CB-GW]: errors are
   * best effort). The bridge still counts them as sent (`registry.errors`), so acknowledgements do not change.
   */
  dropErrors?: boolean | undefined;
}

/** Every fault by name; a fault added to `Faults` does not compile until it is listed here too. */
const FAULT_NAME_SET: Readonly<Record<keyof Faults, true>> = {
  latencyMs: true,
  withholdPuback: true,
  dropPublish: true,
  closeAfterPackets: true,
  closeAtPhase: true,
  refuseConnect: true,
  closeAtPhaseOnce: true,
  acknowledgeThenFail: true,
  dropErrors: true,
};
export const FAULT_NAMES = Object.keys(FAULT_NAME_SET) as readonly (keyof Faults)[];

export function noFaults(): Faults {
  return { latencyMs: 0, withholdPuback: [], dropPublish: [] };
}

/**
 * Checks a partial fault set from a caller (test, CLI) and returns what to merge; throws TypeError on nonsense.
 * `undefined` clears an optional fault (`{ closeAtPhase: undefined }`) and leaves the others as they are.
 */
export function checkFaults(input: Partial<Faults>): Partial<Faults> {
  const f = { ...input };
  for (const key of ['latencyMs', 'withholdPuback', 'dropPublish'] as const) if (f[key] === undefined) delete f[key];
  if (f.latencyMs !== undefined && !(Number.isFinite(f.latencyMs) && f.latencyMs >= 0)) {
    throw new TypeError(`latencyMs must be a non-negative number (got ${String(f.latencyMs)})`);
  }
  for (const key of ['withholdPuback', 'dropPublish', 'acknowledgeThenFail'] as const) {
    const filters = f[key];
    if (filters === undefined) continue;
    if (!Array.isArray(filters)) throw new TypeError(`${key} must be an array of topic filters`);
    for (const filter of filters) {
      const problem = topicFilterProblem(filter);
      if (problem !== undefined) throw new TypeError(`${key}: ${JSON.stringify(filter)} ${problem}`);
    }
  }
  if (f.closeAfterPackets !== undefined && !(Number.isSafeInteger(f.closeAfterPackets) && f.closeAfterPackets >= 1)) {
    throw new TypeError(`closeAfterPackets must be a positive integer (got ${String(f.closeAfterPackets)})`);
  }
  if (f.closeAtPhase !== undefined && !PHASES.includes(f.closeAtPhase)) {
    throw new TypeError(`closeAtPhase must be one of ${PHASES.join(', ')} (got ${String(f.closeAtPhase)})`);
  }
  if (f.refuseConnect !== undefined && ![1, 2, 3, 4, 5].includes(f.refuseConnect)) {
    throw new TypeError(`refuseConnect must be a CONNACK refusal code 1 to 5 (got ${String(f.refuseConnect)})`);
  }
  if (f.closeAtPhaseOnce !== undefined) {
    if (typeof f.closeAtPhaseOnce !== 'boolean') throw new TypeError(`closeAtPhaseOnce must be true or false (got ${String(f.closeAtPhaseOnce)})`);
    if (f.closeAtPhase === undefined) throw new TypeError('closeAtPhaseOnce goes with a closeAtPhase set in the same call');
  } else if ('closeAtPhase' in f) {
    // A new closeAtPhase (or its clearing) does not inherit the fire-once of an earlier one.
    f.closeAtPhaseOnce = undefined;
  }
  if (f.dropErrors !== undefined && typeof f.dropErrors !== 'boolean') throw new TypeError(`dropErrors must be true or false (got ${String(f.dropErrors)})`);
  return f;
}

/**
 * Whether the first packet of `phase` is to close its connection. A fire-once closeAtPhase clears itself as it
 * fires, so the next connection (or the next packet of the phase) goes through.
 */
export function closesAtPhase(faults: Faults, phase: Phase | undefined): boolean {
  if (phase === undefined || faults.closeAtPhase !== phase) return false;
  if (faults.closeAtPhaseOnce === true) {
    faults.closeAtPhase = undefined;
    faults.closeAtPhaseOnce = undefined;
  }
  return true;
}

/** Why a string is not an MQTT topic filter ([MQTT-4.7.1]), or undefined. */
export function topicFilterProblem(filter: unknown): string | undefined {
  if (typeof filter !== 'string' || filter.length === 0) return 'must be a non-empty string';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return "uses '#' other than as the whole last level";
    if (level.includes('+') && level !== '+') return "uses '+' other than as a whole level";
  }
  return undefined;
}

/** MQTT topic matching ([MQTT-4.7.1]): `+` is one level, a trailing `#` is the parent level and everything under it. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i]!;
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

export function matchesAny(filters: readonly string[], topic: string): boolean {
  return filters.some((f) => topicMatches(f, topic));
}

/** The phase a client packet opens, if it is one a phase fault can act on. */
export function phaseOf(packet: Packet): Phase | undefined {
  switch (packet.cmd) {
    case 'connect':
      return 'connect';
    case 'subscribe':
      return 'subscribe';
    case 'publish':
      if (/^\/devices\/[^/]+\/attach$/.test(packet.topic)) return 'attach';
      if (/^\/devices\/[^/]+\/detach$/.test(packet.topic)) return 'detach';
      return 'publish';
    default:
      return undefined;
  }
}
