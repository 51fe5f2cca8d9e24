import { createHash } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import type { RelaySettings } from '../../../lib/relay-settings.js';
import { RelayError } from '../../../lib/errors.js';
import { RELAY_OUTCOMES_CHANNEL, type RelayOutcomesMessage } from '../../../lib/relay/outcome-channel.js';
import { sqsQueueActions } from '../../../lib/queue/queue-actions.js';
import { relaySqsBatch, type RelaySqsDeps } from '../../../lib/sqs/relay-sqs-batch.js';
import type { Fleet } from '../../helpers/emulator-fixtures.js';
import { startSqsStandIn, THROTTLED, type SqsStandIn, type StandInAnswer, type StandInCall } from '../../helpers/local-sqs.js';
import { expectOutcomeInvariant } from '../../helpers/outcome-invariant.js';
import { eventBody, GW, lambdaContext, makeRelayFleet, PUMPS, relaySettings, sqsEvent, sqsRecord, UNBOUND } from '../../helpers/relay-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;
let sqs: SqsStandIn;
/** How the stand-in answers SendMessage; ChangeMessageVisibilityBatch always succeeds. */
let sendAnswer: (call: StandInCall) => StandInAnswer;

const ok = (call: StandInCall): StandInAnswer => ({
  status: 200,
  body: { MessageId: `dlq-${Math.random()}`, MD5OfMessageBody: createHash('md5').update(String(call.input.MessageBody)).digest('hex') },
});

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  sqs = await startSqsStandIn((call) => {
    if (call.action === 'SendMessage') return sendAnswer(call);
    if (call.action === 'ChangeMessageVisibilityBatch') {
      const entries = call.input.Entries as { Id: string }[];
      return { status: 200, body: { Successful: entries.map((e) => ({ Id: e.Id })), Failed: [] } };
    }
    return { status: 400, body: { __type: 'com.amazonaws.sqs#InvalidAction', message: call.action } };
  });
});
afterEach(() => {
  emulator.clearFaults();
  sqs.calls.length = 0;
  sendAnswer = ok;
});
afterAll(async () => {
  await emulator.close();
  await sqs.stop();
});

const silent = { debug() {}, info() {}, warn() {}, error() {} };

function deps(settings: Partial<RelaySettings>, overrides: Partial<RelaySqsDeps> = {}): RelaySqsDeps {
  return {
    settings: relaySettings(emulator, fleet, settings),
    gatewayJwt: async (gatewayId) => {
      if (gatewayId === GW.east) throw new RelayError('ERR_KEY_UNAVAILABLE', 'secret gw-keys could not be read: ThrottlingException');
      return fleet.jwt(gatewayId);
    },
    queueActions: sqsQueueActions(() => sqs.client),
    logger: silent,
    env: { AWS_ENDPOINT_URL_SQS: sqs.endpoint },
    random: () => 1,
    ...overrides,
  };
}

describe('relaySqsBatch', () => {
  it('carries out each outcome: confirmed deleted, dead-letters sent with their reason, backoff by receive count', async () => {
    sendAnswer = ok;
    emulator.setFaults({ withholdPuback: [`/devices/${PUMPS[1]}/events`] });
    const good = sqsRecord(eventBody(PUMPS[0]!), { groupId: GW.assoc });
    const malformed = sqsRecord('{"v":1,"deviceId":"pump-01","encoding":"base64","payload":"%%%"}', { groupId: GW.assoc });
    const refused = sqsRecord(eventBody(UNBOUND), { groupId: GW.assoc });
    const keyless = sqsRecord(eventBody('east-01'), { groupId: GW.east, receiveCount: 3 });
    const unacked = sqsRecord(eventBody(PUMPS[1]!), { groupId: GW.assoc });
    const event = sqsEvent([good, malformed, refused, keyless, unacked]);

    const result = await relaySqsBatch(event, lambdaContext(10_000), deps({ deadLetterQueueUrl: `${sqs.endpoint}/123456789012/relay-dlq.fifo`, pubackTimeoutMs: 300 }));

    expectOutcomeInvariant({ records: event.Records, outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    expect(result.response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual([keyless.messageId, unacked.messageId]);
    const by = (r: { messageId: string }) => result.outcomes.find((o) => o.messageId === r.messageId)!;
    expect(by(good).outcome).toBe('confirmed');
    expect(by(malformed)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_INVALID_BASE64', deadLetter: 'sent' });
    expect(by(refused)).toMatchObject({ outcome: 'dead-letter', code: 'ERR_ATTACH_REJECTED', deadLetter: 'sent' });
    expect(by(keyless)).toMatchObject({ outcome: 'retry-backoff', code: 'ERR_KEY_UNAVAILABLE' });
    expect(by(unacked)).toMatchObject({ outcome: 'retry', code: 'ERR_PUBACK_TIMEOUT' });

    const sends = sqs.calls.filter((c) => c.action === 'SendMessage').map((c) => c.input);
    expect(sends).toHaveLength(2);
    const sent = sends.find((s) => s.MessageDeduplicationId === malformed.messageId)!;
    expect(sent).toMatchObject({
      QueueUrl: `${sqs.endpoint}/123456789012/relay-dlq.fifo`,
      MessageBody: malformed.body,
      MessageGroupId: GW.assoc,
      MessageAttributes: {
        'relay.errorCode': { DataType: 'String', StringValue: 'ERR_INVALID_BASE64' },
        'relay.field': { DataType: 'String', StringValue: 'payload' },
        'relay.sourceMessageId': { DataType: 'String', StringValue: malformed.messageId },
        'relay.sourceQueue': { DataType: 'String', StringValue: malformed.eventSourceARN },
        'relay.receiveCount': { DataType: 'String', StringValue: '1' },
      },
    });
    expect((sent.MessageAttributes as Record<string, { StringValue: string }>)['relay.reason']!.StringValue).toContain('base64');
    const refusedSend = sends.find((s) => s.MessageDeduplicationId === refused.messageId)!;
    expect((refusedSend.MessageAttributes as Record<string, { StringValue: string }>)['relay.deviceId']!.StringValue).toBe(UNBOUND);

    // Receive 3 of a backoff record: 30 s * 2^2, the top of the jitter range (random() = 1). The plain retry comes
    // back after RELAY_RETRY_SECONDS.
    const visibility = sqs.calls.filter((c) => c.action === 'ChangeMessageVisibilityBatch');
    expect(visibility).toHaveLength(1);
    const input = visibility[0]!.input as { QueueUrl: string; Entries: { ReceiptHandle: string; VisibilityTimeout: number }[] };
    expect(input.QueueUrl).toBe(`${sqs.endpoint}/123456789012/relay.fifo`);
    expect(new Map(input.Entries.map((e) => [e.ReceiptHandle, e.VisibilityTimeout]))).toEqual(
      new Map([
        [keyless.receiptHandle, 120],
        [unacked.receiptHandle, 5],
      ]),
    );
  });

  it('without a dead-letter queue URL, fails dead-letters back with visibility 0 for the redrive policy', async () => {
    const malformed = sqsRecord('not json', { groupId: GW.assoc });
    const good = sqsRecord(eventBody(PUMPS[2]!), { groupId: GW.assoc });
    const event = sqsEvent([malformed, good]);
    const result = await relaySqsBatch(event, lambdaContext(10_000), deps({ deadLetterQueueUrl: undefined, sourceQueueUrl: `${sqs.endpoint}/123456789012/configured.fifo` }));
    expectOutcomeInvariant({ records: event.Records, outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    expect(result.response.batchItemFailures).toEqual([{ itemIdentifier: malformed.messageId }]);
    expect(result.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_INVALID_MESSAGE', deadLetter: 'redrive' });
    expect(sqs.calls.map((c) => c.action)).toEqual(['ChangeMessageVisibilityBatch']);
    expect(sqs.calls[0]!.input).toEqual({
      QueueUrl: `${sqs.endpoint}/123456789012/configured.fifo`,
      Entries: [{ Id: '0', ReceiptHandle: malformed.receiptHandle, VisibilityTimeout: 0 }],
    });
  });

  it('fails a record back when the dead-letter queue does not take it', async () => {
    sendAnswer = () => THROTTLED;
    const malformed = sqsRecord('{"v":3}', { groupId: GW.assoc });
    const event = sqsEvent([malformed]);
    const result = await relaySqsBatch(event, lambdaContext(10_000), deps({ deadLetterQueueUrl: `${sqs.endpoint}/123456789012/relay-dlq.fifo` }));
    expectOutcomeInvariant({ records: event.Records, outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    expect(result.response.batchItemFailures).toEqual([{ itemIdentifier: malformed.messageId }]);
    expect(result.outcomes[0]).toMatchObject({ outcome: 'dead-letter', code: 'ERR_UNSUPPORTED_VERSION', deadLetter: 'redrive' });
    expect(result.outcomes[0]!.reason).toContain('not sent to the dead-letter queue');
  });

  it('with no time left, fails everything back at once and makes no SQS call it cannot finish', async () => {
    const records = [sqsRecord(eventBody(PUMPS[3]!), { groupId: GW.assoc }), sqsRecord('[]', { groupId: GW.assoc })];
    const started = Date.now();
    // 80 ms left: less than the margin, and less than an SQS call is given.
    const result = await relaySqsBatch(sqsEvent(records), lambdaContext(80), deps({ deadLetterQueueUrl: `${sqs.endpoint}/123456789012/relay-dlq.fifo`, deadlineMarginMs: 500 }));
    // No connection is even attempted; the bound leaves room for a loaded machine.
    expect(Date.now() - started).toBeLessThan(150);
    expect(sqs.calls.filter((c) => c.action === 'SendMessage')).toEqual([]);
    expectOutcomeInvariant({ records, outcomes: result.outcomes, emulator, registryId: fleet.registryId });
    expect(result.response.batchItemFailures.map((f) => f.itemIdentifier)).toEqual(records.map((r) => r.messageId));
    expect(result.outcomes[0]).toMatchObject({ outcome: 'retry', code: 'ERR_DEADLINE' });
    expect(result.outcomes[1]).toMatchObject({ outcome: 'dead-letter', deadLetter: 'redrive' });
  });

  it('publishes every outcome as carried out on the diagnostics channel, for whoever in the process listens', async () => {
    // Prepare
    const published: RelayOutcomesMessage[] = [];
    const listener = (message: unknown): void => void published.push(message as RelayOutcomesMessage);
    const good = sqsRecord(eventBody(PUMPS[4]!), { groupId: GW.assoc });
    const refused = sqsRecord(eventBody(UNBOUND), { groupId: GW.assoc });
    subscribe(RELAY_OUTCOMES_CHANNEL, listener);

    // Act
    let result: Awaited<ReturnType<typeof relaySqsBatch>>;
    try {
      result = await relaySqsBatch(sqsEvent([good, refused]), lambdaContext(10_000), deps({ deadLetterQueueUrl: `${sqs.endpoint}/123456789012/relay-dlq.fifo` }));
    } finally {
      unsubscribe(RELAY_OUTCOMES_CHANNEL, listener);
    }

    // Assess
    expect(published).toHaveLength(1);
    expect(published[0]!.outcomes).toEqual(result.outcomes);
    expect(published[0]!.outcomes.map((o) => [o.messageId, o.outcome, o.code, o.deadLetter])).toEqual([
      [good.messageId, 'confirmed', undefined, undefined],
      [refused.messageId, 'dead-letter', 'ERR_ATTACH_REJECTED', 'sent'],
    ]);
  });
});
