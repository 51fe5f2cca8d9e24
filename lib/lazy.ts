/**
 * A value loaded on first use, for the modules a handler loads only when it needs them (the AWS SDK clients: see
 * handlers/relay.ts on cold starts). Concurrent first calls share one load. A successful load is kept for the life of
 * the container; a failed one is not, so the next call loads again instead of failing until the container is
 * recycled.
 *
 * @example
 * const sdk = lazy(() => import('./sqs-sdk.js'));
 * const { SendMessageCommand } = await sdk(); // imported here, once
 */
export function lazy<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    if (pending === undefined) {
      // `load` is called inside the promise chain, so a synchronous throw is a failed load like any other.
      const attempt = Promise.resolve().then(load);
      pending = attempt;
      attempt.catch(() => {
        if (pending === attempt) pending = undefined;
      });
    }
    return pending;
  };
}
