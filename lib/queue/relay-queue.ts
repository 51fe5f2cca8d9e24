/**
 * The relay queue as the ingest and the LoRaWAN webhooks see it: records in, one outcome per record out. A lone
 * record goes with `SendMessage`, several through the queue producer (queue-producer.ts) in calls of at most 10
 * entries and 1 MiB, SQS's limits per call; sending stops at the first call that is not wholly queued, so newer
 * readings of a device never overtake older ones the device will send again (for state the newest must win).
 *
 * @example
 * const queue = new SqsRelayQueue({ queueUrl: process.env.RELAY_QUEUE_URL! });
 * const [outcome] = await queue.send([{ body, groupId: 'gw-1', deduplicationId: 'req-1' }]);
 * if (outcome?.queued) console.log(outcome.messageId);
 */
import type { SQSClient } from '@aws-sdk/client-sqs';
import { RelayError } from '../errors.js';
import { loadSqsSdk, MAX_MESSAGE_BYTES, QueueProducer, type QueueOutcome } from './queue-producer.js';

export type { QueueOutcome };

export interface QueueRecord {
  /** The message body: queue contract v1 JSON. */
  body: string;
  /** FIFO message group: the gateway that will carry the record. */
  groupId: string;
  deduplicationId: string;
}

/** What the ingest needs of a queue; tests and other transports can supply just this. */
export interface RelayQueue {
  /** One outcome per record, in the records' order. Never throws for a queue failure: it reports it per record. */
  send(records: readonly QueueRecord[]): Promise<QueueOutcome[]>;
}

export interface SqsRelayQueueOptions {
  queueUrl: string;
  /** Defaults to `defaultSqsClient()`. */
  client?: SQSClient;
}

/**
 * A client with the SDK's usual configuration from the environment (region, credentials, `AWS_ENDPOINT_URL_SQS`),
 * and timeouts that fit a request a device is waiting on: without them an unreachable endpoint would hold the
 * request until the function times out. The SDK is loaded here, at the first send, not with this module: the ingest
 * and LoRaWAN handlers import it, and a request refused before anything is queued never needs it.
 */
export async function defaultSqsClient(): Promise<SQSClient> {
  return new (await loadSqsSdk()).SQSClient({ requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 } });
}

export class SqsRelayQueue implements RelayQueue {
  readonly queueUrl: string;
  private readonly producer: QueueProducer;

  constructor(options: SqsRelayQueueOptions) {
    if (options.queueUrl.trim() === '') throw new RelayError('ERR_CONFIG', 'the relay queue URL is empty');
    this.queueUrl = options.queueUrl;
    // A record's body may be up to 1 MiB (lib/queue/message.ts), which the relay queue takes.
    this.producer = new QueueProducer({ queueUrl: options.queueUrl, client: options.client ?? defaultSqsClient, maxBatchBytes: MAX_MESSAGE_BYTES });
  }

  async send(records: readonly QueueRecord[]): Promise<QueueOutcome[]> {
    if (records.length === 1) return [await this.producer.sendOne(records[0]!)];
    // Not sent again here: the device is waiting, and it sends again what was not queued.
    return this.producer.send(records);
  }
}
