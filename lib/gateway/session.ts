/**
 * One short MQTT session of a gateway with the bridge: connect, subscribe to the gateway's errors topic, attach the
 * batch's devices, publish on their behalf, detach them, disconnect. The phases are explicit:
 *
 *   connecting -> subscribing -> attaching <-> publishing -> detaching -> closed
 *
 * and there is one way out, `close()` (which `run()` always calls): it detaches every device it attached, waits
 * for those acknowledgements as the final barrier, disconnects, and reports one result per record.
 *
 * The protocol facts behind the rules (docs/design.md, "Rules the protocol forces"):
 * - the errors topic is subscribed at QoS 0 before the first attach: without it a failed attach gets no PUBACK
 *   (the SUBSCRIBE goes out right behind the CONNECT, which MQTT 3.1.1 allows, and the attaches wait for its SUBACK);
 * - attaches are all in flight together; nothing is published for a device before its attach is acknowledged;
 * - a record is confirmed by its PUBACK only if no errors-topic message names it before its device's detach is
 *   answered (the bridge answers packets of one connection in order, so the answer to the detach comes after any
 *   error about that device's earlier packets);
 * - no reconnect: a lost connection ends the session and what is unconfirmed goes back to the queue;
 * - a deadline: past it the session stops working, detaches and disconnects in what time is left.
 *
 * @example
 * const session = new GatewaySession({ registry, gatewayId: 'gw-1', host, port, jwt, deadline: Date.now() + 20_000 });
 * const report = await session.run(async (s) => {
 *   await s.attach([{ deviceId: 'pump-1' }]);
 *   await s.publish([{ key: 'm-1', deviceId: 'pump-1', kind: 'event', payload: Buffer.from('21.5') }]);
 * });
 * report.records.get('m-1'); // { status: 'confirmed', ... }
 */
import { MqttClient, type Packet } from 'mqtt';
import type { TLSSocket } from 'node:tls';
import { generate as generatePacket } from 'mqtt-packet';
import { isRelayError, RelayError, type RelayErrorCode } from '../errors.js';
import { parseGatewayError, type GatewayErrorMessage } from '../iotcore/gateway-error.js';
import { attachTopic, configTopic, detachTopic, errorsTopic, type RegistryPath } from '../iotcore/topics.js';
import { CHECK_HOST_AND_PORT, classifyConnectError, gatewayConnectOptions, openGatewaySocket } from './connect-options.js';
import { correlateGatewayError, GATEWAY_ERROR_CODES, gatewayErrorReason, type SentPacket } from './error-correlation.js';
import { planPublishes, type PublishRequest } from './publish-plan.js';

export type { PublishRequest } from './publish-plan.js';

export type SessionPhase = 'connecting' | 'subscribing' | 'attaching' | 'publishing' | 'detaching' | 'closed';

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
  /** Send the errors-topic SUBSCRIBE right behind the CONNECT (default); false waits for the CONNACK first. */
  subscribeBeforeConnack?: boolean;
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

export type AttachResult = { ok: true; latencyMs: number } | { ok: false; code: RelayErrorCode; reason: string };

export type RecordResult =
  | { status: 'confirmed'; deviceId: string; latencyMs: number; coalescedInto?: string }
  | { status: 'failed'; deviceId: string; code: RelayErrorCode; reason: string; coalescedInto?: string };

export interface SessionFailure {
  code: RelayErrorCode;
  reason: string;
  /** The phase the session was in when it happened. */
  phase: SessionPhase;
}

export interface SessionReport {
  gatewayId: string;
  /** One entry per record handed to `publish()`, coalesced state records included. */
  records: Map<string, RecordResult>;
  attachments: Map<string, AttachResult>;
  /** What ended the session's work early (connection failure, lost connection, takeover, deadline), if anything. */
  failure: SessionFailure | undefined;
  /** Every phase the session went through, in order. */
  phases: SessionPhase[];
  gatewayErrors: GatewayErrorMessage[];
  /** Errors-topic messages that named nothing this session sent. */
  uncorrelatedErrors: number;
  connectMs: number | undefined;
  /** Milliseconds from each PUBLISH to its PUBACK, for attaches and for records. */
  attachLatenciesMs: number[];
  publishLatenciesMs: number[];
  /** The most record PUBLISHes that were unacknowledged at once (never above `publishWindow`). */
  maxPublishesInFlight: number;
}

const DEFAULTS = {
  connectTimeoutMs: 5000,
  attachTimeoutMs: 5000,
  pubackTimeoutMs: 5000,
  closeTimeoutMs: 2000,
  publishWindow: 32,
  subscribeBeforeConnack: true,
};

/**
 * How long after the CONNACK the SUBSCRIBE sent behind the CONNECT may stay unanswered before it is sent again. A
 * bridge that read it answers right behind the CONNACK, within a millisecond or two; one that dropped it never
 * does, and costs each session this much plus one round trip.
 */
const EARLY_SUBACK_GRACE_MS = 50;

type FlightEnd =
  | { kind: 'acked' }
  /** An errors-topic message named the packet (or a SUBACK refused it). */
  | { kind: 'refused'; code: RelayErrorCode; reason: string }
  | { kind: 'timeout' }
  | { kind: 'stopped'; code: RelayErrorCode; reason: string };

/**
 * The flights a session is waiting on, and the one timer that ends those whose time is up. A session has thousands
 * of PUBLISHes in flight over its life but only a window of them at once, all with the same timeout: one timer armed
 * for the earliest expiry costs nothing per packet, where a timer per packet was armed and cleared for each one.
 */
class FlightClock {
  readonly pending = new Set<Flight>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;

  track(flight: Flight): void {
    this.pending.add(flight);
    if (flight.expiresAt < this.timerAt) this.arm(flight.expiresAt);
  }

  untrack(flight: Flight): void {
    this.pending.delete(flight);
    // Nothing left to time: a timer left armed would keep the process alive after the session.
    if (this.pending.size === 0) this.disarm();
  }

  disarm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, at - Date.now()));
  }

  private sweep(): void {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = Date.now();
    // A copy: ending a flight may start others (the publish window refills).
    for (const f of [...this.pending]) if (f.expiresAt <= now) f.settle({ kind: 'timeout' });
    let next = Infinity;
    for (const f of this.pending) next = Math.min(next, f.expiresAt);
    if (next !== Infinity && next < this.timerAt) this.arm(next);
  }
}

/** One QoS 1 packet (PUBLISH or SUBSCRIBE) waiting for its acknowledgement. */
class Flight {
  packetId: number | undefined;
  readonly sentAt = Date.now();
  readonly expiresAt: number;
  /** Set by the acknowledgement, even when it comes after the flight stopped waiting (a late PUBACK still counts). */
  ackedAt: number | undefined;
  end: FlightEnd | undefined;
  private readonly clock: FlightClock;
  /** Called once, synchronously, when the flight ends; record PUBLISHes use it instead of a Promise each. */
  private readonly onEnd: ((end: FlightEnd) => void) | undefined;
  private promise: Promise<FlightEnd> | undefined;
  private resolveDone: ((end: FlightEnd) => void) | undefined;

  constructor(clock: FlightClock, timeoutMs: number, onEnd?: (end: FlightEnd) => void) {
    this.clock = clock;
    this.onEnd = onEnd;
    this.expiresAt = this.sentAt + Math.max(0, timeoutMs);
    clock.track(this);
  }

  /** Resolves with the flight's end; made only for the callers that wait on one flight (attach, detach, SUBSCRIBE). */
  get done(): Promise<FlightEnd> {
    if (this.promise === undefined) {
      const end = this.end;
      this.promise = end !== undefined ? Promise.resolve(end) : new Promise((resolve) => (this.resolveDone = resolve));
    }
    return this.promise;
  }

  settle(end: FlightEnd): void {
    if (this.end !== undefined) return;
    this.end = end;
    this.clock.untrack(this);
    this.onEnd?.(end);
    this.resolveDone?.(end);
  }
}

interface DeviceEntry {
  deviceId: string;
  status: 'attaching' | 'attached' | 'failed';
  failure: { code: RelayErrorCode; reason: string } | undefined;
  /** The bridge refused the attach itself: there is nothing to detach. */
  attachRefused: boolean;
  attach: Flight;
  detach: Flight | undefined;
  /** The answer to this device's detach arrived: errors about it can no longer be pending. */
  barrier: boolean;
}

/** One planned PUBLISH. It is its own `SentPacket` for error correlation, so sending it allocates nothing more. */
interface Unit {
  readonly kind: 'publish';
  /** Index in `units`. */
  readonly unit: number;
  keys: string[];
  deviceId: string;
  topic: string;
  payload: Buffer;
  flight: Flight | undefined;
  /** Handed to mqtt.js: the errors topic may name it by topic from then on. */
  sent: boolean;
  /** Set when an errors-topic message named this unit, or its device failed. Overrides a PUBACK. */
  failure: { code: RelayErrorCode; reason: string } | undefined;
}

const noLog: SessionLog = { debug() {}, info() {}, warn() {} };

export class GatewaySession {
  private readonly options: GatewaySessionOptions & typeof DEFAULTS;
  private readonly log: SessionLog;
  private readonly where: string;
  private readonly errors: string;
  private readonly workDeadline: number;
  /** From the JWT's `exp`, once `open()` has it. */
  private jwtExpiresAt: number | undefined;
  private readonly phaseHistory: SessionPhase[] = [];
  private currentPhase: SessionPhase = 'connecting';
  private client: MqttClient | undefined;
  private opened = false;
  private connected = false;
  private disconnecting = false;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Why work stopped; set once. */
  private stopped: SessionFailure | undefined;
  private lost = false;
  private lastSocketError: string | undefined;
  private connectMs: number | undefined;
  private readonly clock = new FlightClock();
  private readonly devices = new Map<string, DeviceEntry>();
  private readonly units: Unit[] = [];
  private readonly byPacketId = new Map<number, SentPacket>();
  /** Attaches, detaches and SUBSCRIBEs sent, in order; record PUBLISHes are the units marked `sent`. */
  private readonly otherPackets: SentPacket[] = [];
  /**
   * The PUBLISH being handed to mqtt.js, which emits `packetsend` for it synchronously once connected. Three fields
   * rather than an object, so that the common case allocates nothing.
   */
  private sendingFlight: Flight | undefined;
  private sendingPacket: SentPacket | undefined;
  private sendingPayload: Buffer | undefined;
  /** PUBLISHes mqtt.js queued instead of writing at once, in order, until it tells which packet ID it gave them. */
  private readonly queuedSends: { flight: Flight; packet: SentPacket; payload: Buffer }[] = [];
  private subscribing: { flight: Flight; packet: SentPacket } | undefined;
  /** The flight of every SUBSCRIBE, for errors-topic messages that name one. */
  private readonly subscribeFlights = new Map<SentPacket, Flight>();
  private readonly configHandlers = new Map<string, (payload: Buffer) => void>();
  private readonly gatewayErrors: GatewayErrorMessage[] = [];
  private uncorrelated = 0;
  private maxInFlight = 0;
  private closing: Promise<SessionReport> | undefined;
  private readonly stopSignal: Promise<SessionFailure>;
  private signalStop!: (failure: SessionFailure) => void;

  constructor(options: GatewaySessionOptions) {
    this.options = { ...DEFAULTS, ...withoutUndefined(options) } as GatewaySessionOptions & typeof DEFAULTS;
    this.log = options.log ?? noLog;
    this.where = `${options.host}:${options.port}`;
    this.errors = errorsTopic(options.gatewayId);
    const now = Date.now();
    // Leave the close its budget, but never more than half of what the session has.
    const reserve = Math.min(this.options.closeTimeoutMs, Math.max(0, (options.deadline - now) / 2));
    this.workDeadline = options.deadline - reserve;
    this.stopSignal = new Promise((resolve) => (this.signalStop = resolve));
    this.phaseHistory.push('connecting');
  }

  get phase(): SessionPhase {
    return this.currentPhase;
  }

  get gatewayId(): string {
    return this.options.gatewayId;
  }

  /**
   * Opens the session, runs `work`, and always closes. A RelayError thrown by `work` (or by opening) becomes the
   * report's `failure`; any other exception is reported as ERR_INTERNAL. Never throws.
   */
  async run(work: (session: GatewaySession) => Promise<void>): Promise<SessionReport> {
    try {
      await this.open();
      await work(this);
    } catch (e) {
      this.noteFailure(e);
    }
    return this.close();
  }

  /** connecting -> subscribing -> attaching. Throws a RelayError when the session cannot start. */
  async open(): Promise<void> {
    if (this.opened) throw new RelayError('ERR_INTERNAL', 'a gateway session opens once');
    this.opened = true;
    this.armDeadline();
    // Past the deadline already: not even a TCP connection.
    if (this.stopped !== undefined) throw new RelayError(this.stopped.code, this.stopped.reason);
    const started = Date.now();
    // TCP and TLS first: their round trips run while the JWT is made, and mqtt.js gets the socket with it.
    const socket = openGatewaySocket({ host: this.options.host, port: this.options.port, extraCaPem: this.options.extraCaPem });
    const socketFailure = failureOf(socket, this.where);
    let jwt: string;
    try {
      jwt = await Promise.race([Promise.resolve(this.options.jwt), socketFailure.failed, this.stoppedWhileOpening()]);
    } catch (e) {
      socketFailure.release();
      // Whatever the socket still reports is moot now; unheard, an 'error' would be thrown.
      socket.on('error', () => undefined);
      socket.destroy();
      throw e;
    }
    this.jwtExpiresAt = jwtExpiry(jwt);
    const client = new MqttClient(() => socket, gatewayConnectOptions({ registry: this.options.registry, gatewayId: this.options.gatewayId, jwt, connectTimeoutMs: this.options.connectTimeoutMs }));
    // mqtt.js listens to the socket from here on.
    socketFailure.release();
    this.client = client;
    client.on('packetsend', (packet) => this.onPacketSend(packet));
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    client.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      this.lastSocketError = typeof code === 'string' || typeof code === 'number' ? String(code) : err.message;
    });
    client.on('close', () => this.onClose());
    const errorsPacket: SentPacket = { kind: 'subscribe', deviceId: this.options.gatewayId, topic: this.errors };
    const early = this.options.subscribeBeforeConnack ? this.subscribeBehindConnect(client, errorsPacket) : undefined;

    await this.waitForConnack(client);
    this.connectMs = Date.now() - started;
    this.connected = true;
    this.enter('subscribing');
    if (early === undefined) await this.subscribe(this.errors, 0, errorsPacket);
    else await this.earlySubscription(early, errorsPacket);
    this.enter('attaching');
    this.log.debug('gateway session open', { gatewayId: this.options.gatewayId, connectMs: this.connectMs });
  }

  /**
   * Attaches every distinct device once, all attaches in flight together. Each ends in its PUBACK, an error
   * naming it (GATEWAY_ATTACHMENT_ERROR), a timeout, or the end of the session. A device attached earlier in this
   * session is not attached again.
   */
  async attach(requests: readonly AttachRequest[]): Promise<Map<string, AttachResult>> {
    this.assertWorking('attach');
    this.enter('attaching');
    const distinct = new Map<string, AttachRequest>();
    for (const r of requests) distinct.set(r.deviceId, r);
    const fresh: DeviceEntry[] = [];
    for (const r of distinct.values()) {
      if (this.devices.has(r.deviceId)) continue;
      // The attach payload carries the device's JWT for DEVICE_AUTH_TOKEN gateways; `{}` otherwise, which
      // association-only gateways accept (docs/protocol.md §3.2).
      const payload = Buffer.from(r.token === undefined ? '{}' : JSON.stringify({ authorization: r.token }));
      const topic = attachTopic(r.deviceId);
      const flight = this.sendQos1(topic, payload, this.options.attachTimeoutMs, { kind: 'attach', deviceId: r.deviceId, topic });
      const entry: DeviceEntry = { deviceId: r.deviceId, status: 'attaching', failure: undefined, attachRefused: false, attach: flight, detach: undefined, barrier: false };
      this.devices.set(r.deviceId, entry);
      fresh.push(entry);
    }
    await Promise.all(fresh.map((d) => d.attach.done));
    for (const d of fresh) {
      if (d.status !== 'attaching') continue; // an errors-topic message already decided
      const end = d.attach.end!;
      if (end.kind === 'acked') d.status = 'attached';
      else this.failDevice(d, this.attachFailure(d, end));
    }
    const results = new Map<string, AttachResult>();
    for (const id of distinct.keys()) results.set(id, this.attachResult(this.devices.get(id)!));
    return results;
  }

  /**
   * Publishes records at QoS 1 in plan order (lib/gateway/publish-plan.ts: queue order, state coalesced), with at
   * most `publishWindow` unacknowledged. Records of a device that is not attached are not sent. Resolves when every
   * record has its PUBACK, an error, a timeout, or the session stopped; the verdict comes with `close()`.
   */
  async publish(requests: readonly PublishRequest[]): Promise<void> {
    this.assertWorking('publish');
    this.enter('publishing');
    const units: Unit[] = [];
    for (const p of planPublishes(requests)) {
      const unit: Unit = { kind: 'publish', unit: this.units.length, keys: p.keys, deviceId: p.deviceId, topic: p.topic, payload: p.payload, flight: undefined, sent: false, failure: undefined };
      this.units.push(unit);
      units.push(unit);
    }
    await this.sendWindowed(units);
  }

  /**
   * Subscribes to a device's config topic in this session; `onMessage` receives every config the bridge sends
   * (the latest version right after the subscription, then each new one, docs/protocol.md §2). QoS 0 by
   * default: a QoS 1 subscription would acknowledge the config on the device's behalf, and set its
   * `deviceAckTime`, before the device has seen it.
   *
   * The gateway's own ID is accepted without an attach: the gateway is a device of the registry in its own right
   * and may always subscribe to its own topics (ClearBlade's gateway sample subscribes to
   * `/devices/{gateway}/config` beside its devices' config topics).
   */
  async subscribeConfig(deviceId: string, onMessage: (payload: Buffer) => void, qos: 0 | 1 = 0): Promise<void> {
    this.assertWorking('subscribe');
    const device = this.devices.get(deviceId);
    if (deviceId !== this.options.gatewayId && (device === undefined || device.status !== 'attached')) {
      const failure = device?.failure ?? { code: 'ERR_DEVICE_NOT_FOUND' as const, reason: `${deviceId} is not attached in this session` };
      throw new RelayError(failure.code, failure.reason);
    }
    const topic = configTopic(deviceId);
    // Registered before subscribing: the bridge sends the current config right behind the SUBACK.
    this.configHandlers.set(topic, onMessage);
    try {
      await this.subscribe(topic, qos, { kind: 'subscribe', deviceId, topic });
    } catch (e) {
      this.configHandlers.delete(topic);
      throw e;
    }
  }

  /** Why the session stopped working, once it has. */
  get stoppedBy(): SessionFailure | undefined {
    return this.stopped;
  }

  /** Resolves when the session stops working (lost connection, deadline, failure); for waits of its own callers. */
  whenStopped(): Promise<SessionFailure> {
    return this.stopSignal;
  }

  /**
   * The one way out: detach every device this session attached (all in flight), take their acknowledgements as
   * the final barrier, disconnect, and report. Bounded by the deadline; safe to call more than once.
   */
  close(): Promise<SessionReport> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  // ---------------------------------------------------------------------------------------------------------------

  private async shutDown(): Promise<SessionReport> {
    clearTimeout(this.deadlineTimer);
    const client = this.client;
    if (client !== undefined && this.connected && !this.lost) {
      this.enter('detaching');
      const budget = Math.min(this.options.closeTimeoutMs, this.options.deadline - Date.now());
      const toDetach = [...this.devices.values()].filter((d) => !d.attachRefused);
      if (budget > 0 && toDetach.length > 0) {
        for (const d of toDetach) {
          const topic = detachTopic(d.deviceId);
          d.detach = this.sendQos1(topic, Buffer.from('{}'), budget, { kind: 'detach', deviceId: d.deviceId, topic });
        }
        await Promise.all(toDetach.map((d) => d.detach!.done));
        for (const d of toDetach) {
          // Any answer to the detach, a PUBACK or an error naming it, comes after every answer to the device's
          // earlier packets.
          const end = d.detach!.end!;
          if (end.kind === 'acked' || end.kind === 'refused' || d.detach!.ackedAt !== undefined) d.barrier = true;
        }
      } else if (toDetach.length > 0) {
        this.log.warn('no time left to detach', { gatewayId: this.options.gatewayId, devices: toDetach.length });
      }
    }
    // Whatever still waits (nothing, when `work` awaited its calls) ends with the session.
    this.settlePending(this.stopped ?? { code: 'ERR_DEADLINE', reason: 'the session closed before this was answered' });
    await this.disconnect();
    this.enter('closed');
    return this.report();
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    if (client === undefined) return;
    this.disconnecting = true;
    // mqtt.js would wait for every unacknowledged packet before sending DISCONNECT; they are settled already.
    for (const id of Object.keys(client.outgoing)) client.removeOutgoingMessage(Number(id));
    const budget = Math.max(0, Math.min(this.options.closeTimeoutMs, this.options.deadline - Date.now()));
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        client.stream?.destroy();
        resolve();
      }, budget);
      if (!this.connected || this.lost) {
        clearTimeout(force);
        client.end(true, () => resolve());
        return;
      }
      const done = (): void => {
        clearTimeout(force);
        resolve();
      };
      // DISCONNECT has no answer (MQTT 3.1.1 §3.14) and the detach acknowledgements were the final barrier, so the
      // session is over once DISCONNECT and our FIN are flushed ('finish'). mqtt.js calls back only on 'close',
      // after the bridge's FIN: one more round trip for nothing.
      client.stream?.once('finish', done);
      client.end(false, done);
    });
  }

  /** Rejects once the session stops (the deadline came) before it has connected. */
  private stoppedWhileOpening(): Promise<never> {
    const stopped = this.stopSignal.then((f): never => {
      throw new RelayError(f.code, f.reason);
    });
    // Awaited only while opening; a stop after that is no failure of this promise's reader.
    stopped.catch(() => undefined);
    return stopped;
  }

  private armDeadline(): void {
    const fire = (): void => this.stop('ERR_DEADLINE', 'the invocation deadline came before this was confirmed');
    const wait = this.workDeadline - Date.now();
    if (wait <= 0) fire();
    else this.deadlineTimer = setTimeout(fire, wait);
  }

  private waitForConnack(client: MqttClient): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const bound = Math.min(this.options.connectTimeoutMs, this.workDeadline - Date.now());
      const byDeadline = bound < this.options.connectTimeoutMs;
      const cleanup = (): void => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
        client.off('close', onClose);
      };
      const onConnect = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(classifyConnectError(err, this.where));
      };
      const onClose = (): void => {
        cleanup();
        const detail = this.lastSocketError === undefined ? '' : ` (${this.lastSocketError})`;
        reject(new RelayError('ERR_CONNECTION_LOST', `${this.where} closed the connection before CONNACK${detail}`));
      };
      const timer = setTimeout(
        () => {
          cleanup();
          reject(
            byDeadline
              ? new RelayError('ERR_DEADLINE', `the invocation deadline came while connecting to ${this.where}`)
              : new RelayError(
                  'ERR_CONNECT_TIMEOUT',
                  `${this.where} sent no CONNACK within ${this.options.connectTimeoutMs} ms; ${CHECK_HOST_AND_PORT}, or raise RELAY_CONNECT_TIMEOUT_MS`,
                ),
          );
        },
        Math.max(0, bound),
      );
      client.on('connect', onConnect);
      client.on('error', onError);
      client.on('close', onClose);
    });
  }

  /**
   * Writes the SUBSCRIBE to the errors topic right behind the CONNECT, without waiting for the CONNACK: MQTT 3.1.1
   * lets a client send further packets at once (§3.1.4), and a server that refuses the CONNECT must not process
   * what follows it [MQTT-3.1.4-5]. The subscription still comes before every attach, on the wire and in the
   * bridge's processing, since the attaches wait for its SUBACK (docs/design.md rule 4); what goes is the round trip
   * the session spent between CONNACK and SUBACK.
   *
   * mqtt.js holds every packet but CONNECT until the CONNACK, so this one is written to the socket directly, with
   * a packet ID from the client's own provider; its SUBACK, which mqtt.js ignores (it has no subscribe pending
   * under that ID), is read from `packetreceive`.
   */
  private subscribeBehindConnect(client: MqttClient, packet: SentPacket): { flight: Flight; settled: Promise<void> } {
    const topic = packet.topic;
    const messageId = client.messageIdProvider.allocate() ?? 1;
    // The wait covers the CONNACK too, which has its own, shorter bound.
    const flight = new Flight(this.clock, Math.min(this.options.connectTimeoutMs + this.options.attachTimeoutMs, this.options.deadline - Date.now()));
    flight.packetId = messageId;
    this.byPacketId.set(messageId, packet);
    this.otherPackets.push(packet);
    this.subscribeFlights.set(packet, flight);
    const onPacket = (received: Packet): void => {
      if (received.cmd !== 'suback' || received.messageId !== messageId) return;
      client.off('packetreceive', onPacket);
      this.settleSubscription(flight, topic, received.granted[0] === 128);
    };
    client.on('packetreceive', onPacket);
    client.stream.write(generatePacket({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos: 0 }] }));
    const settled = this.subscriptionSettled(flight, topic);
    // Awaited only after the CONNACK; a failed connection also ends this wait, and must not leave it unhandled.
    settled.catch(() => undefined);
    return { flight, settled };
  }

  /**
   * Waits for the SUBACK of the SUBSCRIBE sent behind the CONNECT. Whether a bridge reads packets sent before its
   * CONNACK is not documented for ClearBlade, and a broker may drop them: if no SUBACK has come `EARLY_SUBACK_GRACE_MS`
   * after the CONNACK, the SUBSCRIBE goes again, through mqtt.js, and the first SUBACK of either ends the wait. Two
   * identical subscriptions are one: the second replaces the first without interrupting it (MQTT 3.1.1 §3.8.4).
   */
  private async earlySubscription(early: { flight: Flight; settled: Promise<void> }, packet: SentPacket): Promise<void> {
    const { flight } = early;
    if (flight.end === undefined) {
      const again = setTimeout(() => {
        if (flight.end !== undefined || this.stopped !== undefined) return;
        this.log.debug('no SUBACK behind the CONNACK: subscribing again', { gatewayId: this.options.gatewayId });
        this.sendSubscribe(flight, packet, 0);
      }, EARLY_SUBACK_GRACE_MS);
      void flight.done.then(() => clearTimeout(again));
    }
    await early.settled;
  }

  private subscribe(topic: string, qos: 0 | 1, packet: SentPacket): Promise<void> {
    const flight = new Flight(this.clock, Math.min(this.options.attachTimeoutMs, this.options.deadline - Date.now()));
    this.subscribeFlights.set(packet, flight);
    this.otherPackets.push(packet);
    this.sendSubscribe(flight, packet, qos);
    return this.subscriptionSettled(flight, topic);
  }

  /** Sends a SUBSCRIBE through mqtt.js; its SUBACK settles `flight` (a new one, or the errors topic's sent again). */
  private sendSubscribe(flight: Flight, packet: SentPacket, qos: 0 | 1): void {
    this.subscribing = { flight, packet };
    this.client!.subscribe(packet.topic, { qos }, (_err, _granted, suback) => {
      // The SUBACK itself decides: 0x80 is its failure code in MQTT 3.1.1 (§3.9.3). mqtt.js turns a refusal into an
      // error without the code, but passes the packet along. No SUBACK means the client is shutting down, and the
      // session's own stop reason settles the flight.
      if (suback?.cmd === 'suback') this.settleSubscription(flight, packet.topic, suback.granted[0] === 128);
    });
    this.subscribing = undefined;
  }

  private settleSubscription(flight: Flight, topic: string, refused: boolean): void {
    if (refused) {
      flight.settle({ kind: 'refused', code: 'ERR_SUBSCRIBE_REJECTED', reason: `the bridge refused the subscription to ${topic} (SUBACK 0x80)` });
      return;
    }
    flight.ackedAt = Date.now();
    flight.settle({ kind: 'acked' });
  }

  private subscriptionSettled(flight: Flight, topic: string): Promise<void> {
    return flight.done.then((end) => {
      switch (end.kind) {
        case 'acked':
          return;
        case 'refused':
        case 'stopped':
          throw new RelayError(end.code, end.reason);
        case 'timeout':
          throw new RelayError('ERR_SUBACK_TIMEOUT', `no SUBACK for ${topic} within ${this.options.attachTimeoutMs} ms`);
      }
    });
  }

  /** Sends one QoS 1 PUBLISH; the flight ends with its PUBACK, an error naming it, the timeout, or a stop. */
  private sendQos1(topic: string, payload: Buffer, timeoutMs: number, packet: SentPacket, onEnd?: (end: FlightEnd) => void): Flight {
    const client = this.client!;
    const flight = new Flight(this.clock, timeoutMs, onEnd);
    if (this.stopped !== undefined && packet.kind !== 'detach') {
      flight.settle({ kind: 'stopped', code: this.stopped.code, reason: this.stopped.reason });
      return flight;
    }
    if (packet.kind === 'publish') this.units[packet.unit]!.sent = true;
    else this.otherPackets.push(packet);
    this.sendingFlight = flight;
    this.sendingPacket = packet;
    this.sendingPayload = payload;
    client.publish(topic, payload, { qos: 1 }, (err) => {
      // An error here only means mqtt.js dropped the packet while closing; the stop reason already settled it.
      if (err !== null && err !== undefined) return;
      flight.ackedAt ??= Date.now();
      flight.settle({ kind: 'acked' });
    });
    // Not written yet (mqtt.js queues while it replays its store or has no packet ID free): matched when it is.
    if (this.sendingFlight === flight) this.queuedSends.push({ flight, packet, payload });
    this.sendingFlight = this.sendingPacket = this.sendingPayload = undefined;
    return flight;
  }

  private sendWindowed(units: Unit[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let next = 0;
      let inFlight = 0;
      const fill = (): void => {
        while (inFlight < this.options.publishWindow && next < units.length) {
          const unit = units[next++]!;
          if (this.stopped !== undefined) continue; // reported with the stop reason
          const device = this.devices.get(unit.deviceId);
          if (device === undefined || device.status !== 'attached') {
            // Nothing is published for a device whose attach was not acknowledged (docs/design.md rule 2).
            unit.failure ??= device?.failure ?? { code: 'ERR_DEVICE_NOT_FOUND', reason: `${unit.deviceId} was not attached in this session` };
            continue;
          }
          if (unit.failure !== undefined) continue;
          inFlight++;
          this.maxInFlight = Math.max(this.maxInFlight, inFlight);
          unit.flight = this.sendQos1(unit.topic, unit.payload, this.options.pubackTimeoutMs, unit, onEnd);
        }
        if (inFlight === 0 && next >= units.length) resolve();
      };
      // One callback for every record of the call. A flight that ends while `fill` runs (the session stopped) only
      // frees its place; the loop goes on from there.
      let filling = false;
      const onEnd = (): void => {
        inFlight--;
        if (filling) return;
        filling = true;
        try {
          fill();
        } finally {
          filling = false;
        }
      };
      filling = true;
      try {
        fill();
      } finally {
        filling = false;
      }
    });
  }

  private onPacketSend(packet: Packet): void {
    if (packet.cmd === 'publish' && packet.qos === 1 && Buffer.isBuffer(packet.payload)) {
      if (packet.messageId === undefined) return;
      if (this.sendingFlight !== undefined && this.sendingPayload === packet.payload) {
        this.sendingFlight.packetId = packet.messageId;
        this.byPacketId.set(packet.messageId, this.sendingPacket!);
        this.sendingFlight = undefined;
        return;
      }
      // Recognised by the identity of its payload buffer, the first queued one first (mqtt.js keeps their order).
      const i = this.queuedSends.findIndex((q) => q.payload === packet.payload);
      if (i < 0) return;
      const waiting = this.queuedSends.splice(i, 1)[0]!;
      waiting.flight.packetId = packet.messageId;
      this.byPacketId.set(packet.messageId, waiting.packet);
    } else if (packet.cmd === 'subscribe' && this.subscribing !== undefined && packet.messageId !== undefined) {
      // mqtt.js writes a SUBSCRIBE synchronously inside subscribe() once connected.
      this.subscribing.flight.packetId = packet.messageId;
      this.byPacketId.set(packet.messageId, this.subscribing.packet);
    }
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.errors) {
      this.onGatewayError(payload);
      return;
    }
    const handler = this.configHandlers.get(topic);
    if (handler !== undefined) {
      try {
        handler(payload);
      } catch (e) {
        this.log.warn('config handler threw', { gatewayId: this.options.gatewayId, topic, error: (e as Error).message });
      }
    }
  }

  private onGatewayError(payload: Buffer): void {
    const error = parseGatewayError(payload);
    if (error === undefined) {
      this.uncorrelated++;
      this.log.warn('unreadable message on the errors topic', { gatewayId: this.options.gatewayId, bytes: payload.byteLength });
      return;
    }
    this.gatewayErrors.push(error);
    const code = GATEWAY_ERROR_CODES[error.errorType];
    const reason = gatewayErrorReason(error);
    const match = correlateGatewayError(error, { byPacketId: this.byPacketId, byTopic: this.packetsOnTopic(error.topic), devices: new Set(this.devices.keys()) });
    this.log.info('gateway error', {
      gatewayId: this.options.gatewayId,
      errorType: error.rawErrorType,
      deviceId: error.deviceId,
      packetId: error.packetId,
      correlatedBy: match.by,
    });
    switch (match.by) {
      case 'packet':
      case 'topic':
        for (const packet of match.packets) this.applyToPacket(packet, code, reason);
        return;
      case 'device': {
        const device = this.devices.get(match.deviceId)!;
        // Nothing tells which of the device's packets the bridge means, so every one of them is suspect.
        if (device.barrier) return;
        this.failDevice(device, { code, reason });
        device.attach.settle({ kind: 'refused', code, reason });
        if (code === 'ERR_ATTACH_REJECTED' && device.status === 'failed' && device.attach.ackedAt === undefined) device.attachRefused = true;
        for (const u of this.units) {
          if (u.deviceId === match.deviceId) {
            u.failure ??= { code, reason };
            u.flight?.settle({ kind: 'refused', code, reason });
          }
        }
        for (const [packet, flight] of this.subscribeFlights) if (packet.deviceId === match.deviceId) flight.settle({ kind: 'refused', code, reason });
        return;
      }
      case 'none':
        this.uncorrelated++;
        return;
    }
  }

  /**
   * What this session sent to `topic`, in sending order, as the correlation's topic index. Built only when an error
   * arrives (rare), instead of a list entry kept per PUBLISH for the whole session.
   */
  private packetsOnTopic(topic: string | undefined): Map<string, SentPacket[]> {
    const index = new Map<string, SentPacket[]>();
    if (topic === undefined) return index;
    const list: SentPacket[] = [];
    for (const p of this.otherPackets) if (p.topic === topic) list.push(p);
    for (const u of this.units) if (u.sent && u.topic === topic) list.push(u);
    if (list.length > 0) index.set(topic, list);
    return index;
  }

  private applyToPacket(packet: SentPacket, code: RelayErrorCode, reason: string): void {
    const device = this.devices.get(packet.deviceId);
    switch (packet.kind) {
      case 'attach': {
        if (device === undefined || device.barrier) return;
        // The bridge may acknowledge a failed attach as well; the error wins either way.
        if (device.attach.end === undefined || device.attach.ackedAt === undefined) device.attachRefused = true;
        device.attach.settle({ kind: 'refused', code, reason });
        this.failDevice(device, { code, reason });
        return;
      }
      case 'publish': {
        const unit = this.units[packet.unit];
        if (unit === undefined || device?.barrier === true) return;
        unit.failure ??= { code, reason };
        unit.flight?.settle({ kind: 'refused', code, reason });
        // A device the bridge no longer has attached gets nothing more from this session.
        if (device !== undefined && (code === 'ERR_DEVICE_NOT_FOUND' || code === 'ERR_DEVICE_DETACHED')) this.failDevice(device, { code, reason });
        return;
      }
      case 'detach':
        device?.detach?.settle({ kind: 'refused', code, reason });
        return;
      case 'subscribe':
        this.subscribeFlights.get(packet)?.settle({ kind: 'refused', code, reason });
        return;
    }
  }

  /** Marks a device failed: its queued records are not sent, and those not yet answered stop waiting. */
  private failDevice(device: DeviceEntry, failure: { code: RelayErrorCode; reason: string }): void {
    device.failure ??= failure;
    device.status = 'failed';
    for (const u of this.units) {
      if (u.deviceId !== device.deviceId) continue;
      if (u.flight === undefined) u.failure ??= device.failure;
    }
  }

  private attachFailure(device: DeviceEntry, end: FlightEnd): { code: RelayErrorCode; reason: string } {
    switch (end.kind) {
      case 'refused':
      case 'stopped':
        return { code: end.code, reason: end.reason };
      case 'timeout':
        return { code: 'ERR_ATTACH_TIMEOUT', reason: `the attach of ${device.deviceId} was neither acknowledged nor refused within ${this.options.attachTimeoutMs} ms` };
      case 'acked':
        return { code: 'ERR_INTERNAL', reason: 'acknowledged attach reported as failed' };
    }
  }

  private attachResult(device: DeviceEntry): AttachResult {
    if (device.status === 'attached') return { ok: true, latencyMs: (device.attach.ackedAt ?? Date.now()) - device.attach.sentAt };
    const failure = device.failure ?? { code: 'ERR_INTERNAL' as const, reason: 'attach left undecided' };
    return { ok: false, code: failure.code, reason: failure.reason };
  }

  private onClose(): void {
    if (!this.connected || this.disconnecting) return;
    this.lost = true;
    this.connected = false;
    const failure = this.classifyLoss();
    this.log.warn('connection to the bridge lost', { gatewayId: this.options.gatewayId, phase: this.currentPhase, code: failure.code });
    this.stop(failure.code, failure.reason);
  }

  /**
   * Why the bridge closed the connection. MQTT 3.1.1 gives a server no way to say why, so this uses what evidence
   * there is: an expired JWT (the bridge drops the connection once `exp` plus its skew has passed, §1.3).
   */
  private classifyLoss(): { code: RelayErrorCode; reason: string } {
    const during = `while ${this.currentPhase}`;
    const socket = this.lastSocketError === undefined ? '' : ` (${this.lastSocketError})`;
    if (this.jwtExpiresAt !== undefined && Date.now() >= this.jwtExpiresAt) {
      return { code: 'ERR_CONNECTION_LOST', reason: `the bridge closed the connection ${during}, after the gateway JWT expired${socket}` };
    }
    return { code: 'ERR_CONNECTION_LOST', reason: `the bridge closed the connection ${during}${socket}` };
  }

  /** Stops all work: every flight still waiting ends with this reason, and no new attach or publish starts. */
  private stop(code: RelayErrorCode, reason: string): void {
    if (this.stopped === undefined) {
      this.stopped = { code, reason, phase: this.currentPhase };
      this.signalStop(this.stopped);
      if (code === 'ERR_DEADLINE' && this.currentPhase !== 'detaching') {
        this.log.warn('deadline reached: stopping the session', { gatewayId: this.options.gatewayId, phase: this.currentPhase });
      }
    }
    this.settlePending(this.stopped);
  }

  private settlePending(why: { code: RelayErrorCode; reason: string }): void {
    for (const f of [...this.clock.pending]) f.settle({ kind: 'stopped', code: why.code, reason: why.reason });
  }

  private noteFailure(e: unknown): void {
    if (this.stopped !== undefined && isRelayError(e) && e.code === this.stopped.code) return;
    const failure = isRelayError(e) ? { code: e.code, reason: e.message } : { code: 'ERR_INTERNAL' as const, reason: `unexpected: ${(e as Error)?.message ?? String(e)}` };
    if (this.stopped === undefined) {
      this.stopped = { ...failure, phase: this.currentPhase };
      this.signalStop(this.stopped);
    }
  }

  private assertWorking(what: string): void {
    if (this.stopped !== undefined) throw new RelayError(this.stopped.code, this.stopped.reason);
    if (!this.connected || this.closing !== undefined) throw new RelayError('ERR_INTERNAL', `cannot ${what}: the session is ${this.currentPhase}`);
  }

  private enter(phase: SessionPhase): void {
    if (this.currentPhase === phase) return;
    this.currentPhase = phase;
    this.phaseHistory.push(phase);
  }

  private report(): SessionReport {
    const records = new Map<string, RecordResult>();
    const publishLatenciesMs: number[] = [];
    for (const unit of this.units) {
      const result = this.unitResult(unit);
      if (result.status === 'confirmed') publishLatenciesMs.push(result.latencyMs);
      const keys = unit.keys;
      const newest = keys[0]!;
      records.set(newest, result);
      for (let i = 1; i < keys.length; i++) records.set(keys[i]!, { ...result, coalescedInto: newest });
    }
    const attachments = new Map<string, AttachResult>();
    const attachLatenciesMs: number[] = [];
    for (const d of this.devices.values()) {
      const r = this.attachResult(d);
      attachments.set(d.deviceId, r);
      if (r.ok) attachLatenciesMs.push(r.latencyMs);
    }
    return {
      gatewayId: this.options.gatewayId,
      records,
      attachments,
      failure: this.stopped,
      phases: [...this.phaseHistory],
      gatewayErrors: [...this.gatewayErrors],
      uncorrelatedErrors: this.uncorrelated,
      connectMs: this.connectMs,
      attachLatenciesMs,
      publishLatenciesMs,
      maxPublishesInFlight: this.maxInFlight,
    };
  }

  private unitResult(unit: Unit): RecordResult {
    const deviceId = unit.deviceId;
    if (unit.failure !== undefined) return failedResult(deviceId, unit.failure);
    const flight = unit.flight;
    if (flight === undefined) return failedResult(deviceId, this.stopped ?? { code: 'ERR_INTERNAL', reason: 'record never sent' });
    if (flight.ackedAt === undefined) {
      const end = flight.end;
      if (end?.kind === 'timeout') return failedResult(deviceId, { code: 'ERR_PUBACK_TIMEOUT', reason: `no PUBACK within ${this.options.pubackTimeoutMs} ms` });
      if (end?.kind === 'refused' || end?.kind === 'stopped') return failedResult(deviceId, end);
      return failedResult(deviceId, this.stopped ?? { code: 'ERR_INTERNAL', reason: 'publish left undecided' });
    }
    const device = this.devices.get(deviceId);
    if (device === undefined || !device.barrier) return failedResult(deviceId, this.barrierFailure(device));
    return { status: 'confirmed', deviceId, latencyMs: flight.ackedAt - flight.sentAt };
  }

  /** Why an acknowledged record still goes back: the final barrier for its device never came. */
  private barrierFailure(device: DeviceEntry | undefined): { code: RelayErrorCode; reason: string } {
    const id = device?.deviceId ?? 'the device';
    if (this.lost && this.stopped !== undefined) {
      return { code: this.stopped.code, reason: `${this.stopped.reason}; the detach of ${id} was never answered, so a late error could not be ruled out` };
    }
    if (device?.detach === undefined) return { code: 'ERR_DEADLINE', reason: `no time was left to detach ${id} and close the session cleanly` };
    return { code: 'ERR_PUBACK_TIMEOUT', reason: `the detach of ${id} (the session's final barrier) was not acknowledged in time` };
  }
}

/**
 * How a socket failed before mqtt.js took it: `failed` rejects with the classified error when it emits `error`, or
 * with ERR_CONNECTION_LOST when it closes. Until `release()`, these listeners are the socket's error handlers, so an
 * early TLS failure ends the session at once instead of after the JWT.
 */
function failureOf(socket: TLSSocket, where: string): { failed: Promise<never>; release: () => void } {
  let fail!: (e: RelayError) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  // The first of the two decides: a close after an error does not change the error.
  const onError = (err: Error): void => fail(classifyConnectError(err, where));
  const onClose = (): void => fail(new RelayError('ERR_CONNECTION_LOST', `${where} closed the connection before CONNECT`));
  socket.on('error', onError);
  socket.on('close', onClose);
  return {
    failed,
    release: () => {
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
}

/** A failed record's result (a module function, not a closure made for every record of the report). */
function failedResult(deviceId: string, f: { code: RelayErrorCode; reason: string }): RecordResult {
  return { status: 'failed', deviceId, code: f.code, reason: f.reason };
}

function withoutUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** `exp` of a JWT in ms, read without verifying (the session only uses it to explain a dropped connection). */
function jwtExpiry(jwt: string): number | undefined {
  const part = jwt.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
