/**
 * Relay scaling on the local stack: the same sustained ingestion, readings spread over 10,000 devices, relayed
 * through a pool of 1, 4 and 16 gateways. Each device is bound to its gateway (`gatewayFor`), and the relay's FIFO
 * message group is that gateway, so the pool size decides how many batches run at once and how many gateway
 * sessions a batch opens. What is measured per pool size: readings per second accepted by the ingest and delivered
 * to the bridge, the gateway sessions the bridge accepted, CPU time per reading of the stack's process and of the
 * load generator's, ingest latency, the drain time after the load, and the accounting: every reading answered 202
 * must be at the bridge or in the dead-letter queue, once.
 *
 * The stack keeps per-process state (handlers are built once per container, as in Lambda), so each point runs in
 * a fresh process of its own (scaling-stack.ts), which starts the generator (http-load-generator.ts) as its own
 * child. Pool sizes take turns run by run, so that whatever else the machine does falls on all of them alike. On a
 * shared 2-core machine the figures are a shape and a cost per reading, not a ceiling: the whole stack is one Node
 * thread, and the generator takes the other core.
 *
 * @example
 * const results = await measureScaling(context);
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchContext } from './bench-context.js';
import { lastLines, privateFile, runNode } from './child-process.js';

export const POOL_SIZES = [1, 4, 16] as const;

/** `gw-1` ... `gw-N`; `gw-1` is the demo gateway, whose key the whole pool shares. */
export function scalingPool(gateways: number): string[] {
  return Array.from({ length: gateways }, (_, i) => `gw-${i + 1}`);
}

/** What one stack process is asked to do: seed the registry, warm up, then one measured run. */
export interface ScalingJob {
  kind: 'scaling-point';
  gateways: number;
  devices: number;
  concurrency: number;
  durationMs: number;
  /** An untimed load first (0: none), so the measured run does not pay for compiling code and first sessions. */
  warmUpMs: number;
  /** How long the idle stack's CPU is measured, between the warm-up and the run. */
  idleMs: number;
  drainTimeoutMs: number;
  /** The stack's keys and secrets; shared by the points of one benchmark, which run one after another. */
  dataDir: string;
  workDir: string;
  /** The bundled client child that runs the load generator. */
  clientChild: string;
}

export interface ScalingRun {
  sent: number;
  accepted: number;
  statuses: Record<string, number>;
  /** Accepted readings per second of the load (first request to last answer). */
  acceptedPerSecond: number;
  /** Accepted readings at the bridge per second, from the first request to the last arrival. */
  deliveredPerSecond: number;
  /** Readings that arrived after the load ended, per second until the last arrival: the relay with the ingest quiet. */
  drainDeliveredPerSecond: number;
  deliveredAfterLoad: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Accepted readings found at the bridge (each counted once). */
  atBridge: number;
  deadLettered: number;
  /** Extra copies at the bridge (at-least-once shows here). */
  duplicates: number;
  /** Readings at the bridge that the generator never saw accepted (a request that timed out on its side). */
  unacknowledgedArrivals: number;
  /** Distinct gateways the readings arrived through. */
  gatewaysCarrying: number;
  /** Gateway sessions the bridge accepted from the start of the load to the end of the drain. */
  sessions: number;
  /** Relay invocations (batches) over the same time. */
  batches: number;
  /** Records the relay sent back to the queue (they come back and count once delivered). */
  retried: number;
  /** CPU time (user + system) of the stack's process from the start of the load to the end of the drain. */
  stackCpuMs: number;
  /** CPU time of the generator's process over its load. */
  generatorCpuMs: number;
  /** From the end of the load to the last accepted reading accounted for. */
  drainMs: number;
  /** `atBridge + deadLettered === accepted`. */
  accountedFor: boolean;
}

export interface ScalingAnswer {
  kind: 'scaling-point';
  gateways: number;
  /** Creating the devices at the bridge and binding each to its gateway. */
  seedMs: number;
  /** CPU of the idle stack (its pollers and timers), ms per second. */
  idleCpuMsPerSecond: number;
  warmUp?: ScalingRun;
  run: ScalingRun;
}

export interface ScalingPoint {
  gateways: number;
  runs: ScalingRun[];
  warmUps: ScalingRun[];
  seedMs: number[];
  idleCpuMsPerSecond: number[];
}

export interface ScalingResults {
  devices: number;
  concurrency: number;
  durationMs: number;
  warmUpMs: number;
  runs: number;
  points: ScalingPoint[];
}

/** Starts one stack process for a point and returns its answer; throws with the child's reason when it failed. */
async function runStackProcess(context: BenchContext, job: ScalingJob): Promise<ScalingAnswer> {
  const jobFile = await privateFile(context.workDir, 'scaling-job', JSON.stringify(job));
  const answerFile = join(context.workDir, `scaling-answer-${randomUUID()}.json`);
  try {
    const run = await runNode(['--import', 'tsx', join(context.root, 'bench/scaling-stack.ts'), jobFile, answerFile], {
      cwd: context.root,
      timeoutMs: job.drainTimeoutMs * 2 + job.warmUpMs + job.durationMs + 120_000,
    });
    let answer: ScalingAnswer | { kind: 'failure'; message: string } | undefined;
    try {
      answer = JSON.parse(await readFile(answerFile, 'utf8')) as ScalingAnswer | { kind: 'failure'; message: string };
    } catch {
      answer = undefined;
    }
    if (answer === undefined || answer.kind === 'failure') {
      throw new Error(`stack process with ${job.gateways} gateways failed: ${answer?.kind === 'failure' ? answer.message : `exit code ${String(run.code)}: ${lastLines(run.stderr)}`}`);
    }
    return answer;
  } finally {
    await rm(jobFile, { force: true });
    await rm(answerFile, { force: true });
  }
}

export async function measureScaling(context: BenchContext): Promise<ScalingResults> {
  const runs = context.quick ? 1 : 3;
  const devices = context.quick ? 200 : 10_000;
  const concurrency = context.quick ? 4 : 16;
  const durationMs = context.quick ? 400 : 8000;
  const warmUpMs = context.quick ? 200 : 1500;
  const idleMs = context.quick ? 200 : 2000;
  const drainTimeoutMs = context.quick ? 30_000 : 180_000;
  context.progress(
    `relay scaling: ${POOL_SIZES.join(', ')} gateways, ${runs} run(s) of ${durationMs} ms at concurrency ${concurrency}, readings over ${devices.toLocaleString('en-US')} devices`,
  );
  const results: ScalingResults = {
    devices,
    concurrency,
    durationMs,
    warmUpMs,
    runs,
    points: POOL_SIZES.map((gateways) => ({ gateways, runs: [], warmUps: [], seedMs: [], idleCpuMsPerSecond: [] })),
  };
  const dataDir = join(context.workDir, 'scaling-stack');
  for (let run = 0; run < runs; run++) {
    for (const point of results.points) {
      context.progress(`relay scaling: run ${run + 1}/${runs}, ${point.gateways} gateway${point.gateways === 1 ? '' : 's'}`);
      const answer = await runStackProcess(context, {
        kind: 'scaling-point',
        gateways: point.gateways,
        devices,
        concurrency,
        durationMs,
        warmUpMs,
        idleMs,
        drainTimeoutMs,
        dataDir,
        workDir: context.workDir,
        clientChild: context.bundles.clientChild,
      });
      point.runs.push(answer.run);
      if (answer.warmUp !== undefined) point.warmUps.push(answer.warmUp);
      point.seedMs.push(answer.seedMs);
      point.idleCpuMsPerSecond.push(answer.idleCpuMsPerSecond);
    }
  }
  return results;
}
