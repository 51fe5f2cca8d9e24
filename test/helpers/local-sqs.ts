/**
 * The local stack's SQS server (local/sqs-server.ts) on 127.0.0.1 and a free port, with the relay's FIFO queue and
 * its dead-letter queue as serverless.yml declares them: every attribute (deduplication and throughput per message
 * group, visibility timeout, retention, the redrive policy and its receive count) is read from the template the way
 * `npm start` reads it, so a test runs against the queues that are deployed. Tests either pass `client` to the code
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
import { fileURLToPath } from 'node:url';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { loadServerlessTemplate } from '../../local/serverless-template.js';
import { LOCAL_CREDENTIALS, startSqsServer } from '../../local/sqs-server.js';
import { queueSpec, type QueueSpec } from '../../local/template-resources.js';

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
  /** Receives of a relay queue message before SQS moves it to the dead-letter queue (serverless.yml's, unless overridden). */
  maxReceiveCount: number;
  /** The relay queue's visibility timeout (serverless.yml's, unless overridden). */
  visibilityTimeoutSeconds: number;
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
  /** Default: the relay queue's VisibilityTimeout in serverless.yml. */
  visibilityTimeoutSeconds?: number;
  /** Receives before a message moves to the dead-letter queue; default: the relay queue's RedrivePolicy in serverless.yml. */
  maxReceiveCount?: number;
}

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const TEMPLATE_PATH = fileURLToPath(new URL('../../serverless.yml', import.meta.url));
/** The stage `npm start` runs by default (and its `params`), so tests get the local stack's queues. */
const TEMPLATE_STAGE = 'local';
const RELAY_QUEUE = 'RelayQueue';

export async function startLocalSqs(options: LocalSqsOptions = {}): Promise<LocalSqs> {
  const { relay, deadLetter } = relayQueueSpecs(options);
  const server = await startSqsServer({ queues: [deadLetter, relay], region: REGION });
  const queueUrl = server.queue(relay.logicalId).url;
  const deadLetterQueueUrl = server.queue(deadLetter.logicalId).url;
  const { endpoint } = server;
  // The server's own client retries; a test wants the first failure, not a slow retried one.
  const client = new SQSClient({ endpoint, region: server.region, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });

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
    maxReceiveCount: relay.redrive.maxReceiveCount,
    visibilityTimeoutSeconds: relay.visibilityTimeoutSeconds,
    client,
    env: {
      AWS_ENDPOINT_URL_SQS: endpoint,
      AWS_REGION: server.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      RELAY_QUEUE_URL: queueUrl,
    },
    receiveAll,
    purge: async () => {
      await receiveAll(queueUrl);
      await receiveAll(deadLetterQueueUrl);
    },
    stop: async () => {
      client.destroy();
      await server.close();
    },
  };
}

type RedrivenQueueSpec = QueueSpec & { redrive: NonNullable<QueueSpec['redrive']> };

/**
 * The relay queue and its dead-letter target as the local stack builds them from serverless.yml, renamed to the
 * short names tests use and with the overrides applied. The dead-letter queue is whichever queue the template's
 * RedrivePolicy names, so only the relay queue's logical ID is known here.
 */
function relayQueueSpecs(options: LocalSqsOptions): { relay: RedrivenQueueSpec; deadLetter: QueueSpec } {
  const template = loadServerlessTemplate(TEMPLATE_PATH, { stage: TEMPLATE_STAGE, region: REGION });
  const declared = queueSpec(template, RELAY_QUEUE);
  if (declared.redrive === undefined) throw new Error(`${TEMPLATE_PATH}: ${RELAY_QUEUE} has no RedrivePolicy, and the relay's tests need its dead-letter queue`);
  const queueName = options.queueName ?? 'relay.fifo';
  const visibility = options.visibilityTimeoutSeconds ?? declared.visibilityTimeoutSeconds;
  const relay: RedrivenQueueSpec = {
    ...declared,
    name: queueName,
    visibilityTimeoutSeconds: visibility,
    attributes: { ...declared.attributes, VisibilityTimeout: String(visibility) },
    redrive: { ...declared.redrive, maxReceiveCount: options.maxReceiveCount ?? declared.redrive.maxReceiveCount },
  };
  const deadLetter: QueueSpec = { ...queueSpec(template, declared.redrive.targetLogicalId), name: `${queueName.replace(/\.fifo$/, '')}-dlq.fifo` };
  return { relay, deadLetter };
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
  const client = new SQSClient({ endpoint, region: REGION, credentials: LOCAL_CREDENTIALS, maxAttempts: 1 });
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
