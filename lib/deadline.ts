/**
 * Bounds a promise by an absolute time: whichever comes first, the promise settling or `at` (ms since the epoch)
 * passing. At `at` the result rejects with a RelayError of the given code; the work itself is not stopped, only no
 * longer waited for, and a later failure of it is not reported as unhandled. The timer is cleared either way, so a
 * settled race keeps no timer holding the event loop.
 *
 * Given a function instead of a promise, the work is started only if `at` has not passed yet.
 *
 * @example
 * await withDeadline(() => store.noteRelayed(ids, new Date()), deadline, 'ERR_DEADLINE'); // not started when late
 */
import { RelayError, type RelayErrorCode } from './errors.js';

/** The longest delay setTimeout takes; a longer one fires at once. Later deadlines are reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function withDeadline<T>(work: Promise<T> | (() => Promise<T>), at: number, code: RelayErrorCode): Promise<T> {
  const late = (): RelayError => new RelayError(code, `not done by the deadline, ${new Date(at).toISOString()}`);
  if (Number.isNaN(at)) return Promise.reject(new RelayError('ERR_INTERNAL', 'the deadline is not a number'));
  if (at !== Infinity && at - Date.now() <= 0) {
    // Abandoned, or never started: whatever a started one ends in is no longer anyone's concern.
    if (typeof work !== 'function') work.catch(() => {});
    return Promise.reject(late());
  }
  const promise = typeof work === 'function' ? Promise.resolve().then(work) : work;
  if (at === Infinity) return promise;
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
