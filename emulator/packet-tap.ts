/**
 * The stream aedes reads and writes in place of the client's socket. Every packet crosses it as a parsed packet:
 * client packets go to the bridge connection, which forwards to aedes the ones aedes handles (CONNECT, SUBSCRIBE,
 * UNSUBSCRIBE, PINGREQ, DISCONNECT) and answers the rest itself; packets aedes writes are parsed back so the
 * bridge can see them (to know when aedes has answered) before they join the outgoing queue. That queue is where
 * latency is injected: each packet leaves `latencyMs` after it was queued, in order.
 *
 * aedes gives no hook to delay or suppress its own writes, which is why this sits under it instead of beside it.
 * It is also where an MQTT 5.0 connection (the `mqtt5` option) is carried over aedes, which speaks 3.1.1 only:
 * once `protocolVersion` is 5, what goes to aedes loses its 5.0 parts and what leaves for the client takes them on
 * (mqtt5.ts).
 *
 * @example
 * const tap = new PacketTap(socket, { inbound: (p) => connection.receive(p), outbound: (p) => connection.observe(p), latencyMs: () => faults.latencyMs });
 * const client = broker.handle(tap);
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { toVersion4, toVersion5 } from './mqtt5.js';

export interface TapHandlers {
  /** A packet from the client, in arrival order. */
  inbound(packet: Packet): void;
  /** A packet aedes wrote, before it is queued for the client. */
  outbound(packet: Packet): void;
  /** The client sent bytes that are not MQTT. */
  malformed(error: Error): void;
  /** Delay for the next packet queued for the client, read at queue time so it can change at run time. */
  latencyMs(): number;
}

/** After the bridge ends a connection, how long the client gets to close its side before the socket is dropped. */
const CLOSE_GRACE_MS = 2_000;

export class PacketTap extends Duplex {
  /** The client's protocol level: 4 (3.1.1) until the connection accepts a 5.0 CONNECT. */
  protocolVersion: 4 | 5 = 4;
  private readonly socket: Socket;
  private readonly handlers: TapHandlers;
  // Reads 3.1.1 and, after a 5.0 CONNECT, 5.0 (mqtt-packet's parser takes the level from the CONNECT).
  private readonly fromClient = mqttPacket.parser();
  // aedes writes 3.1.1 packets only (5.0 connections reach it in 3.1.1 form, other levels are refused before).
  private readonly fromBroker = mqttPacket.parser({ protocolVersion: 4 });
  private readonly queue: { due: number; bytes: Buffer }[] = [];
  /** Topics of each UNSUBSCRIBE handed to aedes, by packet ID: a 5.0 UNSUBACK has a reason code per topic. */
  private readonly unsubscribing = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private ending = false;

  constructor(socket: Socket, handlers: TapHandlers) {
    super();
    this.socket = socket;
    this.handlers = handlers;
    this.fromClient.on('packet', (p: Packet) => handlers.inbound(p));
    this.fromClient.on('error', (e: Error) => handlers.malformed(e));
    this.fromBroker.on('packet', (p: Packet) => {
      handlers.outbound(p);
      this.enqueue(this.encode(p));
    });
    this.fromBroker.on('error', (e: Error) => this.destroy(e));
    socket.on('data', (chunk: Buffer) => {
      if (!this.ending) this.fromClient.parse(chunk);
    });
    socket.on('error', () => this.destroy());
    socket.on('close', () => {
      this.queue.length = 0;
      clearTimeout(this.timer);
      this.destroy();
    });
  }

  /** Hands a client packet to aedes. */
  forward(packet: Packet): void {
    if (this.ending || this.destroyed) return;
    if (this.protocolVersion === 5 && packet.cmd === 'unsubscribe') this.unsubscribing.set(packet.messageId ?? 0, packet.unsubscriptions.length);
    if (!this.push(mqttPacket.generate(this.protocolVersion === 5 ? toVersion4(packet) : packet))) this.socket.pause();
  }

  /** Queues a packet of the bridge's own (PUBACK, PUBLISH, a refusing CONNACK) for the client. */
  send(packet: Packet): void {
    this.takeBrokerWrites();
    this.enqueue(this.encode(packet));
  }

  /**
   * Stops reading and tells aedes the connection is gone, lets the queued packets leave (so a refusing CONNACK
   * still reaches the client), then ends the socket. Idempotent.
   */
  close(): void {
    if (this.ending) return;
    this.takeBrokerWrites();
    this.ending = true;
    if (!this.destroyed) this.destroy();
    this.flushThenEnd();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.fromBroker.parse(chunk);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // aedes destroys its connection to close it (after a refusing CONNACK, on DISCONNECT, on a takeover); what it
    // wrote before must still go out.
    this.close();
    callback(error);
  }

  /**
   * mqtt-packet corks the stream for each packet aedes writes and uncorks on the next tick, so a SUBACK aedes has
   * "written" may still sit in the cork buffer. Uncorking now keeps the wire order: what aedes wrote first goes
   * first (a config delivery must follow the SUBACK of its subscription). The deferred uncorks then find nothing
   * left to do.
   */
  private takeBrokerWrites(): void {
    while (this.writableCorked > 0) this.uncork();
  }

  /** The bytes of a packet for the client, in its protocol level's form. */
  private encode(packet: Packet): Buffer {
    if (this.protocolVersion === 4) return mqttPacket.generate(packet);
    let topics = 1;
    if (packet.cmd === 'unsuback') {
      topics = this.unsubscribing.get(packet.messageId ?? 0) ?? 1;
      this.unsubscribing.delete(packet.messageId ?? 0);
    }
    return mqttPacket.generate(toVersion5(packet, topics), { protocolVersion: 5 });
  }

  private enqueue(bytes: Buffer): void {
    if (this.socket.destroyed) return;
    const latency = this.handlers.latencyMs();
    if (latency <= 0 && this.queue.length === 0) {
      this.socket.write(bytes);
      return;
    }
    this.queue.push({ due: Date.now() + latency, bytes });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) {
      if (this.ending) this.endSocket();
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      // FIFO even if the latency was lowered meanwhile: packets never overtake each other.
      while (this.queue.length > 0 && this.queue[0]!.due <= now) {
        const { bytes } = this.queue.shift()!;
        if (!this.socket.destroyed) this.socket.write(bytes);
      }
      this.schedule();
    }, Math.max(0, head.due - Date.now()));
  }

  private flushThenEnd(): void {
    if (this.queue.length === 0) this.endSocket();
    else this.schedule();
  }

  private endSocket(): void {
    if (this.socket.destroyed) return;
    this.socket.end();
    const socket = this.socket;
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }
}
