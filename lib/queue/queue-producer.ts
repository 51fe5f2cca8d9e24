/**
 * The one way the relay's code puts messages on an SQS queue: the ingest and the LoRaWAN webhooks (through
 * relay-queue.ts), the scheduled poller (lib/poll/enqueue-polls.ts), the relay's dead-letter sends
 * (queue-actions.ts), and the dead-letter replay (lib/dead-letters/dead-letter-queue.ts).
 *
 * - `send()` cuts the messages into SendMessageBatch calls of at most 10 entries and `maxBatchBytes` (256 KiB
 *   unless told otherwise), in order, and reports an outcome per message. `sendOne()` makes one SendMessage.
 * - A message larger than `maxBatchBytes` on its own is refused before any call, with ERR_PAYLOAD_TOO_LARGE
 *   (field `body`), and its neighbours go as if it were not there: no resend could ever make it fit.
 * - Failures are per message: a RelayError (queue-failure.ts: ERR_QUEUE_THROTTLED or ERR_QUEUE_UNAVAILABLE) and
 *   whether sending again may succeed. With `attempts` above 1, the retryable failures of a call are sent again,
 *   after 200 ms, then 400 ms...
 * - Calls go one after the other and sending stops at the first call whose messages are not all queued after their
 *   attempts; the messages after it are reported not sent. On a FIFO queue a message group delivers in send order,
 *   so sending later messages past a failed one would let them overtake it when its producer sends it again.
 *
 * The SDK is loaded at the first send, not with this module: the relay's handler imports this module, and its cold
 * start must not evaluate the SDK (handlers/relay.ts). Give `client` as a client, or as a function that makes one
 * at first use.
 *
 * @example
 * const producer = new QueueProducer({ queueUrl, client: () => new SQSClient({}) });
 * const outcomes = await producer.send(jobs.map((j) => ({ body: j.body, groupId: j.gatewayId, deduplicationId: j.id })), { attempts: 3 });
 * outcomes.filter((o) => !o.queued); // [{ queued: false, error: RelayError ERR_QUEUE_UNAVAILABLE, retryable: true }, ...]
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { SendMessageBatchRequestEntry, SQSClient } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { lazy } from '../lazy.js';
import { callFailure, entryFailure, type QueueFailure } from './queue-failure.js';

export interface QueueEntry {
  body: string;
  /** For a FIFO queue: the message group, and the deduplication ID (optional with content-based deduplication). */
  groupId?: string;
  deduplicationId?: string;
  /** Message attributes: a string is a `String` attribute. SQS counts each into the message's size. */
  attributes?: Readonly<Record<string, QueueAttribute>>;
}

/**
 * A message attribute's value: a string (DataType `String`), or a typed value with its DataType, which may carry a
 * custom type after a dot (`Number.float`, `Binary.gzip`). A Number's value is its decimal text.
 */
export type QueueAttribute =
  | string
  | { DataType: `String${string}` | `Number${string}`; StringValue: string }
  | { DataType: `Binary${string}`; BinaryValue: Uint8Array };

export type QueueOutcome = { queued: true; messageId: string } | ({ queued: false } & QueueFailure);

export interface QueueProducerOptions {
  queueUrl: string;
  /** A client, or a function that makes one at the first send. Default: `new SQSClient({})`. */
  client?: SQSClient | (() => SQSClient | Promise<SQSClient>);
  /**
   * Bytes of bodies and attributes one call may carry, and so the largest message. Default 256 KiB, the limit every
   * SQS queue has always accepted; SQS takes up to 1 MiB where the queue's MaximumMessageSize allows it.
   */
  maxBatchBytes?: number;
  /** How the queue is named in error messages. Default "the relay queue". */
  name?: string;
}

export interface SendOptions {
  /** Calls per message at most: retryable failures are sent again until then. Default 1. */
  attempts?: number;
}

/** SendMessageBatch takes at most 10 entries. */
export const MAX_BATCH_ENTRIES = 10;
/** The classic SQS message size limit, which also bounds a whole SendMessageBatch. */
export const CLASSIC_MAX_MESSAGE_BYTES = 256 * 1024;
/** SQS's largest message, and SendMessageBatch's largest call, on a queue that allows it. */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** The SDK's commands and client, loaded once at the first use (sqs-sdk.ts says why through a module of ours). */
export const loadSqsSdk = lazy(() => import('./sqs-sdk.js'));

export class QueueProducer {
  readonly queueUrl: string;
  readonly maxBatchBytes: number;
  private readonly name: string;
  private readonly client: () => Promise<SQSClient>;

  constructor(options: QueueProducerOptions) {
    if (options.queueUrl.trim() === '') throw new RelayError('ERR_CONFIG', 'the queue URL is empty');
    const max = options.maxBatchBytes ?? CLASSIC_MAX_MESSAGE_BYTES;
    if (!Number.isSafeInteger(max) || max < 1 || max > MAX_MESSAGE_BYTES) {
      throw new RelayError('ERR_CONFIG', `a call's byte limit must be an integer from 1 to ${MAX_MESSAGE_BYTES} (got ${max})`);
    }
    this.queueUrl = options.queueUrl;
    this.maxBatchBytes = max;
    this.name = options.name ?? 'the relay queue';
    const given = options.client;
    this.client = lazy(async () => (typeof given === 'function' ? given() : (given ?? new (await loadSqsSdk()).SQSClient({}))));
  }

  /** One outcome per entry, in the entries' order. Never throws for a queue failure: it reports it per entry. */
  async send(entries: readonly QueueEntry[], options: SendOptions = {}): Promise<QueueOutcome[]> {
    const attempts = Math.max(1, Math.floor(options.attempts ?? 1));
    const outcomes: (QueueOutcome | undefined)[] = entries.map((e) => this.oversize(e));
    const chunks = chunkEntries(entries.flatMap((entry, index) => (outcomes[index] === undefined ? [{ entry, index }] : [])), this.maxBatchBytes);
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c]!;
      await this.sendChunk(chunk, attempts, outcomes);
      const failed = chunk.map(({ index }) => outcomes[index]!).find((o): o is Extract<QueueOutcome, { queued: false }> => !o.queued);
      if (failed === undefined) continue;
      const error = new RelayError(failed.error.code, `not sent: an earlier record of the batch was not queued (${failed.error.message})`);
      for (const later of chunks.slice(c + 1)) for (const { index } of later) outcomes[index] = { queued: false, error, retryable: failed.retryable };
      break;
    }
    return outcomes.map((o) => o!);
  }

  /** One SendMessage. Never throws for a queue failure. */
  async sendOne(entry: QueueEntry): Promise<QueueOutcome> {
    const refused = this.oversize(entry);
    if (refused !== undefined) return refused;
    try {
      const [client, sdk] = await Promise.all([this.client(), loadSqsSdk()]);
      const out = await client.send(new sdk.SendMessageCommand({ QueueUrl: this.queueUrl, ...requestEntry(entry) }));
      return { queued: true, messageId: out.MessageId ?? '' };
    } catch (e) {
      return { queued: false, ...callFailure(e, this.name) };
    }
  }

  private oversize(entry: QueueEntry): QueueOutcome | undefined {
    const size = entrySize(entry);
    if (size <= this.maxBatchBytes) return undefined;
    const error = new RelayError('ERR_PAYLOAD_TOO_LARGE', `the message is ${size} bytes; ${this.name} takes at most ${this.maxBatchBytes}`, { field: 'body' });
    return { queued: false, error, retryable: false };
  }

  /** Sends one chunk, again and again for its retryable failures, and fills in `outcomes` for its entries. */
  private async sendChunk(chunk: readonly Indexed[], attempts: number, outcomes: (QueueOutcome | undefined)[]): Promise<void> {
    let pending = chunk;
    for (let attempt = 1; pending.length > 0; attempt++) {
      if (attempt > 1) await sleep(100 * 2 ** (attempt - 1));
      await this.sendBatch(pending, outcomes);
      const unsent = pending.filter(({ index }) => !outcomes[index]!.queued);
      // A failure no resend can fix ends the chunk: it stops the send anyway, so resending its neighbours is moot.
      if (attempt >= attempts || unsent.some(({ index }) => !(outcomes[index] as { retryable: boolean }).retryable)) return;
      pending = unsent;
    }
  }

  private async sendBatch(batch: readonly Indexed[], outcomes: (QueueOutcome | undefined)[]): Promise<void> {
    // Entry IDs only need to be unique within the call; the position is enough.
    const id = (i: number): string => `r${i}`;
    let out;
    try {
      const [client, sdk] = await Promise.all([this.client(), loadSqsSdk()]);
      out = await client.send(
        new sdk.SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: batch.map(({ entry }, i): SendMessageBatchRequestEntry => ({ Id: id(i), ...requestEntry(entry) })),
        }),
      );
    } catch (e) {
      const failure = callFailure(e, this.name);
      for (const { index } of batch) outcomes[index] = { queued: false, ...failure };
      return;
    }
    const ok = new Map((out.Successful ?? []).map((s) => [s.Id, s.MessageId ?? '']));
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    batch.forEach(({ index }, i) => {
      const messageId = ok.get(id(i));
      outcomes[index] = messageId !== undefined ? { queued: true, messageId } : { queued: false, ...entryFailure(failed.get(id(i)), this.name) };
    });
  }
}

interface Indexed {
  entry: QueueEntry;
  /** Position among the entries given to `send`. */
  index: number;
}

/** Splits entries into calls: at most 10 entries and `maxBytes` each, order kept. Every entry must fit alone. */
export function chunkEntries<T extends { entry: QueueEntry }>(items: readonly T[], maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = entrySize(item.entry);
    if (current.length > 0 && (current.length === MAX_BATCH_ENTRIES || bytes + size > maxBytes)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * What SQS counts against the size limit: the body, and each attribute's name, type and value; a binary value
 * counts its bytes, not their base64 on the wire.
 */
export function entrySize(entry: QueueEntry): number {
  let size = Buffer.byteLength(entry.body, 'utf8');
  for (const [name, value] of Object.entries(entry.attributes ?? {})) {
    const a = typedAttribute(value);
    const bytes = 'BinaryValue' in a ? a.BinaryValue.byteLength : Buffer.byteLength(a.StringValue, 'utf8');
    size += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(a.DataType, 'utf8') + bytes;
  }
  return size;
}

function typedAttribute(value: QueueAttribute): Exclude<QueueAttribute, string> {
  return typeof value === 'string' ? { DataType: 'String', StringValue: value } : value;
}

function requestEntry(entry: QueueEntry): Omit<SendMessageBatchRequestEntry, 'Id'> {
  return {
    MessageBody: entry.body,
    ...(entry.groupId === undefined ? {} : { MessageGroupId: entry.groupId }),
    ...(entry.deduplicationId === undefined ? {} : { MessageDeduplicationId: entry.deduplicationId }),
    ...(entry.attributes === undefined
      ? {}
      : { MessageAttributes: Object.fromEntries(Object.entries(entry.attributes).map(([k, v]) => [k, typedAttribute(v)])) }),
  };
}
