/**
 * Sends `config-poll` jobs onto the relay's FIFO queue, each in its gateway's message group, so a poll never runs
 * beside another session of the same gateway (docs/design.md rule 1: the poller enqueues, it never connects).
 * The queue producer (lib/queue/queue-producer.ts) makes the calls: up to 10 jobs and 256 KiB per call, each job
 * sent up to three times while SQS fails it on its own side, and nothing sent past a job that could not be.
 *
 * Every job carries its deduplication ID: if the scheduled invocation fails half-way and is retried (Lambda retries
 * an asynchronous invocation twice, about one and two minutes later, within SQS's five-minute deduplication
 * window), the jobs already sent are dropped by SQS instead of being polled twice.
 *
 * @example
 * await enqueuePollJobs(new SQSClient({}), queueUrl, planPollJobs(ids, options));
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { QueueProducer } from '../queue/queue-producer.js';
import type { PollJob } from './poll-plan.js';

/** Calls per job at most while SQS fails it on the service side, before the invocation fails. */
const SEND_ATTEMPTS = 3;

/**
 * Throws when a job was not queued: RelayError ERR_CONFIG when the queue refused it as it is (a bad group ID, a
 * body too large), which no retry fixes; ERR_QUEUE_THROTTLED or ERR_QUEUE_UNAVAILABLE after the attempts, and then
 * failing the invocation makes Lambda retry it, while the deduplication IDs keep the jobs already sent single.
 */
export async function enqueuePollJobs(sqs: SQSClient, queueUrl: string, jobs: readonly PollJob[]): Promise<void> {
  const producer = new QueueProducer({ queueUrl, client: sqs });
  const outcomes = await producer.send(
    jobs.map((job) => ({ body: job.body, groupId: job.gatewayId, deduplicationId: job.deduplicationId })),
    { attempts: SEND_ATTEMPTS },
  );
  const failed = outcomes.flatMap((o, i) => (o.queued ? [] : [{ ...o, job: jobs[i]! }]));
  const refused = failed.find((f) => !f.retryable);
  if (refused !== undefined) {
    throw new RelayError('ERR_CONFIG', `the queue refused the config-poll job for gateway ${refused.job.gatewayId}: ${refused.error.message}`, { cause: refused.error });
  }
  const first = failed[0];
  if (first !== undefined) {
    throw new RelayError(first.error.code, `${failed.length} config-poll jobs could not be sent after ${SEND_ATTEMPTS} attempts: ${first.error.message}`, { cause: first.error });
  }
}
