/**
 * A bridge stand-in that answers nothing by itself: a TCP (or TLS) server whose test decides every byte sent to the
 * client, and sees every packet and every 'data' chunk the client wrote, parsed by mqtt-packet.
 *
 * @example
 * const server = await startRawMqttServer();
 * const socket = connect(server.port, server.host);
 * const peer = await server.nextConnection();
 * await peer.packet('connect');
 * peer.send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
 */
import { EventEmitter, once } from 'node:events';
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { generate, parser as packetParser, type Packet } from 'mqtt-packet';

export interface RawPeer {
  socket: Socket;
  /** Every packet the client sent, in order. */
  packets: Packet[];
  /** Every 'data' chunk as it arrived. */
  chunks: Buffer[];
  /** Set when the client's FIN arrived. */
  endedAt: number | undefined;
  /** Resolves when the client is done: its FIN arrived, or the socket closed. */
  finished: Promise<void>;
  /** The `index`-th packet of kind `cmd` (0 for the first), waiting for it if need be. */
  packet(cmd: Packet['cmd'], index?: number, timeoutMs?: number): Promise<Packet>;
  send(packet: Packet): void;
  sendRaw(bytes: Buffer): void;
}

export interface RawMqttServer {
  host: string;
  port: number;
  peers: RawPeer[];
  nextConnection(timeoutMs?: number): Promise<RawPeer>;
  /** A plain TCP client connected to the server (TCP servers only), and the server's side of it. */
  dial(): Promise<{ socket: Socket; peer: RawPeer }>;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1; `tls` serves TLS with those options. Half-open sockets stay open: the test closes. */
export async function startRawMqttServer(options: { tls?: TlsOptions } = {}): Promise<RawMqttServer> {
  const peers: RawPeer[] = [];
  const arrivals = new EventEmitter();
  const onSocket = (socket: Socket): void => {
    const peer = rawPeer(socket);
    peers.push(peer);
    arrivals.emit('peer', peer);
  };
  const server: Server = options.tls === undefined ? createTcpServer({ allowHalfOpen: true }, onSocket) : createTlsServer({ ...options.tls, allowHalfOpen: true }, onSocket);
  // A client that fails its TLS handshake is the test's business, not an uncaught error.
  server.on('tlsClientError', (_error: Error, socket: Socket) => socket.destroy());
  // Every TCP connection, TLS handshake done or not, so that close() can end them all.
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  let taken = 0;
  const clients: Socket[] = [];
  const raw: RawMqttServer = {
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    peers,
    async nextConnection(timeoutMs = 5000) {
      const index = taken++;
      if (peers[index] === undefined) await waitFor(arrivals, 'peer', () => peers[index] !== undefined, timeoutMs, 'no connection came');
      return peers[index]!;
    },
    async dial() {
      const socket = tcpConnect(raw.port, raw.host);
      clients.push(socket);
      await once(socket, 'connect');
      return { socket, peer: await raw.nextConnection() };
    },
    async close() {
      for (const c of clients) c.destroy();
      for (const p of peers) p.socket.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return raw;
}

function rawPeer(socket: Socket): RawPeer {
  const events = new EventEmitter();
  const parser = packetParser({ protocolVersion: 4 });
  const peer: RawPeer = {
    socket,
    packets: [],
    chunks: [],
    endedAt: undefined,
    finished: Promise.race([once(socket, 'end'), once(socket, 'close')]).then(() => undefined),
    async packet(cmd, index = 0, timeoutMs = 5000) {
      const find = (): Packet | undefined => peer.packets.filter((p) => p.cmd === cmd)[index];
      await waitFor(events, 'packet', () => find() !== undefined, timeoutMs, `no ${cmd} #${index} from the client`);
      return find()!;
    },
    send: (packet) => void socket.write(generate(packet)),
    sendRaw: (bytes) => void socket.write(bytes),
  };
  parser.on('packet', (p: Packet) => {
    peer.packets.push(p);
    events.emit('packet');
  });
  socket.on('data', (chunk: Buffer) => {
    peer.chunks.push(chunk);
    parser.parse(chunk);
  });
  socket.on('end', () => (peer.endedAt = Date.now()));
  socket.on('error', () => undefined);
  return peer;
}

async function waitFor(events: EventEmitter, name: string, ready: () => boolean, timeoutMs: number, message: string): Promise<void> {
  if (ready()) return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      events.off(name, check);
      reject(new Error(`${message} within ${timeoutMs} ms`));
    }, timeoutMs);
    function check(): void {
      if (!ready()) return;
      clearTimeout(timer);
      events.off(name, check);
      resolve();
    }
    events.on(name, check);
  });
}
