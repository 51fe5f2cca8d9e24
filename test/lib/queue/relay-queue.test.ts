import { createHash } from 'node:crypto';
import { SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqsRelayQueue, type QueueRecord } from '../../../lib/queue/relay-queue.js';
import { closedPort, startLocalSqs, startSqsStandIn, THROTTLED, type LocalSqs, type SqsStandIn } from '../../helpers/local-sqs.js';

// The SDK checks each queued body against the MD5 SQS reports for it.
const md5 = (text: string): string => createHash('md5').update(text).digest('hex');

// SQS remembers deduplication IDs for 5 minutes, so each test numbers its records afresh.
let tag = 0;
beforeEach(() => {
  tag++;
});
const record = (i: number, groupId = 'gw-1'): QueueRecord => ({
  body: JSON.stringify({ v: 1, deviceId: 'pump-0042', payload: `reading ${i}` }),
  groupId,
  deduplicationId: `t${tag}-req-${i}`,
});

describe('SqsRelayQueue against a local SQS FIFO queue', () => {
  let sqs: LocalSqs;
  let queue: SqsRelayQueue;

  beforeAll(async () => {
    sqs = await startLocalSqs();
    queue = new SqsRelayQueue({ queueUrl: sqs.queueUrl, client: sqs.client });
  });
  afterAll(() => sqs.stop());
  afterEach(() => sqs.purge());

  it('sends one record with SendMessage: body, group and deduplication ID as given', async () => {
    const [outcome] = await queue.send([record(1, 'gw-7')]);

    expect(outcome).toEqual({ queued: true, messageId: expect.stringMatching(/.+/) });
    const [message, ...rest] = await sqs.receiveAll();
    expect(rest).toEqual([]);
    expect(message).toMatchObject({ body: record(1).body, groupId: 'gw-7', deduplicationId: `t${tag}-req-1` });
    expect(outcome?.queued && outcome.messageId).toBe(message?.messageId);
  });

  it('sends 25 records in three batches, every one queued, in order', async () => {
    const records = Array.from({ length: 25 }, (_, i) => record(i));

    const outcomes = await queue.send(records);

    expect(outcomes.every((o) => o.queued)).toBe(true);
    const received = await sqs.receiveAll();
    expect(received.map((m) => m.deduplicationId)).toEqual(records.map((r) => r.deduplicationId));
    expect(new Set(outcomes.map((o) => o.queued && o.messageId))).toEqual(new Set(received.map((m) => m.messageId)));
  });

  it('lets SQS drop a repeated deduplication ID within the group', async () => {
    await queue.send([record(1)]);
    const [again] = await queue.send([record(1)]);

    expect(again?.queued).toBe(true);
    expect(await sqs.receiveAll()).toHaveLength(1);
  });

  it('reports a queue that does not exist as unavailable', async () => {
    const missing = new SqsRelayQueue({ queueUrl: `${sqs.endpoint}/123456789012/nothing-here.fifo`, client: sqs.client });

    const outcomes = await missing.send([record(1), record(2)]);

    expect(outcomes.map((o) => !o.queued && o.error.code)).toEqual(['ERR_QUEUE_UNAVAILABLE', 'ERR_QUEUE_UNAVAILABLE']);
  });
});

describe('SqsRelayQueue failures', () => {
  let standIn: SqsStandIn | undefined;
  afterEach(async () => {
    await standIn?.stop();
    standIn = undefined;
  });

  it('turns a closed port into ERR_QUEUE_UNAVAILABLE for every record', async () => {
    const port = await closedPort();
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 });
    const queue = new SqsRelayQueue({ queueUrl: `http://127.0.0.1:${port}/123456789012/q.fifo`, client });

    const [one] = await queue.send([record(1)]);
    const many = await queue.send([record(1), record(2), record(3)]);

    expect(one).toMatchObject({ queued: false, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') } });
    expect(many.map((o) => !o.queued && o.error.code)).toEqual(Array(3).fill('ERR_QUEUE_UNAVAILABLE'));
    client.destroy();
  });

  it('turns SQS throttling into ERR_QUEUE_THROTTLED', async () => {
    standIn = await startSqsStandIn(() => THROTTLED);
    const queue = new SqsRelayQueue({ queueUrl: standIn.queueUrl, client: standIn.client });

    const [one] = await queue.send([record(1)]);
    const batch = await queue.send([record(1), record(2)]);

    expect(one).toMatchObject({ queued: false, error: { code: 'ERR_QUEUE_THROTTLED' } });
    expect(batch.map((o) => !o.queued && o.error.code)).toEqual(['ERR_QUEUE_THROTTLED', 'ERR_QUEUE_THROTTLED']);
    expect(standIn.calls.map((c) => c.action)).toEqual(['SendMessage', 'SendMessageBatch']);
  });

  it('reports a partly failed chunk entry by entry and sends no later chunk', async () => {
    standIn = await startSqsStandIn((call) => {
      const entries = call.input['Entries'] as { Id: string; MessageBody: string }[];
      // Entries r0..r3 are queued, r4 is throttled, the rest of the chunk too.
      return {
        status: 200,
        body: {
          Successful: entries.slice(0, 4).map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}`, MD5OfMessageBody: md5(e.MessageBody) })),
          Failed: entries.slice(4).map((e) => ({ Id: e.Id, Code: 'RequestThrottled', Message: 'slow down', SenderFault: true })),
        },
      };
    });
    const queue = new SqsRelayQueue({ queueUrl: standIn.queueUrl, client: standIn.client });

    const outcomes = await queue.send(Array.from({ length: 15 }, (_, i) => record(i)));

    expect(standIn.calls).toHaveLength(1);
    expect(outcomes.slice(0, 4)).toEqual(['r0', 'r1', 'r2', 'r3'].map((id) => ({ queued: true, messageId: `m-${id}` })));
    expect(outcomes.slice(4).map((o) => !o.queued && o.error.code)).toEqual(Array(11).fill('ERR_QUEUE_THROTTLED'));
    expect(outcomes[12]).toMatchObject({ queued: false, error: { message: expect.stringContaining('earlier record') } });
  });

  it('classifies an SQS server error as unavailable', async () => {
    standIn = await startSqsStandIn(() => ({ status: 500, body: { __type: 'com.amazonaws.sqs#InternalError', message: 'oops' } }));
    const queue = new SqsRelayQueue({ queueUrl: standIn.queueUrl, client: standIn.client });

    const [outcome] = await queue.send([record(1)]);

    expect(outcome).toMatchObject({ queued: false, error: { code: 'ERR_QUEUE_UNAVAILABLE' } });
  });
});

describe('SqsRelayQueue call sizes, against a local SQS FIFO queue', () => {
  let sqs: LocalSqs;
  beforeAll(async () => {
    sqs = await startLocalSqs();
  });
  afterAll(() => sqs.stop());

  it('sends records of up to 1 MiB, cutting before a record would take a call past 1 MiB, in order', async () => {
    // The server refuses a SendMessageBatch over 1 MiB (BatchRequestTooLong): three of these in one call would fail.
    const big = (i: number): QueueRecord => ({ body: JSON.stringify({ v: 1, deviceId: 'pump-0042', payload: 'x'.repeat(400 * 1024) }), groupId: 'gw-1', deduplicationId: `t${tag}-big-${i}` });
    const records = [big(0), big(1), big(2), record(3), big(4)];

    const outcomes = await new SqsRelayQueue({ queueUrl: sqs.queueUrl, client: sqs.client }).send(records);

    expect(outcomes.map((o) => o.queued)).toEqual([true, true, true, true, true]);
    expect((await sqs.receiveAll()).map((m) => m.deduplicationId)).toEqual(records.map((r) => r.deduplicationId));
  });

  it('refuses an empty queue URL', () => {
    expect(() => new SqsRelayQueue({ queueUrl: ' ' })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});
