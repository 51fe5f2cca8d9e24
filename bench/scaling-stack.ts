/**
 * One point of the relay-scaling benchmark (scaling.ts), in a process of its own, run with the TypeScript loader as
 * `npm start` runs the stack:
 *
 *   node --import tsx bench/scaling-stack.ts <job.json> <answer.json>
 *
 * It starts the local stack with a pool of `gateways` gateways sharing the demo gateway's key, creates the devices
 * at the bridge, each bound to its gateway (`gatewayFor`, the function the ingest and the relay route by), and
 * hands the load generator (a child of this process) the devices' Device-Key credentials. After an untimed warm-up
 * and a look at what the idle stack costs, one measured run: the load, then the drain, until every accepted reading
 * is at the bridge or dead-lettered. CPU time is this process's (`process.cpuUsage()`: the ingest, the SQS and
 * DynamoDB servers, the relay and the bridge emulator together) and the generator's, apart.
 *
 * @example
 * // see scaling.ts, which starts it once per pool size and run
 */
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEMO } from '../emulator/demo.js';
import type { PubsubMessage } from '../emulator/registry.js';
import { gatewayFor } from '../lib/gateway-pool.js';
import { queueDepth } from '../local/queue-depth.js';
import { startStack, type Stack } from '../local/stack.js';
import { deviceName } from './bench-fleet.js';
import { privateFile, runClientChild } from './child-process.js';
import { scalingPool, type ScalingAnswer, type ScalingJob, type ScalingRun } from './scaling.js';

interface Arrival {
  data: string;
  gatewayId: string | undefined;
  /** Epoch ms. */
  at: number;
}

interface Reading {
  marker?: unknown;
  seq?: unknown;
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};

async function depth(stack: Stack, url: string): Promise<number> {
  const d = await queueDepth(stack.sqs.client, url);
  return d.waiting + d.inFlight;
}

/** The readings of `marker` among the arrivals, repeats included, with the time each arrived and its gateway. */
function readingsOf(arrivals: readonly Arrival[], marker: string): { seq: number; at: number; gatewayId: string | undefined }[] {
  const readings: { seq: number; at: number; gatewayId: string | undefined }[] = [];
  for (const a of arrivals) {
    const text = Buffer.from(a.data, 'base64').toString('utf8');
    if (!text.includes(marker)) continue;
    try {
      const reading = JSON.parse(text) as Reading;
      if (reading.marker === marker && typeof reading.seq === 'number') readings.push({ seq: reading.seq, at: a.at, gatewayId: a.gatewayId });
    } catch {
      // Not one of ours.
    }
  }
  return readings;
}

interface LoadSettings {
  marker: string;
  durationMs: number;
}

/** One load from the generator, then the drain; the accounting of every reading it got accepted. */
async function loadAndDrain(stack: Stack, job: ScalingJob, credentialsFile: string, arrivals: Arrival[], load: LoadSettings): Promise<ScalingRun> {
  arrivals.length = 0;
  const deadBefore = await depth(stack, stack.deadLetterQueue.url);
  const statsBefore = stack.relayStats();
  const sessionsBefore = stack.emulator.connectionsAccepted;
  const cpuBefore = process.cpuUsage();

  const answer = await runClientChild(job.clientChild, job.workDir, {
    kind: 'http-load',
    url: stack.urls.ingest,
    credentialsFile,
    concurrency: job.concurrency,
    durationMs: load.durationMs,
    marker: load.marker,
  });
  const loadEnded = performance.now();
  const loadEndedAt = Date.now();
  const accepted = new Set(answer.acceptedSeqs);

  // Drained: nothing waiting or in flight on the relay queue, and every accepted reading accounted for. Counting
  // arrivals is cheap; the readings are decoded only once their count says they may all be there.
  const drainEnd = loadEnded + job.drainTimeoutMs;
  let deadLettered = 0;
  let readings = readingsOf([], load.marker);
  for (;;) {
    const pending = await depth(stack, stack.relayQueue.url);
    deadLettered = (await depth(stack, stack.deadLetterQueue.url)) - deadBefore;
    if (pending === 0 && arrivals.length + deadLettered >= accepted.size) {
      readings = readingsOf(arrivals, load.marker);
      const found = new Set(readings.map((r) => r.seq).filter((s) => accepted.has(s))).size;
      if (found + deadLettered >= accepted.size) break;
    }
    if (performance.now() > drainEnd) {
      readings = readingsOf(arrivals, load.marker);
      break;
    }
    await sleep(100);
  }
  const drainMs = performance.now() - loadEnded;
  const stackCpuMs = cpuMs(cpuBefore);
  const sessions = stack.emulator.connectionsAccepted - sessionsBefore;
  const statsAfter = stack.relayStats();

  // First arrival of each accepted reading.
  const arrivedAt = new Map<number, number>();
  for (const r of readings) if (accepted.has(r.seq) && !arrivedAt.has(r.seq)) arrivedAt.set(r.seq, r.at);
  const found = arrivedAt.size;
  let lastAt = 0;
  for (const at of arrivedAt.values()) lastAt = Math.max(lastAt, at);
  const afterLoad = [...arrivedAt.values()].filter((at) => at > loadEndedAt).length;
  const distinct = new Set(readings.map((r) => r.seq));
  return {
    sent: answer.sent,
    accepted: accepted.size,
    statuses: answer.statuses,
    acceptedPerSecond: (accepted.size / answer.elapsedMs) * 1000,
    deliveredPerSecond: lastAt > answer.startedAtEpochMs ? (found / (lastAt - answer.startedAtEpochMs)) * 1000 : Number.NaN,
    drainDeliveredPerSecond: afterLoad > 0 && lastAt > loadEndedAt ? (afterLoad / (lastAt - loadEndedAt)) * 1000 : Number.NaN,
    deliveredAfterLoad: afterLoad,
    p50Ms: answer.latencyMs.p50,
    p99Ms: answer.latencyMs.p99,
    maxMs: answer.latencyMs.max,
    atBridge: found,
    deadLettered,
    duplicates: readings.length - distinct.size,
    unacknowledgedArrivals: distinct.size - found,
    gatewaysCarrying: new Set(readings.flatMap((r) => (r.gatewayId === undefined ? [] : [r.gatewayId]))).size,
    sessions,
    batches: statsAfter.batches - statsBefore.batches,
    retried: statsAfter.retried - statsBefore.retried,
    stackCpuMs,
    generatorCpuMs: answer.cpuMs,
    drainMs,
    accountedFor: found + deadLettered === accepted.size,
  };
}

async function measurePoint(job: ScalingJob): Promise<ScalingAnswer> {
  const pool = scalingPool(job.gateways);
  const stack = await startStack({ ports: 'free', dataDir: job.dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR', gatewayIds: pool });
  const arrivals: Arrival[] = [];
  const onEvent = (msg: PubsubMessage): void => {
    arrivals.push({ data: msg.data, gatewayId: msg.attributes.gatewayId, at: Date.now() });
  };
  try {
    const seedStarted = performance.now();
    const registry = stack.emulator.registry;
    // The stack's own demo devices are already bound to their gateway in the pool; they count among the fleet, so
    // that one gateway carries exactly job.devices devices, within the 10,000 a gateway may have bound.
    const existing = registry.listDevices(DEMO.registry).filter((d) => d.gatewayConfig.gatewayType !== 'GATEWAY').map((d) => d.id);
    const created = Array.from({ length: Math.max(0, job.devices - existing.length) }, (_, i) => deviceName(i));
    for (const deviceId of created) {
      registry.createDevice(DEMO.registry, { id: deviceId });
      registry.bind(DEMO.registry, gatewayFor(deviceId, pool), deviceId);
    }
    const devices = [...existing, ...created];
    const seedMs = performance.now() - seedStarted;
    const credentials = devices.map((deviceId) => ({ deviceId, key: stack.deviceKey(deviceId) }));
    const credentialsFile = await privateFile(job.workDir, 'scaling-device-keys', JSON.stringify(credentials));
    registry.on('event', onEvent);

    const stamp = `${job.gateways}-${Date.now().toString(36)}`;
    const warmUp = job.warmUpMs > 0 ? await loadAndDrain(stack, job, credentialsFile, arrivals, { marker: `bench-scaling-warm-up-${stamp}`, durationMs: job.warmUpMs }) : undefined;

    const idleBefore = process.cpuUsage();
    const idleStarted = performance.now();
    await sleep(job.idleMs);
    const idleCpuMsPerSecond = (cpuMs(idleBefore) / (performance.now() - idleStarted)) * 1000;

    const run = await loadAndDrain(stack, job, credentialsFile, arrivals, { marker: `bench-scaling-${stamp}`, durationMs: job.durationMs });
    return { kind: 'scaling-point', gateways: job.gateways, seedMs, idleCpuMsPerSecond, ...(warmUp === undefined ? {} : { warmUp }), run };
  } finally {
    stack.emulator.registry.off('event', onEvent);
    await stack.close();
  }
}

async function main(): Promise<void> {
  const [jobFile, answerFile] = process.argv.slice(2);
  if (jobFile === undefined || answerFile === undefined) throw new Error('usage: scaling-stack <job.json> <answer.json>');
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as ScalingJob;
  let answer: ScalingAnswer | { kind: 'failure'; message: string };
  try {
    answer = await measurePoint(job);
  } catch (e) {
    answer = { kind: 'failure', message: (e as Error).message ?? String(e) };
  }
  await writeFile(answerFile, JSON.stringify(answer));
  process.exitCode = answer.kind === 'failure' ? 1 : 0;
}

await main();
