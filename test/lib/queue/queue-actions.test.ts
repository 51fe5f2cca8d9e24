import { ReceiveMessageCommand, SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isRelayError } from '../../../lib/errors.js';
import { MAX_MESSAGE_BYTES } from '../../../lib/queue/queue-producer.js';
import { sqsQueueActions } from '../../../lib/queue/queue-actions.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';

let sqs: LocalSqs;
beforeAll(async () => {
  sqs = await startLocalSqs();
});
afterAll(() => sqs.stop());
afterEach(() => sqs.purge());

let n = 0;
const unique = (prefix: string): string => `${prefix}-${Date.now()}-${++n}`;

describe('sendToDeadLetter', () => {
  it('sends the body with its reason as string attributes, in the given FIFO group and deduplication ID', async () => {
    const actions = sqsQueueActions(() => sqs.client);
    const deduplicationId = unique('m');

    await actions.sendToDeadLetter(sqs.deadLetterQueueUrl, {
      body: '{"v":1,"deviceId":"pump-0042","payload":"!"}',
      attributes: { 'relay.errorCode': 'ERR_INVALID_BASE64', 'relay.receiveCount': '3' },
      fifo: { groupId: 'gw-1', deduplicationId },
    });

    const out = await sqs.client.send(
      new ReceiveMessageCommand({ QueueUrl: sqs.deadLetterQueueUrl, MessageAttributeNames: ['All'], AttributeNames: ['All'], MaxNumberOfMessages: 10 }),
    );
    expect(out.Messages).toHaveLength(1);
    const [m] = out.Messages!;
    expect(m!.Body).toBe('{"v":1,"deviceId":"pump-0042","payload":"!"}');
    expect(m!.Attributes).toMatchObject({ MessageGroupId: 'gw-1', MessageDeduplicationId: deduplicationId });
    expect(m!.MessageAttributes).toEqual({
      'relay.errorCode': expect.objectContaining({ DataType: 'String', StringValue: 'ERR_INVALID_BASE64' }),
      'relay.receiveCount': expect.objectContaining({ DataType: 'String', StringValue: '3' }),
    });
  });

  it('throws ERR_QUEUE_UNAVAILABLE, naming the dead-letter queue, when the queue does not take the message', async () => {
    const actions = sqsQueueActions(() => sqs.client);

    const error = await actions.sendToDeadLetter(`${sqs.endpoint}/123456789012/missing.fifo`, { body: 'b', attributes: {}, fifo: { groupId: 'g', deduplicationId: unique('d') } }).catch((e: unknown) => e);

    expect(isRelayError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringMatching(/^the dead-letter queue /) });
  });

  it('takes a record as large as the relay queue takes, and refuses a larger one without a call', async () => {
    let clients = 0;
    const actions = sqsQueueActions(() => {
      clients++;
      return sqs.client;
    });
    const body = 'x'.repeat(400 * 1024);

    await actions.sendToDeadLetter(sqs.deadLetterQueueUrl, { body, attributes: {}, fifo: { groupId: 'g', deduplicationId: unique('big') } });
    const error = await actions.sendToDeadLetter(sqs.deadLetterQueueUrl, { body: 'x'.repeat(MAX_MESSAGE_BYTES + 1), attributes: {} }).catch((e: unknown) => e);

    expect((await sqs.receiveAll(sqs.deadLetterQueueUrl)).map((m) => m.body.length)).toEqual([body.length]);
    expect(error).toMatchObject({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'body' });
    expect(clients).toBe(1);
  });

  it('makes its client at the first call, and after a failed attempt tries again at the next', async () => {
    let attempts = 0;
    const actions = sqsQueueActions(() => {
      if (++attempts === 1) throw new Error('credentials not ready');
      return sqs.client;
    });
    expect(attempts).toBe(0);
    const message = () => ({ body: 'b', attributes: { a: '1' }, fifo: { groupId: 'g', deduplicationId: unique('retry') } });

    await expect(actions.sendToDeadLetter(sqs.deadLetterQueueUrl, message())).rejects.toMatchObject({ code: 'ERR_QUEUE_UNAVAILABLE' });
    await actions.sendToDeadLetter(sqs.deadLetterQueueUrl, message());

    expect(attempts).toBe(2);
    expect(await sqs.receiveAll(sqs.deadLetterQueueUrl)).toHaveLength(1);
  });
});

describe('changeVisibility', () => {
  /** Puts `count` messages on the relay queue and receives them: their receipt handles. */
  async function received(count: number): Promise<string[]> {
    for (let i = 0; i < count; i += 10) {
      const ids = Array.from({ length: Math.min(10, count - i) }, (_, k) => i + k);
      await sqs.client.send(
        new SendMessageBatchCommand({
          QueueUrl: sqs.queueUrl,
          Entries: ids.map((k) => ({ Id: `e${k}`, MessageBody: `m${k}`, MessageGroupId: `g${k}`, MessageDeduplicationId: unique('v') })),
        }),
      );
    }
    const handles: string[] = [];
    while (handles.length < count) {
      const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
      if ((out.Messages ?? []).length === 0) break;
      handles.push(...out.Messages!.map((m) => m.ReceiptHandle!));
    }
    return handles;
  }

  it('changes the visibility of more than ten records, in calls of ten, and reports no failure', async () => {
    const handles = await received(12);
    expect(handles).toHaveLength(12);
    const actions = sqsQueueActions(() => sqs.client);

    const failed = await actions.changeVisibility(sqs.queueUrl, handles.map((receiptHandle, i) => ({ id: String(i), receiptHandle, seconds: 0 })));

    expect(failed).toEqual(new Set());
    // Visible again at once: the queue hands all of them out a second time.
    expect(await sqs.receiveAll()).toHaveLength(12);
  });

  it('reports the ids whose change failed, and never throws', async () => {
    const [handle] = await received(1);
    const actions = sqsQueueActions(() => sqs.client);

    const failed = await actions.changeVisibility(sqs.queueUrl, [
      { id: 'good', receiptHandle: handle!, seconds: 0 },
      { id: 'bad', receiptHandle: 'not-a-receipt-handle', seconds: 0 },
    ]);
    const unreachable = await actions.changeVisibility(`${sqs.endpoint}/123456789012/missing.fifo`, [{ id: 'x', receiptHandle: handle!, seconds: 0 }]);

    expect(failed).toEqual(new Set(['bad']));
    expect(unreachable).toEqual(new Set(['x']));
    expect(await actions.changeVisibility(sqs.queueUrl, [])).toEqual(new Set());
  });
});
