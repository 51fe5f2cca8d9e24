/**
 * The two SQS calls the relay makes besides answering Lambda: sending a dead-lettered record to the dead-letter
 * queue with its reason, and raising the visibility timeout of records failed back with backoff.
 * `sqsQueueActions()` makes them with @aws-sdk/client-sqs, loaded on first use: most batches need neither call,
 * so a cold start does not pay for the SDK. The endpoint is the SDK's own choice (`AWS_ENDPOINT_URL_SQS` works).
 * The dead-letter send goes through the queue producer (queue-producer.ts).
 *
 * @example
 * const actions = sqsQueueActions();
 * await actions.sendToDeadLetter(dlqUrl, { body, attributes: { 'relay.errorCode': 'ERR_INVALID_BASE64' }, fifo: { groupId: 'gw-1', deduplicationId: 'm-1' } });
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { lazy } from '../lazy.js';
import { loadSqsSdk, MAX_MESSAGE_BYTES, QueueProducer } from './queue-producer.js';

export interface DeadLetterMessage {
  body: string;
  /** String attributes; numbers are sent as strings too. */
  attributes: Record<string, string>;
  /** For a FIFO dead-letter queue. */
  fifo?: { groupId: string; deduplicationId: string };
}

export interface VisibilityChange {
  /** Unique within one call. */
  id: string;
  receiptHandle: string;
  seconds: number;
}

export interface QueueActions {
  /**
   * Throws RelayError ERR_QUEUE_THROTTLED / ERR_QUEUE_UNAVAILABLE when the message was not accepted, and
   * ERR_PAYLOAD_TOO_LARGE when it is larger than any SQS message.
   */
  sendToDeadLetter(queueUrl: string, message: DeadLetterMessage): Promise<void>;
  /** Returns the ids whose change failed; never throws. */
  changeVisibility(queueUrl: string, changes: readonly VisibilityChange[]): Promise<Set<string>>;
}

/** SQS's ChangeMessageVisibilityBatch takes at most 10 entries. */
const VISIBILITY_BATCH = 10;

export function sqsQueueActions(clientFactory?: () => SQSClient): QueueActions {
  // One client for both calls and every queue, made at the first call that needs it.
  const client = lazy(async () => clientFactory?.() ?? new (await loadSqsSdk()).SQSClient({}));
  const producers = new Map<string, QueueProducer>();
  const producerFor = (queueUrl: string): QueueProducer => {
    let producer = producers.get(queueUrl);
    if (producer === undefined) {
      // Whatever the relay queue took must fit the dead-letter queue: up to SQS's largest message.
      producer = new QueueProducer({ queueUrl, client, maxBatchBytes: MAX_MESSAGE_BYTES, name: 'the dead-letter queue' });
      producers.set(queueUrl, producer);
    }
    return producer;
  };
  return {
    async sendToDeadLetter(queueUrl, message) {
      const outcome = await producerFor(queueUrl).sendOne({
        body: message.body,
        attributes: message.attributes,
        ...(message.fifo === undefined ? {} : { groupId: message.fifo.groupId, deduplicationId: message.fifo.deduplicationId }),
      });
      if (!outcome.queued) throw outcome.error;
    },
    async changeVisibility(queueUrl, changes) {
      const failedIds = new Set<string>();
      if (changes.length === 0) return failedIds;
      const [c, sdk] = await Promise.all([client(), loadSqsSdk()]);
      for (let i = 0; i < changes.length; i += VISIBILITY_BATCH) {
        const chunk = changes.slice(i, i + VISIBILITY_BATCH);
        try {
          const out = await c.send(
            new sdk.ChangeMessageVisibilityBatchCommand({
              QueueUrl: queueUrl,
              Entries: chunk.map((ch) => ({ Id: ch.id, ReceiptHandle: ch.receiptHandle, VisibilityTimeout: ch.seconds })),
            }),
          );
          for (const f of out.Failed ?? []) if (f.Id !== undefined) failedIds.add(f.Id);
        } catch {
          for (const ch of chunk) failedIds.add(ch.id);
        }
      }
      return failedIds;
    },
  };
}
