/**
 * A queue's depth as SQS means it: messages waiting to be received, and messages in flight (received, neither
 * deleted nor visible again).
 *
 * local-aws-sqs counts in-flight messages in ApproximateNumberOfMessages too, where SQS counts only the ones
 * available for retrieval; the waiting count is therefore the difference of the two attributes.
 *
 * @example
 * await queueDepth(sqs.client, queue.url); // { waiting: 3, inFlight: 1 }
 */
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';

export interface QueueDepth {
  waiting: number;
  inFlight: number;
}

export async function queueDepth(client: SQSClient, queueUrl: string): Promise<QueueDepth> {
  const { Attributes: a } = await client.send(
    new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  const all = Number(a?.ApproximateNumberOfMessages ?? 0);
  const inFlight = Number(a?.ApproximateNumberOfMessagesNotVisible ?? 0);
  return { waiting: Math.max(0, all - inFlight), inFlight };
}
