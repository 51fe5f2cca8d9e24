import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callFailure, entryFailure, isThrottling, queueFailure } from '../../../lib/queue/queue-failure.js';
import { LOCAL_CREDENTIALS } from '../../../local/sqs-server.js';
import { closedPort, startSqsStandIn, THROTTLED, type SqsStandIn, type StandInAnswer } from '../../helpers/local-sqs.js';

/** The error the SDK throws for a SendMessage answered with `answer`. */
let standIn: SqsStandIn;
let answer: StandInAnswer;
beforeAll(async () => {
  standIn = await startSqsStandIn(() => answer);
});
afterAll(() => standIn.stop());

async function sdkError(a: StandInAnswer): Promise<unknown> {
  answer = a;
  return standIn.client.send(new SendMessageCommand({ QueueUrl: standIn.queueUrl, MessageBody: 'b', MessageGroupId: 'g' })).then(
    () => expect.unreachable('the call succeeded'),
    (e: unknown) => e,
  );
}

describe('callFailure, from errors the SDK throws', () => {
  it('calls SQS throttling ERR_QUEUE_THROTTLED, retryable', async () => {
    const e = await sdkError(THROTTLED);

    expect(isThrottling(e)).toBe(true);
    expect(callFailure(e)).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_THROTTLED', message: expect.stringContaining('RequestThrottled'), cause: e } });
  });

  it('calls a server fault ERR_QUEUE_UNAVAILABLE, retryable', async () => {
    const e = await sdkError({ status: 500, body: { __type: 'com.amazonaws.sqs#InternalError', message: 'oops' } });

    expect(isThrottling(e)).toBe(false);
    expect(callFailure(e)).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE' } });
  });

  it('calls a request SQS refused as the sender\'s fault ERR_QUEUE_UNAVAILABLE, not retryable', async () => {
    const e = await sdkError({ status: 400, body: { __type: 'com.amazonaws.sqs#QueueDoesNotExist', message: 'no such queue' } });

    expect(callFailure(e)).toMatchObject({ retryable: false, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('QueueDoesNotExist: no such queue') } });
  });

  it('calls a queue that cannot be reached ERR_QUEUE_UNAVAILABLE, retryable, naming the network error', async () => {
    const port = await closedPort();
    const client = new SQSClient({ endpoint: `http://127.0.0.1:${port}`, region: 'us-east-1', credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
    const e = await client.send(new SendMessageCommand({ QueueUrl: `http://127.0.0.1:${port}/1/q`, MessageBody: 'b' })).catch((err: unknown) => err);
    client.destroy();

    expect(callFailure(e)).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('ECONNREFUSED') } });
  });

  it('names the queue it is told, and queueFailure gives the same error', async () => {
    const e = await sdkError(THROTTLED);

    expect(callFailure(e, 'the dead-letter queue').error.message).toMatch(/^the dead-letter queue is throttling sends/);
    expect(queueFailure(e)).toMatchObject({ code: 'ERR_QUEUE_THROTTLED', message: expect.stringMatching(/^the relay queue /) });
  });

  it('recognises throttling by HTTP 429 and by the SDK\'s throttling flag, and survives odd values', () => {
    expect(isThrottling({ $metadata: { httpStatusCode: 429 } })).toBe(true);
    expect(isThrottling({ $retryable: { throttling: true } })).toBe(true);
    expect(isThrottling({ name: 'AWS.SimpleQueueService.KmsThrottled' })).toBe(true);
    expect(isThrottling(undefined)).toBe(false);
    expect(callFailure(null)).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('(Error)') } });
  });
});

describe('entryFailure', () => {
  it('calls a throttled entry retryable whatever SenderFault says, with or without the query namespace', () => {
    for (const Code of ['RequestThrottled', 'AWS.SimpleQueueService.RequestThrottled']) {
      expect(entryFailure({ Code, Message: 'slow down', SenderFault: true })).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_THROTTLED' } });
    }
  });

  it('calls an entry failed on the service side retryable, and one refused as the sender\'s fault not', () => {
    expect(entryFailure({ Code: 'InternalError', Message: 'x', SenderFault: false })).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE' } });
    expect(entryFailure({ Code: 'InvalidParameterValue', Message: 'bad group', SenderFault: true })).toMatchObject({
      retryable: false,
      error: { code: 'ERR_QUEUE_UNAVAILABLE', message: 'the relay queue refused the message (InvalidParameterValue: bad group)' },
    });
  });

  it('says so when SQS reported nothing for the entry', () => {
    expect(entryFailure(undefined)).toMatchObject({ retryable: true, error: { code: 'ERR_QUEUE_UNAVAILABLE', message: expect.stringContaining('no outcome') } });
  });
});
