/**
 * The SQS-compatible server of the local stack (local-aws-sqs, in this process) with the queues created through
 * the SQS API itself, the way CloudFormation would: dead-letter targets first, then the queues that redrive to them.
 *
 * @example
 * const sqs = await startSqsServer({ queues: [queueSpec(t, 'RelayDeadLetterQueue'), queueSpec(t, 'RelayQueue')] });
 * sqs.queue('RelayQueue').url; // http://127.0.0.1:<port>/123456789012/iotcore-relay-local-relay.fifo
 * await sqs.close();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { createRequestHandler } from 'local-aws-sqs';
import { RelayError } from '../lib/errors.js';
import { closeHttpServer, listen } from './listen.js';
import type { QueueSpec } from './template-resources.js';

export interface LocalQueue {
  spec: QueueSpec;
  url: string;
  arn: string;
}

export interface SqsServer {
  /** `http://127.0.0.1:<port>`, for `AWS_ENDPOINT_URL_SQS`. */
  endpoint: string;
  port: number;
  region: string;
  /** A client of this server with throwaway credentials. */
  client: SQSClient;
  queue(logicalId: string): LocalQueue;
  queues(): LocalQueue[];
  /** Calls `listener` for each message whose visibility a client changed; returns the unsubscribe function. */
  onVisibilityChange(listener: (change: VisibilityChange) => void): () => void;
  close(): Promise<void>;
}

export interface VisibilityChange {
  queueUrl: string;
  receiptHandle: string;
  seconds: number;
}

export interface SqsServerOptions {
  queues: readonly QueueSpec[];
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
  region?: string;
}

export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

export async function startSqsServer(options: SqsServerOptions): Promise<SqsServer> {
  const host = options.host ?? '127.0.0.1';
  const region = options.region ?? 'us-east-1';
  // Queue URLs carry the host and port the service holds; the port is set once the socket is bound.
  const { service, requestHandler } = createRequestHandler({
    port: options.port ?? 0,
    hostname: host,
    region,
    // A stack restarted within a minute recreates its queues; AWS's 60 s wait after a delete does not apply to a new server.
    emulateQueueCreationLifecycle: false,
  });
  const listeners = new Set<(change: VisibilityChange) => void>();
  const server: Server = createServer((req, res) => {
    void requestHandler(req, res);
    // Read alongside local-aws-sqs, which has subscribed to the body already: both see every chunk.
    if (listeners.size > 0) tapVisibilityChanges(req, res, (change) => listeners.forEach((l) => l(change)));
  });
  await listen(server, options.port ?? 0, host);
  const port = (server.address() as AddressInfo).port;
  service.PORT = port;
  const endpoint = `http://${host}:${port}`;
  const client = new SQSClient({ endpoint, region, credentials: LOCAL_CREDENTIALS });

  const created = new Map<string, LocalQueue>();
  try {
    for (const spec of creationOrder(options.queues)) {
      const attributes = { ...spec.attributes };
      if (spec.redrive) {
        const target = created.get(spec.redrive.targetLogicalId);
        if (target === undefined) throw new RelayError('ERR_CONFIG', `${spec.logicalId} redrives to ${spec.redrive.targetLogicalId}, which is not a queue of the stack`);
        attributes.RedrivePolicy = JSON.stringify({ deadLetterTargetArn: target.arn, maxReceiveCount: spec.redrive.maxReceiveCount });
      }
      const { QueueUrl: url } = await client.send(new CreateQueueCommand({ QueueName: spec.name, Attributes: attributes }));
      const { Attributes } = await client.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
      if (url === undefined || Attributes?.QueueArn === undefined) throw new RelayError('ERR_CONFIG', `queue ${spec.name} was not created`);
      created.set(spec.logicalId, { spec, url, arn: Attributes.QueueArn });
    }
  } catch (e) {
    client.destroy();
    await closeHttpServer(server);
    throw e;
  }

  return {
    endpoint,
    port,
    region,
    client,
    queue(logicalId) {
      const q = created.get(logicalId);
      if (q === undefined) throw new RelayError('ERR_CONFIG', `no local queue ${logicalId}`);
      return q;
    },
    queues: () => [...created.values()],
    onVisibilityChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      client.destroy();
      await closeHttpServer(server);
    },
  };
}

/** Queues without a redrive policy first, so every dead-letter target exists before its source. */
function creationOrder(specs: readonly QueueSpec[]): QueueSpec[] {
  const ordered: QueueSpec[] = [];
  const pending = [...specs];
  while (pending.length > 0) {
    const ready = pending.findIndex((s) => s.redrive === undefined || ordered.some((o) => o.logicalId === s.redrive!.targetLogicalId));
    if (ready < 0) throw new RelayError('ERR_CONFIG', `queues ${pending.map((s) => s.logicalId).join(', ')} redrive to queues that are not defined`);
    ordered.push(...pending.splice(ready, 1));
  }
  return ordered;
}

/** SDK v3 speaks SQS's JSON protocol: the action is in `x-amz-target`, the input is the JSON body. */
const VISIBILITY_ACTIONS = new Set(['AmazonSQS.ChangeMessageVisibility', 'AmazonSQS.ChangeMessageVisibilityBatch']);

interface VisibilityEntry {
  ReceiptHandle?: unknown;
  VisibilityTimeout?: unknown;
}

/**
 * Reports the visibility changes of a request once local-aws-sqs has answered it with success. The relay's
 * back-off and its quick redrive are visibility changes, and the event source needs them to know how long a FIFO
 * group stays blocked (SQS blocks it while a message is invisible).
 */
function tapVisibilityChanges(req: IncomingMessage, res: ServerResponse, report: (change: VisibilityChange) => void): void {
  const target = req.headers['x-amz-target'];
  if (typeof target !== 'string' || !VISIBILITY_ACTIONS.has(target)) return;
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  res.on('finish', () => {
    if (res.statusCode !== 200) return;
    let input: { QueueUrl?: unknown; Entries?: unknown } & VisibilityEntry;
    try {
      input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof input;
    } catch {
      return;
    }
    if (typeof input.QueueUrl !== 'string') return;
    const entries: VisibilityEntry[] = Array.isArray(input.Entries) ? (input.Entries as VisibilityEntry[]) : [input];
    for (const e of entries) {
      const seconds = Number(e.VisibilityTimeout);
      if (typeof e.ReceiptHandle === 'string' && Number.isFinite(seconds)) report({ queueUrl: input.QueueUrl, receiptHandle: e.ReceiptHandle, seconds });
    }
  });
}
