/**
 * A TLS front for the bridge emulator that reads the MQTT passing through it, so tests can do what the emulator's
 * own faults cannot: withhold the bridge's answer to any phase of a gateway session (CONNACK, the SUBACK of the
 * errors subscription, the PUBACKs of attaches, publishes or detaches), and play a hostile bridge that slips
 * crafted packets (errors-topic messages, say) in front of the real ones.
 *
 * The client's bytes are forwarded unchanged; the bridge's packets are parsed and written again one by one, so a
 * hook can hold one back or put another before it. The proxy serves its own certificate (a CA generated at
 * start, like the emulator's), which clients must trust explicitly, and checks the emulator's as a client would.
 *
 * It also keeps what a test needs to check secrets and payloads: every CONNECT password (the exact gateway JWTs
 * the relay signed) and every client PUBLISH (attach payloads with device tokens, telemetry).
 *
 * @example
 * const proxy = await startInterceptingProxy(emulator);
 * proxy.stallAt = 'subscribe';                // the SUBACK never comes
 * const session = new GatewaySession({ ...options, host: proxy.host, port: proxy.port, extraCaPem: proxy.ca });
 */
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import mqttPacket from 'mqtt-packet';
import type { IConnectPacket, IPublishPacket, Packet } from 'mqtt-packet';
import { phaseOf, type Phase } from '../../emulator/faults.js';
import { generateTlsMaterial, serverOptions } from '../../emulator/tls.js';

/** One client connection through the proxy. */
export interface ProxyLink {
  /** Sends a packet to the client as if the bridge had sent it. */
  toClient(packet: Packet): void;
  /** The client ID of the CONNECT, once seen. */
  readonly clientId: string | undefined;
}

export interface ProxyHooks {
  /** Sees every packet of the client, before it is forwarded. */
  fromClient?(packet: Packet, link: ProxyLink): void;
  /** Sees every packet of the bridge; `withhold` keeps it from the client. Runs after the stall rule. */
  fromBridge?(packet: Packet, link: ProxyLink): 'forward' | 'withhold';
}

export interface InterceptingProxy {
  readonly host: string;
  readonly port: number;
  /** The CA the proxy's certificate chains to: what clients must trust. */
  readonly ca: string;
  /** The phase whose answers the bridge "never sends"; live, undefined passes everything through. */
  stallAt: Phase | undefined;
  hooks: ProxyHooks;
  /** Answers held back by `stallAt`, in order. */
  readonly withheld: Packet[];
  /** The password of every CONNECT, as text. */
  readonly passwords: string[];
  /** Every client PUBLISH, in order. */
  readonly published: { topic: string; payload: Buffer; qos: number; clientId: string | undefined }[];
  /** Connections currently open through the proxy. */
  openLinks(): number;
  close(): Promise<void>;
}

export interface ProxyTarget {
  host: string;
  port: number;
  /** The CA of the emulator's certificate. */
  ca: string | undefined;
}

const MQTT_3_1_1 = { protocolVersion: 4 };

/** Answers that end each phase: the packet type, and whether it carries the request's packet ID. */
function answers(phase: Phase, packet: Packet, pending: Set<number>): boolean {
  switch (phase) {
    case 'connect':
      return packet.cmd === 'connack';
    case 'subscribe':
      return packet.cmd === 'suback' && pending.has(packet.messageId ?? -1);
    default:
      return packet.cmd === 'puback' && pending.has(packet.messageId ?? -1);
  }
}

export async function startInterceptingProxy(target: ProxyTarget, options: { hooks?: ProxyHooks; protocolVersion?: 4 | 5 } = {}): Promise<InterceptingProxy> {
  const wire = options.protocolVersion === 5 ? { protocolVersion: 5 } : MQTT_3_1_1;
  const material = await generateTlsMaterial();
  const sockets = new Set<TLSSocket>();
  const withheld: Packet[] = [];
  const passwords: string[] = [];
  const published: InterceptingProxy['published'] = [];
  const state = { stallAt: undefined as Phase | undefined, hooks: options.hooks ?? {} };
  let links = 0;

  const server = createServer(serverOptions(material), (client) => {
    const upstream = tlsConnect({ host: target.host, port: target.port, ...(target.ca === undefined ? {} : { ca: target.ca }) });
    sockets.add(client);
    sockets.add(upstream);
    links++;
    const fromClient = mqttPacket.parser(wire);
    const fromBridge = mqttPacket.parser(wire);
    /** Packet IDs of client packets whose answers are to be withheld (the stalled phase's). */
    const stalledIds = new Set<number>();
    let stalledPhase: Phase | undefined;
    let clientId: string | undefined;
    const link: ProxyLink = {
      toClient: (packet) => {
        if (!client.destroyed) client.write(mqttPacket.generate(packet, wire));
      },
      get clientId() {
        return clientId;
      },
    };

    fromClient.on('packet', (packet: Packet) => {
      if (packet.cmd === 'connect') {
        const connect = packet as IConnectPacket;
        clientId = connect.clientId;
        if (connect.password !== undefined) passwords.push(Buffer.from(connect.password).toString('utf8'));
      }
      if (packet.cmd === 'publish') {
        const p = packet as IPublishPacket;
        published.push({ topic: p.topic, payload: Buffer.from(p.payload), qos: p.qos, clientId });
      }
      const phase = phaseOf(packet);
      if (phase !== undefined && phase === state.stallAt) {
        stalledPhase = phase;
        if (packet.messageId !== undefined) stalledIds.add(packet.messageId);
      }
      state.hooks.fromClient?.(packet, link);
    });
    fromBridge.on('packet', (packet: Packet) => {
      if (stalledPhase !== undefined && answers(stalledPhase, packet, stalledIds)) {
        withheld.push(packet);
        return;
      }
      if (state.hooks.fromBridge?.(packet, link) === 'withhold') return;
      link.toClient(packet);
    });
    // A parse error means one side is not speaking MQTT 3.1.1; the link is useless from then on.
    fromClient.on('error', () => client.destroy());
    fromBridge.on('error', () => upstream.destroy());

    client.on('data', (chunk: Buffer) => {
      // Parsed first, so a stall is armed before the bridge can answer what this chunk carries.
      fromClient.parse(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => fromBridge.parse(chunk));
    let ended = false;
    const end = (): void => {
      if (!ended) links--;
      ended = true;
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', () => {
        sockets.delete(s);
        end();
      });
    }
  });
  // A client that refuses the proxy's certificate fails the handshake; that is the client's test to observe.
  server.on('tlsClientError', () => {});
  const host = '127.0.0.1';
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });

  return {
    host,
    port,
    ca: material.caPem!,
    get stallAt() {
      return state.stallAt;
    },
    set stallAt(phase: Phase | undefined) {
      state.stallAt = phase;
    },
    get hooks() {
      return state.hooks;
    },
    set hooks(hooks: ProxyHooks) {
      state.hooks = hooks;
    },
    withheld,
    passwords,
    published,
    openLinks: () => links,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
