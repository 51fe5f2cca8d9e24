/**
 * An SQS-compatible server (local-aws-sqs) in this process, on 127.0.0.1 and a free port, with the relay's FIFO
 * queue and its dead-letter queue created the way serverless.yml declares them (content-based deduplication,
 * deduplication and throughput per message group, redrive after 5 receives). Tests either pass `client` to the code
 * under test or apply `env` so the SDK's default client finds the server (`AWS_ENDPOINT_URL_SQS`).
 *
 * Also a stand-in SQS endpoint that answers every call as a test decides (`startSqsStandIn`), for what the local
 * server cannot be made to do, such as throttling.
 *
 * @example
 * const sqs = await startLocalSqs();
 * await new SqsRelayQueue({ queueUrl: sqs.queueUrl, client: sqs.client }).send([record]);
 * const [message] = await sqs.receiveAll();
 * afterAll(() => sqs.stop());
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createRequestHandler } from 'local-aws-sqs';

export interface ReceivedMessage {
  messageId: string;
  body: string;
  groupId: string | undefined;
  deduplicationId: string | undefined;
  receiveCount: number;
}

export interface LocalSqs {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  queueUrl: string;
  deadLetterQueueUrl: string;
  /** A client on the local server with throwaway credentials, and no retries (a failure shows at once). */
  client: SQSClient;
  /** For code that builds its own client. */
  env: Record<'AWS_ENDPOINT_URL_SQS' | 'AWS_REGION' | 'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY' | 'RELAY_QUEUE_URL', string>;
  /** Receives and deletes every message now visible on a queue (default: the relay queue), in FIFO order. */
  receiveAll(queueUrl?: string): Promise<ReceivedMessage[]>;
  /**
   * Empties both queues by receiving everything (PurgeQueue is allowed once a minute). SQS remembers deduplication
   * IDs for 5 minutes whatever happens, so tests that share a server use distinct IDs.
   */
  purge(): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalSqsOptions {
  /** Default `relay.fifo`; the dead-letter queue is `<name without .fifo>-dlq.fifo`. */
  queueName?: string;
  /** Default 30. */
  visibilityTimeoutSeconds?: number;
  /** Receives before a message moves to the dead-letter queue; default 5, as deployed. */
  maxReceiveCount?: number;
}

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export async function startLocalSqs(options: LocalSqsOptions = {}): Promise<LocalSqs> {
  const queueName = options.queueName ?? 'relay.fifo';
  const dlqName = `${queueName.replace(/\.fifo$/, '')}-dlq.fifo`;
  const { service, requestHandler } = createRequestHandler({
    port: 0,
    hostname: '127.0.0.1',
    region: REGION,
    accountId: ACCOUNT,
    // A queue deleted by one test can be recreated by the next at once.
    emulateQueueCreationLifecycle: false,
    queues: [
      { QueueName: dlqName, Attributes: { FifoQueue: 'true', ContentBasedDeduplication: 'true' } },
      {
        QueueName: queueName,
        Attributes: {
          FifoQueue: 'true',
          ContentBasedDeduplication: 'true',
          DeduplicationScope: 'messageGroup',
          FifoThroughputLimit: 'perMessageGroupId',
          VisibilityTimeout: options.visibilityTimeoutSeconds ?? 30,
          RedrivePolicy: JSON.stringify({
            deadLetterTargetArn: `arn:aws:sqs:${REGION}:${ACCOUNT}:${dlqName}`,
            maxReceiveCount: options.maxReceiveCount ?? 5,
          }),
        },
      },
    ],
  });
  const server = createServer((req, res) => void requestHandler(req, res));
  const port = await listen(server);
  // The server builds queue URLs from the port it was given; it is known only now.
  service.PORT = port;
  const endpoint = `http://127.0.0.1:${port}`;
  const queueUrl = `${endpoint}/${ACCOUNT}/${queueName}`;
  const deadLetterQueueUrl = `${endpoint}/${ACCOUNT}/${dlqName}`;
  const client = new SQSClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });

  const receiveAll = async (url = queueUrl): Promise<ReceivedMessage[]> => {
    const received: ReceivedMessage[] = [];
    for (;;) {
      // local-aws-sqs reads the older AttributeNames for system attributes; SQS itself takes either.
      const attributes = { MessageSystemAttributeNames: ['All' as const], AttributeNames: ['All' as const] };
      const out = await client.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10, WaitTimeSeconds: 0, ...attributes }));
      const messages = out.Messages ?? [];
      if (messages.length === 0) break;
      for (const m of messages) {
        received.push({
          messageId: m.MessageId ?? '',
          body: m.Body ?? '',
          groupId: m.Attributes?.MessageGroupId,
          deduplicationId: m.Attributes?.MessageDeduplicationId,
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '0'),
        });
        await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: m.ReceiptHandle }));
      }
    }
    // FIFO receives come in the queue's order; local-aws-sqs's sequence numbers do not sort (they lose digits).
    return received;
  };

  return {
    endpoint,
    queueUrl,
    deadLetterQueueUrl,
    client,
    env: {
      AWS_ENDPOINT_URL_SQS: endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      RELAY_QUEUE_URL: queueUrl,
    },
    receiveAll,
    purge: async () => {
      await receiveAll(queueUrl);
      await receiveAll(deadLetterQueueUrl);
    },
    stop: async () => {
      client.destroy();
      await close(server);
    },
  };
}

export interface StandInAnswer {
  /** HTTP status; 200 for a success. */
  status: number;
  /** The JSON body of the answer. For an error: `{ "__type": "com.amazonaws.sqs#<Code>", "message": "..." }`. */
  body: unknown;
}

export interface StandInCall {
  /** `SendMessage`, `SendMessageBatch`... from the X-Amz-Target header. */
  action: string;
  input: Record<string, unknown>;
}

export interface SqsStandIn {
  endpoint: string;
  queueUrl: string;
  /** A client on the stand-in with no retries. */
  client: SQSClient;
  calls: StandInCall[];
  stop(): Promise<void>;
}

/**
 * An endpoint speaking SQS's JSON protocol that answers each call with `respond(call, index)`. For behaviour the
 * local server cannot produce, such as throttling; its answers copy SQS's (error type in `__type`, the query
 * compatible code in `x-amzn-query-error`).
 */
export async function startSqsStandIn(respond: (call: StandInCall, index: number) => StandInAnswer): Promise<SqsStandIn> {
  const calls: StandInCall[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target'] ?? '');
      const call: StandInCall = { action: target.slice(target.indexOf('.') + 1), input: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') };
      calls.push(call);
      const answer = respond(call, calls.length - 1);
      const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': `stand-in-${calls.length}` };
      const type = (answer.body as { __type?: string } | undefined)?.__type;
      if (answer.status >= 400 && type) {
        headers['x-amzn-query-error'] = `${type.slice(type.indexOf('#') + 1)};${answer.status >= 500 ? 'Receiver' : 'Sender'}`;
      }
      res.writeHead(answer.status, headers);
      res.end(JSON.stringify(answer.body));
    });
  });
  const port = await listen(server);
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new SQSClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts: 1 });
  return {
    endpoint,
    queueUrl: `${endpoint}/${ACCOUNT}/stand-in.fifo`,
    client,
    calls,
    stop: async () => {
      client.destroy();
      await close(server);
    },
  };
}

/** The answer SQS gives a throttled call. */
export const THROTTLED: StandInAnswer = {
  status: 400,
  body: { __type: 'com.amazonaws.sqs#RequestThrottled', message: 'Request is throttled.' },
};

/** A port on 127.0.0.1 with nothing listening: an unreachable queue. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  const port = await listen(server);
  await close(server);
  return port;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((e) => (e ? reject(e) : resolve()));
    server.closeAllConnections();
  });
}
