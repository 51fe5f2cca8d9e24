/**
 * What a failed SQS send means for the sender, as a RelayError and whether sending the same message again can
 * succeed:
 *
 * | failure | code | retryable |
 * |---|---|---|
 * | throttling (the call, or an entry) | ERR_QUEUE_THROTTLED | yes: slow down, try again shortly |
 * | network, SQS or KMS trouble (no answer, a 5xx, an entry failed on the service's side) | ERR_QUEUE_UNAVAILABLE | yes |
 * | the request itself refused (a missing queue, a bad group or deduplication ID) | ERR_QUEUE_UNAVAILABLE | no |
 *
 * Either way nothing was queued and nothing was lost: the producer still holds the message. The SQS error's name
 * and message are kept on the RelayError (message and `cause`) for logs; they never reach a device.
 *
 * @example
 * try { await client.send(cmd) } catch (e) { throw queueFailure(e) }
 */
import { RelayError } from '../errors.js';

/** A failure of one message: the error, and whether sending it again may succeed. */
export interface QueueFailure {
  error: RelayError;
  retryable: boolean;
}

/**
 * Error names SQS and the AWS JSON protocol use for throttling: `RequestThrottled` (SQS's own), `KmsThrottled`
 * (the queue's KMS key is throttled), and the protocol-wide ones.
 */
const THROTTLING_NAMES = new Set([
  'RequestThrottled',
  'KmsThrottled',
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'TooManyRequestsException',
  'RequestLimitExceeded',
]);

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $fault?: unknown;
  $metadata?: { httpStatusCode?: number };
  $retryable?: { throttling?: boolean };
}

export function isThrottling(e: unknown): boolean {
  const err = (e ?? {}) as SdkErrorShape;
  return (
    (typeof err.name === 'string' && THROTTLING_NAMES.has(stripNamespace(err.name))) ||
    err.$retryable?.throttling === true ||
    err.$metadata?.httpStatusCode === 429
  );
}

/** The RelayError for an SQS call that failed as a whole. `queue` names the queue in the message. */
export function queueFailure(e: unknown, queue = 'the relay queue'): RelayError {
  return callFailure(e, queue).error;
}

/**
 * An SQS call that failed as a whole, with whether to try again: throttling and anything without an answer from
 * SQS (network errors carry a Node code such as ECONNREFUSED, not an SQS name) or with a server fault may pass
 * next time; a request SQS refused as the sender's fault will not.
 */
export function callFailure(e: unknown, queue = 'the relay queue'): QueueFailure {
  const err = (e ?? {}) as SdkErrorShape;
  const name = typeof err.code === 'string' ? err.code : typeof err.name === 'string' ? err.name : 'Error';
  const detail = typeof err.message === 'string' && err.message !== '' ? `${name}: ${err.message}` : name;
  if (isThrottling(e)) {
    return { error: new RelayError('ERR_QUEUE_THROTTLED', `${queue} is throttling sends (${detail})`, { cause: e }), retryable: true };
  }
  return {
    error: new RelayError('ERR_QUEUE_UNAVAILABLE', `${queue} could not take the message (${detail})`, { cause: e }),
    retryable: err.$fault !== 'client',
  };
}

/**
 * One entry SendMessageBatch listed under `Failed`. A throttled entry may be sent again whatever its `SenderFault`
 * says; any other entry SQS blames on the sender will fail the same way again.
 */
export function entryFailure(failed: { Code?: string; Message?: string; SenderFault?: boolean } | undefined, queue = 'the relay queue'): QueueFailure {
  const name = failed?.Code ?? 'UnknownError';
  const message = failed?.Message ?? 'SQS reported no outcome for the entry';
  const detail = message ? `${name}: ${message}` : name;
  if (THROTTLING_NAMES.has(stripNamespace(name))) {
    return { error: new RelayError('ERR_QUEUE_THROTTLED', `${queue} is throttling sends (${detail})`), retryable: true };
  }
  return { error: new RelayError('ERR_QUEUE_UNAVAILABLE', `${queue} refused the message (${detail})`), retryable: failed?.SenderFault !== true };
}

/** SQS's query-compatible codes come as `AWS.SimpleQueueService.RequestThrottled`; the JSON ones without a prefix. */
function stripNamespace(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}
