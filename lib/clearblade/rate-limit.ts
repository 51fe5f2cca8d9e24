/**
 * Pacing for the device-manager client: a token bucket per kind of call (ClearBlade counts reads, creates and
 * deletes, and updates against separate per-minute quotas), and a limit on calls in flight at once.
 *
 * The bucket refills continuously at its rate and holds at most one second of calls (or one call), so a quota of
 * 3,000 a minute becomes at most 50 calls in any second and never a burst of 3,000. When the server answers 429
 * anyway (another client shares the project's quota), `slowDown` halts the kind until the time the server named and
 * lowers its rate by a quarter (once per refused burst), so the run converges on what the server allows instead of
 * failing.
 *
 * @example
 * const creates = new TokenBucket(3000 / 60_000);      // per millisecond
 * await creates.take(signal);                            // waits for a token
 * const slots = new ConcurrencyLimit(16);
 * const release = await slots.acquire(signal); try { await call(); } finally { release(); }
 */

/** Rejects with the signal's reason when it aborts; resolves after `ms` otherwise. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private notBefore = 0;
  /** Callers wait in turn, so tokens go out in arrival order. */
  private queue: Promise<void> = Promise.resolve();

  /**
   * @param ratePerMs tokens per millisecond; Infinity for no limit.
   * @param minRatePerMs `slowDown` never lowers the rate below this.
   */
  constructor(
    private ratePerMs: number,
    private readonly minRatePerMs = Math.min(ratePerMs, 1 / 60_000),
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerMs > 0)) throw new RangeError(`rate must be positive (got ${ratePerMs})`);
    this.tokens = this.capacity;
    this.last = this.now();
  }

  get rate(): number {
    return this.ratePerMs;
  }

  /** One second of calls, and at least one. */
  private get capacity(): number {
    return Math.max(1, this.ratePerMs * 1000);
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + (t - this.last) * this.ratePerMs);
    this.last = t;
  }

  /** Resolves when a call may go; rejects with the signal's reason if it aborts first. */
  take(signal?: AbortSignal): Promise<void> {
    if (this.ratePerMs === Infinity && this.notBefore === 0) return signal?.aborted ? Promise.reject(signal.reason) : Promise.resolve();
    const turn = this.queue.then(() => this.waitForToken(signal));
    // The next caller waits for this one's turn, whether it got its token or gave up.
    this.queue = turn.catch(() => {});
    return turn;
  }

  private async waitForToken(signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const pause = this.notBefore - this.now();
      if (pause > 0) {
        await sleep(pause, signal);
        continue;
      }
      if (this.ratePerMs === Infinity) return;
      this.refill();
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      await sleep((1 - this.tokens) / this.ratePerMs, signal);
    }
  }

  /**
   * The server refused a call of this kind for its rate: no call goes before `pauseMs` from now, and the rate drops
   * to `factor` of what it was (not below the floor). The tokens saved up are dropped too.
   */
  slowDown(pauseMs: number, factor = 0.75): void {
    const t = this.now();
    // Calls in flight together are refused together: one refusal lowers the rate, the rest of that burst do not.
    const alreadyPaused = this.notBefore > t;
    this.notBefore = Math.max(this.notBefore, t + pauseMs);
    if (this.ratePerMs !== Infinity && !alreadyPaused) {
      this.refill();
      this.ratePerMs = Math.max(this.minRatePerMs, this.ratePerMs * factor);
      this.tokens = Math.min(this.tokens, 0);
    }
  }
}

export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: { resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal; onAbort: () => void }[] = [];

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`concurrency must be a positive integer (got ${max})`);
  }

  get inFlight(): number {
    return this.active;
  }

  /** Resolves with a release function once a slot is free. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.max) {
      this.active += 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => resolve(this.releaser()),
        reject,
        signal,
        onAbort: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', entry.onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next === undefined) {
        this.active -= 1;
        return;
      }
      next.signal?.removeEventListener('abort', next.onAbort);
      next.resolve();
    };
  }
}
