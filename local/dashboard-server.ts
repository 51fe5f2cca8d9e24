/**
 * Serves the dashboard: the page (`dashboard/index.html`, `dashboard/dashboard.js`), a JSON snapshot, and a
 * server-sent event stream that pushes a new snapshot whenever the feed reports a change (at most every
 * `pushEveryMs`) and at least every second, so the clocks and the chart move while nothing happens.
 *
 * | path | answer |
 * |---|---|
 * | `GET /` | the page |
 * | `GET /dashboard.js` | its script |
 * | `GET /api/state` | the snapshot, JSON |
 * | `GET /api/stream` | `text/event-stream`, one `state` event per snapshot |
 * | `POST /api/poll` | runs the config poller now; 202 |
 * | `POST /api/dead-letters/replay` | replays the dead-letter queue (local/dead-letter-watch.ts) |
 *
 * @example
 * const dashboard = await startDashboardServer({ feed, port: 3001, pollNow: () => poller.fireNow() });
 * await dashboard.close();
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { DashboardFeed } from './dashboard-feed.js';
import { handleReplayRequest, type DeadLetterWatch } from './dead-letter-watch.js';
import { closeHttpServer, listen } from './listen.js';

export interface DashboardServerOptions {
  feed: DashboardFeed;
  port?: number;
  host?: string;
  /** Runs the config poller once; absent when the stack has none. */
  pollNow?: () => void;
  /** The dead-letter panel's replay; absent when the stack has no dead-letter queue. */
  deadLetters?: DeadLetterWatch;
  pushEveryMs?: number;
}

export interface DashboardServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const STATIC: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/dashboard.js': { file: 'dashboard.js', type: 'text/javascript; charset=utf-8' },
};
const HEARTBEAT_MS = 1000;

export async function startDashboardServer(options: DashboardServerOptions): Promise<DashboardServer> {
  const host = options.host ?? '127.0.0.1';
  const files = new Map<string, Buffer>();
  for (const { file } of Object.values(STATIC)) files.set(file, await readFile(fileURLToPath(new URL(`./dashboard/${file}`, import.meta.url))));

  const streams = new Set<ServerResponse>();
  let pending: NodeJS.Timeout | undefined;
  const push = (): void => {
    pending = undefined;
    if (streams.size === 0) return;
    const frame = `event: state\ndata: ${JSON.stringify(options.feed.snapshot())}\n\n`;
    for (const res of streams) res.write(frame);
  };
  const schedulePush = (): void => {
    pending ??= setTimeout(push, options.pushEveryMs ?? 250);
  };
  options.feed.on('change', schedulePush);
  const heartbeat = setInterval(schedulePush, HEARTBEAT_MS);

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    const method = req.method ?? 'GET';
    const page = STATIC[path];
    if (page !== undefined && method === 'GET') {
      res.writeHead(200, { 'content-type': page.type, 'cache-control': 'no-store' });
      res.end(files.get(page.file));
      return;
    }
    if (path === '/api/state' && method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(options.feed.snapshot()));
      return;
    }
    if (path === '/api/stream' && method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      // The browser reconnects by itself after this long if the stack restarts.
      res.write(`retry: 2000\nevent: state\ndata: ${JSON.stringify(options.feed.snapshot())}\n\n`);
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return;
    }
    if (path === '/api/poll' && method === 'POST' && options.pollNow !== undefined) {
      options.pollNow();
      res.writeHead(202, { 'content-type': 'application/json' });
      res.end('{"poll":"started"}');
      return;
    }
    if (path === '/api/dead-letters/replay' && method === 'POST' && options.deadLetters !== undefined) {
      await handleReplayRequest(req, res, options.deadLetters);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"message":"Not Found"}');
  };

  await listen(server, options.port ?? 0, host);
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    async close() {
      options.feed.off('change', schedulePush);
      clearInterval(heartbeat);
      if (pending !== undefined) clearTimeout(pending);
      for (const res of streams) res.end();
      streams.clear();
      await closeHttpServer(server);
    },
  };
}
