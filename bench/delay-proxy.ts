/**
 * A TCP proxy that puts a network between a client and a server on one machine: every chunk read from either side
 * is written to the other half a round trip later, in order. TLS records and MQTT packets are just bytes to it, so
 * the TLS handshake and every MQTT exchange pay the round trip, as they would across a real network.
 *
 * The one thing bytes cannot carry is TCP's own handshake: the kernel completes it at once, before the proxy sees
 * anything. So that a new connection still costs what SYN / SYN-ACK cost on a real link, the first bytes the client
 * sends are held one extra round trip, the client having sent them at the moment it would have learnt the
 * connection was up (`chargeTcpHandshake`, on by default).
 *
 * Both sockets run with Nagle's algorithm off: the proxy must not add a delay of its own to small writes.
 *
 * @example
 * const proxy = await startDelayProxy({ target: { host: emulator.host, port: emulator.port }, roundTripMs: 25 });
 * // connect to proxy.host:proxy.port instead of the emulator (the certificate names 127.0.0.1 for both)
 * await proxy.close();
 */
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface DelayProxyOptions {
  target: { host: string; port: number };
  /** The round trip the proxy adds: each direction is delayed by half of it. */
  roundTripMs: number;
  /** Interface to listen on; default 127.0.0.1. */
  host?: string;
  /** Charge one round trip for TCP's connection handshake (see above); default true. */
  chargeTcpHandshake?: boolean;
}

export interface DelayProxy {
  readonly host: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  close(): Promise<void>;
}

/**
 * One direction of one connection: chunks leave `delayMs` after they arrived, first in first out, and the end of the
 * stream follows the last chunk with the same delay (a half-close crosses the link like data does).
 */
class DelayedLane {
  private readonly queue: { due: number; chunk: Buffer | 'end' }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly to: Socket,
    private readonly delayMs: number,
  ) {}

  push(chunk: Buffer | 'end', extraDelayMs = 0): void {
    this.queue.push({ due: performance.now() + this.delayMs + extraDelayMs, chunk });
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const head = this.queue[0];
    if (head === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = performance.now();
      // Timers may fire a little early or late; everything due by now leaves, in arrival order.
      while (this.queue.length > 0 && this.queue[0]!.due <= now + 0.5) {
        const { chunk } = this.queue.shift()!;
        if (this.to.destroyed) continue;
        if (chunk === 'end') this.to.end();
        else this.to.write(chunk);
      }
      this.schedule();
    }, Math.max(0, head.due - performance.now()));
  }
}

export async function startDelayProxy(options: DelayProxyOptions): Promise<DelayProxy> {
  const half = options.roundTripMs / 2;
  const chargeHandshake = options.chargeTcpHandshake ?? true;
  const open = new Set<Socket>();
  let accepted = 0;

  const server = createServer({ allowHalfOpen: true }, (client) => {
    accepted++;
    const upstream = connect({ host: options.target.host, port: options.target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      open.add(s);
      s.once('close', () => open.delete(s));
    }
    // Writes to the upstream socket before it is connected are buffered by Node, so no bytes are lost meanwhile.
    const toServer = new DelayedLane(upstream, half);
    const toClient = new DelayedLane(client, half);
    let first = chargeHandshake;
    client.on('data', (chunk: Buffer) => {
      toServer.push(chunk, first ? options.roundTripMs : 0);
      first = false;
    });
    upstream.on('data', (chunk: Buffer) => toClient.push(chunk));
    client.on('end', () => toServer.push('end'));
    upstream.on('end', () => toClient.push('end'));
    // A reset or an abrupt close on one side is passed on at once: nothing more can be delivered either way.
    const teardown = (): void => {
      toServer.stop();
      toClient.stop();
      client.destroy();
      upstream.destroy();
    };
    client.on('error', teardown);
    upstream.on('error', teardown);
    client.on('close', (hadError) => {
      if (hadError) teardown();
    });
    upstream.on('close', (hadError) => {
      if (hadError) teardown();
    });
  });

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    host,
    port,
    get connections() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
