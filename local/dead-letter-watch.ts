/**
 * The local dashboard's dead-letter panel and its replay button: the dead letters of the stack's dead-letter queue
 * with device, reason code, reason and age, read with the same code as `iotcore-relay dlq list`, and a replay that
 * runs the same code as `iotcore-relay dlq replay` (lib/dead-letters/).
 *
 * SQS offers no way to look at a queue without receiving from it, so each read makes the dead letters invisible for
 * the moment it takes (milliseconds on the local server; at most `visibilityTimeoutSeconds` if the stack dies
 * mid-read). To keep that rare and short, the queue's depth is sampled every `everyMs`; the list is read again only
 * when the depth changed (at most every `minReadIntervalMs`), after a replay, or when asked, and a read takes the
 * first `maxShown` dead letters in queue order, not the whole queue. Reads and replays never overlap: a replay would
 * not see what a read holds.
 *
 * | route | answer |
 * |---|---|
 * | `POST /api/dead-letters/replay` | replays what would not fail again (`{"force": true}` replays all, `{"dryRun": true}` changes nothing); 200 with the summary, 409 while one runs; JSON only (415) |
 *
 * @example
 * const watch = new DeadLetterWatch({ client, deadLetterQueueUrl, relayQueueUrl, gatewayIds: ['gw-1'] });
 * watch.start();
 * watch.snapshot(); // { total: 2, items: [{ deviceId: 'ghost-0001', code: 'ERR_ATTACH_REJECTED', ... }], ... }
 * await watch.stop();
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { listDeadLetters, replayDeadLetters, type ReplayReport } from '../lib/dead-letters/dead-letter-queue.js';
import { summarizeReplay } from '../lib/dead-letters/replay-summary.js';
import { permanentFailure } from '../lib/dead-letters/selection.js';
import { queueDepth } from './queue-depth.js';

export interface DeadLetterWatchOptions {
  client: SQSClient;
  deadLetterQueueUrl: string;
  relayQueueUrl: string;
  gatewayIds: readonly string[];
  /** How often the depth is sampled. Default 1000. */
  everyMs?: number;
  /** How long a read may hold the dead letters at most. Default 10. */
  visibilityTimeoutSeconds?: number;
  /** Dead letters read and shown, the queue's first (oldest). Default 100. */
  maxShown?: number;
  /** Least time between two reads prompted by a changing depth. Default 2000. */
  minReadIntervalMs?: number;
}

export interface DeadLetterRow {
  messageId: string;
  deviceId?: string;
  /** A config-poll job's devices. */
  deviceIds?: string[];
  /** The relay's code; absent for a record the queue's redrive moved. */
  code?: string;
  reason: string;
  via: 'relay' | 'redrive';
  type: string;
  /** When it entered the dead-letter queue. */
  at: string;
  /** Set when a replay would skip it: the code it would fail with again. */
  permanent?: string;
}

export interface DeadLetterPanel {
  /** Dead letters in the queue, as of the last read (exact when all were read). */
  total: number;
  items: DeadLetterRow[];
  listedAt?: string;
  error?: string;
  replay: { running: boolean; last?: { at: string; dryRun: boolean; replayed: number; skipped: number; failed: number; text: string } };
}

export interface ReplayRequest {
  force?: boolean;
  dryRun?: boolean;
}

export class DeadLetterWatch extends EventEmitter {
  readonly #o: Required<DeadLetterWatchOptions>;
  #panel: DeadLetterPanel = { total: 0, items: [], replay: { running: false } };
  #lastDepth: number | undefined;
  #wanted = true;
  /** A read that may not wait for the interval: the first, one asked for, one after a replay. */
  #urgent = true;
  #lastReadAt = 0;
  /** Reads and replays, one after the other. */
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(options: DeadLetterWatchOptions) {
    super();
    this.#o = { everyMs: 1000, visibilityTimeoutSeconds: 10, maxShown: 100, minReadIntervalMs: 2000, ...options };
  }

  start(): void {
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#queue.catch(() => undefined);
  }

  snapshot(): DeadLetterPanel {
    return this.#panel;
  }

  /** Reads the list again at the next sample. */
  refresh(): void {
    this.#wanted = true;
    this.#urgent = true;
  }

  get replaying(): boolean {
    return this.#panel.replay.running;
  }

  async replay(request: ReplayRequest = {}): Promise<ReplayReport> {
    this.#panel = { ...this.#panel, replay: { ...this.#panel.replay, running: true } };
    this.emit('change');
    const run = this.#serial(() =>
      replayDeadLetters(
        { client: this.#o.client, deadLetterQueueUrl: this.#o.deadLetterQueueUrl, relayQueueUrl: this.#o.relayQueueUrl },
        { gatewayIds: this.#o.gatewayIds, force: request.force === true, dryRun: request.dryRun === true, confirmWaitSeconds: 0 },
      ),
    );
    try {
      const report = await run;
      const last = {
        at: new Date().toISOString(),
        dryRun: report.dryRun,
        replayed: report.replayed.length,
        skipped: report.skipped.length,
        failed: report.failed.length + report.notDeleted.length,
        text: summarizeReplay(report),
      };
      this.#panel = { ...this.#panel, replay: { running: false, last } };
      return report;
    } catch (e) {
      this.#panel = { ...this.#panel, replay: { running: false } };
      throw e;
    } finally {
      this.refresh();
      this.emit('change');
    }
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(work, work);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#sample().finally(() => this.#schedule(this.#o.everyMs));
    }, ms);
  }

  async #sample(): Promise<void> {
    try {
      const depth = await queueDepth(this.#o.client, this.#o.deadLetterQueueUrl);
      const total = depth.waiting + depth.inFlight;
      if (total !== this.#lastDepth) this.#wanted = true;
      this.#lastDepth = total;
      if (!this.#wanted || this.#stopped) return;
      if (!this.#urgent && Date.now() - this.#lastReadAt < this.#o.minReadIntervalMs) return;
      this.#wanted = false;
      this.#urgent = false;
      this.#lastReadAt = Date.now();
      await this.#serial(() => this.#read());
    } catch (e) {
      this.#panel = { ...this.#panel, error: (e as Error).message };
      this.#wanted = true;
      this.emit('change');
    }
  }

  async #read(): Promise<void> {
    const list = await listDeadLetters(
      { client: this.#o.client, deadLetterQueueUrl: this.#o.deadLetterQueueUrl },
      { visibilityTimeoutSeconds: this.#o.visibilityTimeoutSeconds, confirmWaitSeconds: 0, limit: this.#o.maxShown },
    );
    const items = list.deadLetters.map((dl): DeadLetterRow => {
      const row: DeadLetterRow = { messageId: dl.messageId, reason: dl.reason, via: dl.via, type: dl.type, at: new Date(dl.deadLetteredAt).toISOString() };
      if (dl.deviceId !== undefined) row.deviceId = dl.deviceId;
      if (dl.deviceIds !== undefined) row.deviceIds = dl.deviceIds;
      if (dl.code !== undefined) row.code = dl.code;
      const permanent = permanentFailure(dl);
      if (permanent !== undefined) row.permanent = permanent.code;
      return row;
    });
    // Fewer than there are, yet under the limit: another reader (a `dlq` command) held some. Read again soon.
    if (list.unreached > 0 && list.examined < this.#o.maxShown) this.#wanted = true;
    const { error: _error, ...rest } = this.#panel;
    this.#panel = { ...rest, total: Math.max(list.examined, list.approximateDepth), items, listedAt: new Date().toISOString() };
    this.emit('change');
  }
}

/** `POST /api/dead-letters/replay` of the dashboard server. */
export async function handleReplayRequest(req: IncomingMessage, res: ServerResponse, watch: DeadLetterWatch): Promise<void> {
  const answer = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };
  // A page of another origin can POST a form or text to 127.0.0.1, but not JSON without a CORS preflight, which this
  // server never grants: the content type keeps other web pages from replaying.
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    req.resume();
    answer(415, { message: 'send the request as application/json' });
    return;
  }
  let request: ReplayRequest;
  try {
    const text = await readBody(req, 4096);
    const parsed: unknown = text.trim() === '' ? {} : JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    const { force, dryRun } = parsed as Record<string, unknown>;
    if ((force !== undefined && typeof force !== 'boolean') || (dryRun !== undefined && typeof dryRun !== 'boolean')) throw new Error('force and dryRun are booleans');
    request = { force: force === true, dryRun: dryRun === true };
  } catch (e) {
    answer(400, { message: `the body must be empty or {"force": boolean, "dryRun": boolean}: ${(e as Error).message}` });
    return;
  }
  if (watch.replaying) {
    answer(409, { message: 'a replay is already running' });
    return;
  }
  try {
    const report = await watch.replay(request);
    answer(200, {
      dryRun: report.dryRun,
      replayed: report.replayed.length,
      skipped: report.skipped.length,
      notMatching: report.notMatching,
      failed: report.failed.length,
      notDeleted: report.notDeleted.length,
      summary: summarizeReplay(report),
    });
  } catch (e) {
    answer(503, { message: `the replay failed: ${(e as Error).message}` });
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.byteLength;
      if (size > limit) {
        reject(new Error(`larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
