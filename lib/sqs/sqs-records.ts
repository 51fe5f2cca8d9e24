/**
 * The SQS side of the relay's input: Lambda's SQS event records into `InboundRecord`s, and the URL of the queue
 * they came from (needed for ChangeMessageVisibility, which takes a URL where the event only carries an ARN).
 *
 * @example
 * const records = inboundRecords(event);            // [{ messageId, body, groupId, receiveCount }]
 * queueUrlFromArn('arn:aws:sqs:eu-west-1:123456789012:relay.fifo'); // 'https://sqs.eu-west-1.amazonaws.com/123456789012/relay.fifo'
 */
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import type { InboundRecord } from '../relay/route-records.js';

export function inboundRecords(event: Pick<SQSEvent, 'Records'>): InboundRecord[] {
  return (event.Records ?? []).map(inboundRecord);
}

export function inboundRecord(record: SQSRecord): InboundRecord {
  const count = Number(record.attributes?.ApproximateReceiveCount);
  return {
    messageId: record.messageId,
    body: typeof record.body === 'string' ? record.body : '',
    groupId: record.attributes?.MessageGroupId,
    receiveCount: Number.isInteger(count) && count >= 1 ? count : 1,
  };
}

/**
 * A queue's URL from its ARN. With a custom SQS endpoint (`AWS_ENDPOINT_URL_SQS`, or `AWS_ENDPOINT_URL`, which the
 * SDK honours as well) the URL is built on that endpoint, as local SQS servers do; undefined for a malformed ARN.
 */
export function queueUrlFromArn(arn: string, env: Readonly<Record<string, string | undefined>> = process.env): string | undefined {
  const m = /^arn:(aws[a-z-]*):sqs:([a-z0-9-]+):(\d{12}|[^:]+):([A-Za-z0-9_.-]{1,80})$/.exec(arn);
  if (m === null) return undefined;
  const [, partition, region, account, name] = m;
  const endpoint = env.AWS_ENDPOINT_URL_SQS?.trim() || env.AWS_ENDPOINT_URL?.trim();
  if (endpoint) return `${endpoint.replace(/\/+$/, '')}/${account}/${name}`;
  const suffix = partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
  return `https://sqs.${region}.${suffix}/${account}/${name}`;
}
