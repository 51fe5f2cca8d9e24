/**
 * Dead letters for tests of the dead-letter tools: parked in a dead-letter queue with the relay's own queue action
 * (lib/queue/queue-actions.ts) and the attributes lib/sqs/relay-sqs-batch.ts gives them, or sent bare as SQS's
 * redrive would leave them. The end-to-end tests make the relay park them itself.
 *
 * @example
 * await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-01'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-01' });
 */
import { randomUUID } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { sqsQueueActions } from '../../lib/queue/queue-actions.js';

export interface Parked {
  body: string;
  code: string;
  reason?: string;
  deviceId?: string;
  gatewayId?: string;
  field?: string;
  groupId?: string;
  sourceMessageId?: string;
}

/** Sends `p` to the dead-letter queue as the relay sends a record it dead-letters; returns the source message ID. */
export async function park(client: SQSClient, deadLetterQueueUrl: string, p: Parked): Promise<string> {
  const sourceMessageId = p.sourceMessageId ?? randomUUID();
  const attributes: Record<string, string> = {
    'relay.errorCode': p.code,
    'relay.reason': p.reason ?? `reason of ${p.code}`,
    'relay.sourceMessageId': sourceMessageId,
    'relay.sourceQueue': 'arn:aws:sqs:us-east-1:123456789012:relay.fifo',
    'relay.receiveCount': '1',
  };
  if (p.field !== undefined) attributes['relay.field'] = p.field;
  if (p.gatewayId !== undefined) attributes['relay.gatewayId'] = p.gatewayId;
  if (p.deviceId !== undefined) attributes['relay.deviceId'] = p.deviceId;
  await sqsQueueActions(() => client).sendToDeadLetter(deadLetterQueueUrl, {
    body: p.body,
    attributes,
    fifo: { groupId: p.groupId ?? p.gatewayId ?? 'gw-1', deduplicationId: sourceMessageId },
  });
  return sourceMessageId;
}

/** A record as SQS's redrive policy leaves it in the dead-letter queue: its body and group, no reason. */
export async function redriven(client: SQSClient, deadLetterQueueUrl: string, body: string, groupId = 'gw-1'): Promise<void> {
  await client.send(new SendMessageCommand({ QueueUrl: deadLetterQueueUrl, MessageBody: body, MessageGroupId: groupId, MessageDeduplicationId: randomUUID() }));
}
