/**
 * A closed-loop HTTP load generator for the ingest route: `concurrency` workers, each posting one reading, waiting
 * for the answer, and posting the next, until the time is up. Closed loop means the offered load adapts to the
 * server: the requests per second it reports are what the route sustains at that concurrency, and latency is never
 * inflated by requests queued on the generator's side. Node's fetch (undici) keeps connections alive, as a device
 * fleet behind API Gateway's keep-alive would.
 *
 * Each reading carries the run's marker and a sequence number, so the readings can be counted where they end up.
 *
 * @example
 * const answer = await runClosedLoop({ url, credentials, concurrency: 16, durationMs: 3000, marker: 'run-1' });
 */
import { percentile } from './statistics.js';
import type { HttpLoadAnswer } from './child-jobs.js';

export interface ClosedLoopOptions {
  url: string;
  credentials: readonly { deviceId: string; key: string }[];
  concurrency: number;
  durationMs: number;
  marker: string;
  /** Bound on one request; default 10 s. */
  requestTimeoutMs?: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<HttpLoadAnswer> {
  if (options.credentials.length === 0) throw new Error('the load generator needs at least one device');
  const statuses: Record<string, number> = {};
  const latencies: number[] = [];
  const acceptedSeqs: number[] = [];
  let seq = 0;
  const startedAtEpochMs = Date.now();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const end = started + options.durationMs;
  let lastAnswer = started;

  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const n = seq++;
      const device = options.credentials[n % options.credentials.length]!;
      const body = JSON.stringify({ marker: options.marker, seq: n, temperature: 20 + (n % 100) / 10 });
      const sentAt = performance.now();
      let status: string;
      try {
        const res = await fetch(`${options.url}/devices/${device.deviceId}/events`, {
          method: 'POST',
          headers: { authorization: `Device-Key ${device.key}`, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(options.requestTimeoutMs ?? 10_000),
        });
        // The body is read in full: the request is not over, for the client, until it is.
        await res.arrayBuffer();
        status = String(res.status);
        if (res.status === 202) acceptedSeqs.push(n);
      } catch {
        status = 'error';
      }
      const now = performance.now();
      latencies.push(now - sentAt);
      lastAnswer = Math.max(lastAnswer, now);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  const cpu = process.cpuUsage(cpuBefore);

  return {
    kind: 'http-load',
    sent: seq,
    statuses,
    acceptedSeqs,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: percentile(latencies, 100) },
    elapsedMs: lastAnswer - started,
    startedAtEpochMs,
    cpuMs: (cpu.user + cpu.system) / 1000,
  };
}
