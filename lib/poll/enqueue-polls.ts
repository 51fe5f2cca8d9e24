/**
 * Sends `config-poll` jobs onto the relay's FIFO queue, each in its gateway's message group, so a poll never runs
 * beside another session of the same gateway (docs/design.md rule 1: the poller enqueues, it never connects).
 *
 * Every job carries its deduplication ID: if the scheduled invocation fails half-way and is retried (Lambda retries
 * an asynchronous invocation twice, about one and two minutes later, within SQS's five-minute deduplication
 * window), the jobs already sent are dropped by SQS instead of being polled twice.
 *
 * @example
 * await enqueuePollJobs(new SQSClient({}), queueUrl, planPollJobs(ids, options));
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { SendMessageBatchCommand, type SQSClient, type SendMessageBatchRequestEntry } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { MAX_SQS_MESSAGE_BYTES, type PollJob } from './poll-plan.js';

/** SendMessageBatch takes at most 10 entries, whose bodies together obey the single-message size limit. */
const BATCH_ENTRIES = 10;
const BATCH_BYTES = MAX_SQS_MESSAGE_BYTES;
/** Entries that failed on the service side are sent again this many times before the invocation fails. */
const RESEND_ROUNDS = 3;

export async function enqueuePollJobs(sqs: SQSClient, queueUrl: string, jobs: readonly PollJob[]): Promise<void> {
  for (const batch of batches(jobs)) {
    let entries = batch.map(
      (job, i): SendMessageBatchRequestEntry => ({
        Id: String(i),
        MessageBody: job.body,
        MessageGroupId: job.gatewayId,
        MessageDeduplicationId: job.deduplicationId,
      }),
    );
    for (let round = 0; entries.length > 0; round++) {
      if (round > 0) await sleep(100 * 2 ** round);
      const out = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
      const failed = out.Failed ?? [];
      // A sender fault (bad group ID, body too large) will fail again: stop now and say which job.
      const fault = failed.find((f) => f.SenderFault === true);
      if (fault !== undefined) {
        const job = batch[Number(fault.Id)];
        throw new RelayError('ERR_CONFIG', `the queue refused the config-poll job for gateway ${job?.gatewayId ?? '?'}: ${fault.Code ?? ''} ${fault.Message ?? ''}`.trim());
      }
      const retry = new Set(failed.map((f) => f.Id));
      entries = entries.filter((e) => retry.has(e.Id));
      if (entries.length > 0 && round + 1 >= RESEND_ROUNDS) {
        // Failing the invocation makes Lambda retry it; the deduplication IDs keep the jobs already sent single.
        throw new RelayError('ERR_QUEUE_UNAVAILABLE', `${entries.length} config-poll jobs could not be sent after ${RESEND_ROUNDS} attempts: ${failed[0]?.Code ?? 'unknown'}`);
      }
    }
  }
}

function* batches(jobs: readonly PollJob[]): Generator<PollJob[]> {
  let current: PollJob[] = [];
  let bytes = 0;
  for (const job of jobs) {
    const size = Buffer.byteLength(job.body);
    if (current.length === BATCH_ENTRIES || (current.length > 0 && bytes + size > BATCH_BYTES)) {
      yield current;
      current = [];
      bytes = 0;
    }
    current.push(job);
    bytes += size;
  }
  if (current.length > 0) yield current;
}
