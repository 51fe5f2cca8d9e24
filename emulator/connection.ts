/**
 * One client connection to the emulated bridge. Packets are handled strictly one after the other, in arrival
 * order, as a bridge serving a TCP stream does: an attach whose device token is still being verified holds back
 * the publish behind it, so a client that pipelines attach and publish sees the outcome it would see live.
 *
 * Who answers what:
 * - aedes handles CONNECT (through the `authenticate` hook), SUBSCRIBE (through `authorizeSubscribe`),
 *   UNSUBSCRIBE and PINGREQ. The connection forwards those and waits for aedes' answer to pass by on its way out
 *   before taking the next packet.
 * - The connection itself handles every client PUBLISH (telemetry, state, attach, detach), client PUBACKs of
 *   config and command deliveries, the refusals aedes cannot express (protocol level, Will, faults), keep-alive
 *   and the bridge's idle limit, and the end of a connection when its JWT expires.
 *
 * @example
 * const connection = new BridgeConnection(context, socket);
 * const client = broker.handle(connection.tap);
 */
import type { Socket } from 'node:net';
import type { Client } from 'aedes';
import type { Packet, IConnectPacket, IPublishPacket, ISubscribePacket } from 'mqtt-packet';
import { parseTopic } from '../lib/iotcore/topics.js';
import type { ParsedTopic } from '../lib/iotcore/topics.js';
import { ConfigFeeds, resendEvery } from './config-delivery.js';
import type { CloseReason, ConnectionPort } from './connection-port.js';
import { reportGatewayError } from './errors-topic.js';
import type { ErrorShape, GatewayErrorReport } from './errors-topic.js';
import { closesAtPhase, matchesAny, phaseOf } from './faults.js';
import type { Faults } from './faults.js';
import { handleAttach, handleDetach } from './gateway.js';
import { LateErrors } from './late-errors.js';
import type { PublishAnswer } from './gateway.js';
import { PUBACK_REFUSAL, refusingPuback } from './mqtt5.js';
import type { PublishRefusal } from './mqtt5.js';
import type { BridgeOptions } from './options.js';
import { PacketTap } from './packet-tap.js';
import { PublishRates } from './publish-rate.js';
import type { RateWindow } from './publish-rate.js';
import { RPC } from '../lib/iotcore/rpc-status.js';
import type { DeviceConfig, Registry } from './registry.js';
import { decideSubscription, grantedQos } from './subscriptions.js';
import type { SubscriptionVerdict } from './subscriptions.js';
import { handleTelemetry } from './telemetry.js';

/** What every connection shares: the registry, the options, the live faults. */
export interface BridgeContext {
  readonly registry: Registry;
  readonly options: BridgeOptions;
  readonly faults: Faults;
  /** Time (ms) of each device's last accepted state update, keyed `registry/device`: the 1/s limit is per device. */
  readonly lastStateAt: Map<string, number>;
  /** Payload bytes each device published over the last second, keyed `registry/device` (`deviceByteRate`). */
  readonly deviceByteWindows: Map<string, RateWindow>;
  connectionClosed(connection: BridgeConnection): void;
}

export const protocolViolation = (message: string): CloseReason => ({ message, status: { code: RPC.INVALID_ARGUMENT, message } });

/** setTimeout's ceiling (about 24.8 days); longer waits would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

let nextConnectionNumber = 1;

export class BridgeConnection implements ConnectionPort {
  readonly number = nextConnectionNumber++;
  readonly tap: PacketTap;
  readonly ctx: BridgeContext;
  /** Set once the CONNECT is authenticated. */
  clientId: string | undefined;
  registryId = '';
  deviceId = '';
  /** Devices this gateway attached on this connection; attachments end with it (docs/protocol.md §3.3). */
  readonly attached = new Set<string>();
  /** Granted subscriptions (topic filter -> QoS), as aedes accepted them. */
  readonly subscriptions = new Map<string, 0 | 1>();
  readonly configFeeds: ConfigFeeds;
  /** Errors-topic messages on their way out, held back when the bridge's late errors are on. */
  readonly lateErrors: LateErrors;
  closed = false;
  /** aedes' side of this connection, set by the bridge right after `broker.handle(tap)`. */
  brokerClient: Pick<Client, 'unsubscribe'> | undefined;

  private connected = false;
  /** A CONNECT arrived; until it is accepted (`connected`), other packets come before their CONNACK. */
  private connectSeen = false;
  private tokenExp = 0;
  private keepaliveSeconds = 0;
  private received = 0;
  private queue: Promise<void> = Promise.resolve();
  private readonly waiters: { match: (p: Packet) => boolean; resolve: (p: Packet | undefined) => void }[] = [];
  /** QoS 1 commands sent and not yet PUBACKed, by packet ID, with their resend timer when they are resent. */
  private readonly commandsInFlight = new Map<number, NodeJS.Timeout | undefined>();
  private lastMessageId = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private lifetimeTimer: NodeJS.Timeout | undefined;
  /** The CONNECT's Will, kept when `willMessage: 'publish'`; published if the connection ends without DISCONNECT. */
  private will: IConnectPacket['will'];
  /** The SUBSCRIBE being handled, for the packet ID of errors it causes. */
  private subscribePacketId = 0;
  private readonly rates: PublishRates;
  /** The refused PUBLISH `acknowledgeRefused` has PUBACKed (`ackFailedPublish`): it gets no second answer. */
  private acknowledgedRefusal: IPublishPacket | undefined;
  /** Errors-topic messages held back while a 5.0 PUBLISH is answered (see `handlePublish`). */
  private heldErrors: Packet[] | undefined;

  constructor(ctx: BridgeContext, socket: Socket) {
    this.ctx = ctx;
    this.rates = new PublishRates(this, ctx.deviceByteWindows);
    this.tap = new PacketTap(socket, {
      inbound: (packet) => this.receive(packet),
      outbound: (packet) => this.observe(packet),
      malformed: (error) => this.close(protocolViolation(`malformed MQTT packet: ${error.message}`)),
      latencyMs: () => this.ctx.faults.latencyMs,
    });
    this.tap.on('close', () => this.close());
    this.tap.on('error', () => this.close());
    this.configFeeds = new ConfigFeeds({
      send: (packet) => this.send(packet),
      nextMessageId: () => this.nextMessageId(),
      currentConfig: (deviceId) => this.ctx.registry.findDevice(this.registryId, deviceId)?.config,
      acknowledged: (deviceId, version) => this.ctx.registry.ackConfig(this.registryId, deviceId, version),
      sent: (deviceId) => this.ctx.registry.noteConfigSent(this.registryId, deviceId),
      resendMs: () => this.ctx.options.configResendMs,
    });
    this.lateErrors = new LateErrors((packet) => this.deliverError(packet), () => this.ctx.options);
  }

  get registry(): Registry {
    return this.ctx.registry;
  }

  get options(): BridgeOptions {
    return this.ctx.options;
  }

  get lastStateAt(): Map<string, number> {
    return this.ctx.lastStateAt;
  }

  /** For the errors topic: this connection's device is the gateway. */
  get gatewayId(): string {
    return this.deviceId;
  }

  get errorShape(): ErrorShape {
    return this.ctx.options.errorShape;
  }

  /** Read live: a gateway is a device whose gatewayType is GATEWAY (docs/protocol.md §3.1). */
  isGateway(): boolean {
    return this.ctx.registry.findDevice(this.registryId, this.deviceId)?.gatewayConfig.gatewayType === 'GATEWAY';
  }

  /** Whether this connection may publish and subscribe for a device: its own, or one its gateway attached. */
  actsFor(deviceId: string): boolean {
    return deviceId === this.deviceId || this.attached.has(deviceId);
  }

  subscribedTo(topicFilter: string): boolean {
    return this.subscriptions.has(topicFilter);
  }

  /** Queues a packet for the client (after the injected latency, if any). */
  send(packet: Packet): void {
    if (!this.closed) this.tap.send(packet);
  }

  /**
   * Raises an errors-topic message. On 5.0 one raised while a PUBLISH is being answered waits for that answer
   * (`handlePublish`); then the late-errors option may hold it back further, and the dropErrors fault lose it.
   */
  report(error: GatewayErrorReport): boolean {
    const sink = { registry: this.registry, gatewayId: this.gatewayId, errorShape: this.errorShape };
    const raise = (p: Packet): void => void (this.heldErrors === undefined ? this.lateErrors.send(p) : this.heldErrors.push(p));
    return reportGatewayError({ ...sink, subscribedTo: (t) => this.subscribedTo(t), send: raise }, error);
  }

  /** An errors-topic message on its way out, once any hold is over. */
  private deliverError(packet: Packet): void {
    if (this.ctx.faults.dropErrors === true) this.log('fault dropErrors: an errors-topic message lost');
    else this.send(packet);
  }

  log(line: string): void {
    this.ctx.options.log(`[${this.clientId ?? `connection ${this.number}`}] ${line}`);
  }

  /** The next free packet ID for a QoS 1 PUBLISH to the client (1..65535, [MQTT-2.3.1-1]). */
  nextMessageId(): number {
    for (let i = 0; i < 65535; i++) {
      this.lastMessageId = (this.lastMessageId % 65535) + 1;
      const id = this.lastMessageId;
      if (!this.commandsInFlight.has(id) && !this.configFeeds.usesMessageId(id)) return id;
    }
    throw new Error('no free packet ID: 65535 deliveries are awaiting PUBACK');
  }

  /**
   * Tracks a QoS 1 command delivery until the client acknowledges it, resending it (DUP set, same packet ID,
   * [MQTT-3.3.1-1]) every `commandResendMs` meanwhile, as ClearBlade documents commands "Retried for QoS 1".
   */
  commandSent(packet: IPublishPacket): void {
    const messageId = packet.messageId ?? 0;
    const every = this.ctx.options.commandResendMs;
    this.commandsInFlight.set(messageId, every > 0 ? resendEvery(every, packet, (again) => this.send(again)) : undefined);
  }

  /** PUBACKs a QoS 1 PUBLISH, unless the withholdPuback fault covers its topic. */
  acknowledge(packet: IPublishPacket): void {
    if (packet.qos !== 1 || this.closed) return;
    const packetId = packet.messageId ?? 0;
    if (matchesAny(this.ctx.faults.withholdPuback, packet.topic)) {
      this.log(`fault withholdPuback: ${packet.topic} recorded, PUBACK ${packetId} withheld`);
      return;
    }
    // Held errors may have to go out before a detach's PUBACK (lateErrorsPastDetach off).
    if (packet.topic.endsWith('/detach')) this.lateErrors.beforeDetachAck();
    this.send({ cmd: 'puback', messageId: packetId });
  }

  /** `ackFailedPublish`: a PUBLISH the bridge refuses is PUBACKed all the same, before its error goes out. */
  acknowledgeRefused(packet: IPublishPacket): void {
    if (!this.ctx.options.ackFailedPublish || packet.qos !== 1) return;
    this.log(`PUBACK ${packet.messageId ?? 0} for the refused PUBLISH to ${packet.topic} (ackFailedPublish)`);
    this.acknowledge(packet);
    this.acknowledgedRefusal = packet;
  }

  /** Called by the authenticate hook once the CONNECT's credentials are accepted. */
  authenticated(clientId: string, registryId: string, deviceId: string, exp: number): void {
    this.clientId = clientId;
    this.registryId = registryId;
    this.deviceId = deviceId;
    this.tokenExp = exp;
  }

  /** A subscription decision for the authorizeSubscribe hook. */
  authorizeSubscription(topic: string): SubscriptionVerdict {
    const verdict = decideSubscription(this, topic);
    if (verdict.outcome === 'reject' && verdict.error !== undefined) {
      this.report({ ...verdict.error, packet: { messageType: 'SUBSCRIBE', topic, packetId: this.subscribePacketId } });
    }
    return verdict;
  }

  /** aedes granted subscriptions (it emits them after writing the SUBACK, so what is sent now follows it). */
  subscribed(subs: readonly { topic: string; qos: number }[]): void {
    for (const { topic, qos } of subs) {
      if (qos !== 0 && qos !== 1) continue; // 128: refused
      this.subscriptions.set(topic, qos);
      const parsed = parseTopic(topic);
      if (parsed === undefined || 'malformed' in parsed) continue;
      if (parsed.deviceId !== this.deviceId) this.registry.noteGatewayAccess(this.registryId, parsed.deviceId, this.deviceId);
      if (parsed.kind === 'config') this.configFeeds.start(parsed.deviceId, qos);
    }
  }

  unsubscribed(topics: readonly string[]): void {
    for (const topic of topics) {
      this.subscriptions.delete(topic);
      const parsed = parseTopic(topic);
      if (parsed !== undefined && !('malformed' in parsed) && parsed.kind === 'config') this.configFeeds.stop(parsed.deviceId);
    }
  }

  /** Ends this gateway's attachment of a device, and the subscriptions it made for the device. */
  detach(deviceId: string): void {
    this.attached.delete(deviceId);
    this.configFeeds.stop(deviceId);
    const prefix = `/devices/${deviceId}/`;
    const topics = [...this.subscriptions.keys()].filter((t) => t.startsWith(prefix));
    for (const t of topics) this.subscriptions.delete(t);
    // No UNSUBACK goes out: aedes only answers an UNSUBSCRIBE that carries a packet ID.
    if (topics.length > 0) this.brokerClient?.unsubscribe({ cmd: 'unsubscribe', unsubscriptions: topics }, () => {});
  }

  /** A new config version was written to the registry. */
  configChanged(registryId: string, deviceId: string, config: DeviceConfig): void {
    if (registryId === this.registryId && this.connected) this.configFeeds.deliver(deviceId, config);
  }

  /**
   * Ends the connection: queued packets still leave, then the socket closes. With a status, the device's
   * lastErrorStatus records why, as the bridge does. Idempotent.
   */
  close(reason?: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    clearTimeout(this.expiryTimer);
    clearTimeout(this.lifetimeTimer);
    this.configFeeds.stopAll();
    this.attached.clear();
    for (const timer of this.commandsInFlight.values()) clearInterval(timer);
    this.commandsInFlight.clear();
    this.publishWill();
    const unsent = this.lateErrors.drop();
    if (unsent > 0) this.log(`${unsent} late errors-topic message(s) never sent: the connection ended first`);
    for (const w of this.waiters.splice(0)) w.resolve(undefined);
    if (reason !== undefined) {
      this.log(`closing: ${reason.message}`);
      if (reason.status !== undefined && this.deviceId !== '') this.registry.setLastError(this.registryId, this.deviceId, reason.status);
    }
    this.tap.close();
    this.ctx.connectionClosed(this);
  }

  // --- inbound ---------------------------------------------------------------------------------------------------

  private receive(packet: Packet): void {
    // Sent behind the CONNECT, before its CONNACK (MQTT 3.1.1 §3.1.4): how a bridge treats that is unconfirmed.
    if (this.connectSeen && !this.connected && packet.cmd !== 'connect') {
      const early = this.ctx.options.packetsBeforeConnack;
      if (early === 'drop') {
        this.log(`${packet.cmd.toUpperCase()} before CONNACK dropped (packetsBeforeConnack: drop)`);
        return;
      }
      if (early === 'close') {
        this.close(protocolViolation(`${packet.cmd.toUpperCase()} before CONNACK`));
        return;
      }
    }
    if (packet.cmd === 'connect') this.connectSeen = true;
    const arrivedAt = Date.now();
    this.queue = this.queue
      .then(() => this.step(packet, arrivedAt))
      .catch((e: unknown) => {
        const message = `internal error: ${(e as Error).message}`;
        this.close({ message, status: { code: RPC.INTERNAL, message } });
      });
  }

  private async step(packet: Packet, arrivedAt: number): Promise<void> {
    if (this.closed) return;
    this.received++;
    const faults = this.ctx.faults;
    const phase = phaseOf(packet);
    if (closesAtPhase(faults, phase)) {
      this.close({ message: `fault closeAtPhase: first ${phase} packet` });
      return;
    }
    this.touch();
    // The rate limits (emulator/publish-rate.ts) may hold a PUBLISH back, drop it, or close the connection.
    if (packet.cmd !== 'publish' || !this.connected || (await this.rates.admit(packet, arrivedAt))) await this.handle(packet);
    const limit = this.ctx.faults.closeAfterPackets;
    if (limit !== undefined && this.received >= limit) this.close({ message: `fault closeAfterPackets: ${this.received} packets received` });
  }

  /** Any packet counts as activity: it re-arms the idle limit and sets lastHeartbeatTime ([CB-MQTT]). */
  private touch(): void {
    if (!this.connected) return;
    this.registry.noteHeartbeat(this.registryId, this.deviceId);
    clearTimeout(this.idleTimer);
    // [MQTT-3.1.2-24]: one and a half keep-alive periods; the bridge's own idle limit applies whatever the keep-alive.
    const idleLimitMs = this.ctx.options.idleTimeoutSeconds * 1000;
    const keepaliveMs = this.keepaliveSeconds > 0 ? this.keepaliveSeconds * 1500 : Infinity;
    const ms = Math.min(idleLimitMs, keepaliveMs, MAX_TIMER_MS);
    const why = keepaliveMs < idleLimitMs ? 'keep-alive expired (no packet for 1.5 keep-alive periods)' : 'idle limit reached (no packet received)';
    this.idleTimer = setTimeout(() => this.close({ message: why, status: { code: RPC.DEADLINE_EXCEEDED, message: why } }), ms);
    this.idleTimer.unref();
  }

  private async handle(packet: Packet): Promise<void> {
    if (!this.connected) {
      // [MQTT-3.1.0-1]: the first packet must be CONNECT.
      if (packet.cmd === 'connect') return this.handleConnect(packet);
      return this.close(protocolViolation(`${packet.cmd.toUpperCase()} before CONNECT`));
    }
    switch (packet.cmd) {
      case 'publish':
        return this.handlePublish(packet);
      case 'subscribe':
        return this.handleSubscribe(packet);
      case 'unsubscribe':
        await this.forwardAndAwait(packet, (p) => p.cmd === 'unsuback' && p.messageId === packet.messageId);
        return;
      case 'pingreq':
        await this.forwardAndAwait(packet, (p) => p.cmd === 'pingresp');
        return;
      case 'puback':
        this.handlePuback(packet.messageId ?? 0);
        return;
      case 'disconnect':
        // [MQTT-3.14.4-3]: a DISCONNECT discards the Will.
        this.will = undefined;
        this.close();
        return;
      case 'pubrec':
      case 'pubrel':
      case 'pubcomp':
        return this.unexpectedMessageType(packet.cmd.toUpperCase() as 'PUBREC' | 'PUBREL' | 'PUBCOMP', packet.messageId ?? 0);
      case 'connect':
        // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
        return this.close(protocolViolation('a second CONNECT on the same connection'));
      default:
        return this.close(protocolViolation(`a client may not send ${packet.cmd.toUpperCase()}`));
    }
  }

  private async handleConnect(packet: IConnectPacket): Promise<void> {
    // `reasonCode` is the 5.0 answer where the 3.1.1 code's 5.0 twin (mqtt5.ts) would misname the refusal.
    const refuse = (returnCode: number, why: string, reasonCode?: number): void => {
      this.log(`CONNECT refused with CONNACK ${returnCode}: ${why}`);
      this.tap.send({ cmd: 'connack', returnCode, sessionPresent: false, ...(reasonCode === undefined ? {} : { reasonCode }) });
      this.close();
    };
    // [MQTT-3.1.2-2]; the bridge speaks 3.1.1 (docs/protocol.md §1.1), and 5.0 with the mqtt5 option; other levels
    // get rc 1, in 3.1.1 form.
    const version5 = packet.protocolVersion === 5 && this.ctx.options.mqtt5;
    if (packet.protocolVersion !== 4 && !version5) {
      return refuse(1, `protocol level ${packet.protocolVersion ?? '?'} (the bridge speaks MQTT 3.1.1${this.ctx.options.mqtt5 ? ' and 5.0' : ' only'})`);
    }
    if (version5) this.tap.protocolVersion = 5;
    const forced = this.ctx.faults.refuseConnect;
    if (forced !== undefined) return refuse(forced, 'fault refuseConnect');
    // 3.1.1 has no return code for "feature not supported"; 2 is a refusal of this CONNECT as formed that a client
    // will not mistake for a credential problem (4/5, which makes it mint a new JWT) or an outage (3, retried).
    // 5.0 answers these 0x83, Implementation specific error.
    const willOption = this.ctx.options.willMessage;
    if (packet.will && willOption === 'refuse') return refuse(2, 'a Will message was set; the bridge does not support Last Will and Testament', 0x83);
    if (!packet.clean && this.ctx.options.uncleanSession === 'refuse') return refuse(2, 'cleanSession=0; the bridge keeps no sessions', 0x83);
    this.keepaliveSeconds = packet.keepalive ?? 0;
    // aedes gets a clean session (no session is ever kept, so sessionPresent is always 0) and no keep-alive: this
    // connection enforces keep-alive itself, because aedes never sees the PUBLISH packets that keep a client alive.
    // aedes never sees the Will either: it would publish it to its own subscribers, not as the device's telemetry.
    const { will, ...withoutWill } = packet;
    const connack = await this.forwardAndAwait({ ...withoutWill, clean: true, keepalive: 0 }, (p) => p.cmd === 'connack');
    if (connack?.cmd !== 'connack' || connack.returnCode !== 0 || this.closed) return;
    this.connected = true;
    if (will !== undefined) {
      this.log(`Will on ${will.topic} accepted (willMessage: ${willOption})`);
      if (willOption === 'publish') this.will = will;
    }
    // The bridge ends every connection after its maximum lifetime, whatever the JWT ([G-QUOTA] "MQTT connection time").
    const lifetimeMs = Math.min(this.ctx.options.connectionLifetimeSeconds * 1000, MAX_TIMER_MS);
    this.lifetimeTimer = setTimeout(() => this.close({ message: 'the maximum connection lifetime was reached' }), lifetimeMs);
    this.lifetimeTimer.unref();
    this.log(`connected${version5 ? ' (MQTT 5.0)' : ''}${packet.clean ? '' : ' (cleanSession=0 treated as clean)'}`);
    this.touch();
    // The bridge ends the connection at exp + the allowed skew ([CB-JWT] worked example: exp 01:10:20 -> 01:20:20).
    const expiresInMs = (this.tokenExp + this.ctx.options.clockSkewSeconds) * 1000 - Date.now();
    const why = 'The authorization token expired.';
    this.expiryTimer = setTimeout(() => this.close({ message: why, status: { code: RPC.UNAUTHENTICATED, message: why } }), Math.min(Math.max(0, expiresInMs), MAX_TIMER_MS));
    this.expiryTimer.unref();
  }

  private async handleSubscribe(packet: ISubscribePacket): Promise<void> {
    // The grant depends on the topic only, so it is written into the SUBSCRIBE aedes sees: its SUBACK then carries
    // it (aedes echoes the requested QoS and offers no way to change it).
    const subscriptions = packet.subscriptions.map((s) => ({ ...s, qos: grantedQos(s.topic, s.qos) }));
    this.subscribePacketId = packet.messageId ?? 0;
    await this.forwardAndAwait({ ...packet, subscriptions }, (p) => p.cmd === 'suback' && p.messageId === packet.messageId);
  }

  /**
   * On 5.0 the PUBACK, the publish's own answer, leaves before the errors-topic report the publish caused; both still
   * leave before the answer to any later packet, as on 3.1.1 (where a refused publish gets the report alone).
   */
  private async handlePublish(packet: IPublishPacket): Promise<void> {
    if (this.tap.protocolVersion === 4) return this.handlePublishOf(packet);
    this.heldErrors = [];
    try {
      await this.handlePublishOf(packet);
    } finally {
      const held = this.heldErrors;
      this.heldErrors = undefined;
      for (const p of held) this.lateErrors.send(p);
    }
  }

  private async handlePublishOf(packet: IPublishPacket): Promise<void> {
    const { topic } = packet;
    // [CB-MQTT]: QoS 2 is not supported and closes the connection.
    if (packet.qos === 2) return this.close(protocolViolation(`QoS 2 PUBLISH to ${topic}`));
    // [MQTT-3.3.2-2]: a topic name holds no wildcard. aedes would refuse one too, but client PUBLISH packets never
    // reach it. IoT Core's ID rule allows a `+` in a device ID, so `/devices/pump+x/events` ends here as well.
    if (/[+#]/.test(topic)) return this.close(protocolViolation(`PUBLISH to ${topic}: a topic name must not contain the wildcards + or # (MQTT 3.1.1 §4.7.1)`));
    const parsed = parseTopic(topic);
    // Publishing outside /devices/ (e.g. to a Pub/Sub topic name) closes the connection (docs/protocol.md §1.6).
    if (parsed === undefined) return this.close(protocolViolation(`PUBLISH to ${topic}, which is not an IoT Core topic`));
    const packetId = packet.messageId ?? 0;
    if ('malformed' in parsed) {
      if (!this.isGateway()) return this.close(protocolViolation(`PUBLISH to a malformed device topic ${topic}: ${parsed.malformed}`));
      const description = `The topic '${topic}' is not a valid device topic: ${parsed.malformed}.`;
      this.report({ type: 'GATEWAY_INVALID_MQTT_TOPIC', deviceId: topic.split('/')[2] ?? '', description, packet: { messageType: 'PUBLISH', topic, packetId } });
      return this.answerRefusal(packet, { reasonCode: PUBACK_REFUSAL.topicNameInvalid, reason: description, plainAck: false });
    }
    const faults = this.ctx.faults;
    if (matchesAny(faults.dropPublish, topic)) {
      this.log(`fault dropPublish: ${topic} neither recorded nor acknowledged`);
      return;
    }
    // Only for a publish the bridge would take: one a connection may not make is refused as without the fault.
    if ((parsed.kind === 'events' || parsed.kind === 'state') && this.actsFor(parsed.deviceId) && matchesAny(faults.acknowledgeThenFail ?? [], topic)) {
      return this.acknowledgeThenFail(parsed.deviceId, packet);
    }
    const answer = await this.dispatchPublish(parsed, packet);
    if (answer === true) this.acknowledge(packet);
    else if (answer !== false) this.answerRefusal(packet, answer);
  }

  /**
   * The answer to a QoS 1 publish the bridge refused without closing: on 3.1.1 none (the errors topic tells), on 5.0 a
   * PUBACK with the refusal's reason code; a plain PUBACK on either where the bridge acknowledges failures too
   * (`ackFailedAttach`; `ackFailedPublish`, whose PUBACK `acknowledgeRefused` has sent already).
   */
  private answerRefusal(packet: IPublishPacket, refusal: PublishRefusal): void {
    if (packet.qos !== 1 || this.closed || this.acknowledgedRefusal === packet) return;
    if (refusal.plainAck) return this.acknowledge(packet);
    if (this.tap.protocolVersion === 4) return;
    const messageId = packet.messageId ?? 0;
    this.log(`PUBACK ${messageId} to ${packet.topic} with reason code 0x${refusal.reasonCode.toString(16)}: ${refusal.reason}`);
    this.send(refusingPuback(messageId, refusal));
  }

  /** Handles a well-formed device-topic PUBLISH: how it is to be answered (gateway.ts). The retain flag is ignored. */
  private async dispatchPublish(parsed: ParsedTopic, packet: IPublishPacket): Promise<PublishAnswer> {
    const { topic } = packet;
    const packetId = packet.messageId ?? 0;
    switch (parsed.kind) {
      case 'attach':
      case 'detach':
        // [CB-GW]: control messages are accepted only from gateways; anything else closes the connection.
        if (!this.isGateway()) {
          this.close(protocolViolation(`${parsed.kind} from ${this.deviceId}, which is not a gateway`));
          return false;
        }
        return parsed.kind === 'attach' ? handleAttach(this, parsed.deviceId, packet) : handleDetach(this, parsed.deviceId);
      case 'events':
      case 'state': {
        const target = { deviceId: parsed.deviceId, kind: parsed.kind, subfolder: parsed.subfolder };
        if (parsed.deviceId === this.deviceId) return handleTelemetry(this, target, packet, false);
        if (!this.isGateway()) {
          this.close(protocolViolation(`${this.deviceId} published to ${topic}, another device's topic`));
          return false;
        }
        if (!this.attached.has(parsed.deviceId)) {
          // docs/protocol.md §3.4: an error on the errors topic, no PUBACK (unless ackFailedPublish, then the PUBACK
          // goes first; on 5.0 one with 0x87), the connection stays up.
          this.acknowledgeRefused(packet);
          const description = `Device '${parsed.deviceId}' is not attached to gateway '${this.deviceId}'.`;
          this.report({ type: 'GATEWAY_DEVICE_NOT_FOUND', deviceId: parsed.deviceId, description, packet: { messageType: 'PUBLISH', topic, packetId } });
          return { reasonCode: PUBACK_REFUSAL.notAuthorized, reason: description, plainAck: false };
        }
        return handleTelemetry(this, target, packet, true);
      }
      default:
        // config, commands and errors flow from the bridge to the client only.
        this.close(protocolViolation(`PUBLISH to ${topic}: clients only subscribe to ${parsed.kind} topics`));
        return false;
    }
  }

  /** The acknowledgeThenFail fault: a PUBACK, then the message is reported lost instead of being recorded. */
  private acknowledgeThenFail(deviceId: string, packet: IPublishPacket): void {
    const packetId = packet.messageId ?? 0;
    this.log(`fault acknowledgeThenFail: ${packet.topic} acknowledged, not recorded, reported failed`);
    this.acknowledge(packet);
    this.report({
      type: 'GATEWAY_DEVICE_NOT_FOUND',
      deviceId,
      description: `The message for device '${deviceId}' was acknowledged but could not be delivered.`,
      packet: { messageType: 'PUBLISH', topic: packet.topic, packetId },
    });
  }

  private handlePuback(messageId: number): void {
    if (this.configFeeds.acknowledge(messageId)) return;
    // A PUBACK matching nothing (late, for a config a newer version replaced) is ignored: the bridge documents
    // GATEWAY_UNEXPECTED_PACKET_ID for it, but without its exact conditions it would only be noise.
    clearInterval(this.commandsInFlight.get(messageId));
    this.commandsInFlight.delete(messageId);
  }

  /**
   * `willMessage: 'publish'`: a connection that ends without DISCONNECT has its Will handled as the device's own
   * QoS 0 telemetry (the only topics a device may publish to); a Will for any other topic is dropped and logged.
   */
  private publishWill(): void {
    const will = this.will;
    this.will = undefined;
    if (will === undefined) return;
    const parsed = parseTopic(will.topic);
    if (parsed === undefined || 'malformed' in parsed || (parsed.kind !== 'events' && parsed.kind !== 'state') || parsed.deviceId !== this.deviceId) {
      this.log(`Will on ${will.topic} dropped: not this device's events or state topic`);
      return;
    }
    const packet: IPublishPacket = { cmd: 'publish', topic: will.topic, payload: will.payload, qos: 0, retain: false, dup: false };
    const done = handleTelemetry(this, { deviceId: this.deviceId, kind: parsed.kind, subfolder: parsed.subfolder }, packet, false);
    this.log(`Will on ${will.topic} ${done === true ? 'published' : 'refused'}`);
  }

  /** The bridge sends no QoS 2, so PUBREC/PUBREL/PUBCOMP are unexpected: reported to gateways, fatal otherwise. */
  private unexpectedMessageType(messageType: 'PUBREC' | 'PUBREL' | 'PUBCOMP', packetId: number): void {
    if (!this.isGateway()) return this.close(protocolViolation(`unexpected ${messageType}`));
    this.report({
      type: 'GATEWAY_UNEXPECTED_MESSAGE_TYPE',
      deviceId: this.deviceId,
      description: `The bridge does not use ${messageType} (it supports QoS 0 and 1 only).`,
      packet: { messageType, topic: '', packetId },
    });
  }

  // --- outbound --------------------------------------------------------------------------------------------------

  /** Gives aedes a packet and resolves with its answer (or undefined if the connection ends first). */
  private forwardAndAwait(packet: Packet, match: (p: Packet) => boolean): Promise<Packet | undefined> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(undefined);
      this.waiters.push({ match, resolve });
      this.tap.forward(packet);
    });
  }

  /** Every packet aedes writes passes here on its way to the client. */
  private observe(packet: Packet): void {
    const i = this.waiters.findIndex((w) => w.match(packet));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(packet);
  }
}
