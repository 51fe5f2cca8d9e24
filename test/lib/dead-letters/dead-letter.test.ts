/**
 * Dead letters read as the dead-letter tools receive them: from the local SQS server's dead-letter queue, with the
 * system and message attributes SQS returns, parked there the relay's way or SQS's redrive way.
 */
import { DeleteMessageCommand, ReceiveMessageCommand, SendMessageCommand, type Message } from '@aws-sdk/client-sqs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { deadLetterOf, describeAge, devicesOf, REDRIVE_REASON } from '../../../lib/dead-letters/dead-letter.js';
import { park, redriven } from '../../helpers/dead-letters.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';

let sqs: LocalSqs;
beforeAll(async () => {
  sqs = await startLocalSqs();
});
afterAll(() => sqs.stop());
beforeEach(() => sqs.purge());

/** The one message on the dead-letter queue, received with every attribute, then deleted. */
async function receiveOne(): Promise<Message> {
  const { Messages = [] } = await sqs.client.send(
    new ReceiveMessageCommand({
      QueueUrl: sqs.deadLetterQueueUrl,
      MaxNumberOfMessages: 10,
      MessageAttributeNames: ['All'],
      // As the dead-letter tools ask: local SQS servers read the older AttributeNames.
      AttributeNames: ['All'],
      MessageSystemAttributeNames: ['All'],
    }),
  );
  expect(Messages).toHaveLength(1);
  await sqs.client.send(new DeleteMessageCommand({ QueueUrl: sqs.deadLetterQueueUrl, ReceiptHandle: Messages[0]!.ReceiptHandle! }));
  return Messages[0]!;
}

describe('deadLetterOf', () => {
  it("reads the relay's attributes, and the device and type from the body", async () => {
    const before = Date.now();
    const body = JSON.stringify({ v: 1, type: 'state', deviceId: 'pump-01', payload: 'on' });
    const sourceMessageId = await park(sqs.client, sqs.deadLetterQueueUrl, {
      body,
      code: 'ERR_ATTACH_REJECTED',
      reason: 'the bridge refused to attach the device',
      gatewayId: 'gw-1',
    });
    const message = await receiveOne();
    const dl = deadLetterOf(message);
    expect(dl).toMatchObject({
      messageId: message.MessageId,
      receiptHandle: message.ReceiptHandle,
      body,
      via: 'relay',
      code: 'ERR_ATTACH_REJECTED',
      reason: 'the bridge refused to attach the device',
      sourceMessageId,
      sourceReceiveCount: 1,
      gatewayId: 'gw-1',
      groupId: 'gw-1',
      deviceId: 'pump-01',
      type: 'state',
    });
    expect(dl.deadLetteredAt).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(dl.deadLetteredAt).toBeLessThanOrEqual(Date.now());
    expect(dl.producerAttributes).toEqual({});
  });

  it("takes the relay's device over the body's, and names the field at fault", async () => {
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: JSON.stringify({ v: 1, deviceId: 'in-body' }), code: 'ERR_INVALID_FIELD', deviceId: 'from-relay', field: 'subfolder' });
    expect(deadLetterOf(await receiveOne())).toMatchObject({ deviceId: 'from-relay', field: 'subfolder', type: 'event', reason: 'reason of ERR_INVALID_FIELD' });
  });

  it("keeps a producer's own attributes, and not the relay's", async () => {
    await sqs.client.send(
      new SendMessageCommand({
        QueueUrl: sqs.deadLetterQueueUrl,
        MessageBody: JSON.stringify({ v: 1, deviceId: 'pump-02' }),
        MessageGroupId: 'gw-3',
        MessageDeduplicationId: randomUUID(),
        MessageAttributes: {
          'relay.errorCode': { DataType: 'String', StringValue: 'ERR_INVALID_BASE64' },
          'producer.trace': { DataType: 'String', StringValue: 'abc' },
        },
      }),
    );
    const dl = deadLetterOf(await receiveOne());
    expect(dl).toMatchObject({ via: 'relay', code: 'ERR_INVALID_BASE64', reason: 'ERR_INVALID_BASE64', groupId: 'gw-3' });
    expect(dl.producerAttributes).toEqual({ 'producer.trace': { DataType: 'String', StringValue: 'abc' } });
  });

  it('says why a record SQS moved is there, with a poll job\'s devices', async () => {
    await redriven(sqs.client, sqs.deadLetterQueueUrl, JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01', 7, 'valve-02'] }), 'gw-2');
    const moved = deadLetterOf(await receiveOne());
    expect(moved).toMatchObject({ via: 'redrive', reason: REDRIVE_REASON, type: 'config-poll', deviceIds: ['valve-01', 'valve-02'], groupId: 'gw-2' });
    expect(moved.code).toBeUndefined();
    expect(moved.sourceReceiveCount).toBeUndefined();
  });

  it('copes with a body that is not JSON, not an object, or of an unknown type', async () => {
    for (const body of ['not json at all', '[1, 2]', JSON.stringify({ v: 1, type: 'telemetry', deviceId: 'd-1' })]) {
      await redriven(sqs.client, sqs.deadLetterQueueUrl, body);
      const dl = deadLetterOf(await receiveOne());
      expect(dl, body).toMatchObject({ via: 'redrive', type: 'unknown', body });
    }
  });

  it('fills what a message without attributes lacks', () => {
    const before = Date.now();
    const dl = deadLetterOf({});
    expect(dl).toMatchObject({ messageId: '', receiptHandle: '', body: '', type: 'unknown', via: 'redrive', producerAttributes: {} });
    expect(dl.deadLetteredAt).toBeGreaterThanOrEqual(before);
    expect(deadLetterOf({ Body: '{"deviceId": ""}', MessageAttributes: { 'relay.receiveCount': { DataType: 'Number', StringValue: '0' } } })).not.toHaveProperty('deviceId');
  });
});

describe('devicesOf', () => {
  it("is the record's device, or a poll job's devices, or none", () => {
    expect(devicesOf(deadLetterOf({ Body: JSON.stringify({ deviceId: 'pump-01' }) }))).toEqual(['pump-01']);
    expect(devicesOf(deadLetterOf({ Body: JSON.stringify({ type: 'config-poll', deviceIds: ['a-1', 'b-2'] }) }))).toEqual(['a-1', 'b-2']);
    expect(devicesOf(deadLetterOf({ Body: 'x' }))).toEqual([]);
  });
});

describe('describeAge', () => {
  it('describes ages at a glance, in the largest whole unit', () => {
    expect([describeAge(4_400), describeAge(185_000), describeAge(5 * 3600_000 + 1), describeAge(49 * 3600_000)]).toEqual(['4 s', '3 min', '5 h', '2 d']);
    expect([describeAge(59_499), describeAge(59_500), describeAge(3_600_000), describeAge(86_400_000)]).toEqual(['59 s', '1 min', '1 h', '1 d']);
    expect(describeAge(-5000)).toBe('0 s');
  });
});
