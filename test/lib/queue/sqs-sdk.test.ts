import * as clientSqs from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { loadSqsSdk } from '../../../lib/queue/queue-producer.js';
import * as sqsSdk from '../../../lib/queue/sqs-sdk.js';

describe('sqs-sdk', () => {
  it('exports the SDK\'s own classes, the ones the producer and the queue actions use, under their names', () => {
    expect(Object.keys(sqsSdk).sort()).toEqual(['ChangeMessageVisibilityBatchCommand', 'SQSClient', 'SendMessageBatchCommand', 'SendMessageCommand']);
    expect(sqsSdk.SQSClient).toBe(clientSqs.SQSClient);
    expect(sqsSdk.SendMessageCommand).toBe(clientSqs.SendMessageCommand);
    expect(sqsSdk.SendMessageBatchCommand).toBe(clientSqs.SendMessageBatchCommand);
    expect(sqsSdk.ChangeMessageVisibilityBatchCommand).toBe(clientSqs.ChangeMessageVisibilityBatchCommand);
  });

  it('is what loadSqsSdk loads, once', async () => {
    const first = await loadSqsSdk();

    expect(first.SendMessageBatchCommand).toBe(clientSqs.SendMessageBatchCommand);
    expect(await loadSqsSdk()).toBe(first);
  });
});
