/**
 * Puts records on the relay's FIFO queue: one record with `SendMessage`, several with `SendMessageBatch` in chunks of
 * at most 10 entries and 1 MiB (SQS's limits per call), and reports for every record whether it was queued.
 *
 * Chunks go one after the other, in order, and sending stops at the first chunk that is not wholly queued. Within a
 * message group SQS FIFO delivers in the order messages were sent; sending later chunks after a failed one would let
 * newer readings of a device overtake older ones that the device will resend, and for state the newest must win.
 *
 * @example
 * const queue = new SqsRelayQueue({ queueUrl: process.env.RELAY_QUEUE_URL! });
 * const [outcome] = await queue.send([{ body, groupId: 'gw-1', deduplicationId: 'req-1' }]);
 * if (outcome?.queued) console.log(outcome.messageId);
 */
import { SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { queueEntryFailure, queueFailure } from './sqs-failure.js';

export interface QueueRecord {
  /** The message body: queue contract v1 JSON. */
  body: string;
  /** FIFO message group: the gateway that will carry the record. */
  groupId: string;
  deduplicationId: string;
}

export type QueueOutcome = { queued: true; messageId: string } | { queued: false; error: RelayError };

/** What the ingest needs of a queue; tests and other transports can supply just this. */
export interface RelayQueue {
  /** One outcome per record, in the records' order. Never throws for a queue failure: it reports it per record. */
  send(records: readonly QueueRecord[]): Promise<QueueOutcome[]>;
}

/** SendMessageBatch takes at most 10 entries. */
export const MAX_BATCH_ENTRIES = 10;
/** ...and at most 1 MiB of message bodies in one call, the same as one message's maximum. */
export const MAX_BATCH_BYTES = 1024 * 1024;

export interface SqsRelayQueueOptions {
  queueUrl: string;
  /** Defaults to `defaultSqsClient()`. */
  client?: SQSClient;
}

/**
 * A client with the SDK's usual configuration from the environment (region, credentials, `AWS_ENDPOINT_URL_SQS`),
 * and timeouts that fit a request a device is waiting on: without them an unreachable endpoint would hold the
 * request until the function times out.
 */
export function defaultSqsClient(): SQSClient {
  return new SQSClient({ requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 } });
}

export class SqsRelayQueue implements RelayQueue {
  readonly queueUrl: string;
  private readonly client: SQSClient;

  constructor(options: SqsRelayQueueOptions) {
    if (options.queueUrl.trim() === '') throw new RelayError('ERR_CONFIG', 'the relay queue URL is empty');
    this.queueUrl = options.queueUrl;
    this.client = options.client ?? defaultSqsClient();
  }

  async send(records: readonly QueueRecord[]): Promise<QueueOutcome[]> {
    if (records.length === 0) return [];
    if (records.length === 1) return [await this.sendOne(records[0]!)];
    const outcomes: QueueOutcome[] = [];
    for (const chunk of chunkRecords(records)) {
      const chunkOutcomes = await this.sendChunk(chunk);
      outcomes.push(...chunkOutcomes);
      const failed = chunkOutcomes.find((o): o is Extract<QueueOutcome, { queued: false }> => !o.queued);
      if (failed !== undefined) {
        const unsent = records.length - outcomes.length;
        const error = new RelayError(failed.error.code, `not sent: an earlier record of the batch was not queued (${failed.error.message})`);
        for (let i = 0; i < unsent; i++) outcomes.push({ queued: false, error });
        break;
      }
    }
    return outcomes;
  }

  private async sendOne(record: QueueRecord): Promise<QueueOutcome> {
    try {
      const out = await this.client.send(
        new SendMessageCommand({
          QueueUrl: this.queueUrl,
          MessageBody: record.body,
          MessageGroupId: record.groupId,
          MessageDeduplicationId: record.deduplicationId,
        }),
      );
      return { queued: true, messageId: out.MessageId ?? '' };
    } catch (e) {
      return { queued: false, error: queueFailure(e) };
    }
  }

  private async sendChunk(chunk: readonly QueueRecord[]): Promise<QueueOutcome[]> {
    // Entry IDs only need to be unique within the call; the position is enough.
    const entryId = (i: number): string => `r${i}`;
    let out;
    try {
      out = await this.client.send(
        new SendMessageBatchCommand({
          QueueUrl: this.queueUrl,
          Entries: chunk.map((r, i) => ({
            Id: entryId(i),
            MessageBody: r.body,
            MessageGroupId: r.groupId,
            MessageDeduplicationId: r.deduplicationId,
          })),
        }),
      );
    } catch (e) {
      const error = queueFailure(e);
      return chunk.map(() => ({ queued: false, error }));
    }
    const ok = new Map((out.Successful ?? []).map((s) => [s.Id, s.MessageId ?? '']));
    const failed = new Map((out.Failed ?? []).map((f) => [f.Id, f]));
    return chunk.map((_, i): QueueOutcome => {
      const messageId = ok.get(entryId(i));
      if (messageId !== undefined) return { queued: true, messageId };
      const failure = failed.get(entryId(i));
      return { queued: false, error: queueEntryFailure(failure?.Code, failure?.Message ?? 'SQS reported no outcome for the entry') };
    });
  }
}

/** Splits records into SendMessageBatch calls: at most 10 entries and 1 MiB of bodies each, order kept. */
export function chunkRecords(records: readonly QueueRecord[]): QueueRecord[][] {
  const chunks: QueueRecord[][] = [];
  let current: QueueRecord[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = Buffer.byteLength(record.body, 'utf8');
    if (current.length > 0 && (current.length === MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES)) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(record);
    bytes += size;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}
