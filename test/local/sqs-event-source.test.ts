/**
 * The local event source against the real local-aws-sqs: Lambda's SQS semantics that the relay relies on.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ChangeMessageVisibilityCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { SqsEventSource, failuresIn, type BatchReport, type SqsBatchHandler } from '../../local/sqs-event-source.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startSqsServer, type LocalQueue, type SqsServer } from '../../local/sqs-server.js';
import type { QueueSpec } from '../../local/template-resources.js';
import { until as waitUntil } from '../helpers/until.js';

const FN = { functionName: 'relay', region: 'us-east-1' };

function fifoQueue(logicalId: string, name: string, visibilityTimeoutSeconds: number, redrive?: QueueSpec['redrive']): QueueSpec {
  return {
    logicalId,
    name: `${name}.fifo`,
    fifo: true,
    visibilityTimeoutSeconds,
    ...(redrive ? { redrive } : {}),
    attributes: { FifoQueue: 'true', ContentBasedDeduplication: 'true', VisibilityTimeout: String(visibilityTimeoutSeconds) },
    ignored: [],
  };
}

let sqs: SqsServer;
const sources: SqsEventSource[] = [];
const unsubscribes: (() => void)[] = [];

beforeAll(async () => {
  sqs = await startSqsServer({
    queues: [
      fifoQueue('Dlq', 'dlq', 60),
      fifoQueue('Groups', 'groups', 10, { targetLogicalId: 'Dlq', maxReceiveCount: 5 }),
      // 3 s: long enough that a success is deleted before it reappears even on a loaded machine, short enough
      // for the failed-back record to come back within the test.
      fifoQueue('Partial', 'partial', 3, { targetLogicalId: 'Dlq', maxReceiveCount: 5 }),
      fifoQueue('Redrive', 'redrive', 1, { targetLogicalId: 'Dlq', maxReceiveCount: 2 }),
      fifoQueue('Whole', 'whole', 1, { targetLogicalId: 'Dlq', maxReceiveCount: 5 }),
      fifoQueue('Backoff', 'backoff', 30, { targetLogicalId: 'Dlq', maxReceiveCount: 5 }),
    ],
  });
});

afterEach(async () => {
  await Promise.all(sources.splice(0).map((s) => s.stop()));
  unsubscribes.splice(0).forEach((u) => u());
});

afterAll(async () => {
  await sqs.close();
});

/** A source with a short poll, so each step of a test costs milliseconds rather than a long-poll wait. */
function startSource(queue: LocalQueue, handler: SqsBatchHandler, timeoutSeconds: number, onBatch?: (r: BatchReport) => void): SqsEventSource {
  const source: SqsEventSource = new SqsEventSource({
    client: sqs.client,
    queue,
    handler,
    fn: { ...FN, timeoutSeconds },
    visibilityTimeoutSeconds: queue.spec.visibilityTimeoutSeconds,
    waitTimeSeconds: 0,
    ...(onBatch ? { onBatch } : {}),
  });
  sources.push(source);
  const unsubscribe = sqs.onVisibilityChange((c) => {
    if (c.queueUrl === queue.url) source.noteVisibilityChange(c.receiptHandle, c.seconds);
  });
  unsubscribes.push(unsubscribe);
  source.start();
  return source;
}

async function send(queue: LocalQueue, group: string, body: string): Promise<string> {
  const out = await sqs.client.send(new SendMessageCommand({ QueueUrl: queue.url, MessageBody: body, MessageGroupId: group }));
  return out.MessageId!;
}

/** This file's waits: up to 8000 ms, polling every 25 ms. */
const until = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 8000): Promise<T> =>
  waitUntil(what, probe, timeoutMs, 25);

const bodies = (e: SQSEvent): string[] => e.Records.map((r) => r.body);

describe('SqsEventSource', () => {
  it('runs at most one batch per message group at a time, and other groups meanwhile', async () => {
    // Prepare
    const queue = sqs.queue('Groups');
    const batches: { bodies: string[]; groups: string[]; start: number; end?: number }[] = [];
    const active = new Map<string, number>();
    let overlap = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const handler: SqsBatchHandler = async (event) => {
      const groups = [...new Set(event.Records.map((r) => r.attributes.MessageGroupId!))];
      for (const g of groups) {
        if ((active.get(g) ?? 0) > 0) overlap = true;
        active.set(g, (active.get(g) ?? 0) + 1);
      }
      const batch: (typeof batches)[number] = { bodies: bodies(event), groups, start: Date.now() };
      batches.push(batch);
      if (batch.bodies.includes('A1')) await gate;
      for (const g of groups) active.set(g, active.get(g)! - 1);
      batch.end = Date.now();
    };
    startSource(queue, handler, 5);

    // Act
    await send(queue, 'A', 'A1');
    await until('the batch of A1', () => batches.find((b) => b.bodies.includes('A1')));
    await send(queue, 'A', 'A2');
    await send(queue, 'B', 'B1');
    const b1 = await until('the batch of B1', () => batches.find((b) => b.bodies.includes('B1')));
    // Several more polls of the queue, with A2 visible to each, while A1's batch still runs.
    await new Promise((r) => setTimeout(r, 600));
    const a2Early = batches.some((b) => b.bodies.includes('A2'));
    release();
    const a2 = await until('the batch of A2', () => batches.find((b) => b.bodies.includes('A2') && b.end !== undefined));

    // Assess
    expect(b1.groups).toEqual(['B']);
    expect(a2Early).toBe(false);
    expect(a2.start).toBeGreaterThanOrEqual(batches.find((b) => b.bodies.includes('A1'))!.end!);
    expect(overlap).toBe(false);
  });

  it('deletes only the successes of a partial batch response; the failure comes back first and holds its group', async () => {
    // Prepare
    const queue = sqs.queue('Partial');
    await sqs.client.send(
      new SendMessageBatchCommand({
        QueueUrl: queue.url,
        Entries: ['P1', 'P2', 'P3'].map((body, i) => ({ Id: `e${i}`, MessageBody: body, MessageGroupId: 'G' })),
      }),
    );
    const deliveries: { body: string; receiveCount: string }[] = [];
    const reports: BatchReport[] = [];
    let firstBatchSeen = false;
    const handler: SqsBatchHandler = async (event): Promise<SQSBatchResponse> => {
      for (const r of event.Records) deliveries.push({ body: r.body, receiveCount: r.attributes.ApproximateReceiveCount });
      if (firstBatchSeen) return { batchItemFailures: [] };
      firstBatchSeen = true;
      const p2 = event.Records.find((r) => r.body === 'P2')!;
      return { batchItemFailures: [{ itemIdentifier: p2.messageId }] };
    };

    // Act
    startSource(queue, handler, 1, (r) => reports.push(r));
    const first = await until('the first batch report', () => reports[0]);
    const afterFirst = await queueDepth(sqs.client, queue.url);
    await send(queue, 'G', 'P4');
    await until('P4', () => deliveries.find((d) => d.body === 'P4'));
    await until('an empty queue', async () => {
      const d = await queueDepth(sqs.client, queue.url);
      return d.waiting === 0 && d.inFlight === 0 ? d : undefined;
    });

    // Assess
    expect(first.outcome).toBe('partial');
    expect(first.messageIds).toHaveLength(3);
    expect(first.deleted).toHaveLength(2);
    expect(first.retried).toEqual([first.messageIds[1]]);
    expect(afterFirst).toEqual({ waiting: 0, inFlight: 1 });
    // P2 again (second receive), before P4 which was sent after it; P1 and P3 never again.
    expect(deliveries.map((d) => d.body)).toEqual(['P1', 'P2', 'P3', 'P2', 'P4']);
    expect(deliveries[3]!.receiveCount).toBe('2');
  });

  it('keeps a group blocked only until a failed message shows again, when the handler changed its visibility', async () => {
    // Prepare: a 30 s visibility timeout the handler shortens to 1 s, as the relay's back-off does.
    const queue = sqs.queue('Backoff');
    const deliveries: { body: string; at: number }[] = [];
    let failedOnce = false;
    const handler: SqsBatchHandler = async (event) => {
      for (const r of event.Records) deliveries.push({ body: r.body, at: Date.now() });
      const first = event.Records.find((r) => r.body === 'K1');
      if (first === undefined || failedOnce) return undefined;
      failedOnce = true;
      await sqs.client.send(new ChangeMessageVisibilityCommand({ QueueUrl: queue.url, ReceiptHandle: first.receiptHandle, VisibilityTimeout: 1 }));
      return { batchItemFailures: [{ itemIdentifier: first.messageId }] };
    };
    startSource(queue, handler, 1);

    // Act
    await send(queue, 'K', 'K1');
    await until('the first delivery', () => deliveries[0]);
    await send(queue, 'K', 'K2');
    await until('K2', () => deliveries.find((d) => d.body === 'K2'));

    // Assess: K1 again after about a second, not 30; K2 waited for it.
    expect(deliveries.map((d) => d.body)).toEqual(['K1', 'K1', 'K2']);
    expect(deliveries[1]!.at - deliveries[0]!.at).toBeGreaterThanOrEqual(900);
    expect(deliveries[1]!.at - deliveries[0]!.at).toBeLessThan(5000);
  });

  it('fails the whole batch when the handler throws or names a message that was not in the batch', async () => {
    // Prepare
    const queue = sqs.queue('Whole');
    await send(queue, 'W', 'W1');
    const reports: BatchReport[] = [];
    let calls = 0;
    const handler: SqsBatchHandler = async () => {
      calls += 1;
      if (calls === 1) throw new Error('boom');
      if (calls === 2) return { batchItemFailures: [{ itemIdentifier: 'not-in-this-batch' }] };
      return undefined;
    };

    // Act
    startSource(queue, handler, 1, (r) => reports.push(r));
    await until('three invocations', () => (reports.length >= 3 ? reports : undefined));

    // Assess
    expect(reports.map((r) => r.outcome)).toEqual(['threw', 'invalid-response', 'succeeded']);
    expect(reports[0]!.retried).toHaveLength(1);
    expect(reports[1]!.retried).toHaveLength(1);
    expect(reports[2]!.deleted).toHaveLength(1);
  });

  it('leaves redrive to the queue: after maxReceiveCount failed receives the message is in the dead-letter queue', async () => {
    // Prepare
    const queue = sqs.queue('Redrive');
    const dlq = sqs.queue('Dlq');
    const id = await send(queue, 'R', 'poison');
    let deliveries = 0;
    const handler: SqsBatchHandler = async (event) => {
      deliveries += event.Records.length;
      return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
    };

    // Act
    startSource(queue, handler, 1);
    const dead = await until('the message in the dead-letter queue', async () => {
      const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: dlq.url, MaxNumberOfMessages: 1, WaitTimeSeconds: 0 }));
      return out.Messages?.[0];
    });

    // Assess
    expect(dead.Body).toBe('poison');
    expect(dead.MessageId).toBe(id);
    expect(deliveries).toBe(queue.spec.redrive!.maxReceiveCount);
    expect(await queueDepth(sqs.client, queue.url)).toEqual({ waiting: 0, inFlight: 0 });
  });

  it('refuses a visibility timeout shorter than the function timeout, as Lambda does', () => {
    expect(
      () =>
        new SqsEventSource({
          client: sqs.client,
          queue: sqs.queue('Partial'),
          handler: async () => undefined,
          fn: { ...FN, timeoutSeconds: 60 },
          visibilityTimeoutSeconds: 30,
        }),
    ).toThrow(/visibility timeout \(30 s\) is shorter than relay's timeout \(60 s\)/);
  });
});

describe('failuresIn', () => {
  const ids = ['a', 'b'];
  it('reads a partial batch response the way Lambda does', () => {
    expect(failuresIn(undefined, ids)).toEqual(new Set());
    expect(failuresIn({ batchItemFailures: [] }, ids)).toEqual(new Set());
    expect(failuresIn({ batchItemFailures: [{ itemIdentifier: 'b' }] }, ids)).toEqual(new Set(['b']));
    expect(failuresIn({ batchItemFailures: [{ itemIdentifier: '' }] }, ids)).toBeUndefined();
    expect(failuresIn({ batchItemFailures: [{}] }, ids)).toBeUndefined();
    expect(failuresIn({ batchItemFailures: 'b' }, ids)).toBeUndefined();
  });
});
