/**
 * FIFO deduplication IDs for what the ingest queues.
 *
 * A device may name a reading (`X-Message-Id`, or `messageId` in a batch) so that a retry after a lost answer is
 * dropped by SQS instead of relayed twice. SQS deduplicates per queue or per message group, and a message group is
 * a gateway shared by many devices, so two devices counting 1, 2, 3... would drop each other's readings: the ID a
 * device gives is therefore namespaced by the device (and the record type) and hashed, which also keeps it within
 * SQS's 128 characters whatever the device ID's length.
 *
 * Without a device-supplied ID, the request ID is used (with the reading's index in a batch): a retried request
 * has a new ID and is queued again, which is the at-least-once the bridge gives anyway.
 *
 * @example
 * deviceDeduplicationId('pump-0042', 'event', '17'); // 64 hex characters, the same on every retry
 * requestDeduplicationId('JDd4ZgqzIAMEV2w=', 3);      // 'JDd4ZgqzIAMEV2w=#3'
 */
import { createHash } from 'node:crypto';
import { RelayError } from '../errors.js';

export const MAX_MESSAGE_ID_LENGTH = 128;
/** Printable ASCII without space: what fits in a header and in SQS's deduplication ID alphabet. */
const MESSAGE_ID = /^[\x21-\x7e]+$/;
/** SQS: up to 128 characters, alphanumeric and punctuation. */
const SQS_DEDUPLICATION_ID = /^[\x21-\x7e]{1,128}$/;

export function messageIdProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0 || value.length > MAX_MESSAGE_ID_LENGTH) return `must be 1 to ${MAX_MESSAGE_ID_LENGTH} characters long`;
  if (!MESSAGE_ID.test(value)) return 'must be printable ASCII without spaces';
  return undefined;
}

export function assertMessageId(value: unknown, field: string): asserts value is string {
  const problem = messageIdProblem(value);
  if (problem !== undefined) throw new RelayError('ERR_INVALID_FIELD', `${field} ${problem}`, { field });
}

export function deviceDeduplicationId(deviceId: string, type: 'event' | 'state', messageId: string): string {
  // NUL separators: none of the three parts can contain NUL, so distinct triples never hash the same input.
  return createHash('sha256').update(`${deviceId}\u0000${type}\u0000${messageId}`).digest('hex');
}

export function requestDeduplicationId(requestId: string, index?: number): string {
  const id = index === undefined ? requestId : `${requestId}#${index}`;
  // API Gateway request IDs fit as they are; anything else (a proxy's own ID format) is hashed to fit.
  return SQS_DEDUPLICATION_ID.test(id) ? id : createHash('sha256').update(id).digest('hex');
}
