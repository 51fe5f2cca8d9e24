/**
 * Listing and replaying the dead-letter queue, with the SQS API alone: the code behind `iotcore-relay dlq` and the
 * local dashboard's dead-letter panel and replay button.
 *
 * SQS has no way to read a queue without receiving from it. Both operations therefore receive every message they
 * can reach, page after page, with a visibility timeout (default 30 s) so that one pass does not see a message
 * twice, and release what they keep (ChangeMessageVisibility to 0) when they end, so it is visible again at once.
 * While a pass runs, the messages it holds are invisible to every other reader; if the process dies, they come back
 * when the visibility timeout ends. Nothing else is changed by a list.
 *
 * A replay sends each selected record to the relay queue and only then deletes it from the dead-letter queue: each
 * page goes through the queue producer (lib/queue/queue-producer.ts), then DeleteMessageBatch takes exactly the
 * entries the relay queue accepted. The producer stops at the first call of a page that is not wholly queued and
 * reports the rest of that page not sent; the replay reports those records failed, keeps them in the dead-letter
 * queue, and goes on with the next page, so one refused page never ends the replay. A crash between the two
 * leaves the record in both queues, a duplicate and never a loss; the copy's deduplication ID is derived from the
 * dead letter's own message ID (`replay-<id>`), so on a FIFO queue a second replay of the same dead letter within
 * SQS's 5-minute deduplication window is dropped, and a rerun after such a crash usually adds nothing. The ID is
 * fresh with respect to the original record's, which SQS may still remember. A replay can be stopped and run again
 * at any time: what was replayed has left the dead-letter queue, what was not is still there.
 *
 * On a FIFO dead-letter queue SQS hands out no more messages of a message group while some of that group are in
 * flight (https://repost.aws/knowledge-center/sqs-fifo-messages-not-returned), and every dead letter of a gateway
 * shares that gateway's group. A pass that keeps messages (a list, a dry run, or records a replay skips) therefore
 * sees only the first messages of each group, up to the 10 one receive returns; a replay that deletes what it sends
 * goes on through the whole group. Both report how many messages the queue holds beyond those they reached.
 * The local SQS server does not enforce this rule and shows everything.
 *
 * @example
 * const target = { client, deadLetterQueueUrl, relayQueueUrl };
 * const { deadLetters } = await listDeadLetters(target, { filter: { codes: ['ERR_ATTACH_REJECTED'] } });
 * const report = await replayDeadLetters(target, { filter: {}, gatewayIds: ['gw-1'], dryRun: true });
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { queueFailure } from '../queue/queue-failure.js';
import { MAX_MESSAGE_BYTES, QueueProducer, type QueueAttribute, type QueueEntry } from '../queue/queue-producer.js';
import { deadLetterOf, type DeadLetter } from './dead-letter.js';
import { matchesFilter, permanentFailure, replayGroupId, type DeadLetterFilter, type PermanentFailure } from './selection.js';

export interface DeadLetterQueueTarget {
  client: SQSClient;
  deadLetterQueueUrl: string;
  /** Where a replay sends records; required for a replay. */
  relayQueueUrl?: string;
}

export interface PassProgress {
  /** Messages received and looked at so far. */
  examined: number;
  /** Messages available in the dead-letter queue when the pass began (SQS's approximate count). */
  total: number;
  replayed: number;
  skipped: number;
  failed: number;
}

export interface PassOptions {
  filter?: DeadLetterFilter;
  /** How long a received message stays invisible unless released sooner. Default 30; 1 to 43200. */
  visibilityTimeoutSeconds?: number;
  /** Stop after examining this many messages. Default: no limit. */
  limit?: number;
  /** Long-poll wait of the receive that confirms the queue has nothing more to give. Default 1 s. */
  confirmWaitSeconds?: number;
  /** Called when the pass begins and after each page; a promise it returns is awaited, which paces the pass. */
  onProgress?: (progress: PassProgress) => void | Promise<void>;
  /** Stops the pass between two pages; what it holds is released. */
  signal?: AbortSignal;
  now?: () => number;
}

export interface DeadLetterList {
  /** The dead letters that match the filter, oldest first. */
  deadLetters: DeadLetter[];
  examined: number;
  /** Messages available in the queue when the pass began (SQS's approximate count). */
  approximateDepth: number;
  /** Messages the pass could not reach: in flight elsewhere, behind a held group on FIFO, or over the limit. */
  unreached: number;
}

export interface ReplayOptions extends PassOptions {
  /** Replay records whose failure is permanent too. */
  force?: boolean;
  /** Change nothing; report what would be replayed. */
  dryRun?: boolean;
  /** The configured gateways, for the message group (`gatewayFor`); without them, the group each record came from. */
  gatewayIds?: readonly string[];
}

export interface ReplayedRecord {
  deadLetter: DeadLetter;
  /** The relay queue's message ID of the copy; absent in a dry run. */
  relayMessageId?: string;
  groupId?: string;
}

export interface ReplayReport {
  dryRun: boolean;
  examined: number;
  approximateDepth: number;
  unreached: number;
  /** Dead letters that entered the queue after the replay began (a replayed record parked again among them): left for the next replay. */
  arrivedDuring: number;
  /** Sent to the relay queue and deleted from the dead-letter queue (in a dry run: would be). */
  replayed: ReplayedRecord[];
  /** Matching records left where they are because they would fail again. */
  skipped: { deadLetter: DeadLetter; why: PermanentFailure }[];
  /** Records that did not match the filter. */
  notMatching: number;
  /** Matching records that could not be replayed; they stay in the dead-letter queue. */
  failed: { deadLetter: DeadLetter; reason: string }[];
  /** Replayed, but the delete failed: they come back in the dead-letter queue after the visibility timeout. */
  notDeleted: { deadLetter: DeadLetter; reason: string }[];
}

const PAGE = 10;
const DEFAULT_VISIBILITY_SECONDS = 30;
/** Receives tried again, this far apart, while the queue reported more messages than a pass has reached. */
const SHORTFALL_RETRIES = 3;
const SHORTFALL_WAIT_MS = 300;

export async function listDeadLetters(target: DeadLetterQueueTarget, options: PassOptions = {}): Promise<DeadLetterList> {
  const now = options.now ?? Date.now;
  const pass = await Pass.begin(target, options);
  const deadLetters: DeadLetter[] = [];
  try {
    for await (const page of pass.pages()) {
      for (const dl of page) if (matchesFilter(dl, options.filter ?? {}, now())) deadLetters.push(dl);
      await pass.progress({});
    }
  } finally {
    await pass.releaseAll();
  }
  deadLetters.sort((a, b) => a.deadLetteredAt - b.deadLetteredAt);
  return { deadLetters, examined: pass.examined, approximateDepth: pass.depth, unreached: pass.unreached() };
}

export async function replayDeadLetters(target: DeadLetterQueueTarget, options: ReplayOptions = {}): Promise<ReplayReport> {
  const relayQueueUrl = target.relayQueueUrl;
  if (relayQueueUrl === undefined || relayQueueUrl === '') throw new RelayError('ERR_CONFIG', 'a replay needs the relay queue URL');
  const fifo = relayQueueUrl.endsWith('.fifo');
  const now = options.now ?? Date.now;
  const dryRun = options.dryRun === true;
  const report: ReplayReport = { dryRun, examined: 0, approximateDepth: 0, unreached: 0, arrivedDuring: 0, replayed: [], skipped: [], notMatching: 0, failed: [], notDeleted: [] };
  // A dead letter may be as large as a record the relay queue took (relay-queue.ts): up to 1 MiB.
  const producer = new QueueProducer({ queueUrl: relayQueueUrl, client: target.client, maxBatchBytes: MAX_MESSAGE_BYTES });
  const pass = await Pass.begin(target, options);
  const counts = (): Partial<PassProgress> => ({
    replayed: report.replayed.length,
    skipped: report.skipped.length + report.notMatching,
    failed: report.failed.length + report.notDeleted.length,
  });
  try {
    for await (const page of pass.pages()) {
      const toSend: { dl: DeadLetter; groupId?: string }[] = [];
      for (const dl of page) {
        if (!matchesFilter(dl, options.filter ?? {}, now())) {
          report.notMatching += 1;
          continue;
        }
        const permanent = options.force === true ? undefined : permanentFailure(dl);
        if (permanent !== undefined) {
          report.skipped.push({ deadLetter: dl, why: permanent });
          continue;
        }
        const groupId = fifo ? replayGroupId(dl, options.gatewayIds) : undefined;
        if (fifo && groupId === undefined) {
          report.failed.push({ deadLetter: dl, reason: 'no message group: the record names no device and came from no group; give the gateway IDs' });
          continue;
        }
        toSend.push(groupId === undefined ? { dl } : { dl, groupId });
      }
      if (dryRun) {
        for (const { dl, groupId } of toSend) report.replayed.push(groupId === undefined ? { deadLetter: dl } : { deadLetter: dl, groupId });
      } else {
        await sendThenDelete(producer, target.deadLetterQueueUrl, toSend, pass, report);
      }
      await pass.progress(counts());
    }
  } finally {
    await pass.releaseAll();
  }
  report.examined = pass.examined;
  report.approximateDepth = pass.depth;
  report.unreached = pass.unreached();
  report.arrivedDuring = pass.arrivedDuring;
  return report;
}

/** One page: sent in one producer call, then the accepted originals deleted from the dead-letter queue. */
async function sendThenDelete(
  producer: QueueProducer,
  deadLetterQueueUrl: string,
  records: { dl: DeadLetter; groupId?: string }[],
  pass: Pass,
  report: ReplayReport,
): Promise<void> {
  const outcomes = await producer.send(
    records.map(({ dl, groupId }): QueueEntry => ({
      body: dl.body,
      attributes: replayAttributes(dl),
      ...(groupId === undefined ? {} : { groupId, deduplicationId: replayDeduplicationId(dl) }),
    })),
  );
  const accepted: { dl: DeadLetter; groupId?: string; relayMessageId: string }[] = [];
  records.forEach((record, i) => {
    const outcome = outcomes[i]!;
    if (outcome.queued) accepted.push({ ...record, relayMessageId: outcome.messageId });
    else report.failed.push({ deadLetter: record.dl, reason: `not sent to the relay queue: ${outcome.error.message}` });
  });
  // Only now, with the copies on the relay queue, do the originals leave the dead-letter queue.
  const notDeleted = await pass.delete(deadLetterQueueUrl, accepted.map((a) => a.dl));
  for (const a of accepted) {
    const replayed: ReplayedRecord = { deadLetter: a.dl, relayMessageId: a.relayMessageId };
    if (a.groupId !== undefined) replayed.groupId = a.groupId;
    report.replayed.push(replayed);
    const failure = notDeleted.get(a.dl.messageId);
    if (failure !== undefined) report.notDeleted.push({ deadLetter: a.dl, reason: failure });
  }
}

/** SQS takes at most 10 message attributes. */
const MAX_ATTRIBUTES = 10;

/**
 * A producer's own attributes go back with the record, each as its type and value; `relay.replayOf` names the dead
 * letter it came from, when there is room for it.
 */
function replayAttributes(dl: DeadLetter): Record<string, QueueAttribute> {
  const attributes: Record<string, QueueAttribute> = {};
  for (const [name, a] of Object.entries(dl.producerAttributes)) {
    const copy = attributeCopy(a);
    if (copy !== undefined) attributes[name] = copy;
  }
  if (Object.keys(attributes).length < MAX_ATTRIBUTES) attributes['relay.replayOf'] = dl.messageId;
  return attributes;
}

/** A received attribute as it can be sent again: a String or Number with its text, a Binary with its bytes. */
function attributeCopy(a: MessageAttributeValue): QueueAttribute | undefined {
  const type = a.DataType ?? '';
  if (a.StringValue !== undefined && isTextType(type)) return { DataType: type, StringValue: a.StringValue };
  if (a.BinaryValue !== undefined && isBinaryType(type)) return { DataType: type, BinaryValue: a.BinaryValue };
  return undefined;
}

const isTextType = (type: string): type is `String${string}` | `Number${string}` => type.startsWith('String') || type.startsWith('Number');
const isBinaryType = (type: string): type is `Binary${string}` => type.startsWith('Binary');

/** Unique per dead-lettering (the dead-letter queue's message ID), unlike the original record's. */
export function replayDeduplicationId(dl: DeadLetter): string {
  return `replay-${dl.messageId}`.slice(0, 128);
}

/**
 * One pass over the dead-letter queue: receives page after page, keeps track of what it holds, and gives it back.
 */
class Pass {
  readonly #client: SQSClient;
  readonly #url: string;
  readonly #o: PassOptions;
  readonly #visibility: number;
  /** Received and not deleted: released at the end. By message ID, with the newest receipt handle. */
  readonly #held = new Map<string, DeadLetter>();
  readonly #seen = new Set<string>();
  /**
   * When the pass began (this machine's clock). A dead letter that entered the queue later is not part of the pass:
   * above all, a replayed record the relay parks again while the replay still runs must not be replayed a second
   * time in the same pass. Such arrivals are given back untouched, for the next pass.
   */
  readonly #began = Date.now();
  /** Dead letters that arrived after the pass began, left for the next one. */
  arrivedDuring = 0;
  #progress: PassProgress;
  examined = 0;
  depth = 0;

  private constructor(client: SQSClient, url: string, options: PassOptions, depth: number) {
    this.#client = client;
    this.#url = url;
    this.#o = options;
    this.#visibility = options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS;
    this.depth = depth;
    this.#progress = { examined: 0, total: depth, replayed: 0, skipped: 0, failed: 0 };
  }

  static async begin(target: DeadLetterQueueTarget, options: PassOptions): Promise<Pass> {
    const visibility = options.visibilityTimeoutSeconds ?? DEFAULT_VISIBILITY_SECONDS;
    if (!Number.isInteger(visibility) || visibility < 1 || visibility > 43_200) {
      throw new RelayError('ERR_INVALID_FIELD', `the visibility timeout must be a whole number of seconds from 1 to 43200 (got ${visibility})`, { field: 'visibilityTimeoutSeconds' });
    }
    if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit >= 1)) {
      throw new RelayError('ERR_INVALID_FIELD', `the limit must be a whole number of at least 1 (got ${options.limit})`, { field: 'limit' });
    }
    const depth = await approximateDepth(target.client, target.deadLetterQueueUrl);
    const pass = new Pass(target.client, target.deadLetterQueueUrl, options, depth);
    await pass.#o.onProgress?.({ ...pass.#progress });
    return pass;
  }

  /**
   * Pages of dead letters not seen before in this pass, until the queue has nothing more to give. When it gives
   * nothing while it reported more than the pass has seen, another reader may be holding them for a moment (the
   * local dashboard reads the queue too): the pass asks again a few times before it ends.
   */
  async *pages(): AsyncGenerator<DeadLetter[]> {
    let confirming = false;
    let retries = 0;
    while (this.#o.signal?.aborted !== true) {
      const room = this.#o.limit === undefined ? PAGE : Math.min(PAGE, this.#o.limit - this.examined);
      if (room <= 0) return;
      const messages = await this.#receive(room, confirming ? (this.#o.confirmWaitSeconds ?? 1) : 0);
      const fresh: DeadLetter[] = [];
      for (const m of messages) {
        const dl = deadLetterOf(m);
        if (this.#seen.has(dl.messageId)) {
          // Held longer than its visibility timeout, it showed up again: only the new receipt handle counts now.
          const held = this.#held.get(dl.messageId);
          if (held !== undefined) held.receiptHandle = dl.receiptHandle;
          continue;
        }
        this.#seen.add(dl.messageId);
        this.#held.set(dl.messageId, dl);
        if (dl.deadLetteredAt > this.#began) {
          this.arrivedDuring += 1;
          continue;
        }
        fresh.push(dl);
      }
      if (fresh.length === 0) {
        // A short poll may miss messages on some SQS hosts; one long poll confirms that nothing is left.
        if (confirming) {
          if (this.examined >= this.depth || retries >= SHORTFALL_RETRIES) return;
          retries += 1;
          await sleep(SHORTFALL_WAIT_MS, undefined, this.#o.signal === undefined ? {} : { signal: this.#o.signal }).catch(() => undefined);
        }
        confirming = true;
        continue;
      }
      confirming = false;
      this.examined += fresh.length;
      yield fresh;
    }
  }

  async progress(counts: Partial<PassProgress>): Promise<void> {
    this.#progress = { ...this.#progress, ...counts, examined: this.examined };
    await this.#o.onProgress?.({ ...this.#progress });
  }

  unreached(): number {
    return Math.max(0, this.depth - this.examined);
  }

  /** Deletes what was replayed; returns the failures by message ID. Deleted or not, they are no longer held. */
  async delete(url: string, deadLetters: readonly DeadLetter[]): Promise<Map<string, string>> {
    const failures = new Map<string, string>();
    if (deadLetters.length === 0) return failures;
    for (const dl of deadLetters) this.#held.delete(dl.messageId);
    try {
      const out = await this.#client.send(
        new DeleteMessageBatchCommand({ QueueUrl: url, Entries: deadLetters.map((dl, i) => ({ Id: String(i), ReceiptHandle: dl.receiptHandle })) }),
      );
      for (const f of out.Failed ?? []) {
        const dl = deadLetters[Number(f.Id)];
        if (dl !== undefined) failures.set(dl.messageId, `${f.Code ?? 'error'} ${f.Message ?? ''}`.trim());
      }
    } catch (e) {
      const reason = queueFailure(e).message;
      for (const dl of deadLetters) failures.set(dl.messageId, reason);
    }
    return failures;
  }

  /** Makes everything still held visible again at once. A release that fails ends with the visibility timeout. */
  async releaseAll(): Promise<void> {
    const held = [...this.#held.values()];
    this.#held.clear();
    for (let i = 0; i < held.length; i += PAGE) {
      const chunk = held.slice(i, i + PAGE);
      await this.#client
        .send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.#url,
            Entries: chunk.map((dl, j) => ({ Id: String(j), ReceiptHandle: dl.receiptHandle, VisibilityTimeout: 0 })),
          }),
        )
        .catch(() => undefined);
    }
  }

  async #receive(max: number, waitSeconds: number): Promise<Message[]> {
    try {
      const out = await this.#client.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#url,
          MaxNumberOfMessages: max,
          WaitTimeSeconds: waitSeconds,
          VisibilityTimeout: this.#visibility,
          // The older AttributeNames is what local SQS servers read; SQS reads both.
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        this.#o.signal === undefined ? {} : { abortSignal: this.#o.signal },
      );
      return out.Messages ?? [];
    } catch (e) {
      if (this.#o.signal?.aborted === true) return [];
      throw queueFailure(e);
    }
  }
}

/**
 * Messages a pass can expect to receive: SQS's ApproximateNumberOfMessages, those available for retrieval. (The
 * local SQS server counts messages in flight there too, so locally the figure includes what others hold.)
 */
export async function approximateDepth(client: SQSClient, queueUrl: string): Promise<number> {
  try {
    const { Attributes: a } = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages'] }));
    return Number(a?.ApproximateNumberOfMessages ?? 0);
  } catch (e) {
    throw queueFailure(e);
  }
}
