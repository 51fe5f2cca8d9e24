/**
 * Bounds a promise by an absolute time: whichever comes first, the promise settling or `at` (ms since the epoch)
 * passing. At `at` the result rejects with a RelayError of the given code; the work itself is not stopped, only no
 * longer waited for, and a later failure of it is not reported as unhandled. The timer is cleared either way, so a
 * settled race keeps no timer holding the event loop.
 *
 * @example
 * await withDeadline(store.noteRelayed(ids, new Date()), deadline, 'ERR_DEADLINE');
 */
import { RelayError, type RelayErrorCode } from './errors.js';

/** The longest delay setTimeout takes; a longer one fires at once. Later deadlines are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function withDeadline<T>(promise: Promise<T>, at: number, code: RelayErrorCode): Promise<T> {
  const late = (): RelayError => new RelayError(code, `not done by the deadline, ${new Date(at).toISOString()}`);
  if (Number.isNaN(at)) return Promise.reject(new RelayError('ERR_INTERNAL', 'the deadline is not a number'));
  if (at === Infinity) return promise;
  if (at - Date.now() <= 0) {
    // Abandoned: whatever it ends in is no longer anyone's concern.
    promise.catch(() => {});
    return Promise.reject(late());
  }
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    const arm = (): void => {
      const left = at - Date.now();
      if (left <= 0) reject(late());
      else timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    };
    arm();
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
