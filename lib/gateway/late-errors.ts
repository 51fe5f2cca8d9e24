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
 * The window is measured from the PUBACKs: it stays open until `graceMs` after the last PUBACK of a record that
 * would be confirmed, and at least until the final barrier. An error is thus awaited `graceMs` after its record's
 * acknowledgement; since the detaches go out only once the records are acknowledged, their answers come a round trip
 * later, and a window no longer than the round trip to the bridge costs no wait at all. A window of 0 is closed from
 * the start: an error after its device's barrier un-confirms nothing, the rule exactly as a bridge that answers in
 * order allows it.
 *
 * @example
 * const window = new LateErrorWindow(50);
 * window.admits(device);              // true: no barrier yet, the error applies as usual
 * await window.close(deadline, lastAckAt); // until 50 ms after that PUBACK, then late errors are only counted
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
   * Called at the final barrier with the time of the last PUBACK of a record that would be confirmed (undefined when
   * there is none: a late error could change nothing): waits until `graceMs` after it, ending no later than `until`
   * (the session's deadline), then closes the window.
   */
  async close(until: number, lastConfirmableAckAt: number | undefined): Promise<void> {
    const wait = lastConfirmableAckAt === undefined || this.graceMs === 0 ? 0 : Math.min(lastConfirmableAckAt + this.graceMs, until) - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    this.closed = true;
  }
}
