/**
 * A stand-in for the two network servers' downlink APIs, on 127.0.0.1, for the local stack and the tests: one HTTP
 * server that answers as The Things Stack's webhook downlink paths and as ChirpStack's REST API device queue do,
 * checks each request the way they would (path, API key header, JSON body, types), and records every downlink it
 * accepted.
 *
 * | route | as |
 * |---|---|
 * | `POST /api/v3/as/applications/{app}/webhooks/{webhook}/devices/{device}/down/push` (or `/down/replace`) | The Things Stack; `Authorization: Bearer <key>`; `{"downlinks": [{"frm_payload", "f_port", ...}]}`; answers `{}` |
 * | `POST /api/devices/{devEui}/queue` | ChirpStack REST API; `Grpc-Metadata-Authorization: Bearer <key>`; `{"queueItem": {"fPort", "data", ...}, "flushQueue"}`; answers `{"id"}` |
 * | `GET /downlinks` | what was recorded, oldest first, as JSON |
 *
 * Refusals copy the servers' error shape, `{"code": <gRPC code>, "message", "details": []}`, with 401 for a wrong
 * key and 400 for a malformed body. `refuse(status)` makes it refuse every downlink (a network server that is down
 * or rejects the key) until `refuse(undefined)`; refused downlinks are not recorded.
 *
 * @example
 * const ns = await startNetworkServerStandIn({ apiKeys: { tts: 'NNSXS.LOCAL', chirpstack: 'local-key' } });
 * // point an integration's downlink.apiUrl at ns.url, then:
 * ns.downlinks(); // [{ networkServer: 'tts', deviceId: 'soil-probe-07', fPort: 10, data: 'eyJyYXRlIjo1fQ==', ... }]
 * await ns.close();
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeHttpServer, listen } from './listen.js';

export interface RecordedDownlink {
  /** Order of arrival, from 1. */
  seq: number;
  at: string;
  networkServer: 'tts' | 'chirpstack';
  /** The Things Stack: `push` or `replace`; ChirpStack: `replace` when `flushQueue` was set, else `push`. */
  operation: 'push' | 'replace';
  /** The Things Stack's application and device IDs, webhook ID; ChirpStack's DevEUI. */
  applicationId?: string;
  webhookId?: string;
  deviceId?: string;
  devEui?: string;
  fPort: number;
  /** The frame payload, base64, as received. */
  data: string;
  confirmed: boolean;
  /** ChirpStack: the queue item ID it answered with. */
  id?: string;
}

export interface NetworkServerStandInOptions {
  /** The API key each API accepts. */
  apiKeys: { tts: string; chirpstack: string };
  port?: number;
  host?: string;
}

export interface NetworkServerStandIn {
  url: string;
  port: number;
  downlinks(): RecordedDownlink[];
  /** Answer every downlink with this HTTP status (and not record it), or accept again with undefined. */
  refuse(status: number | undefined): void;
  /** Emits `downlink` with each recorded downlink. */
  events: EventEmitter;
  close(): Promise<void>;
}

const TTS_PATH = /^\/api\/v3\/as\/applications\/([^/]+)\/webhooks\/([^/]+)\/devices\/([^/]+)\/down\/(push|replace)$/;
const CHIRPSTACK_PATH = /^\/api\/devices\/([0-9A-Fa-f]{16})\/queue$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const MAX_BODY = 64 * 1024;
/** gRPC status codes of the refusals, as both servers put them in their error bodies. */
const GRPC = { 400: 3, 401: 16, 404: 5, 503: 14 } as Record<number, number>;

class Refused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function startNetworkServerStandIn(options: NetworkServerStandInOptions): Promise<NetworkServerStandIn> {
  const recorded: RecordedDownlink[] = [];
  const events = new EventEmitter();
  let refusing: number | undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof Refused ? e.status : 500;
      send(res, status, { code: GRPC[status] ?? 2, message: e instanceof Error ? e.message : 'error', details: [] });
    });
  });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    if (req.method === 'GET' && path === '/downlinks') return send(res, 200, recorded);
    const tts = TTS_PATH.exec(path);
    const chirpstack = CHIRPSTACK_PATH.exec(path);
    if (tts === null && chirpstack === null) throw new Refused(404, `no route for ${req.method} ${path}`);
    if (req.method !== 'POST') throw new Refused(404, `${req.method} is not served on ${path}`);
    const body = await readJson(req);
    if (tts !== null) {
      if (req.headers.authorization !== `Bearer ${options.apiKeys.tts}`) throw new Refused(401, 'error:pkg/auth:unauthenticated (invalid API key)');
      if (refusing !== undefined) throw new Refused(refusing, 'refused by the stand-in');
      return send(res, 200, {}, () => recordTts(tts, body));
    }
    if (req.headers['grpc-metadata-authorization'] !== `Bearer ${options.apiKeys.chirpstack}`) throw new Refused(401, 'authentication failed: invalid API key');
    if (refusing !== undefined) throw new Refused(refusing, 'refused by the stand-in');
    const id = randomUUID();
    return send(res, 200, { id }, () => recordChirpstack(chirpstack!, body, id));
  };

  const note = (downlink: Omit<RecordedDownlink, 'seq' | 'at'>): void => {
    const entry: RecordedDownlink = { seq: recorded.length + 1, at: new Date().toISOString(), ...downlink };
    recorded.push(entry);
    events.emit('downlink', entry);
  };

  const recordTts = (m: RegExpExecArray, body: Record<string, unknown>): void => {
    const downlinks = body.downlinks;
    if (!Array.isArray(downlinks) || downlinks.length === 0) throw new Refused(400, 'downlinks must be a non-empty list');
    const items = downlinks.map((d, i) => {
      const item = (typeof d === 'object' && d !== null ? d : {}) as Record<string, unknown>;
      return { fPort: port(item.f_port, `downlinks[${i}].f_port`), data: payload(item.frm_payload, `downlinks[${i}].frm_payload`), confirmed: item.confirmed === true };
    });
    for (const item of items) {
      note({
        networkServer: 'tts',
        operation: m[4] as 'push' | 'replace',
        applicationId: decodeURIComponent(m[1]!),
        webhookId: decodeURIComponent(m[2]!),
        deviceId: decodeURIComponent(m[3]!),
        ...item,
      });
    }
  };

  const recordChirpstack = (m: RegExpExecArray, body: Record<string, unknown>, id: string): void => {
    const item = body.queueItem;
    if (typeof item !== 'object' || item === null) throw new Refused(400, 'queueItem must be an object');
    const q = item as Record<string, unknown>;
    // The gateway takes the field's JSON name or its proto name, as protojson does.
    const fPort = port(q.fPort ?? q.f_port, 'queueItem.fPort');
    note({
      networkServer: 'chirpstack',
      operation: body.flushQueue === true || body.flush_queue === true ? 'replace' : 'push',
      devEui: m[1]!.toLowerCase(),
      fPort,
      data: payload(q.data, 'queueItem.data'),
      confirmed: q.confirmed === true,
      id,
    });
  };

  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const { port: actualPort } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${actualPort}`,
    port: actualPort,
    downlinks: () => recorded.map((d) => ({ ...d })),
    refuse: (status) => {
      refusing = status;
    },
    events,
    close: () => closeHttpServer(server),
  };
}

function port(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 223) throw new Refused(400, `${field} must be an integer from 1 to 223`);
  return value;
}

function payload(value: unknown, field: string): string {
  if (typeof value !== 'string' || !BASE64.test(value)) throw new Refused(400, `${field} must be base64`);
  return value;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new Refused(400, 'the body must be application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).byteLength;
    if (size > MAX_BODY) throw new Refused(400, 'the body is too large');
    chunks.push(chunk as Buffer);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new Refused(400, 'the body is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Refused(400, 'the body must be a JSON object');
  return doc as Record<string, unknown>;
}

/** Checks and records the downlink (`then`), then answers 200; a downlink that fails its check is answered 400, unrecorded. */
function send(res: ServerResponse, status: number, body: unknown, then?: () => void): void {
  try {
    then?.();
  } catch (e) {
    const refused = e instanceof Refused ? e : new Refused(500, 'error');
    const text = JSON.stringify({ code: GRPC[refused.status] ?? 2, message: refused.message, details: [] });
    res.writeHead(refused.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
