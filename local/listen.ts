/**
 * Binding and closing the stack's HTTP servers, so that a busy port fails start-up with its number and a stop
 * leaves no socket behind (an idle keep-alive connection from an SDK client would otherwise hold `close()` open).
 *
 * @example
 * await listen(server, 3000, '127.0.0.1');
 * await closeHttpServer(server);
 */
import type { Server } from 'node:http';
import { RelayError } from '../lib/errors.js';

export function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      const why = e.code === 'EADDRINUSE' ? 'is already in use' : `cannot be bound (${e.code ?? e.message})`;
      reject(new RelayError('ERR_CONFIG', `port ${port} on ${host} ${why}`, { cause: e }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

export function closeHttpServer(server: Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve, reject) => {
    server.close((e) => (e ? reject(e) : resolve()));
    // After close(): no new connection can arrive between the two calls.
    server.closeAllConnections();
  });
}
