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
import type { TLSSocket } from 'node:tls';
import { isRelayError, RelayError, type RelayErrorCode } from '../errors.js';
import { parseGatewayError } from '../iotcore/gateway-error.js';
import { attachTopic, configTopic, detachTopic, errorsTopic, type RegistryPath } from '../iotcore/topics.js';
import { CHECK_HOST_AND_PORT, classifyConnectError, connackRefusal, gatewayConnectFields, openGatewaySocket } from './connect-options.js';
import type { SentPacket } from './error-correlation.js';
import { Flight, FlightClock, type FlightEnd } from './flights.js';
import { LinkClosedError, MqttLink, type Connack, type LinkClose } from './mqtt-link.js';
import { planPublishes, type PublishRequest } from './publish-plan.js';
import { SessionLedger, type DeviceEntry, type Failure, type Unit } from './session-ledger.js';
import { attachResult, sessionReport, type AttachResult, type SessionFailure, type SessionReport } from './session-report.js';
import { SessionStateMachine, type SessionPhase } from './session-state.js';

export type { PublishRequest } from './publish-plan.js';
export type { AttachResult, RecordResult, SessionFailure, SessionReport } from './session-report.js';
export type { SessionPhase } from './session-state.js';

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

const noLog: SessionLog = { debug() {}, info() {}, warn() {} };

export class GatewaySession {
  private readonly options: GatewaySessionOptions & typeof DEFAULTS;
  private readonly log: SessionLog;
  private readonly where: string;
  private readonly errors: string;
  private readonly workDeadline: number;
  private readonly state = new SessionStateMachine();
  private readonly clock = new FlightClock();
  private readonly ledger = new SessionLedger();
  private readonly configHandlers = new Map<string, (payload: Buffer) => void>();
  private link: MqttLink | undefined;
  /** From the JWT's `exp`, once `open()` has it. */
  private jwtExpiresAt: number | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Why work stopped; set once. */
  private stopped: SessionFailure | undefined;
  /** How the bridge ended the connection, if it did before the session closed it. */
  private lostBy: LinkClose | undefined;
  private connectMs: number | undefined;
  private maxInFlight = 0;
  private closing: Promise<SessionReport> | undefined;
  private readonly stopSignal: Promise<SessionFailure>;
  private signalStop!: (failure: SessionFailure) => void;

  constructor(options: GatewaySessionOptions) {
    this.options = { ...DEFAULTS, ...withoutUndefined(options) } as GatewaySessionOptions & typeof DEFAULTS;
    this.log = options.log ?? noLog;
    this.where = `${options.host}:${options.port}`;
    this.errors = errorsTopic(options.gatewayId);
    // Leave the close its budget, but never more than half of what the session has.
    const reserve = Math.min(this.options.closeTimeoutMs, Math.max(0, (options.deadline - Date.now()) / 2));
    this.workDeadline = options.deadline - reserve;
    this.stopSignal = new Promise((resolve) => (this.signalStop = resolve));
  }

  get phase(): SessionPhase {
    return this.state.phase;
  }

  get gatewayId(): string {
    return this.options.gatewayId;
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
    if (this.state.state !== 'idle') throw new RelayError('ERR_INTERNAL', 'a gateway session opens once');
    this.state.to('connecting');
    this.armDeadline();
    // Past the deadline already: not even a TCP connection.
    if (this.stopped !== undefined) throw new RelayError(this.stopped.code, this.stopped.reason);
    const started = Date.now();
    // TCP and TLS first: their round trips run while the JWT is made, and the link gets the socket with it.
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
    // The link listens to the socket from here on.
    socketFailure.release();
    this.jwtExpiresAt = jwtExpiry(jwt);
    const link = new MqttLink(socket, { onMessage: (topic, payload) => this.onMessage(topic, payload), onClose: (why) => this.onLinkClose(why) });
    this.link = link;
    const connack = link.connect(gatewayConnectFields({ registry: this.options.registry, gatewayId: this.options.gatewayId, jwt }));
    const errorsPacket: SentPacket = { kind: 'subscribe', deviceId: this.options.gatewayId, topic: this.errors };
    // The errors-topic SUBSCRIBE right behind the CONNECT: MQTT 3.1.1 lets a client send further packets at once
    // (§3.1.4), and a server that refuses the CONNECT must not process what follows it [MQTT-3.1.4-5]. The attaches
    // still wait for its SUBACK (docs/design.md rule 4); what goes is the round trip between CONNACK and SUBACK.
    const early = this.options.subscribeBeforeConnack
      ? this.sendSubscribe(errorsPacket, 0, Math.min(this.options.connectTimeoutMs + this.options.attachTimeoutMs, this.options.deadline - Date.now()))
      : undefined;
    early?.catch(() => undefined); // awaited after the CONNACK; a failed connection ends this wait too
    await this.waitForConnack(connack);
    this.connectMs = Date.now() - started;
    this.state.to('subscribing');
    await (early === undefined ? this.subscribe(errorsPacket, 0) : this.resubscribeIfDropped(early, errorsPacket));
    this.state.to('attaching');
    this.log.debug('gateway session open', { gatewayId: this.options.gatewayId, connectMs: this.connectMs });
  }

  /**
   * Attaches every distinct device once, all attaches in flight together. Each ends in its PUBACK, an error
   * naming it (GATEWAY_ATTACHMENT_ERROR), a timeout, or the end of the session. A device attached earlier in this
   * session is not attached again.
   */
  async attach(requests: readonly AttachRequest[]): Promise<Map<string, AttachResult>> {
    this.assertWorking('attach');
    this.state.to('attaching');
    const distinct = new Map<string, AttachRequest>();
    for (const r of requests) distinct.set(r.deviceId, r);
    const fresh: DeviceEntry[] = [];
    for (const r of distinct.values()) {
      if (this.ledger.devices.has(r.deviceId)) continue;
      // The attach payload carries the device's JWT for DEVICE_AUTH_TOKEN gateways; `{}` otherwise, which
      // association-only gateways accept (docs/protocol.md §3.2).
      const payload = Buffer.from(r.token === undefined ? '{}' : JSON.stringify({ authorization: r.token }));
      const topic = attachTopic(r.deviceId);
      const entry: DeviceEntry = { deviceId: r.deviceId, status: 'attaching', failure: undefined, attachRefused: false, attach: undefined!, detach: undefined, barrier: false };
      this.ledger.devices.set(r.deviceId, entry);
      entry.attach = this.sendQos1(topic, payload, this.options.attachTimeoutMs, { kind: 'attach', deviceId: r.deviceId, topic });
      fresh.push(entry);
    }
    await Promise.all(fresh.map((d) => d.attach.done));
    for (const d of fresh) {
      if (d.status !== 'attaching') continue; // an errors-topic message already decided
      const end = d.attach.end!;
      if (end.kind === 'acked') d.status = 'attached';
      else this.ledger.failDevice(d, this.attachFailure(d, end));
    }
    const results = new Map<string, AttachResult>();
    for (const id of distinct.keys()) results.set(id, attachResult(this.ledger.devices.get(id)!));
    return results;
  }

  /**
   * Publishes records at QoS 1 in plan order (lib/gateway/publish-plan.ts: queue order, state coalesced), with at
   * most `publishWindow` unacknowledged. Records of a device that is not attached are not sent. Resolves when every
   * record has its PUBACK, an error, a timeout, or the session stopped; the verdict comes with `close()`.
   */
  async publish(requests: readonly PublishRequest[]): Promise<void> {
    this.assertWorking('publish');
    this.state.to('publishing');
    const units: Unit[] = [];
    for (const p of planPublishes(requests)) {
      const unit: Unit = { kind: 'publish', unit: this.ledger.units.length, keys: p.keys, deviceId: p.deviceId, topic: p.topic, payload: p.payload, flight: undefined, sent: false, failure: undefined };
      this.ledger.units.push(unit);
      units.push(unit);
    }
    await this.sendWindowed(units);
  }

  /**
   * Subscribes to a device's config topic in this session; `onMessage` receives every config the bridge sends
   * (the latest version right after the subscription, then each new one, docs/protocol.md §2). QoS 0 by
   * default: a QoS 1 subscription would acknowledge the config on the device's behalf, and set its
   * `deviceAckTime`, before the device has seen it. The gateway's own ID needs no attach: the gateway is a device
   * of the registry in its own right (ClearBlade's gateway sample subscribes to `/devices/{gateway}/config`).
   */
  async subscribeConfig(deviceId: string, onMessage: (payload: Buffer) => void, qos: 0 | 1 = 0): Promise<void> {
    this.assertWorking('subscribe');
    const device = this.ledger.devices.get(deviceId);
    if (deviceId !== this.options.gatewayId && (device === undefined || device.status !== 'attached')) {
      const failure = device?.failure ?? { code: 'ERR_DEVICE_NOT_FOUND' as const, reason: `${deviceId} is not attached in this session` };
      throw new RelayError(failure.code, failure.reason);
    }
    const topic = configTopic(deviceId);
    // Registered before subscribing: the bridge sends the current config right behind the SUBACK.
    this.configHandlers.set(topic, onMessage);
    try {
      await this.subscribe({ kind: 'subscribe', deviceId, topic }, qos);
    } catch (e) {
      this.configHandlers.delete(topic);
      throw e;
    }
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
    if (this.isWorking()) {
      this.state.to('detaching');
      await this.detachAll();
    }
    // Whatever still waits (nothing, when `work` awaited its calls) ends with the session.
    this.settlePending(this.stopped ?? { code: 'ERR_DEADLINE', reason: 'the session closed before this was answered' });
    this.state.to('disconnecting');
    const budget = Math.max(0, Math.min(this.options.closeTimeoutMs, this.options.deadline - Date.now()));
    // DISCONNECT has no answer (MQTT 3.1.1 §3.14) and the detach acknowledgements were the final barrier.
    await this.link?.end(budget);
    this.state.to('closed');
    const { gatewayId, pubackTimeoutMs } = this.options;
    const context = { gatewayId, pubackTimeoutMs, stopped: this.stopped, lost: this.lostBy !== undefined, phases: this.state.phases };
    return sessionReport(this.ledger, { ...context, connectMs: this.connectMs, maxPublishesInFlight: this.maxInFlight });
  }

  /** Detaches every device whose attach was not refused; any answer to a detach is the device's final barrier. */
  private async detachAll(): Promise<void> {
    const budget = Math.min(this.options.closeTimeoutMs, this.options.deadline - Date.now());
    const toDetach = [...this.ledger.devices.values()].filter((d) => !d.attachRefused);
    if (toDetach.length === 0) return;
    if (budget <= 0) {
      this.log.warn('no time left to detach', { gatewayId: this.options.gatewayId, devices: toDetach.length });
      return;
    }
    for (const d of toDetach) {
      const topic = detachTopic(d.deviceId);
      d.detach = this.sendQos1(topic, Buffer.from('{}'), budget, { kind: 'detach', deviceId: d.deviceId, topic });
    }
    await Promise.all(toDetach.map((d) => d.detach!.done));
    for (const d of toDetach) {
      // A PUBACK or an error naming the detach comes after every answer to the device's earlier packets.
      const end = d.detach!.end!;
      if (end.kind === 'acked' || end.kind === 'refused' || d.detach!.ackedAt !== undefined) d.barrier = true;
    }
  }

  /** Connected, subscribed or past it, and not closing: attaches, publishes and subscriptions may be sent. */
  private isWorking(): boolean {
    const s = this.state.state;
    return (s === 'subscribing' || s === 'attaching' || s === 'publishing') && this.link?.isOpen === true;
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

  /** The CONNACK, within the connect timeout and the deadline; a refusal or a closed connection is thrown explained. */
  private async waitForConnack(connack: Promise<Connack>): Promise<void> {
    const bound = Math.min(this.options.connectTimeoutMs, this.workDeadline - Date.now());
    const timeout =
      bound < this.options.connectTimeoutMs
        ? new RelayError('ERR_DEADLINE', `the invocation deadline came while connecting to ${this.where}`)
        : new RelayError('ERR_CONNECT_TIMEOUT', `${this.where} sent no CONNACK within ${this.options.connectTimeoutMs} ms; ${CHECK_HOST_AND_PORT}, or raise RELAY_CONNECT_TIMEOUT_MS`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = await Promise.race([connack, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timeout), Math.max(0, bound))))]);
      if (answer.returnCode !== 0) throw connackRefusal(answer.returnCode, this.where);
    } catch (e) {
      if (!(e instanceof LinkClosedError)) throw e;
      if (e.why.by === 'socket-error') throw classifyConnectError(e.why.error, this.where);
      throw new RelayError('ERR_CONNECTION_LOST', `${this.where} closed the connection before CONNACK${e.why.by === 'protocol' ? ` (${e.why.reason})` : ''}`);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Whether a bridge reads packets sent before its CONNACK is not documented for ClearBlade, and a broker may drop
   * them: if no SUBACK has come `EARLY_SUBACK_GRACE_MS` after the CONNACK, the SUBSCRIBE goes again, and the first
   * SUBACK of either ends the wait. Two identical subscriptions are one (MQTT 3.1.1 §3.8.4).
   */
  private async resubscribeIfDropped(early: Promise<void> & { flight: Flight }, packet: SentPacket): Promise<void> {
    const again = setTimeout(() => {
      if (early.flight.end !== undefined || this.stopped !== undefined || this.link?.isOpen !== true) return;
      this.log.debug('no SUBACK behind the CONNACK: subscribing again', { gatewayId: this.options.gatewayId });
      this.ledger.sent(packet, this.link.subscribe(packet.topic, 0, (granted) => this.settleSubscription(early.flight, packet.topic, granted)), early.flight);
    }, EARLY_SUBACK_GRACE_MS);
    try {
      await early;
    } finally {
      clearTimeout(again);
    }
  }

  private subscribe(packet: SentPacket, qos: 0 | 1): Promise<void> {
    return this.sendSubscribe(packet, qos, Math.min(this.options.attachTimeoutMs, this.options.deadline - Date.now()));
  }

  /** Sends a SUBSCRIBE; resolves on its SUBACK, and throws the refusal (SUBACK 0x80), timeout or stop. */
  private sendSubscribe(packet: SentPacket, qos: 0 | 1, timeoutMs: number): Promise<void> & { flight: Flight } {
    const flight = new Flight(this.clock, timeoutMs);
    const id = this.link!.subscribe(packet.topic, qos, (granted) => this.settleSubscription(flight, packet.topic, granted));
    this.ledger.sent(packet, id, flight);
    const settled = flight.done.then((end) => {
      if (end.kind === 'acked') return;
      if (end.kind === 'timeout') throw new RelayError('ERR_SUBACK_TIMEOUT', `no SUBACK for ${packet.topic} within ${this.options.attachTimeoutMs} ms`);
      throw new RelayError(end.code, end.reason);
    });
    return Object.assign(settled, { flight });
  }

  /** 0x80 is a SUBACK's failure code in MQTT 3.1.1 (§3.9.3). */
  private settleSubscription(flight: Flight, topic: string, granted: number): void {
    if (granted === 0x80) {
      flight.settle({ kind: 'refused', code: 'ERR_SUBSCRIBE_REJECTED', reason: `the bridge refused the subscription to ${topic} (SUBACK 0x80)` });
      return;
    }
    flight.ackedAt = Date.now();
    flight.settle({ kind: 'acked' });
  }

  /** Sends one QoS 1 PUBLISH; the flight ends with its PUBACK, an error naming it, the timeout, or a stop. */
  private sendQos1(topic: string, payload: Buffer, timeoutMs: number, packet: SentPacket, onEnd?: (end: FlightEnd) => void): Flight {
    const flight = new Flight(this.clock, timeoutMs, onEnd);
    const link = this.link!;
    if ((this.stopped !== undefined && packet.kind !== 'detach') || !link.isOpen) {
      const why = this.stopped ?? { code: 'ERR_CONNECTION_LOST' as const, reason: 'the connection to the bridge is closed' };
      flight.settle({ kind: 'stopped', code: why.code, reason: why.reason });
      return flight;
    }
    flight.packetId = link.publish(topic, payload, 1, () => {
      // A PUBACK that comes after the flight stopped waiting still counts as the acknowledgement.
      flight.ackedAt ??= Date.now();
      flight.settle({ kind: 'acked' });
    });
    this.ledger.sent(packet, flight.packetId, flight);
    return flight;
  }

  private sendWindowed(units: Unit[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let next = 0;
      let inFlight = 0;
      let filling = false;
      const fill = (): void => {
        while (inFlight < this.options.publishWindow && next < units.length) {
          const unit = units[next++]!;
          if (this.stopped !== undefined) continue; // reported with the stop reason
          const device = this.ledger.devices.get(unit.deviceId);
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
      const onEnd = (): void => {
        inFlight--;
        if (!filling) refill();
      };
      const refill = (): void => {
        filling = true;
        try {
          fill();
        } finally {
          filling = false;
        }
      };
      refill();
    });
  }

  private onMessage(topic: string, payload: Buffer): void {
    if (topic === this.errors) return this.onGatewayError(payload);
    const handler = this.configHandlers.get(topic);
    try {
      handler?.(payload);
    } catch (e) {
      this.log.warn('config handler threw', { gatewayId: this.options.gatewayId, topic, error: (e as Error).message });
    }
  }

  private onGatewayError(payload: Buffer): void {
    const error = parseGatewayError(payload);
    if (error === undefined) {
      this.ledger.uncorrelated++;
      this.log.warn('unreadable message on the errors topic', { gatewayId: this.options.gatewayId, bytes: payload.byteLength });
      return;
    }
    const match = this.ledger.applyGatewayError(error);
    const { rawErrorType: errorType, deviceId, packetId } = error;
    this.log.info('gateway error', { gatewayId: this.options.gatewayId, errorType, deviceId, packetId, correlatedBy: match.by });
  }

  private attachFailure(device: DeviceEntry, end: FlightEnd): Failure {
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

  /**
   * The bridge closed the connection, or it broke. Before the CONNACK, `waitForConnack` explains it; after, work
   * stops. MQTT 3.1.1 gives a server no way to say why, so the reason uses what evidence there is: an expired JWT (the
   * bridge drops the connection once `exp` plus its skew has passed, docs/protocol.md §1.3).
   */
  private onLinkClose(why: LinkClose): void {
    if (this.state.state === 'connecting') return;
    this.lostBy = why;
    const during = `while ${this.state.phase}`;
    const detail = why.by === 'socket-error' ? ` (${socketErrorText(why.error)})` : why.by === 'protocol' ? ` (${why.reason})` : '';
    const expired = this.jwtExpiresAt !== undefined && Date.now() >= this.jwtExpiresAt ? ', after the gateway JWT expired' : '';
    this.log.warn('connection to the bridge lost', { gatewayId: this.options.gatewayId, phase: this.state.phase, code: 'ERR_CONNECTION_LOST' });
    this.stop('ERR_CONNECTION_LOST', `the bridge closed the connection ${during}${expired}${detail}`);
  }

  /** Stops all work: every flight still waiting ends with this reason, and no new attach or publish starts. */
  private stop(code: RelayErrorCode, reason: string): void {
    if (this.stopped === undefined) {
      this.stopped = { code, reason, phase: this.state.phase };
      this.signalStop(this.stopped);
      if (code === 'ERR_DEADLINE' && this.state.state !== 'detaching') {
        this.log.warn('deadline reached: stopping the session', { gatewayId: this.options.gatewayId, phase: this.state.phase });
      }
    }
    this.settlePending(this.stopped);
  }

  private settlePending(why: Failure): void {
    for (const f of [...this.clock.pending]) f.settle({ kind: 'stopped', code: why.code, reason: why.reason });
  }

  private noteFailure(e: unknown): void {
    if (this.stopped !== undefined && isRelayError(e) && e.code === this.stopped.code) return;
    const failure = isRelayError(e) ? { code: e.code, reason: e.message } : { code: 'ERR_INTERNAL' as const, reason: `unexpected: ${(e as Error)?.message ?? String(e)}` };
    if (this.stopped === undefined) {
      this.stopped = { ...failure, phase: this.state.phase };
      this.signalStop(this.stopped);
    }
  }

  private assertWorking(what: string): void {
    if (this.stopped !== undefined) throw new RelayError(this.stopped.code, this.stopped.reason);
    if (!this.isWorking() || this.closing !== undefined) throw new RelayError('ERR_INTERNAL', `cannot ${what}: the session is ${this.state.phase}`);
  }
}

/**
 * How a socket failed before the link took it: `failed` rejects with the classified error when it emits `error`, or
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

function socketErrorText(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : error.message;
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
