/**
 * The HTTP path end to end, on the local stack (local/stack.ts: the real handlers behind the HTTP API adapter, the
 * SQS-compatible server, Lambda's SQS integration, the bridge emulator): the closed-loop generator
 * (http-load-generator.ts, in a child process) posts readings to the ingest route at a fixed concurrency; then the
 * benchmark waits until the relay has drained the queue and counts where the accepted readings ended up. Every
 * reading answered 202 must be at the bridge or in the dead-letter queue, once: an accepted reading that is nowhere
 * is a lost one, and the run fails.
 *
 * The generator runs in its own process, so that it does not take the stack's thread; the stack's own parts (the
 * ingest handler, the SQS server, the relay, the emulator) share the benchmark's process, as under `npm start`.
 *
 * @example
 * const result = await measureHttpPath(context);
 */
import { join } from 'node:path';
import { DEMO } from '../emulator/demo.js';
import { queueDepth } from '../local/queue-depth.js';
import { startStack, type Stack } from '../local/stack.js';
import type { BenchContext } from './bench-context.js';
import { privateFile, runClientChild } from './child-process.js';

export interface HttpRun {
  sent: number;
  accepted: number;
  statuses: Record<string, number>;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Accepted readings found at the bridge (each counted once). */
  atBridge: number;
  /** Messages that reached the dead-letter queue during the run. */
  deadLettered: number;
  /** Extra copies of readings at the bridge (at-least-once shows here). */
  duplicates: number;
  /** Readings at the bridge that the generator never saw accepted (a request that timed out on its side). */
  unacknowledgedArrivals: number;
  /** From the end of the load to the last accepted reading accounted for. */
  drainMs: number;
  /** Every accepted reading is at the bridge or dead-lettered: `atBridge + deadLettered === accepted`. */
  accountedFor: boolean;
}

export interface HttpResults {
  concurrency: number;
  durationMs: number;
  devices: string[];
  runs: HttpRun[];
}

interface Reading {
  marker?: unknown;
  seq?: unknown;
}

/** Sequence numbers of this run's readings the bridge recorded, with repeats. */
function readingsAtBridge(stack: Stack, marker: string): number[] {
  const seqs: number[] = [];
  for (const event of stack.emulator.registry.events) {
    const text = Buffer.from(event.data, 'base64').toString('utf8');
    if (!text.includes(marker)) continue;
    try {
      const reading = JSON.parse(text) as Reading;
      if (reading.marker === marker && typeof reading.seq === 'number') seqs.push(reading.seq);
    } catch {
      // Not one of ours.
    }
  }
  return seqs;
}

async function depth(stack: Stack, url: string): Promise<number> {
  const d = await queueDepth(stack.sqs.client, url);
  return d.waiting + d.inFlight;
}

export async function measureHttpPath(context: BenchContext): Promise<HttpResults> {
  const runs = context.quick ? 1 : 5;
  const concurrency = context.quick ? 4 : 16;
  const durationMs = context.quick ? 500 : 3000;
  const drainTimeoutMs = context.quick ? 30_000 : 180_000;
  context.progress(`HTTP path: ${runs} run(s) of ${durationMs} ms at concurrency ${concurrency} on the local stack`);

  const stack = await startStack({ ports: 'free', dataDir: join(context.workDir, 'stack'), scheduleEverySeconds: 0 });
  const results: HttpResults = { concurrency, durationMs, devices: [...DEMO.devices], runs: [] };
  try {
    const credentials = DEMO.devices.map((deviceId) => ({ deviceId, key: stack.deviceKey(deviceId) }));
    const credentialsFile = await privateFile(context.workDir, 'device-keys', JSON.stringify(credentials));
    for (let run = 0; run < runs; run++) {
      const marker = `bench-http-${run + 1}-${Date.now().toString(36)}`;
      const deadBefore = await depth(stack, stack.deadLetterQueue.url);
      const load = await runClientChild(context.bundles.clientChild, context.workDir, {
        kind: 'http-load',
        url: stack.urls.ingest,
        credentialsFile,
        concurrency,
        durationMs,
        marker,
      });
      const loadEnded = performance.now();
      const accepted = new Set(load.acceptedSeqs);

      // Drained: nothing waiting or in flight on the relay queue, and every accepted reading accounted for.
      let atBridge: number[] = [];
      let deadLettered = 0;
      const drainEnd = loadEnded + drainTimeoutMs;
      for (;;) {
        atBridge = readingsAtBridge(stack, marker);
        deadLettered = (await depth(stack, stack.deadLetterQueue.url)) - deadBefore;
        const found = new Set(atBridge.filter((s) => accepted.has(s))).size;
        const pending = await depth(stack, stack.relayQueue.url);
        if (pending === 0 && found + deadLettered >= accepted.size) break;
        if (performance.now() > drainEnd) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const drainMs = performance.now() - loadEnded;
      const distinct = new Set(atBridge);
      const found = [...distinct].filter((s) => accepted.has(s)).length;
      const httpRun: HttpRun = {
        sent: load.sent,
        accepted: accepted.size,
        statuses: load.statuses,
        requestsPerSecond: (load.sent / load.elapsedMs) * 1000,
        p50Ms: load.latencyMs.p50,
        p99Ms: load.latencyMs.p99,
        maxMs: load.latencyMs.max,
        atBridge: found,
        deadLettered,
        duplicates: atBridge.length - distinct.size,
        unacknowledgedArrivals: distinct.size - found,
        drainMs,
        accountedFor: found + deadLettered === accepted.size,
      };
      results.runs.push(httpRun);
    }
  } finally {
    await stack.close();
  }
  return results;
}
