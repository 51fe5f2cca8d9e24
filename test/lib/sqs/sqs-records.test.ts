import { describe, expect, it } from 'vitest';
import { inboundRecords, queueUrlFromArn } from '../../../lib/sqs/sqs-records.js';
import { sqsEvent, sqsRecord } from '../../helpers/relay-fixtures.js';

describe('inboundRecords', () => {
  it('reads message ID, body, message group and receive count', () => {
    const fifo = sqsRecord('{"v":1}', { groupId: 'gw-1', receiveCount: 3, messageId: 'm-1' });
    const standard = sqsRecord('{"v":1}', { messageId: 'm-2' });
    expect(inboundRecords(sqsEvent([fifo, standard]))).toEqual([
      { messageId: 'm-1', body: '{"v":1}', groupId: 'gw-1', receiveCount: 3 },
      { messageId: 'm-2', body: '{"v":1}', groupId: undefined, receiveCount: 1 },
    ]);
  });

  it('takes a missing or odd receive count as the first receive', () => {
    const r = sqsRecord('x');
    r.attributes.ApproximateReceiveCount = 'many';
    expect(inboundRecords(sqsEvent([r]))[0]!.receiveCount).toBe(1);
  });
});

describe('queueUrlFromArn', () => {
  const arn = 'arn:aws:sqs:eu-west-1:123456789012:iotcore-relay-prod-relay.fifo';

  it('builds the regional SQS URL', () => {
    expect(queueUrlFromArn(arn, {})).toBe('https://sqs.eu-west-1.amazonaws.com/123456789012/iotcore-relay-prod-relay.fifo');
    expect(queueUrlFromArn('arn:aws-cn:sqs:cn-north-1:123456789012:q', {})).toBe('https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q');
  });

  it('builds it on a custom endpoint, as the SDK would send to', () => {
    expect(queueUrlFromArn(arn, { AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:4566/' })).toBe('http://127.0.0.1:4566/123456789012/iotcore-relay-prod-relay.fifo');
    expect(queueUrlFromArn(arn, { AWS_ENDPOINT_URL: 'http://localhost:9324' })).toBe('http://localhost:9324/123456789012/iotcore-relay-prod-relay.fifo');
  });

  it('gives up on what is not an SQS ARN', () => {
    expect(queueUrlFromArn('arn:aws:sns:eu-west-1:123456789012:topic', {})).toBeUndefined();
    expect(queueUrlFromArn('', {})).toBeUndefined();
  });
});
