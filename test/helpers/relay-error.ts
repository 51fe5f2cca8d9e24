/**
 * The RelayError a call throws (or a promise rejects with), for tests that check a refusal's code, field and
 * message. Anything else thrown, or nothing thrown, fails the test.
 *
 * @example
 * expect(thrownRelayError(() => parseQueueMessage('[]'), 'ERR_INVALID_MESSAGE').field).toBeUndefined();
 */
import { expect } from 'vitest';
import { RelayError, type RelayErrorCode } from '../../lib/errors.js';

export function thrownRelayError(fn: () => unknown, code?: RelayErrorCode): RelayError {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  return checked(thrown, code);
}

export async function rejectedRelayError(promise: Promise<unknown>, code?: RelayErrorCode): Promise<RelayError> {
  let thrown: unknown;
  try {
    await promise;
  } catch (e) {
    thrown = e;
  }
  return checked(thrown, code);
}

function checked(thrown: unknown, code: RelayErrorCode | undefined): RelayError {
  if (thrown === undefined) throw new Error(`expected a RelayError${code ? ` ${code}` : ''}, but nothing was thrown`);
  expect(thrown).toBeInstanceOf(RelayError);
  if (code !== undefined) expect((thrown as RelayError).code).toBe(code);
  return thrown as RelayError;
}
