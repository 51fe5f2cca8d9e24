/**
 * Sends items with at most `window` of them unacknowledged at once: the next goes out as soon as one ends. The
 * session uses it for record PUBLISHes, whose PUBACKs come back in order on one connection, so a full window keeps
 * the bridge busy without letting an unbounded number of records wait on one slow answer.
 *
 * @example
 * const { maxInFlight } = await sendWindowed(units, 32, (unit, onEnd) => {
 *   if (!attached(unit.deviceId)) return false; // skipped: takes no place in the window
 *   publish(unit, onEnd);                       // `onEnd` is called once, when its answer (or its end) comes
 *   return true;
 * });
 */
export async function sendWindowed<T>(items: readonly T[], window: number, send: (item: T, onEnd: () => void) => boolean): Promise<{ maxInFlight: number }> {
  let next = 0;
  let inFlight = 0;
  let maxInFlight = 0;
  let filling = false;
  await new Promise<void>((resolve) => {
    const fill = (): void => {
      while (inFlight < window && next < items.length) {
        const item = items[next++]!;
        inFlight++;
        if (!send(item, onEnd)) {
          inFlight--;
          continue;
        }
        maxInFlight = Math.max(maxInFlight, inFlight);
      }
      if (inFlight === 0 && next >= items.length) resolve();
    };
    // One callback for every item. An item that ends while `fill` runs (ended at once by `send`) only frees its
    // place; the loop goes on from there.
    const onEnd = (): void => {
      inFlight--;
      if (!filling) refill();
    };
    const refill = (): void => {
      filling = true;
      try {
        fill();
      } finally {
        filling = false;
      }
    };
    refill();
  });
  return { maxInFlight };
}
