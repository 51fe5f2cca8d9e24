/**
 * Waits for something the test cannot await directly (a reading at the bridge, a queue drained): polls `probe`
 * until it answers something other than undefined, or fails naming `what` after `timeoutMs`.
 *
 * @example
 * const event = await until('the reading at the bridge', () => stack.emulator.registry.events.find((e) => ...));
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
