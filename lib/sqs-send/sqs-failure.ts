/**
 * What a failed SQS send means for the sender: the queue is throttling us (ERR_QUEUE_THROTTLED: slow down, try again
 * shortly), or it cannot take the message now (ERR_QUEUE_UNAVAILABLE: network, SQS, KMS or deployment trouble).
 * Either way nothing was queued and nothing was lost: the device still holds its reading.
 *
 * The SQS error's name and message are kept on the RelayError (message and `cause`) for logs; they never reach a
 * device.
 *
 * @example
 * try { await client.send(cmd) } catch (e) { throw queueFailure(e) }
 */
import { RelayError } from '../errors.js';

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

/** The RelayError for an SQS call that failed as a whole. */
export function queueFailure(e: unknown): RelayError {
  const err = (e ?? {}) as SdkErrorShape;
  // Network errors carry a Node code (ECONNREFUSED, ETIMEDOUT...) rather than an SQS error name.
  const name = typeof err.code === 'string' ? err.code : typeof err.name === 'string' ? err.name : 'Error';
  const detail = typeof err.message === 'string' && err.message !== '' ? `${name}: ${err.message}` : name;
  if (isThrottling(e)) return new RelayError('ERR_QUEUE_THROTTLED', `the relay queue is throttling sends (${detail})`, { cause: e });
  return new RelayError('ERR_QUEUE_UNAVAILABLE', `the relay queue could not take the message (${detail})`, { cause: e });
}

/** The RelayError for one entry SendMessageBatch listed under `Failed`. */
export function queueEntryFailure(code: string | undefined, message: string | undefined): RelayError {
  const name = code ?? 'UnknownError';
  const detail = message ? `${name}: ${message}` : name;
  if (THROTTLING_NAMES.has(stripNamespace(name))) {
    return new RelayError('ERR_QUEUE_THROTTLED', `the relay queue is throttling sends (${detail})`);
  }
  return new RelayError('ERR_QUEUE_UNAVAILABLE', `the relay queue refused the message (${detail})`);
}

/** SQS's query-compatible codes come as `AWS.SimpleQueueService.RequestThrottled`; the JSON ones without a prefix. */
function stripNamespace(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}
