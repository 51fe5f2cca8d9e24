/**
 * What Lambda's SQS integration does for the relay function, done in this process against the local SQS server:
 *
 * - it long-polls the queue for batches of up to `batchSize` (10 for the relay) and invokes the handler;
 * - a FIFO message group has at most one batch in flight: while a batch holds messages of group G, no other batch
 *   gets messages of G, and after a failure G stays blocked until the failed messages become visible again (their
 *   visibility timeout), exactly as SQS blocks a group whose messages are in flight. This is what keeps a gateway
 *   to one session at a time (docs/design.md rule 1). One batch may hold several groups, as a ReceiveMessage on a FIFO
 *   queue may return several;
 * - partial batch responses (`functionResponseType: ReportBatchItemFailures`): the messages not listed in
 *   `batchItemFailures` are deleted, the listed ones are left to reappear after the visibility timeout. A response
 *   naming a message that was not in the batch, a thrown error and a timeout fail the whole batch, as in Lambda;
 * - redrive to the dead-letter queue after `maxReceiveCount` receives is the queue's job, and local-aws-sqs does it
 *   (when a message's visibility timeout ends with its receive count at the maximum).
 *
 * A failed message is in flight until SQS shows it again: after the visibility timeout, or sooner or later when
 * the handler changed its visibility (the relay backs off with ChangeMessageVisibility). The local SQS server
 * reports those changes (`noteVisibilityChange`), so the group stays blocked as long as SQS would block it.
 *
 * Two differences of local-aws-sqs shape the code:
 * - its ReceiveMessage hands out messages of any visible group, even one with messages in flight, so the group
 *   lock is kept here: a message of a locked group is held, still invisible in the queue, and goes into the next
 *   batch once the group is free. A held message whose receipt would expire during an invocation is let go (it
 *   reappears in the queue, in order) rather than sent with a receipt that could not delete it;
 * - its long poll answers when the batch is full or the wait is over, not as soon as one message is there as SQS
 *   does, so the wait is short (`waitTimeSeconds`, default 1 s) to keep a lone reading's latency low.
 *
 * @example
 * const source = new SqsEventSource({ client, queue: { url, arn }, handler, fn: { functionName: 'relay',
 *   timeoutSeconds: 60, region: 'us-east-1' }, visibilityTimeoutSeconds: 360 });
 * source.start();
 * await source.stop();
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord } from 'aws-lambda';
import { RelayError } from '../lib/errors.js';
import { invokeLocally, type LocalFunction } from './lambda-invocation.js';

export type SqsBatchHandler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void | null | undefined>;

export interface SqsEventSourceOptions {
  client: SQSClient;
  queue: { url: string; arn: string };
  handler: SqsBatchHandler;
  fn: LocalFunction;
  /** The queue's visibility timeout: how long a failed message keeps its group blocked. */
  visibilityTimeoutSeconds: number;
  /** 1 to 10 (FIFO queues allow at most 10); the template's `batchSize`. Default 10. */
  batchSize?: number;
  /** `functionResponseType: ReportBatchItemFailures`. Default true. */
  reportBatchItemFailures?: boolean;
  /** ReceiveMessage's WaitTimeSeconds. Default 1. */
  waitTimeSeconds?: number;
  /** Called after each invocation. */
  onBatch?: (report: BatchReport) => void;
  /** SQS calls that failed (the loop goes on). */
  onError?: (error: unknown, during: 'receive' | 'delete') => void;
}

export type BatchOutcome = 'succeeded' | 'partial' | 'failed' | 'threw' | 'timed-out' | 'invalid-response';

export interface BatchReport {
  requestId: string;
  outcome: BatchOutcome;
  /** Message groups of the batch (empty for a standard queue). */
  groups: string[];
  messageIds: string[];
  deleted: string[];
  /** Left in the queue; they reappear after the visibility timeout. */
  retried: string[];
  startedAt: number;
  durationMs: number;
  error?: unknown;
}

export interface EventSourceStats {
  batches: number;
  deleted: number;
  retried: number;
  /** Batches whose handler has not settled yet. */
  inFlight: number;
  /** Messages received and waiting for their group to be free. */
  held: number;
  /** Groups in a running batch or blocked by a failure. */
  lockedGroups: string[];
}

interface Pending {
  message: Message;
  id: string;
  group: string | undefined;
  receivedAt: number;
  sentAt: number;
  firstReceivedAt: number;
}

/** A message that left a batch without being deleted, until SQS shows it again. */
interface InFlight {
  group: string | undefined;
  /** The receipt it was last received with, which a visibility change names. */
  receipt: string;
  /** Epoch ms at which its visibility timeout ends (it reappears, or moves to the dead-letter queue). */
  until: number;
}

/** Lambda refuses an SQS event source whose batch size exceeds 10 for a FIFO queue. */
const MAX_FIFO_BATCH = 10;
const RECEIVE_RETRY_MS = 1000;
/**
 * How far short of a whole function timeout a message's remaining receipt may be when it is invoked: the moment
 * between a receive and its dispatch, so that a queue whose visibility timeout equals the function timeout (which
 * Lambda allows) can still run a freshly received message. It must stay small: a message held for longer (its group
 * was busy) would otherwise be invoked with a receipt that expires mid-invocation, reappear, and run twice.
 */
const RECEIPT_GRACE_MS = 100;
/** local-aws-sqs shows a message again on a timer; the poll that finds it may come a moment later. */
const REAPPEAR_GRACE_MS = 1000;

export class SqsEventSource {
  readonly #o: Required<Omit<SqsEventSourceOptions, 'onBatch' | 'onError'>> & Pick<SqsEventSourceOptions, 'onBatch' | 'onError'>;
  #pending: Pending[] = [];
  /** Groups with a batch whose handler has not settled. */
  readonly #runningGroups = new Set<string>();
  /** By message ID. */
  readonly #inFlight = new Map<string, InFlight>();
  /** Visibility changes made during an invocation, by receipt handle: epoch ms at which the message reappears. */
  readonly #visibilityNotes = new Map<string, number>();
  readonly #running = new Set<Promise<void>>();
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stats = { batches: 0, deleted: 0, retried: 0 };

  constructor(options: SqsEventSourceOptions) {
    const batchSize = options.batchSize ?? MAX_FIFO_BATCH;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_FIFO_BATCH) {
      throw new RelayError('ERR_CONFIG', `the SQS batch size must be 1 to ${MAX_FIFO_BATCH} (got ${batchSize})`);
    }
    // Lambda refuses the same: a message could reappear while the invocation that holds it still runs.
    if (options.visibilityTimeoutSeconds < options.fn.timeoutSeconds) {
      throw new RelayError(
        'ERR_CONFIG',
        `the queue's visibility timeout (${options.visibilityTimeoutSeconds} s) is shorter than ${options.fn.functionName}'s timeout (${options.fn.timeoutSeconds} s)`,
      );
    }
    this.#o = {
      ...options,
      batchSize,
      reportBatchItemFailures: options.reportBatchItemFailures ?? true,
      waitTimeSeconds: options.waitTimeSeconds ?? 1,
    };
  }

  get batchSize(): number {
    return this.#o.batchSize;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    this.#loop = this.#receiveLoop();
  }

  /** Stops receiving and waits for the running invocations; held messages stay in flight and reappear later. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort.abort();
    await this.#loop;
    await Promise.all([...this.#running]);
    this.#pending = [];
  }

  stats(): EventSourceStats {
    const now = Date.now();
    return {
      ...this.#stats,
      inFlight: this.#running.size,
      held: this.#pending.length,
      lockedGroups: [...new Set([...this.#runningGroups, ...[...this.#inFlight.values()].filter((f) => this.#stillInFlight(f, now)).flatMap((f) => (f.group === undefined ? [] : [f.group]))])],
    };
  }

  /**
   * A ChangeMessageVisibility the local SQS server accepted for a message of this queue: the message reappears
   * `seconds` from now instead of at the end of its visibility timeout.
   */
  noteVisibilityChange(receiptHandle: string, seconds: number): void {
    const until = Date.now() + seconds * 1000;
    for (const f of this.#inFlight.values()) {
      if (f.receipt === receiptHandle) {
        f.until = until;
        return;
      }
    }
    // Made during the invocation that holds the message: applied when the batch ends.
    this.#visibilityNotes.set(receiptHandle, until);
  }

  async #receiveLoop(): Promise<void> {
    while (!this.#stopping) {
      let messages: Message[];
      try {
        const out = await this.#o.client.send(
          new ReceiveMessageCommand({
            QueueUrl: this.#o.queue.url,
            MaxNumberOfMessages: this.#o.batchSize,
            WaitTimeSeconds: this.#o.waitTimeSeconds,
            // local-aws-sqs reads the older AttributeNames, not MessageSystemAttributeNames.
            AttributeNames: ['All'],
            MessageAttributeNames: ['All'],
          }),
          { abortSignal: this.#abort.signal },
        );
        messages = out.Messages ?? [];
      } catch (e) {
        if (this.#stopping) return;
        this.#o.onError?.(e, 'receive');
        await sleep(RECEIVE_RETRY_MS, undefined, { signal: this.#abort.signal }).catch(() => undefined);
        continue;
      }
      const receivedAt = Date.now();
      for (const message of messages) this.#hold(message, receivedAt);
      this.#dispatch();
    }
  }

  #hold(message: Message, receivedAt: number): void {
    const id = message.MessageId ?? '';
    const entry: Pending = {
      message,
      id,
      group: message.Attributes?.MessageGroupId,
      receivedAt,
      sentAt: Number(message.Attributes?.SentTimestamp ?? receivedAt),
      firstReceivedAt: Number(message.Attributes?.ApproximateFirstReceiveTimestamp ?? receivedAt),
    };
    // Shown again: no longer in flight.
    this.#inFlight.delete(id);
    // The same message again means its previous receipt expired while it was held: only the new receipt counts.
    const known = this.#pending.findIndex((p) => p.id === id);
    if (known >= 0) this.#pending[known] = entry;
    else this.#pending.push(entry);
    // A group's order is its send order. A message that failed and came back was sent before the ones held since,
    // so it goes first; ties keep arrival order (Array.prototype.sort is stable).
    this.#pending.sort((a, b) => a.sentAt - b.sentAt || a.firstReceivedAt - b.firstReceivedAt);
  }

  #isLocked(group: string | undefined, now: number): boolean {
    if (group === undefined) return false;
    if (this.#runningGroups.has(group)) return true;
    for (const f of this.#inFlight.values()) if (f.group === group && this.#stillInFlight(f, now)) return true;
    return false;
  }

  /**
   * In flight until it is received again. Its visibility timeout ending is not enough: the next receive has to
   * pick it up first, or a later message of its group would overtake it. Only a message that does not show up
   * within a few polls of that time (it went to the dead-letter queue, or someone deleted it) stops counting.
   */
  #stillInFlight(f: InFlight, now: number): boolean {
    return now < f.until + REAPPEAR_GRACE_MS + 2 * this.#o.waitTimeSeconds * 1000;
  }

  #markInFlight(p: Pending, until: number): void {
    this.#inFlight.set(p.id, { group: p.group, receipt: p.message.ReceiptHandle ?? '', until });
  }

  /** Forms batches from the held messages whose groups are free, and invokes them, as many as there are. */
  #dispatch(): void {
    // Each batch locks the groups it takes, so the next round takes other groups, until none is free.
    let formed = true;
    while (formed && !this.#stopping) formed = this.#dispatchOne();
  }

  #dispatchOne(): boolean {
    const now = Date.now();
    const minRemainingMs = this.#o.fn.timeoutSeconds * 1000;
    const visibilityMs = this.#o.visibilityTimeoutSeconds * 1000;
    const batch: Pending[] = [];
    const skipped = new Set<string>();
    const keep: Pending[] = [];
    for (const p of this.#pending) {
      const free = batch.length < this.#o.batchSize && !this.#isLocked(p.group, now) && (p.group === undefined || !skipped.has(p.group));
      if (!free) {
        if (p.group !== undefined) skipped.add(p.group);
        keep.push(p);
        continue;
      }
      if (p.receivedAt + visibilityMs + RECEIPT_GRACE_MS - now < minRemainingMs) {
        // Let it go: it reappears when its receipt expires. Its group waits for it, so the order holds.
        this.#markInFlight(p, p.receivedAt + visibilityMs);
        continue;
      }
      batch.push(p);
    }
    this.#pending = keep;
    if (batch.length === 0) {
      // Shown again or moved to the dead-letter queue by now; a receive brings it back if it is still there.
      for (const [id, f] of this.#inFlight) if (!this.#stillInFlight(f, now)) this.#inFlight.delete(id);
      return false;
    }
    const groups = [...new Set(batch.map((p) => p.group).filter((g): g is string => g !== undefined))];
    for (const g of groups) this.#runningGroups.add(g);
    const run = this.#invoke(batch, groups).finally(() => {
      this.#running.delete(run);
      for (const g of groups) this.#runningGroups.delete(g);
      this.#dispatch();
    });
    this.#running.add(run);
    return true;
  }

  async #invoke(batch: Pending[], groups: string[]): Promise<void> {
    const startedAt = Date.now();
    const event: SQSEvent = { Records: batch.map((p) => this.#record(p.message)) };
    const invocation = invokeLocally(this.#o.handler, event, this.#o.fn);
    const outcome = await invocation.outcome;
    const ids = batch.map((p) => p.id);

    let kind: BatchOutcome;
    let failed: Set<string>;
    let error: unknown;
    if (outcome.kind === 'returned') {
      const reported = this.#o.reportBatchItemFailures ? failuresIn(outcome.value, ids) : new Set<string>();
      if (reported === undefined) {
        kind = 'invalid-response';
        failed = new Set(ids);
      } else {
        failed = reported;
        kind = failed.size === 0 ? 'succeeded' : failed.size === ids.length ? 'failed' : 'partial';
      }
    } else {
      kind = outcome.kind;
      failed = new Set(ids);
      if (outcome.kind === 'threw') error = outcome.error;
    }

    const succeeded = batch.filter((p) => !failed.has(p.id));
    const deleted = await this.#delete(succeeded);
    const retried = batch.filter((p) => failed.has(p.id));
    for (const p of retried) {
      // SQS keeps the group blocked while any of its messages is in flight, and a failed one is in flight until its
      // visibility timeout ends, or until the time the handler set for it.
      const receipt = p.message.ReceiptHandle ?? '';
      const noted = this.#visibilityNotes.get(receipt);
      this.#visibilityNotes.delete(receipt);
      // Unless it was already received again (a visibility of 0), while its batch was still running.
      if (!this.#pending.some((q) => q.id === p.id)) this.#markInFlight(p, noted ?? p.receivedAt + this.#o.visibilityTimeoutSeconds * 1000);
    }
    for (const p of succeeded) this.#visibilityNotes.delete(p.message.ReceiptHandle ?? '');
    this.#stats.batches += 1;
    this.#stats.deleted += deleted.length;
    this.#stats.retried += retried.length;
    this.#o.onBatch?.({
      requestId: invocation.requestId,
      outcome: kind,
      groups,
      messageIds: ids,
      deleted,
      retried: retried.map((p) => p.id),
      startedAt,
      durationMs: Date.now() - startedAt,
      ...(error !== undefined ? { error } : {}),
    });
    // A timed-out handler may still be running; its groups stay locked until it ends (see lambda-invocation.ts).
    await invocation.settled;
  }

  async #delete(messages: Pending[]): Promise<string[]> {
    if (messages.length === 0) return [];
    try {
      const out = await this.#o.client.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.#o.queue.url,
          // Entry IDs are local to the request; the index keeps them short and valid.
          Entries: messages.map((p, i) => ({ Id: `m${i}`, ReceiptHandle: p.message.ReceiptHandle })),
        }),
      );
      for (const f of out.Failed ?? []) {
        this.#o.onError?.(new RelayError('ERR_QUEUE_UNAVAILABLE', `delete of ${messages[Number(f.Id?.slice(1))]?.id} failed: ${f.Code} ${f.Message ?? ''}`), 'delete');
      }
      const failedEntries = new Set((out.Failed ?? []).map((f) => f.Id));
      return messages.filter((_, i) => !failedEntries.has(`m${i}`)).map((p) => p.id);
    } catch (e) {
      // Not deleted: the messages reappear after the visibility timeout and run again, as after a Lambda hiccup.
      this.#o.onError?.(e, 'delete');
      return [];
    }
  }

  #record(m: Message): SQSRecord {
    const a = m.Attributes ?? {};
    const attributes: SQSRecord['attributes'] = {
      ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
      SentTimestamp: a.SentTimestamp ?? String(Date.now()),
      SenderId: a.SenderId ?? 'local',
      ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
    };
    for (const key of ['SequenceNumber', 'MessageGroupId', 'MessageDeduplicationId', 'AWSTraceHeader', 'DeadLetterQueueSourceArn'] as const) {
      const value = a[key];
      if (value !== undefined) attributes[key] = value;
    }
    const messageAttributes: SQSMessageAttributes = {};
    for (const [name, v] of Object.entries(m.MessageAttributes ?? {})) {
      messageAttributes[name] = {
        dataType: v.DataType ?? 'String',
        // Lambda's event carries attribute values in its own casing, binary ones as base64.
        ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
        ...(v.BinaryValue !== undefined ? { binaryValue: Buffer.from(v.BinaryValue).toString('base64') } : {}),
        stringListValues: v.StringListValues ?? [],
        binaryListValues: (v.BinaryListValues ?? []).map((b) => Buffer.from(b).toString('base64')),
      };
    }
    return {
      messageId: m.MessageId ?? '',
      receiptHandle: m.ReceiptHandle ?? '',
      body: m.Body ?? '',
      attributes,
      messageAttributes,
      md5OfBody: m.MD5OfBody ?? '',
      ...(m.MD5OfMessageAttributes !== undefined ? { md5OfMessageAttributes: m.MD5OfMessageAttributes } : {}),
      eventSource: 'aws:sqs',
      eventSourceARN: this.#o.queue.arn,
      awsRegion: this.#o.fn.region,
    };
  }
}

/**
 * The message IDs a partial batch response reports as failed; undefined when the response is one Lambda would
 * reject as a whole (an identifier that is missing, empty or not in the batch). A response without
 * `batchItemFailures`, or with an empty list, reports success for every message.
 */
export function failuresIn(response: unknown, ids: readonly string[]): Set<string> | undefined {
  if (response === undefined || response === null) return new Set();
  if (typeof response !== 'object') return new Set();
  const list = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (list === undefined || list === null) return new Set();
  if (!Array.isArray(list)) return undefined;
  const known = new Set(ids);
  const failed = new Set<string>();
  for (const item of list) {
    const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || id === '' || !known.has(id)) return undefined;
    failed.add(id);
  }
  return failed;
}
