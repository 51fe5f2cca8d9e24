/**
 * Errors-topic messages that come after their device's final barrier (the answer to its detach). The barrier rule
 * holds on a bridge that answers a connection's packets in order; one that acknowledges a publish at its Pub/Sub
 * hand-off and reports a failure later may send the error after the detach PUBACK. The session therefore keeps
 * listening for a grace window after the final barrier (RELAY_LATE_ERROR_GRACE_MS, docs/relay.md):
 *
 * - an error about a device whose barrier has come is late, and counted;
 * - while the window is open it still un-confirms what it names, as an error before the barrier would;
 * - once the window has closed it is only counted: the record it names was confirmed already. That is the gap
 *   SECURITY.md ("Delivery") measures.
 *
 * The window opens at each device's own barrier and closes `graceMs` after the final one (the last detach answered).
 * A window of 0 is closed from the start: an error after its device's barrier un-confirms nothing, the rule exactly
 * as a bridge that answers in order allows it.
 *
 * @example
 * const window = new LateErrorWindow(50);
 * window.admits(device);              // true: no barrier yet, the error applies as usual
 * await window.close(deadline, true); // 50 ms of grace, then late errors are only counted
 */

export interface LateErrorCounts {
  /** Errors-topic messages about a device that came after its final barrier. */
  lateErrors: number;
  /** Of those, the ones that came after the grace window had closed: they changed nothing. */
  lateErrorsAfterGrace: number;
}

export class LateErrorWindow implements LateErrorCounts {
  lateErrors = 0;
  lateErrorsAfterGrace = 0;
  readonly graceMs: number;
  private closed = false;

  constructor(graceMs = 0) {
    this.graceMs = graceMs;
  }

  /**
   * Whether an error about `device` may still change outcomes; counts it when it is late. An error that names no
   * device of the session (the gateway's own subscriptions, say) is never late.
   */
  admits(device: { barrier: boolean } | undefined): boolean {
    if (device === undefined || !device.barrier) return true;
    this.lateErrors++;
    if (this.graceMs > 0 && !this.closed) return true;
    this.lateErrorsAfterGrace++;
    return false;
  }

  /**
   * Called at the final barrier: waits out the grace window, ending it no later than `until` (the session's
   * deadline), then closes it. Without `worthWaiting` (no record would be confirmed) it closes at once: a late error
   * could change nothing.
   */
  async close(until: number, worthWaiting: boolean): Promise<void> {
    const wait = worthWaiting ? Math.min(this.graceMs, until - Date.now()) : 0;
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.closed = true;
  }
}
