/**
 * One short MQTT session of a gateway with the bridge: connect, subscribe to the gateway's errors topic, attach the
 * batch's devices, publish on their behalf, detach them, disconnect. Its states and their only transitions are in
 * lib/gateway/session-state.ts:
 *
 *   idle -> connecting -> subscribing -> attaching <-> publishing -> detaching -> disconnecting -> closed
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
import { isRelayError, RelayError, type RelayErrorCode } from '../errors.js';
import { parseGatewayError } from '../iotcore/gateway-error.js';
import { attachTopic, configTopic, detachTopic, errorsTopic } from '../iotcore/topics.js';
import { connectToBridge, lossReason } from './bridge-connection.js';
import type { SentPacket } from './error-correlation.js';
import { Flight, FlightClock, type FlightEnd } from './flights.js';
import type { LinkClose, MqttLink } from './mqtt-link.js';
import { planPublishes, type PublishRequest } from './publish-plan.js';
import { SessionLedger, type DeviceEntry, type Failure, type Unit } from './session-ledger.js';
import { sendWindowed } from './publish-window.js';
import { noLog, sessionOptions, type AttachRequest, type GatewaySessionOptions, type ResolvedSessionOptions, type SessionLog } from './session-options.js';
import { attachResult, sessionReport, type AttachResult, type SessionFailure, type SessionReport } from './session-report.js';
import { SessionStateMachine, type SessionPhase } from './session-state.js';
import { resubscribe, subscribeFlight, type SubscribeContext, type Subscription } from './subscriptions.js';

export type { PublishRequest } from './publish-plan.js';
export type { AttachResult, RecordResult, SessionFailure, SessionReport } from './session-report.js';
export type { SessionPhase } from './session-state.js';
export type { AttachRequest, GatewaySessionOptions, SessionLog } from './session-options.js';

/**
 * How long after the CONNACK the SUBSCRIBE sent behind the CONNECT may stay unanswered before it is sent again. A
 * bridge that read it answers right behind the CONNACK, within a millisecond or two; one that dropped it never
 * does, and costs each session this much plus one round trip.
 */
const EARLY_SUBACK_GRACE_MS = 50;

export class GatewaySession {
  private readonly options: ResolvedSessionOptions;
  private readonly log: SessionLog;
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
    this.options = sessionOptions(options);
    this.log = options.log ?? noLog;
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
    // TCP and TLS run while the JWT is made; CONNECT goes as soon as it is there.
    const { link, connacked, jwtExpiresAt } = await connectToBridge({
      ...this.options,
      stopped: this.stoppedWhileOpening(),
      connackBy: this.workDeadline,
      handlers: { onMessage: (topic, payload) => this.onMessage(topic, payload), onClose: (why) => this.onLinkClose(why) },
    });
    this.link = link;
    this.jwtExpiresAt = jwtExpiresAt;
    const errorsPacket: SentPacket = { kind: 'subscribe', deviceId: this.options.gatewayId, topic: this.errors };
    // The errors-topic SUBSCRIBE right behind the CONNECT: MQTT 3.1.1 lets a client send further packets at once
    // (§3.1.4), and a server that refuses the CONNECT must not process what follows it [MQTT-3.1.4-5]. The attaches
    // still wait for its SUBACK (docs/design.md rule 4); what goes is the round trip between CONNACK and SUBACK.
    const early = this.options.subscribeBeforeConnack ? this.subscribe(errorsPacket, 0, this.options.connectTimeoutMs + this.options.attachTimeoutMs) : undefined;
    early?.catch(() => undefined); // awaited after the CONNACK; a failed connection ends this wait too
    await connacked;
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
      fresh.push(this.ledger.addDevice(r.deviceId, () => this.sendQos1(topic, payload, this.options.attachTimeoutMs, { kind: 'attach', deviceId: r.deviceId, topic })));
    }
    await Promise.all(fresh.map((d) => d.attach.done));
    this.ledger.decideAttaches(fresh, this.options.attachTimeoutMs);
    return new Map([...distinct.keys()].map((id) => [id, attachResult(this.ledger.devices.get(id)!)]));
  }

  /**
   * Publishes records at QoS 1 in plan order (lib/gateway/publish-plan.ts: queue order, state coalesced), with at
   * most `publishWindow` unacknowledged. Records of a device that is not attached are not sent. Resolves when every
   * record has its PUBACK, an error, a timeout, or the session stopped; the verdict comes with `close()`.
   */
  async publish(requests: readonly PublishRequest[]): Promise<void> {
    this.assertWorking('publish');
    this.state.to('publishing');
    await this.sendUnits(this.ledger.addUnits(planPublishes(requests)));
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
    this.ledger.markBarriers(toDetach);
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

  /**
   * Whether a bridge reads packets sent before its CONNACK is not documented for ClearBlade, and a broker may drop
   * them: if no SUBACK has come `EARLY_SUBACK_GRACE_MS` after the CONNACK, the SUBSCRIBE goes again, and the first
   * SUBACK of either ends the wait. Two identical subscriptions are one (MQTT 3.1.1 §3.8.4).
   */
  private async resubscribeIfDropped(early: Subscription, packet: SentPacket): Promise<void> {
    const again = setTimeout(() => {
      if (early.flight.end !== undefined || this.stopped !== undefined || this.link?.isOpen !== true) return;
      this.log.debug('no SUBACK behind the CONNACK: subscribing again', { gatewayId: this.options.gatewayId });
      resubscribe(this.subscribeContext(), packet, 0, early.flight);
    }, EARLY_SUBACK_GRACE_MS);
    try {
      await early;
    } finally {
      clearTimeout(again);
    }
  }

  private subscribe(packet: SentPacket, qos: 0 | 1, timeoutMs = this.options.attachTimeoutMs): Subscription {
    return subscribeFlight(this.subscribeContext(), packet, qos, Math.min(timeoutMs, this.options.deadline - Date.now()));
  }

  private subscribeContext(): SubscribeContext {
    return { link: this.link!, ledger: this.ledger, clock: this.clock };
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
    // A 5.0 PUBACK with a failure reason code refuses the packet as an error naming it would.
    flight.packetId = link.publish(topic, payload, 1, (refusal) => (refusal === undefined ? flight.acknowledged() : this.ledger.applyPubackRefusal(packet, refusal)));
    this.ledger.sent(packet, flight.packetId, flight);
    return flight;
  }

  /** Record PUBLISHes, `publishWindow` at most unacknowledged. Nothing is sent for a device that is not attached. */
  private async sendUnits(units: Unit[]): Promise<void> {
    const { maxInFlight } = await sendWindowed(units, this.options.publishWindow, (unit, onEnd) => {
      if (this.stopped !== undefined) return false; // reported with the stop reason
      const device = this.ledger.devices.get(unit.deviceId);
      if (device === undefined || device.status !== 'attached') {
        // Nothing is published for a device whose attach was not acknowledged (docs/design.md rule 2).
        unit.failure ??= device?.failure ?? { code: 'ERR_DEVICE_NOT_FOUND', reason: `${unit.deviceId} was not attached in this session` };
        return false;
      }
      if (unit.failure !== undefined) return false;
      unit.flight = this.sendQos1(unit.topic, unit.payload, this.options.pubackTimeoutMs, unit, onEnd);
      return true;
    });
    this.maxInFlight = Math.max(this.maxInFlight, maxInFlight);
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

  /** The bridge closed the connection, or it broke. Before the CONNACK, `connectToBridge` explains it; after, work stops. */
  private onLinkClose(why: LinkClose): void {
    if (this.state.state === 'connecting') return;
    this.lostBy = why;
    this.log.warn('connection to the bridge lost', { gatewayId: this.options.gatewayId, phase: this.state.phase, code: 'ERR_CONNECTION_LOST' });
    this.stop('ERR_CONNECTION_LOST', lossReason(why, this.state.phase, this.jwtExpiresAt));
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
