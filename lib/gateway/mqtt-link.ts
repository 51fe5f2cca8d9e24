/**
 * The relay's MQTT 3.1.1 (or, when asked, 5.0) link to the bridge: packets encoded and parsed by mqtt-packet, written straight to the TLS
 * socket the session opened. It is the one module that speaks the wire protocol; the session above it keeps the
 * rules (what to send when, what an answer means).
 *
 * What it gives the session, and why it is not mqtt.js's client:
 * - **Packet IDs chosen by the link and returned by the call that sends.** `publish()` and `subscribe()` return the
 *   ID synchronously, before any answer can arrive, so errors-topic messages that name a packet ID map back to the
 *   right record without guessing.
 * - **No ordering of its own.** A packet is written when it is sent: the SUBSCRIBE to the errors topic may follow the
 *   CONNECT before the CONNACK (MQTT 3.1.1 §3.1.4; the bridge must not process it if it refuses the CONNECT,
 *   MQTT-3.1.4-5), and the session decides how many QoS 1 publishes are in flight. mqtt.js holds every packet until
 *   the CONNACK, which costs a round trip per session.
 * - **Bursts in one write.** Packets sent in the same tick are corked together, so a burst of attaches or a refill of
 *   the publish window becomes one TLS record instead of one per packet.
 * - **A close that does not wait for the bridge.** DISCONNECT has no answer (§3.14); `end()` resolves once DISCONNECT
 *   and our FIN are flushed, not after the bridge's FIN.
 * - **No store, no reconnect, no resubscribe.** A lost connection ends the session (docs/design.md rules 1 and 5).
 * - **MQTT 5.0 reason codes passed up.** On a 5.0 link a PUBACK with a failure reason code (0x80 and above, MQTT 5.0
 *   §3.4.2.1) reaches `onAck` as a refusal, with the bridge's reason string; the CONNACK carries the reason code.
 *
 * @example
 * const link = new MqttLink(socket, { onMessage: (topic, payload) => {}, onClose: (why) => {} });
 * const connack = link.connect({ clientId, username: 'unused', password: Buffer.from(jwt), keepalive: 60, clean: true });
 * const subId = link.subscribe('/devices/gw-1/errors', 0, (granted) => {});
 * await connack; // { returnCode: 0, sessionPresent: false }
 * const id = link.publish('/devices/pump-1/attach', Buffer.from('{}'), 1, () => {});
 */
import type { Duplex } from 'node:stream';
import { generate, parser as packetParser, type IConnectPacket, type Packet, type Parser } from 'mqtt-packet';
import { RelayError } from '../errors.js';
import { encodeQos1Publish, isPlainPuback, nextFrame } from './mqtt-wire.js';

/** Why the link ended without `end()` or `destroy()` being asked for. */
export type LinkClose =
  | { by: 'peer' }
  | { by: 'socket-error'; error: Error }
  /** The bridge sent bytes that are not MQTT, a packet a server may not send, or (5.0) a DISCONNECT saying why. */
  | { by: 'protocol'; reason: string };

export interface Connack {
  /** The 3.1.1 return code, or on a 5.0 link the reason code. */
  returnCode: number;
  sessionPresent: boolean;
  /** A 5.0 CONNACK's reason string, when the bridge gave one. */
  reasonString?: string;
}

/** A PUBACK with a failure reason code (MQTT 5.0 only). */
export interface PubackRefusal {
  reasonCode: number;
  reasonString: string | undefined;
}

export interface MqttLinkOptions {
  /** 4 is MQTT 3.1.1, the version the bridge documents (the default); 5 is MQTT 5.0. */
  protocolVersion?: 4 | 5;
  /** An application message from the bridge. QoS 1 messages are acknowledged by the link before this is called. */
  onMessage(topic: string, payload: Buffer): void;
  /** Called once when the connection ends by the bridge's doing or a socket error; never after `end()`/`destroy()`. */
  onClose(why: LinkClose): void;
}

/** The CONNECT's fields; the link adds the protocol name and version. */
export type ConnectFields = Pick<IConnectPacket, 'clientId' | 'username' | 'password' | 'keepalive' | 'clean'>;

type Answer = { kind: 'puback'; done: (refusal?: PubackRefusal) => void } | { kind: 'suback'; done: (granted: number) => void };

/** Packet IDs are 16-bit and never 0 (MQTT 3.1.1 §2.3.1). */
const MAX_PACKET_ID = 0xffff;

export class MqttLink {
  private readonly socket: Duplex;
  private readonly options: MqttLinkOptions;
  private readonly protocolVersion: 4 | 5;
  /** Packets sent and not yet answered, by packet ID. */
  private readonly waiting = new Map<number, Answer>();
  private lastId = 0;
  private state: 'open' | 'ending' | 'closed' = 'open';
  private corked = false;
  private lastWriteAt = Date.now();
  private keepalive: NodeJS.Timeout | undefined;
  private connack: { resolve: (c: Connack) => void; reject: (e: Error) => void } | undefined;
  /** What a closed socket last said, for the session's reason. */
  private socketError: Error | undefined;
  private readonly parser: Parser;
  /** The start of a packet whose end has not arrived yet. */
  private partial: Buffer | undefined;

  constructor(socket: Duplex, options: MqttLinkOptions) {
    this.socket = socket;
    this.options = options;
    this.protocolVersion = options.protocolVersion ?? 4;
    this.parser = packetParser({ protocolVersion: this.protocolVersion });
    this.parser.on('packet', (packet: Packet) => this.receive(packet));
    this.parser.on('error', (err: Error) => this.fail({ by: 'protocol', reason: `unreadable packet from the bridge: ${err.message}` }));
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.on('error', (error: Error) => {
      this.socketError = error;
      this.fail({ by: 'socket-error', error });
    });
    socket.on('close', () => this.fail(this.socketError === undefined ? { by: 'peer' } : { by: 'socket-error', error: this.socketError }));
    // The bridge's FIN: nothing more will come, and a half-open socket would only wait for our own end.
    socket.on('end', () => this.fail({ by: 'peer' }));
  }

  /** Whether packets can still be sent. */
  get isOpen(): boolean {
    return this.state === 'open';
  }

  /** How many packets wait for their PUBACK or SUBACK. */
  get unanswered(): number {
    return this.waiting.size;
  }

  /**
   * Sends CONNECT. Resolves with the CONNACK, whatever its return code (refusals are the session's to explain), and
   * rejects if the connection ends first. Other packets may be sent at once, without waiting for it.
   */
  connect(fields: ConnectFields): Promise<Connack> {
    if (this.connack !== undefined) throw new RelayError('ERR_INTERNAL', 'CONNECT is sent once per link');
    const answer = new Promise<Connack>((resolve, reject) => (this.connack = { resolve, reject }));
    // The caller awaits it; a link that fails after the CONNACK rejects nothing anyone still reads.
    answer.catch(noop);
    const keepaliveSeconds = fields.keepalive ?? 0;
    this.write({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: this.protocolVersion, ...fields });
    if (keepaliveSeconds > 0) this.armKeepalive(keepaliveSeconds);
    return answer;
  }

  /**
   * Sends a QoS 0 or 1 PUBLISH and returns its packet ID (0 for QoS 0). `onAck` runs on its PUBACK, with the
   * refusal when a 5.0 PUBACK carries a failure reason code.
   */
  publish(topic: string, payload: Buffer, qos: 0 | 1, onAck?: (refusal?: PubackRefusal) => void): number {
    if (qos === 0) {
      this.write({ cmd: 'publish', topic, payload, qos: 0, retain: false, dup: false });
      return 0;
    }
    this.assertOpen('publish');
    const messageId = this.allocate({ kind: 'puback', done: onAck ?? noop });
    // mqtt-wire's encoder writes 3.1.1; a 5.0 PUBLISH has a properties length too, left to mqtt-packet.
    if (this.protocolVersion === 5) this.write({ cmd: 'publish', topic, payload, qos: 1, messageId, retain: false, dup: false });
    else this.writeBytes(encodeQos1Publish(topic, payload, messageId));
    return messageId;
  }

  /**
   * Sends a SUBSCRIBE for one topic and returns its packet ID; `onSuback` gets the granted QoS, or a refusal: 0x80 on
   * 3.1.1, a reason code of 0x80 or above on 5.0.
   */
  subscribe(topic: string, qos: 0 | 1, onSuback: (granted: number) => void): number {
    this.assertOpen('subscribe');
    const messageId = this.allocate({ kind: 'suback', done: onSuback });
    this.write({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
    return messageId;
  }

  /**
   * Sends DISCONNECT and our FIN, and resolves once both are flushed, or the bridge has closed its side (it read the
   * DISCONNECT), or after `timeoutMs` (the socket is then destroyed). What is still unanswered stays so: the session
   * has settled it already. A TLS socket whose peer closes while our own close is under way may never report it
   * flushed, which the bridge's end covers.
   */
  end(timeoutMs: number): Promise<void> {
    if (this.state !== 'open') {
      this.destroy();
      return Promise.resolve();
    }
    this.write({ cmd: 'disconnect' });
    this.state = 'ending';
    this.stopKeepalive();
    return new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.destroy();
        resolve();
      }, Math.max(0, timeoutMs));
      const done = (): void => {
        clearTimeout(force);
        this.destroy();
        resolve();
      };
      // Flushed, the bridge's FIN, or the connection dropped: either way nothing more is to be sent or waited for.
      this.socket.once('finish', done);
      this.socket.once('end', done);
      this.socket.once('close', done);
      this.socket.end();
    });
  }

  /** Drops the connection at once. */
  destroy(): void {
    this.stopKeepalive();
    this.state = 'closed';
    this.waiting.clear();
    if (!this.socket.destroyed) {
      // Whatever the socket reports now is moot; unheard, an 'error' would be thrown.
      this.socket.on('error', noop);
      this.socket.destroy();
    }
  }

  // ---------------------------------------------------------------------------------------------------------------

  private allocate(answer: Answer): number {
    if (this.waiting.size >= MAX_PACKET_ID) throw new RelayError('ERR_INTERNAL', 'every MQTT packet ID is in flight');
    let id = this.lastId;
    do id = id === MAX_PACKET_ID ? 1 : id + 1;
    while (this.waiting.has(id));
    this.lastId = id;
    this.waiting.set(id, answer);
    return id;
  }

  /**
   * Writes one packet. Packets written in the same tick are corked and leave together, as one TLS record where they
   * fit, instead of one record (and often one TCP segment) each.
   */
  private write(packet: Packet): void {
    this.assertOpen(packet.cmd);
    this.writeBytes(generate(packet, { protocolVersion: this.protocolVersion }));
  }

  /** Checked before a packet ID is taken, so that a refused send holds none. */
  private assertOpen(what: string): void {
    if (this.state !== 'open') throw new RelayError('ERR_CONNECTION_LOST', `cannot send ${what}: the connection to the bridge is closed`);
  }

  /** Writes bytes whose sender checked `assertOpen`. */
  private writeBytes(bytes: Buffer): void {
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.lastWriteAt = Date.now();
    this.socket.write(bytes);
  }

  /**
   * Cuts what arrived into whole packets: a plain PUBACK, one per record, is read here (on 5.0 too, where a 4-byte
   * PUBACK is a Success); every other packet goes whole to mqtt-packet's parser, which so never holds a partial
   * packet of its own.
   */
  private read(chunk: Buffer): void {
    const buffer = this.partial === undefined ? chunk : Buffer.concat([this.partial, chunk]);
    this.partial = undefined;
    let offset = 0;
    while (offset < buffer.length && this.state !== 'closed') {
      const frame = nextFrame(buffer, offset);
      if (frame === 'malformed') return this.fail({ by: 'protocol', reason: 'unreadable packet from the bridge: its remaining length takes more than four bytes' });
      if (frame === undefined) {
        this.partial = buffer.subarray(offset);
        return;
      }
      if (isPlainPuback(buffer, frame)) this.acknowledged('puback', buffer.readUInt16BE(frame.start + 2));
      else this.parser.parse(buffer.subarray(frame.start, frame.end));
      offset = frame.end;
    }
  }

  /**
   * A PUBACK or SUBACK: the waiting callback runs once; an acknowledgement of nothing we wait for is ignored. `code`
   * is the SUBACK's granted QoS, or a 5.0 PUBACK's reason code.
   */
  private acknowledged(kind: 'puback' | 'suback', id: number | undefined, code = 0, reasonString?: string): void {
    const answer = id === undefined ? undefined : this.waiting.get(id);
    // A duplicate, or one for a packet of an earlier connection: MQTT lets a client ignore it.
    if (answer === undefined || answer.kind !== kind) return;
    this.waiting.delete(id!);
    if (answer.kind === 'suback') answer.done(code);
    // 0x10 (No matching subscribers) and other codes below 0x80 are successes (MQTT 5.0 §3.4.2.1).
    else answer.done(code >= 0x80 ? { reasonCode: code, reasonString } : undefined);
  }

  private receive(packet: Packet): void {
    switch (packet.cmd) {
      case 'connack': {
        const pending = this.connack;
        if (pending === undefined) return this.fail({ by: 'protocol', reason: 'CONNACK before CONNECT' });
        const reasonString = packet.properties?.reasonString;
        const returnCode = (this.protocolVersion === 5 ? packet.reasonCode : packet.returnCode) ?? 0;
        pending.resolve({ returnCode, sessionPresent: packet.sessionPresent, ...(reasonString === undefined ? {} : { reasonString }) });
        return;
      }
      case 'puback':
        return this.acknowledged('puback', packet.messageId, packet.reasonCode, packet.properties?.reasonString);
      case 'suback':
        return this.acknowledged('suback', packet.messageId, packet.granted[0] as number);
      case 'publish': {
        // Acknowledged first: MQTT's QoS 1 needs only that the message was received, and the handler may throw.
        // reasonCode 0 is a 5.0 Success, sent as the short form 3.1.1 also has (MQTT 5.0 §3.4.2.1).
        if (packet.qos === 1 && packet.messageId !== undefined && this.state === 'open') this.write({ cmd: 'puback', messageId: packet.messageId, reasonCode: 0 });
        const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
        this.options.onMessage(packet.topic, payload);
        return;
      }
      case 'pingresp':
        return;
      case 'disconnect':
        // A 5.0 server may end the connection with a reason code (MQTT 5.0 §3.14); a 3.1.1 server never sends one.
        if (this.protocolVersion === 5) {
          const said = packet.properties?.reasonString === undefined ? '' : `: ${packet.properties.reasonString.slice(0, 200)}`;
          return this.fail({ by: 'protocol', reason: `the bridge sent DISCONNECT with reason code 0x${(packet.reasonCode ?? 0).toString(16)}${said}` });
        }
        return this.fail({ by: 'protocol', reason: 'the bridge sent DISCONNECT, which a server never sends to a client' });
      default:
        this.fail({ by: 'protocol', reason: `the bridge sent ${packet.cmd.toUpperCase()}, which a server never sends to a client` });
    }
  }

  /** Ends the link by the bridge's doing (or a broken socket): tells the session once, then drops the socket. */
  private fail(why: LinkClose): void {
    if (this.state === 'closed') return;
    const wasEnding = this.state === 'ending';
    this.destroy();
    const connack = this.connack;
    if (connack !== undefined) connack.reject(new LinkClosedError(why));
    if (!wasEnding) this.options.onClose(why);
  }

  /** PINGREQ when nothing else was sent for half the keep-alive, so the bridge never sees an idle connection. */
  private armKeepalive(seconds: number): void {
    const every = (seconds * 1000) / 2;
    this.keepalive = setInterval(() => {
      if (this.state === 'open' && Date.now() - this.lastWriteAt >= every) this.write({ cmd: 'pingreq' });
    }, every);
    this.keepalive.unref();
  }

  private stopKeepalive(): void {
    clearInterval(this.keepalive);
    this.keepalive = undefined;
  }
}

/** The connection ended before the CONNACK; `why` says how. */
export class LinkClosedError extends Error {
  readonly why: LinkClose;

  constructor(why: LinkClose) {
    super(why.by === 'socket-error' ? why.error.message : why.by === 'protocol' ? why.reason : 'the connection was closed');
    this.why = why;
  }
}

function noop(): void {}
