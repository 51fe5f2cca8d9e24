import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { enqueuePollJobs } from '../../../lib/poll/enqueue-polls.js';
import { planPollJobs } from '../../../lib/poll/poll-plan.js';
import { startSqsStandIn, type SqsStandIn, type StandInCall } from '../../helpers/local-sqs.js';

const at = new Date('2025-03-01T06:00:00.000Z');
const jobs = (n: number) =>
  planPollJobs(
    Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(3, '0')}`),
    { gatewayIds: ['gw-1'], chunkSize: 1, scheduledAt: at },
  );

type Entry = { Id: string; MessageGroupId: string; MessageDeduplicationId: string; MessageBody: string };
const entriesOf = (call: StandInCall): Entry[] => call.input.Entries as Entry[];
/** SQS's answer for sent entries; the SDK checks each body's MD5. */
const success = (entries: Entry[]) =>
  entries.map((e) => ({ Id: e.Id, MessageId: `m-${e.Id}`, MD5OfMessageBody: createHash('md5').update(e.MessageBody).digest('hex'), SequenceNumber: '1' }));

let standIn: SqsStandIn | undefined;
afterEach(async () => {
  await standIn?.stop();
  standIn = undefined;
});

describe('enqueuePollJobs', () => {
  it('sends at most ten jobs per SendMessageBatch, each with its group and deduplication ID', async () => {
    standIn = await startSqsStandIn((call) => ({ status: 200, body: { Successful: success(entriesOf(call)), Failed: [] } }));
    const planned = jobs(23);
    await enqueuePollJobs(standIn.client, standIn.queueUrl, planned);
    expect(standIn.calls.map((c) => [c.action, entriesOf(c).length])).toEqual([
      ['SendMessageBatch', 10],
      ['SendMessageBatch', 10],
      ['SendMessageBatch', 3],
    ]);
    const sent = standIn.calls.flatMap(entriesOf);
    expect(sent.map((e) => e.MessageDeduplicationId)).toEqual(planned.map((j) => j.deduplicationId));
    expect(new Set(sent.map((e) => e.MessageGroupId))).toEqual(new Set(['gw-1']));
  });

  it('sends again only the entries SQS failed on its side, then succeeds', async () => {
    standIn = await startSqsStandIn((call, index) => {
      const entries = entriesOf(call);
      if (index > 0) return { status: 200, body: { Successful: success(entries), Failed: [] } };
      const [first, ...rest] = entries;
      return {
        status: 200,
        body: { Successful: success(rest), Failed: [{ Id: first!.Id, SenderFault: false, Code: 'InternalError', Message: 'try again' }] },
      };
    });
    const planned = jobs(3);
    await enqueuePollJobs(standIn.client, standIn.queueUrl, planned);
    expect(standIn.calls).toHaveLength(2);
    expect(entriesOf(standIn.calls[1]!).map((e) => e.MessageDeduplicationId)).toEqual([planned[0]!.deduplicationId]);
  });

  it('fails at once on a sender fault, naming the gateway', async () => {
    standIn = await startSqsStandIn((call) => ({
      status: 200,
      body: { Successful: [], Failed: entriesOf(call).map((e) => ({ Id: e.Id, SenderFault: true, Code: 'InvalidParameterValue', Message: 'bad group' })) },
    }));
    await expect(enqueuePollJobs(standIn.client, standIn.queueUrl, jobs(2))).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      message: expect.stringContaining('gw-1'),
    });
    expect(standIn.calls).toHaveLength(1);
  });

  it('gives up after a few rounds of service-side failures so the invocation is retried', async () => {
    standIn = await startSqsStandIn((call) => ({
      status: 200,
      body: { Successful: [], Failed: entriesOf(call).map((e) => ({ Id: e.Id, SenderFault: false, Code: 'ServiceUnavailable', Message: 'down' })) },
    }));
    await expect(enqueuePollJobs(standIn.client, standIn.queueUrl, jobs(1))).rejects.toMatchObject({ code: 'ERR_QUEUE_UNAVAILABLE' });
    expect(standIn.calls).toHaveLength(3);
  });
});
