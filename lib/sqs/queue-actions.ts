/**
 * The two SQS calls the relay makes besides answering Lambda: sending a dead-lettered record to the dead-letter
 * queue with its reason, and raising the visibility timeout of records failed back with backoff.
 * `sqsQueueActions()` makes them with @aws-sdk/client-sqs, loaded on first use: most batches need neither call,
 * so a cold start does not pay for the SDK. The endpoint is the SDK's own choice (`AWS_ENDPOINT_URL_SQS` works).
 *
 * @example
 * const actions = sqsQueueActions();
 * await actions.sendToDeadLetter(dlqUrl, { body, attributes: { 'relay.errorCode': 'ERR_INVALID_BASE64' }, fifo: { groupId: 'gw-1', deduplicationId: 'm-1' } });
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { isThrottling } from '../sqs-send/sqs-failure.js';

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
  /** Throws RelayError ERR_QUEUE_THROTTLED / ERR_QUEUE_UNAVAILABLE when the message was not accepted. */
  sendToDeadLetter(queueUrl: string, message: DeadLetterMessage): Promise<void>;
  /** Returns the ids whose change failed; never throws. */
  changeVisibility(queueUrl: string, changes: readonly VisibilityChange[]): Promise<Set<string>>;
}

/** SQS's ChangeMessageVisibilityBatch takes at most 10 entries. */
const VISIBILITY_BATCH = 10;

export function sqsQueueActions(clientFactory?: () => SQSClient): QueueActions {
  let client: Promise<{ client: SQSClient; sdk: typeof import('./sqs-sdk.js') }> | undefined;
  const load = (): NonNullable<typeof client> => {
    client ??= import('./sqs-sdk.js').then((sdk) => ({ sdk, client: clientFactory?.() ?? new sdk.SQSClient({}) }));
    return client;
  };
  return {
    async sendToDeadLetter(queueUrl, message) {
      const { client: c, sdk } = await load();
      const attributes = Object.fromEntries(
        Object.entries(message.attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }]),
      );
      try {
        await c.send(
          new sdk.SendMessageCommand({
            QueueUrl: queueUrl,
            MessageBody: message.body,
            MessageAttributes: attributes,
            ...(message.fifo === undefined
              ? {}
              : { MessageGroupId: message.fifo.groupId, MessageDeduplicationId: message.fifo.deduplicationId }),
          }),
        );
      } catch (e) {
        throw queueCallFailure(e, 'SendMessage to the dead-letter queue');
      }
    },
    async changeVisibility(queueUrl, changes) {
      const failedIds = new Set<string>();
      if (changes.length === 0) return failedIds;
      const { client: c, sdk } = await load();
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

function queueCallFailure(e: unknown, what: string): RelayError {
  const err = (e ?? {}) as { name?: unknown; code?: unknown };
  // Network errors carry a Node code (ECONNREFUSED...) rather than an SQS error name.
  const name = typeof err.code === 'string' ? err.code : typeof err.name === 'string' ? err.name : 'Error';
  return new RelayError(isThrottling(e) ? 'ERR_QUEUE_THROTTLED' : 'ERR_QUEUE_UNAVAILABLE', `${what} failed: ${name}`, { cause: e });
}
