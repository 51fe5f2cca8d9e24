/**
 * Listing and replaying the dead-letter queue against the local SQS server with serverless.yml's queues: more
 * dead letters than one receive returns, filters, permanent failures, dry runs, and the order send-then-delete.
 */
import { createHash, randomUUID } from 'node:crypto';
import { ChangeMessageVisibilityBatchCommand, ReceiveMessageCommand, SendMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listDeadLetters, replayDeadLetters, type DeadLetterQueueTarget } from '../../../lib/dead-letters/dead-letter-queue.js';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { park, redriven } from '../../helpers/dead-letters.js';
import { startLocalSqs, startSqsStandIn, THROTTLED, type LocalSqs, type SqsStandIn, type StandInAnswer, type StandInCall } from '../../helpers/local-sqs.js';
import { eventBody, stateBody } from '../../helpers/relay-fixtures.js';

let sqs: LocalSqs;
let target: DeadLetterQueueTarget;

beforeAll(async () => {
  sqs = await startLocalSqs();
  target = { client: sqs.client, deadLetterQueueUrl: sqs.deadLetterQueueUrl, relayQueueUrl: sqs.queueUrl };
});
afterEach(async () => {
  await sqs.purge();
});
afterAll(async () => {
  await sqs.stop();
});

/** The IDs one receive finds on a queue right now; what it received is made visible again at once. */
async function visibleNow(url: string): Promise<string[]> {
  const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
  const messages = out.Messages ?? [];
  if (messages.length > 0) {
    await sqs.client.send(
      new ChangeMessageVisibilityBatchCommand({ QueueUrl: url, Entries: messages.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })) }),
    );
  }
  return messages.map((m) => m.MessageId ?? '');
}

/** The local server answers at once and never misses a message on a short poll: no confirming long poll. */
const LOCAL = { confirmWaitSeconds: 0 } as const;

const NOT_BOUND = 'the bridge refused to attach the device (GATEWAY_ATTACHMENT_ERROR)';

describe('listDeadLetters', () => {
  it('reads more dead letters than one receive returns, with their reasons, and leaves them all visible', async () => {
    // Prepare: 23 records the relay parked (more than two receives' worth), and one SQS moved.
    for (let i = 0; i < 23; i++) {
      await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(`ghost-${i}`), code: 'ERR_ATTACH_REJECTED', reason: NOT_BOUND, deviceId: `ghost-${i}`, gatewayId: 'gw-1' });
    }
    await redriven(sqs.client, sqs.deadLetterQueueUrl, stateBody('pump-07'));
    const progress: number[] = [];

    // Act
    const list = await listDeadLetters(target, { ...LOCAL, onProgress: (p) => void progress.push(p.examined) });

    // Assess
    expect(list.examined).toBe(24);
    expect(list.deadLetters).toHaveLength(24);
    expect(list.unreached).toBe(0);
    expect(list.deadLetters.filter((d) => d.via === 'relay')).toHaveLength(23);
    expect(list.deadLetters[0]).toMatchObject({ via: 'relay', code: 'ERR_ATTACH_REJECTED', reason: NOT_BOUND, deviceId: 'ghost-0', gatewayId: 'gw-1', groupId: 'gw-1', type: 'event' });
    const moved = list.deadLetters.find((d) => d.via === 'redrive')!;
    expect(moved).toMatchObject({ deviceId: 'pump-07', type: 'state', groupId: 'gw-1' });
    expect(moved.code).toBeUndefined();
    expect(moved.reason).toContain('redrive policy');
    expect(progress.at(-1)).toBe(24);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    // Released: visible again at once, not after the 30 s visibility timeout.
    expect(await visibleNow(sqs.deadLetterQueueUrl)).toHaveLength(10);
  });

  it('filters by code, device and age', async () => {
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-1'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-1' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-2'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-2' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: '{"v":1,"deviceId":"pump-01","encoding":"base64","payload":"%%"}', code: 'ERR_INVALID_BASE64', deviceId: 'pump-01', field: 'payload' });
    await redriven(sqs.client, sqs.deadLetterQueueUrl, eventBody('pump-02'));

    const byCode = await listDeadLetters(target, { ...LOCAL, filter: { codes: ['ERR_INVALID_*'] } });
    const byDevice = await listDeadLetters(target, { ...LOCAL, filter: { devices: ['ghost-*'] } });
    const moved = await listDeadLetters(target, { ...LOCAL, filter: { codes: ['redrive'] } });
    const old = await listDeadLetters(target, { ...LOCAL, filter: { olderThanSeconds: 3600 } });
    const recent = await listDeadLetters(target, { ...LOCAL, filter: { newerThanSeconds: 3600 } });
    const inAnHour = await listDeadLetters(target, { ...LOCAL, filter: { olderThanSeconds: 3600 }, now: () => Date.now() + 3_601_000 });

    expect(byCode.deadLetters.map((d) => d.deviceId)).toEqual(['pump-01']);
    expect(byCode.deadLetters[0]!.field).toBe('payload');
    expect(byCode.examined).toBe(4);
    expect(byDevice.deadLetters.map((d) => d.deviceId)).toEqual(['ghost-1', 'ghost-2']);
    expect(moved.deadLetters.map((d) => d.deviceId)).toEqual(['pump-02']);
    expect(old.deadLetters).toEqual([]);
    expect(recent.deadLetters).toHaveLength(4);
    expect(inAnHour.deadLetters).toHaveLength(4);
  });

  it('asks again when another reader holds dead letters for a moment, as the local dashboard does', async () => {
    for (let i = 0; i < 3; i++) await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(`ghost-${i}`), code: 'ERR_ATTACH_REJECTED', deviceId: `ghost-${i}` });
    // Another reader takes two of them and gives them back 400 ms later.
    const held = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: sqs.deadLetterQueueUrl, MaxNumberOfMessages: 2, VisibilityTimeout: 30, WaitTimeSeconds: 0 }));
    const giveBack = new Promise((r) => setTimeout(r, 400)).then(() =>
      sqs.client.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: sqs.deadLetterQueueUrl,
          Entries: (held.Messages ?? []).map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0 })),
        }),
      ),
    );

    const list = await listDeadLetters(target, LOCAL);
    await giveBack;

    expect(held.Messages).toHaveLength(2);
    expect(list.deadLetters.map((d) => d.deviceId).sort()).toEqual(['ghost-0', 'ghost-1', 'ghost-2']);
  });

  it('counts a message that came back during a long pass once, and stops at the limit', async () => {
    for (let i = 0; i < 15; i++) await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(`ghost-${i}`), code: 'ERR_ATTACH_REJECTED', deviceId: `ghost-${i}` });

    // The first page is held past its 1 s visibility timeout, so it is received again by a later page.
    let pages = 0;
    const slow = await listDeadLetters(target, {
      ...LOCAL,
      visibilityTimeoutSeconds: 1,
      onProgress: async () => {
        pages += 1;
        if (pages === 2) await new Promise((r) => setTimeout(r, 1300));
      },
    });
    const limited = await listDeadLetters(target, { ...LOCAL, limit: 12 });

    expect(slow.examined).toBe(15);
    expect(new Set(slow.deadLetters.map((d) => d.messageId)).size).toBe(15);
    expect(limited.examined).toBe(12);
    expect(limited.unreached).toBe(3);
  });
});

describe('replayDeadLetters', () => {
  it('leaves a dead letter that arrives during the replay (the relay parking a replayed record again) for the next replay', async () => {
    // Prepare: one dead letter; once it is replayed, the "relay" parks the same body again, as it does for a record
    // that fails for good.
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-again'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-again' });
    let parkedAgain = false;
    const onProgress = async (p: { replayed: number }): Promise<void> => {
      if (p.replayed >= 1 && !parkedAgain) {
        parkedAgain = true;
        await new Promise((r) => setTimeout(r, 5));
        await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-again'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-again' });
      }
    };

    // Act
    const report = await replayDeadLetters(target, { ...LOCAL, force: true, onProgress });

    // Assess: replayed once; the newcomer is still in the dead-letter queue, visible, for the next replay.
    expect(parkedAgain).toBe(true);
    expect(report.replayed).toHaveLength(1);
    expect(report.arrivedDuring).toBe(1);
    expect(await sqs.receiveAll(sqs.queueUrl)).toHaveLength(1);
    expect((await listDeadLetters(target, LOCAL)).deadLetters.map((d) => d.deviceId)).toEqual(['ghost-again']);
  });

  it('sends the selected records to the relay queue in their gateway group with a fresh deduplication ID, then deletes them', async () => {
    // Prepare
    const gateways = ['gw-1', 'gw-2', 'gw-3'];
    const ghosts = ['ghost-a', 'ghost-b', 'ghost-c'];
    for (const id of ghosts) await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(id), code: 'ERR_ATTACH_REJECTED', deviceId: id, gatewayId: 'gw-1' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01'] }), code: 'ERR_ATTACH_REJECTED', groupId: 'gw-3' });
    const before = await listDeadLetters(target, LOCAL);

    // Act
    const report = await replayDeadLetters(target, { ...LOCAL, gatewayIds: gateways });
    const relayed = await sqs.receiveAll(sqs.queueUrl);

    // Assess
    expect(report.replayed).toHaveLength(4);
    expect(report.failed).toEqual([]);
    expect(report.notDeleted).toEqual([]);
    expect(relayed.map((m) => m.body).sort()).toEqual(before.deadLetters.map((d) => d.body).sort());
    for (const id of ghosts) {
      const copy = relayed.find((m) => m.body.includes(`"${id}"`))!;
      const dl = before.deadLetters.find((d) => d.deviceId === id)!;
      expect(copy.groupId).toBe(gatewayFor(id, gateways));
      expect(copy.deduplicationId).toBe(`replay-${dl.messageId}`);
    }
    // A poll job keeps the group it came from.
    expect(relayed.find((m) => m.body.includes('config-poll'))!.groupId).toBe('gw-3');
    expect((await listDeadLetters(target, LOCAL)).deadLetters).toEqual([]);
  });

  it('skips records that would fail again unless forced, leaves the rest of the filter alone, and a dry run changes nothing', async () => {
    // Prepare
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-1'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-1' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-2'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-2' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: '{"v":1,"deviceId":"pump-01","encoding":"base64","payload":"%%"}', code: 'ERR_INVALID_BASE64', deviceId: 'pump-01' });
    // Moved by SQS, so without a code; its body fails the contract all the same.
    await redriven(sqs.client, sqs.deadLetterQueueUrl, '{"v":2,"deviceId":"pump-02","payload":"x"}');
    const before = (await listDeadLetters(target, LOCAL)).deadLetters.map((d) => d.messageId).sort();

    // Act
    const dry = await replayDeadLetters(target, { ...LOCAL, dryRun: true, gatewayIds: ['gw-1'] });
    const afterDry = (await listDeadLetters(target, LOCAL)).deadLetters.map((d) => d.messageId).sort();
    const relayAfterDry = await visibleNow(sqs.queueUrl);
    const onlyGhost2 = await replayDeadLetters(target, { ...LOCAL, filter: { devices: ['ghost-2'] }, gatewayIds: ['gw-1'] });
    const rest = await replayDeadLetters(target, { ...LOCAL, gatewayIds: ['gw-1'] });
    const forced = await replayDeadLetters(target, { ...LOCAL, gatewayIds: ['gw-1'], force: true });

    // Assess
    expect(dry.dryRun).toBe(true);
    expect(dry.replayed.map((r) => r.deadLetter.deviceId).sort()).toEqual(['ghost-1', 'ghost-2']);
    expect(dry.replayed.every((r) => r.relayMessageId === undefined && r.groupId === 'gw-1')).toBe(true);
    expect(dry.skipped.map((s) => s.why.code).sort()).toEqual(['ERR_INVALID_BASE64', 'ERR_UNSUPPORTED_VERSION']);
    expect(afterDry).toEqual(before);
    expect(relayAfterDry).toEqual([]);

    expect(onlyGhost2.replayed.map((r) => r.deadLetter.deviceId)).toEqual(['ghost-2']);
    expect(onlyGhost2.notMatching).toBe(3);
    expect(onlyGhost2.skipped).toEqual([]);
    expect(rest.replayed.map((r) => r.deadLetter.deviceId)).toEqual(['ghost-1']);
    expect(rest.skipped).toHaveLength(2);
    expect(forced.replayed.map((r) => r.deadLetter.deviceId).sort()).toEqual(['pump-01', 'pump-02']);
    expect((await sqs.receiveAll(sqs.queueUrl)).length).toBe(4);
    expect((await listDeadLetters(target, LOCAL)).deadLetters).toEqual([]);
  });

  it('carries a producer\'s own attributes back, names the dead letter it came from, and leaves the relay\'s reason behind', async () => {
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: sqs.deadLetterQueueUrl,
        MessageBody: eventBody('pump-03'),
        MessageGroupId: 'gw-1',
        MessageDeduplicationId: randomUUID(),
        MessageAttributes: {
          trace: { DataType: 'String', StringValue: 'abc-123' },
          hops: { DataType: 'Number', StringValue: '3' },
          signature: { DataType: 'Binary.sha256', BinaryValue: SIGNATURE },
          'relay.errorCode': { DataType: 'String', StringValue: 'ERR_ATTACH_REJECTED' },
        },
      }),
    );
    const [dl] = (await listDeadLetters(target, LOCAL)).deadLetters;

    const report = await replayDeadLetters(target, { ...LOCAL, gatewayIds: ['gw-1'] });
    const out = await sqs.client.send(new ReceiveMessageCommand({ QueueUrl: sqs.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, MessageAttributeNames: ['All'] }));

    expect(report.replayed).toHaveLength(1);
    const attributes = out.Messages?.[0]?.MessageAttributes ?? {};
    expect(Object.keys(attributes).sort()).toEqual(['hops', 'relay.replayOf', 'signature', 'trace']);
    expect(attributes.trace?.StringValue).toBe('abc-123');
    expect(attributes.hops).toMatchObject({ DataType: 'Number', StringValue: '3' });
    expect(attributes.signature?.DataType).toBe('Binary.sha256');
    expect([...(attributes.signature?.BinaryValue ?? [])]).toEqual([...SIGNATURE]);
    expect(attributes['relay.replayOf']?.StringValue).toBe(dl!.messageId);
  });

  it('reports a page the relay queue refused as failed, and goes on with the next page', async () => {
    // Throttling cannot be caused on the local server: a stand-in answers. Two pages of dead letters; the relay
    // queue throttles the first page's send and takes the second's.
    let sends = 0;
    const { standIn, target: standInTarget } = await standInQueues([Array.from({ length: 10 }, (_, i) => standInDeadLetter(i)), [standInDeadLetter(10), standInDeadLetter(11)]], {
      send: (call) => {
        if (sends++ === 0) return THROTTLED;
        const entries = call.input.Entries as { Id: string; MessageBody: string }[];
        return { status: 200, body: { Successful: entries.map((e, i) => ({ Id: e.Id, MessageId: `copy-${i}`, MD5OfMessageBody: md5(e.MessageBody) })), Failed: [] } };
      },
      delete: (call) => ({ status: 200, body: { Successful: entryIds(call).map((Id) => ({ Id })), Failed: [] } }),
    });
    try {
      const report = await replayDeadLetters(standInTarget, { gatewayIds: ['gw-1'], force: true, confirmWaitSeconds: 0 });

      expect(report.failed.map((f) => f.deadLetter.messageId)).toEqual(Array.from({ length: 10 }, (_, i) => `dl-${i}`));
      for (const f of report.failed) expect(f.reason).toMatch(/^not sent to the relay queue: the relay queue is throttling sends \(RequestThrottled/);
      expect(report.replayed.map((r) => [r.deadLetter.messageId, r.relayMessageId])).toEqual([['dl-10', 'copy-0'], ['dl-11', 'copy-1']]);
      // Sent once each, with no second attempt; only the second page's originals were deleted.
      expect(standIn.calls.filter((c) => c.action === 'SendMessageBatch')).toHaveLength(2);
      const deleted = standIn.calls.filter((c) => c.action === 'DeleteMessageBatch').flatMap((c) => (c.input.Entries as { ReceiptHandle: string }[]).map((e) => e.ReceiptHandle));
      expect(deleted).toEqual(['rh-10', 'rh-11']);
    } finally {
      await standIn.stop();
    }
  });

  it('deletes nothing whose copy did not reach the relay queue', async () => {
    // Prepare: the relay queue URL names a queue the server does not have, so every send fails.
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-1'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-1' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-2'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-2' });
    const missing = `${sqs.endpoint}/123456789012/no-such-queue-${randomUUID().slice(0, 8)}.fifo`;

    // Act
    const report = await replayDeadLetters({ ...target, relayQueueUrl: missing }, { ...LOCAL, gatewayIds: ['gw-1'] });

    // Assess
    expect(report.replayed).toEqual([]);
    expect(report.failed).toHaveLength(2);
    expect(report.failed[0]!.reason).toMatch(/not sent to the relay queue/);
    expect((await listDeadLetters(target, LOCAL)).deadLetters.map((d) => d.deviceId).sort()).toEqual(['ghost-1', 'ghost-2']);
  });

  it('reports a record whose copy was sent but whose delete failed, and sends before it deletes', async () => {
    // A delete that fails after a successful send cannot be caused on the local server at will: a stand-in answers.
    const { standIn, target: standInTarget } = await standInQueues([[standInDeadLetter(1, { 'relay.errorCode': { DataType: 'String', StringValue: 'ERR_ATTACH_REJECTED' } })]], {
      send: (call) => {
        const [entry] = call.input.Entries as { Id: string; MessageBody: string }[];
        return { status: 200, body: { Successful: [{ Id: entry!.Id, MessageId: 'copy-1', MD5OfMessageBody: md5(entry!.MessageBody) }], Failed: [] } };
      },
      delete: () => ({ status: 200, body: { Successful: [], Failed: [{ Id: '0', Code: 'ReceiptHandleIsInvalid', Message: 'expired', SenderFault: true }] } }),
    });
    try {
      const report = await replayDeadLetters(standInTarget, { gatewayIds: ['gw-1'], confirmWaitSeconds: 0 });
      const order = standIn.calls.map((c) => c.action).filter((a) => a === 'SendMessageBatch' || a === 'DeleteMessageBatch');
      expect(order).toEqual(['SendMessageBatch', 'DeleteMessageBatch']);
      expect(report.replayed).toHaveLength(1);
      expect(report.notDeleted).toEqual([{ deadLetter: expect.objectContaining({ messageId: 'dl-1' }), reason: 'ReceiptHandleIsInvalid expired' }]);
    } finally {
      await standIn.stop();
    }
  });
});

/** 32 bytes, as a producer's own Binary attribute might carry. */
const SIGNATURE = Uint8Array.from({ length: 32 }, (_, i) => (i * 37) % 256);

/**
 * A stand-in SQS for what the local server cannot be made to do: its dead-letter queue hands out `pages`, one a
 * receive, then nothing; `answer` decides the relay queue's sends and the dead-letter queue's deletes.
 */
async function standInQueues(
  pages: object[][],
  answer: { send: (call: StandInCall) => StandInAnswer; delete: (call: StandInCall) => StandInAnswer },
): Promise<{ standIn: SqsStandIn; target: DeadLetterQueueTarget }> {
  const depth = pages.flat().length;
  const standIn = await startSqsStandIn((call) => {
    switch (call.action) {
      case 'GetQueueAttributes':
        return { status: 200, body: { Attributes: { ApproximateNumberOfMessages: String(depth) } } };
      case 'ReceiveMessage':
        return { status: 200, body: { Messages: pages.shift() ?? [] } };
      case 'SendMessageBatch':
        return answer.send(call);
      case 'DeleteMessageBatch':
        return answer.delete(call);
      default:
        return { status: 200, body: {} };
    }
  });
  const queue = (name: string): string => `${standIn.endpoint}/123456789012/${name}`;
  return { standIn, target: { client: standIn.client, deadLetterQueueUrl: queue('dlq.fifo'), relayQueueUrl: queue('relay.fifo') } };
}

/** Dead letter `i` as a receive returns it: ghost-<i>'s event in group gw-1, parked a minute ago. */
function standInDeadLetter(i: number, attributes?: Record<string, { DataType: string; StringValue: string }>): object {
  const body = eventBody(`ghost-${i}`);
  return {
    MessageId: `dl-${i}`,
    ReceiptHandle: `rh-${i}`,
    Body: body,
    MD5OfBody: md5(body),
    Attributes: { MessageGroupId: 'gw-1', SentTimestamp: String(Date.now() - 60_000) },
    ...(attributes === undefined ? {} : { MessageAttributes: attributes }),
  };
}

/** The entry IDs of a batch call, which the stand-in's answers must name. */
function entryIds(call: StandInCall): string[] {
  return (call.input.Entries as { Id: string }[]).map((e) => e.Id);
}

function md5(text: string): string {
  return createHash('md5').update(text).digest('hex');
}
