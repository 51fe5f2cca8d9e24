import { createHash } from 'node:crypto';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chunkEntries, CLASSIC_MAX_MESSAGE_BYTES, entrySize, MAX_MESSAGE_BYTES, QueueProducer, type QueueEntry } from '../../../lib/queue/queue-producer.js';
import { LOCAL_CREDENTIALS } from '../../../local/sqs-server.js';
import { closedPort, startLocalSqs, startSqsStandIn, THROTTLED, type LocalSqs, type SqsStandIn, type StandInCall } from '../../helpers/local-sqs.js';

const KiB = 1024;

// SQS remembers deduplication IDs for 5 minutes, so each test numbers its entries afresh.
let tag = 0;
beforeEach(() => {
  tag++;
});
const entry = (i: number, size = 0, groupId = 'gw-1'): QueueEntry => ({
  body: JSON.stringify({ v: 1, deviceId: 'pump-0042', payload: `reading ${i}${'x'.repeat(size)}` }),
  groupId,
  deduplicationId: `t${tag}-e-${i}`,
});

interface Call {
  command: string;
  entries: number;
  bytes: number;
}

/** A client of the local server that notes every call it makes: the command, its entries and their bytes. */
function recordingClient(sqs: LocalSqs): { client: SQSClient; calls: Call[] } {
  const client = new SQSClient({ endpoint: sqs.endpoint, region: sqs.env.AWS_REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
  const calls: Call[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Entries?: { MessageBody: string }[]; MessageBody?: string };
      const bodies = input.Entries?.map((e) => e.MessageBody) ?? [input.MessageBody ?? ''];
      calls.push({ command: String(context.commandName), entries: bodies.length, bytes: bodies.reduce((n, b) => n + Buffer.byteLength(b), 0) });
      return next(args);
    },
    { step: 'initialize', name: 'recordCalls' },
  );
  return { client, calls };
}

describe('QueueProducer against a local SQS FIFO queue', () => {
  let sqs: LocalSqs;
  let recorded: { client: SQSClient; calls: Call[] };

  beforeAll(async () => {
    sqs = await startLocalSqs();
  });
  afterAll(() => sqs.stop());
  beforeEach(() => {
    recorded = recordingClient(sqs);
  });
  afterEach(async () => {
    recorded.client.destroy();
    await sqs.purge();
  });

  it('sends more than ten entries in calls of ten, in order, each with its group and deduplication ID', async () => {
    const entries = Array.from({ length: 23 }, (_, i) => entry(i, 0, i % 2 === 0 ? 'gw-1' : 'gw-2'));

    const outcomes = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).send(entries);

    expect(recorded.calls.map((c) => [c.command, c.entries])).toEqual([
      ['SendMessageBatchCommand', 10],
      ['SendMessageBatchCommand', 10],
      ['SendMessageBatchCommand', 3],
    ]);
    expect(outcomes.every((o) => o.queued)).toBe(true);
    const received = await sqs.receiveAll();
    expect(received.map((m) => [m.deduplicationId, m.groupId])).toEqual(entries.map((e) => [e.deduplicationId, e.groupId]));
    expect(outcomes.map((o) => o.queued && o.messageId)).toEqual(received.map((m) => m.messageId));
  });

  it('starts a new call before an entry would take one past 256 KiB', async () => {
    const entries = [entry(0, 100 * KiB), entry(1, 100 * KiB), entry(2, 100 * KiB), entry(3), entry(4, 100 * KiB)];

    const outcomes = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).send(entries);

    expect(recorded.calls.map((c) => c.entries)).toEqual([2, 3]);
    for (const c of recorded.calls) expect(c.bytes).toBeLessThanOrEqual(CLASSIC_MAX_MESSAGE_BYTES);
    expect(outcomes.every((o) => o.queued)).toBe(true);
    expect((await sqs.receiveAll()).map((m) => m.deduplicationId)).toEqual(entries.map((e) => e.deduplicationId));
  });

  it('refuses an entry too large for any call with ERR_PAYLOAD_TOO_LARGE, and sends its neighbours', async () => {
    const entries = [entry(0), entry(1, 300 * KiB), entry(2)];

    const outcomes = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).send(entries);

    expect(outcomes[0]).toEqual({ queued: true, messageId: expect.any(String) });
    expect(outcomes[1]).toMatchObject({ queued: false, retryable: false, error: { name: 'RelayError', code: 'ERR_PAYLOAD_TOO_LARGE', field: 'body' } });
    expect(outcomes[2]).toEqual({ queued: true, messageId: expect.any(String) });
    expect(recorded.calls.map((c) => c.entries)).toEqual([2]);
    expect((await sqs.receiveAll()).map((m) => m.deduplicationId)).toEqual([entries[0]!.deduplicationId, entries[2]!.deduplicationId]);
  });

  it('takes an entry up to the byte limit it is given, and refuses one alone with SendMessage without a call', async () => {
    const producer = new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client, maxBatchBytes: MAX_MESSAGE_BYTES });
    const [big] = await producer.send([entry(0, 300 * KiB)]);
    const tooBig = await producer.sendOne(entry(1, MAX_MESSAGE_BYTES));

    expect(big?.queued).toBe(true);
    expect(tooBig).toMatchObject({ queued: false, retryable: false, error: { code: 'ERR_PAYLOAD_TOO_LARGE' } });
    expect(recorded.calls.map((c) => c.command)).toEqual(['SendMessageBatchCommand']);
  });

  it('sends one entry with SendMessage', async () => {
    const one = entry(7, 0, 'gw-7');

    const outcome = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).sendOne(one);

    expect(recorded.calls.map((c) => c.command)).toEqual(['SendMessageCommand']);
    const [message, ...rest] = await sqs.receiveAll();
    expect(rest).toEqual([]);
    expect(message).toMatchObject({ body: one.body, groupId: 'gw-7', deduplicationId: one.deduplicationId });
    expect(outcome).toEqual({ queued: true, messageId: message!.messageId });
  });

  it('stops at a call the queue refuses as a whole: its entries fail, not retryable, and later ones are not sent', async () => {
    // An empty group ID is the sender's fault: the server refuses the whole call.
    const entries = Array.from({ length: 25 }, (_, i) => entry(i, 0, i === 12 ? '' : 'gw-1'));

    const outcomes = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).send(entries, { attempts: 3 });

    expect(outcomes.slice(0, 10).every((o) => o.queued)).toBe(true);
    for (const o of outcomes.slice(10, 20)) expect(o).toMatchObject({ queued: false, retryable: false, error: { code: 'ERR_QUEUE_UNAVAILABLE' } });
    for (const o of outcomes.slice(20)) expect(o).toMatchObject({ queued: false, error: { message: expect.stringContaining('earlier record') } });
    // Not retryable: no second attempt; and nothing after the refused call.
    expect(recorded.calls).toHaveLength(2);
    expect(await sqs.receiveAll()).toHaveLength(10);
  });

  it('reports a queue that does not exist as unavailable for every entry', async () => {
    const missing = new QueueProducer({ queueUrl: `${sqs.endpoint}/123456789012/nothing-here.fifo`, client: recorded.client });

    const outcomes = await missing.send([entry(1), entry(2)]);

    expect(outcomes.map((o) => !o.queued && o.error.code)).toEqual(['ERR_QUEUE_UNAVAILABLE', 'ERR_QUEUE_UNAVAILABLE']);
  });

  it('sends String, Number and Binary attributes with their types, custom ones too, and gets them back as sent', async () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    const attributes = {
      trace: 'abc-123',
      count: { DataType: 'Number', StringValue: '42' },
      ratio: { DataType: 'Number.float', StringValue: '0.5' },
      blob: { DataType: 'Binary', BinaryValue: bytes },
      packed: { DataType: 'Binary.gzip', BinaryValue: bytes.subarray(10, 20) },
    } as const;
    const producer = new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client });

    const outcomes = [...(await producer.send([{ ...entry(0), attributes }, entry(1)])), await producer.sendOne({ ...entry(2), attributes })];
    const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }));

    expect(outcomes.every((o) => o.queued)).toBe(true);
    const withAttributes = (out.Messages ?? []).filter((m) => m.MessageAttributes !== undefined);
    expect(withAttributes).toHaveLength(2);
    for (const m of withAttributes) {
      const a = m.MessageAttributes!;
      expect(Object.keys(a).sort()).toEqual(['blob', 'count', 'packed', 'ratio', 'trace']);
      expect(a.trace).toMatchObject({ DataType: 'String', StringValue: 'abc-123' });
      expect(a.count).toMatchObject({ DataType: 'Number', StringValue: '42' });
      expect(a.ratio).toMatchObject({ DataType: 'Number.float', StringValue: '0.5' });
      expect(a.blob?.DataType).toBe('Binary');
      expect(Buffer.from(a.blob!.BinaryValue!).equals(Buffer.from(bytes))).toBe(true);
      expect(a.packed?.DataType).toBe('Binary.gzip');
      expect([...a.packed!.BinaryValue!]).toEqual([...bytes.subarray(10, 20)]);
    }
  });

  it('counts a binary attribute by its bytes when it cuts calls', async () => {
    // 100 KiB of bytes is 136 KiB of base64: counted as bytes, two fit in one 256 KiB call; as base64, one would.
    const withBlob = (i: number): QueueEntry => ({ ...entry(i), attributes: { blob: { DataType: 'Binary', BinaryValue: new Uint8Array(100 * KiB).fill(i) } } });
    const entries = [withBlob(0), withBlob(1), withBlob(2)];

    const outcomes = await new QueueProducer({ queueUrl: sqs.queueUrl, client: recorded.client }).send(entries);

    expect(recorded.calls.map((c) => c.entries)).toEqual([2, 1]);
    expect(outcomes.every((o) => o.queued)).toBe(true);
    expect((await sqs.receiveAll()).map((m) => m.deduplicationId)).toEqual(entries.map((e) => e.deduplicationId));
  });

  it('makes its client at the first send, once, from the function it was given', async () => {
    let made = 0;
    const producer = new QueueProducer({
      queueUrl: sqs.queueUrl,
      client: () => {
        made++;
        return recorded.client;
      },
    });
    expect(made).toBe(0);

    await producer.send([entry(1), entry(2)]);
    await producer.sendOne(entry(3));

    expect(made).toBe(1);
    expect(await sqs.receiveAll()).toHaveLength(3);
  });
});

describe('QueueProducer partial failures', () => {
  let standIn: SqsStandIn | undefined;
  afterEach(async () => {
    await standIn?.stop();
    standIn = undefined;
  });

  type Entry = { Id: string; MessageBody: string };
  const entriesOf = (call: StandInCall): Entry[] => call.input.Entries as Entry[];
  const success = (entries: Entry[]) => entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.MessageBody}`, MD5OfMessageBody: createHash('md5').update(e.MessageBody).digest('hex') }));
  const plain = (i: number): QueueEntry => ({ body: `b${i}`, groupId: 'gw-1', deduplicationId: `d${i}` });

  /** SQS's answer when the entries with these bodies fail with `code`, the rest go. */
  const failing = (bodies: Record<string, { Code: string; SenderFault: boolean }>) => (call: StandInCall) => {
    const entries = entriesOf(call);
    const failed = entries.filter((e) => bodies[e.MessageBody] !== undefined);
    return {
      status: 200,
      body: {
        Successful: success(entries.filter((e) => bodies[e.MessageBody] === undefined)),
        Failed: failed.map((e) => ({ Id: e.Id, Message: 'no', ...bodies[e.MessageBody] })),
      },
    };
  };

  it('reports each failed entry, retryable or not, and sends nothing after a call not wholly queued', async () => {
    standIn = await startSqsStandIn(
      failing({ b3: { Code: 'InternalError', SenderFault: false }, b5: { Code: 'RequestThrottled', SenderFault: true }, b6: { Code: 'InvalidParameterValue', SenderFault: true } }),
    );
    const entries = Array.from({ length: 15 }, (_, i) => plain(i));

    const outcomes = await new QueueProducer({ queueUrl: standIn.queueUrl, client: standIn.client }).send(entries);

    expect(standIn.calls).toHaveLength(1);
    expect(outcomes[0]).toEqual({ queued: true, messageId: 'm-b0' });
    expect(outcomes[3]).toMatchObject({ queued: false, retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('InternalError') } });
    expect(outcomes[5]).toMatchObject({ queued: false, retryable: true, error: { code: 'ERR_QUEUE_THROTTLED' } });
    expect(outcomes[6]).toMatchObject({ queued: false, retryable: false, error: { code: 'ERR_QUEUE_UNAVAILABLE' } });
    expect(outcomes.slice(10).map((o) => !o.queued && o.error.message)).toEqual(Array(5).fill(expect.stringContaining('earlier record')));
  });

  it('sends again only the retryable failures, as often as allowed, then goes on', async () => {
    let failedOnce = false;
    standIn = await startSqsStandIn((call) => {
      if (failedOnce) return { status: 200, body: { Successful: success(entriesOf(call)), Failed: [] } };
      failedOnce = true;
      return failing({ b2: { Code: 'ServiceUnavailable', SenderFault: false }, b4: { Code: 'RequestThrottled', SenderFault: false } })(call);
    });
    const entries = Array.from({ length: 12 }, (_, i) => plain(i));

    const outcomes = await new QueueProducer({ queueUrl: standIn.queueUrl, client: standIn.client }).send(entries, { attempts: 2 });

    expect(outcomes.every((o) => o.queued)).toBe(true);
    expect(standIn.calls.map((c) => entriesOf(c).map((e) => e.MessageBody))).toEqual([
      ['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'b9'],
      ['b2', 'b4'],
      ['b10', 'b11'],
    ]);
  });

  it('does not send again an entry the queue refused as the sender\'s fault', async () => {
    standIn = await startSqsStandIn(failing({ b1: { Code: 'InvalidParameterValue', SenderFault: true }, b2: { Code: 'InternalError', SenderFault: false } }));

    const outcomes = await new QueueProducer({ queueUrl: standIn.queueUrl, client: standIn.client }).send([plain(0), plain(1), plain(2)], { attempts: 3 });

    expect(standIn.calls).toHaveLength(1);
    expect(outcomes.map((o) => o.queued || o.retryable)).toEqual([true, false, true]);
  });

  it('gives up after the attempts allowed', async () => {
    standIn = await startSqsStandIn(() => THROTTLED);

    const outcomes = await new QueueProducer({ queueUrl: standIn.queueUrl, client: standIn.client }).send([plain(0), plain(1)], { attempts: 3 });

    expect(standIn.calls).toHaveLength(3);
    expect(outcomes).toMatchObject([
      { queued: false, retryable: true, error: { code: 'ERR_QUEUE_THROTTLED' } },
      { queued: false, retryable: true, error: { code: 'ERR_QUEUE_THROTTLED' } },
    ]);
  });

  it('reports an unreachable queue as unavailable and retryable, without throwing', async () => {
    const port = await closedPort();
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
    const producer = new QueueProducer({ queueUrl: `http://127.0.0.1:${port}/123456789012/q.fifo`, client });

    const many = await producer.send([plain(0), plain(1)]);
    const one = await producer.sendOne(plain(2));

    for (const o of [...many, one]) expect(o).toMatchObject({ queued: false, retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') } });
    client.destroy();
  });
});

describe('chunkEntries and entrySize', () => {
  const item = (body: string, attributes?: Record<string, string>) => ({ entry: { body, ...(attributes ? { attributes } : {}) } });

  it('cuts at 10 entries', () => {
    expect(chunkEntries(Array.from({ length: 21 }, () => item('x')), CLASSIC_MAX_MESSAGE_BYTES).map((c) => c.length)).toEqual([10, 10, 1]);
  });

  it('cuts before an entry would take a call past the limit, and keeps the order', () => {
    const big = (n: string) => item(n.padEnd(400 * KiB, 'x'));
    const items = [big('0'), big('1'), big('2'), item('3'), big('4')];

    const chunks = chunkEntries(items, MAX_MESSAGE_BYTES);

    expect(chunks).toEqual([[items[0], items[1]], [items[2], items[3], items[4]]]);
    for (const c of chunks) expect(c.reduce((n, i) => n + entrySize(i.entry), 0)).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
  });

  it('counts UTF-8 bytes, and each attribute\'s name, type and value', () => {
    expect(entrySize({ body: 'é' })).toBe(2);
    expect(entrySize({ body: 'ab', attributes: { 'relay.errorCode': 'ERR_X' } })).toBe(2 + 'relay.errorCode'.length + 'String'.length + 5);
  });

  it('counts a typed attribute\'s own DataType, and a binary value\'s bytes', () => {
    const bytes = new Uint8Array(1000);

    expect(entrySize({ body: 'ab', attributes: { n: { DataType: 'Number.float', StringValue: '0.25' } } })).toBe(2 + 1 + 'Number.float'.length + 4);
    expect(entrySize({ body: 'ab', attributes: { b: { DataType: 'Binary', BinaryValue: bytes } } })).toBe(2 + 1 + 'Binary'.length + 1000);
    expect(entrySize({ body: 'ab', attributes: { b: { DataType: 'Binary.gzip', BinaryValue: bytes.subarray(0, 10) } } })).toBe(2 + 1 + 'Binary.gzip'.length + 10);
  });

  it('refuses a message whose binary attribute takes it past the limit, without a call', async () => {
    const producer = new QueueProducer({ queueUrl: 'http://127.0.0.1:1/123456789012/q.fifo', client: () => { throw new Error('no call expected'); } });
    const blob = { DataType: 'Binary', BinaryValue: new Uint8Array(CLASSIC_MAX_MESSAGE_BYTES - 100) } as const;

    const [outcome] = await producer.send([{ body: 'x'.repeat(200), attributes: { blob } }]);

    expect(outcome).toMatchObject({ queued: false, retryable: false, error: { code: 'ERR_PAYLOAD_TOO_LARGE' } });
  });

  it('refuses a body that fits only without its attributes', async () => {
    const producer = new QueueProducer({ queueUrl: 'http://127.0.0.1:1/123456789012/q.fifo', client: () => { throw new Error('no call expected'); } });
    const outcome = await producer.sendOne({ body: 'x'.repeat(CLASSIC_MAX_MESSAGE_BYTES - 10), attributes: { reason: 'y'.repeat(20) } });

    expect(outcome).toMatchObject({ queued: false, error: { code: 'ERR_PAYLOAD_TOO_LARGE' } });
  });
});

describe('QueueProducer settings', () => {
  it('refuses an empty queue URL and a byte limit SQS does not have', () => {
    expect(() => new QueueProducer({ queueUrl: '' })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    for (const maxBatchBytes of [0, MAX_MESSAGE_BYTES + 1, 1.5]) {
      expect(() => new QueueProducer({ queueUrl: 'http://q', maxBatchBytes })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    }
  });
});
