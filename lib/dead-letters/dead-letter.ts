/**
 * A message of the dead-letter queue, read for an operator: which device, which code, why, and since when.
 *
 * Records reach the dead-letter queue two ways. The relay sends the ones that can never succeed as they are, with
 * the reason as `relay.*` message attributes (lib/sqs/relay-sqs-batch.ts: `relay.errorCode`, `relay.reason`,
 * `relay.sourceMessageId`, `relay.sourceQueue`, `relay.receiveCount`, and when known `relay.field`,
 * `relay.gatewayId`, `relay.deviceId`). SQS moves the ones that failed `maxReceiveCount` times (the queue's redrive
 * policy); those carry no reason of the relay's, only their body. Either way the message keeps the source record's
 * message group, and its body is the record's body, untouched.
 *
 * @example
 * const dl = deadLetterOf(message); // { via: 'relay', code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-0001', ... }
 * describeAge(Date.now() - dl.deadLetteredAt); // '3 min'
 */
import type { Message } from '@aws-sdk/client-sqs';

export type RecordType = 'event' | 'state' | 'config-poll' | 'unknown';

export interface DeadLetter {
  /** The dead-letter queue's message ID (not the source record's). */
  messageId: string;
  /** Of the receive that returned it; the one to delete it or change its visibility with. */
  receiptHandle: string;
  body: string;
  /** The message group on a FIFO queue: the source record's group, which the relay and SQS's redrive both keep. */
  groupId?: string;
  /** `relay`: parked by the relay with its reason; `redrive`: moved by SQS after `maxReceiveCount` receives. */
  via: 'relay' | 'redrive';
  /** The relay's error code; absent for a record SQS moved. */
  code?: string;
  reason: string;
  /** The input field at fault, for a record refused for its content. */
  field?: string;
  /** The record's device: the relay's attribute, or the body's `deviceId`. */
  deviceId?: string;
  /** A config-poll job's devices. */
  deviceIds?: string[];
  gatewayId?: string;
  sourceMessageId?: string;
  /** Receives of the source record when it was parked. */
  sourceReceiveCount?: number;
  type: RecordType;
  /** Epoch ms at which it entered the dead-letter queue (its SentTimestamp there). */
  deadLetteredAt: number;
  /** Message attributes other than the relay's `relay.*`: a producer's own, which a replay carries back. */
  producerAttributes: NonNullable<Message['MessageAttributes']>;
}

export const REDRIVE_REASON = "moved here by the relay queue's redrive policy after maxReceiveCount receives (it kept failing with a retryable error)";

export function deadLetterOf(message: Message): DeadLetter {
  const attrs = message.MessageAttributes ?? {};
  const text = (name: string): string | undefined => {
    const v = attrs[name]?.StringValue;
    return v === undefined || v === '' ? undefined : v;
  };
  const body = message.Body ?? '';
  const fromBody = bodyFacts(body);
  const code = text('relay.errorCode');
  const sent = Number(message.Attributes?.SentTimestamp);
  const dl: DeadLetter = {
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle ?? '',
    body,
    via: code === undefined ? 'redrive' : 'relay',
    reason: code === undefined ? REDRIVE_REASON : (text('relay.reason') ?? code),
    type: fromBody.type,
    deadLetteredAt: Number.isFinite(sent) && sent > 0 ? sent : Date.now(),
    producerAttributes: Object.fromEntries(Object.entries(attrs).filter(([name]) => !name.startsWith('relay.'))),
  };
  const groupId = message.Attributes?.MessageGroupId;
  if (groupId !== undefined) dl.groupId = groupId;
  if (code !== undefined) dl.code = code;
  const field = text('relay.field');
  if (field !== undefined) dl.field = field;
  const deviceId = text('relay.deviceId') ?? fromBody.deviceId;
  if (deviceId !== undefined) dl.deviceId = deviceId;
  if (fromBody.deviceIds !== undefined) dl.deviceIds = fromBody.deviceIds;
  const gatewayId = text('relay.gatewayId');
  if (gatewayId !== undefined) dl.gatewayId = gatewayId;
  const sourceMessageId = text('relay.sourceMessageId');
  if (sourceMessageId !== undefined) dl.sourceMessageId = sourceMessageId;
  const receives = Number(text('relay.receiveCount'));
  if (Number.isInteger(receives) && receives > 0) dl.sourceReceiveCount = receives;
  return dl;
}

/** What can be read from a body without judging it: a malformed body is itself a reason to be here. */
function bodyFacts(body: string): { type: RecordType; deviceId?: string; deviceIds?: string[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch {
    return { type: 'unknown' };
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { type: 'unknown' };
  const o = doc as Record<string, unknown>;
  const type = o.type ?? 'event';
  if (type === 'config-poll') {
    const ids = Array.isArray(o.deviceIds) ? o.deviceIds.filter((id): id is string => typeof id === 'string') : [];
    return { type, deviceIds: ids };
  }
  const facts: { type: RecordType; deviceId?: string } = { type: type === 'event' || type === 'state' ? type : 'unknown' };
  if (typeof o.deviceId === 'string' && o.deviceId !== '') facts.deviceId = o.deviceId;
  return facts;
}

/** The devices a dead letter is about: its device, or a poll job's devices. */
export function devicesOf(dl: DeadLetter): string[] {
  return dl.deviceId !== undefined ? [dl.deviceId] : (dl.deviceIds ?? []);
}

/** `42 s`, `3 min`, `5 h`, `2 d`: an age at a glance. */
export function describeAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}
