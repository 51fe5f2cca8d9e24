/**
 * The client side of a measurement, run as a child process of the benchmark (bundled by esbuild, started with plain
 * `node`, so no TypeScript loader sits in its memory or its start-up):
 *
 *   node client-child.mjs <job.json> <answer.json>
 *
 * It runs the relay exactly as the SQS adapter does (`relayBatch()` over the batch's records, one gateway session),
 * the sample-style baseline, the plain mqtt.js loop, or the HTTP load generator, and writes what it measured.
 * Every relay run must confirm every record, and every baseline run must get every PUBACK: a run that does not is
 * not a measurement, and the child fails instead of answering.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { signGatewayJwt } from '../lib/jwt.js';
import { importSigningKey } from '../lib/keys/signing-key.js';
import { relayBatch } from '../lib/relay/relay-batch.js';
import type { InboundRecord } from '../lib/relay/route-records.js';
import { runSampleClient } from './baseline-sample-client.js';
import { benchMessages, queueRecords } from './bench-fleet.js';
import type { ChildAnswer, ChildFailure, ChildJob, GatewayAccess, HttpLoadJob, QueuedShape, RoundTripAnswer, RoundTripJob, RoundTripShapeResult, SessionAnswer, SessionJob } from './child-jobs.js';
import { runClosedLoop } from './http-load-generator.js';
import { runPlainLoop } from './plain-mqtt-loop.js';

interface Gateway {
  access: GatewayAccess;
  /** A fresh JWT, as every session signs one. */
  jwt(): Promise<string>;
}

async function gateway(access: GatewayAccess): Promise<Gateway> {
  // Imported once, as a warm Lambda container keeps the imported key.
  const key = await importSigningKey(await readFile(access.keyFile, 'utf8'), { origin: 'benchmark key file' });
  return { access, jwt: () => signGatewayJwt({ ...key, project: access.registry.project, lifetimeSeconds: 3600 }) };
}

function relayRecords(gw: Gateway, shape: QueuedShape): InboundRecord[] {
  return queueRecords(benchMessages(shape), { fifoGroup: shape.queue === 'fifo' ? gw.access.gatewayId : undefined });
}

/** Times one relay batch; returns its wall time and the attach burst's spread. Throws unless every record is confirmed. */
async function relayRun(gw: Gateway, records: readonly InboundRecord[], publishWindow: number, keyDelayMs = 0): Promise<{ wallMs: number; attachSpreadMs: number; confirmed: number }> {
  const started = performance.now();
  const { outcomes, sessions } = await relayBatch(records, {
    settings: {
      registry: gw.access.registry,
      gatewayIds: [gw.access.gatewayId],
      mqttHost: gw.access.endpoint.host,
      mqttPort: gw.access.endpoint.port,
      extraCaPem: gw.access.endpoint.caPem,
      connectTimeoutMs: 10_000,
      attachTimeoutMs: 5000,
      pubackTimeoutMs: 5000,
      configTimeoutMs: 5000,
      closeTimeoutMs: 2000,
      publishWindow,
    },
    // A key that takes `keyDelayMs` to come, as a cold container's fetch from Secrets Manager does.
    gatewayJwt: async () => {
      if (keyDelayMs > 0) await sleep(keyDelayMs);
      return gw.jwt();
    },
    deadline: Date.now() + 120_000,
  });
  const wallMs = performance.now() - started;
  const confirmed = outcomes.filter((o) => o.outcome === 'confirmed').length;
  if (confirmed !== records.length) {
    const failure = outcomes.find((o) => o.outcome !== 'confirmed');
    throw new Error(`the relay confirmed ${confirmed} of ${records.length} records (first failure: ${failure?.code ?? '?'} ${failure?.reason ?? ''})`);
  }
  const attaches = sessions.flatMap((s) => s.attachLatenciesMs);
  return { wallMs, confirmed, attachSpreadMs: attaches.length === 0 ? 0 : Math.max(...attaches) - Math.min(...attaches) };
}

async function baselineRun(gw: Gateway, shape: QueuedShape): Promise<number> {
  const messages = benchMessages(shape);
  const started = performance.now();
  const { published, gatewayErrors } = await runSampleClient({
    endpoint: gw.access.endpoint,
    registry: gw.access.registry,
    gatewayId: gw.access.gatewayId,
    jwt: await gw.jwt(),
    messages,
  });
  const wallMs = performance.now() - started;
  if (published !== messages.length || gatewayErrors > 0) {
    throw new Error(`the baseline published ${published} of ${messages.length} records with ${gatewayErrors} gateway errors`);
  }
  return wallMs;
}

async function roundTrips(job: RoundTripJob): Promise<RoundTripAnswer> {
  const gw = await gateway(job);
  // One discarded run of each, so that neither side's first measured run pays for loading and compiling code.
  const warmUp: QueuedShape = { records: 1, devices: 1, queue: 'fifo' };
  await relayRun(gw, relayRecords(gw, warmUp), job.publishWindow);
  await baselineRun(gw, warmUp);
  const shapes: RoundTripShapeResult[] = [];
  for (const shape of job.shapes) {
    const result: RoundTripShapeResult = { shape, relayMs: [], baselineMs: [], relayAttachSpreadMs: [] };
    for (let run = 0; run < job.runs; run++) {
      // Alternating, so that whatever else the machine does at a given moment falls on both sides alike.
      const relay = await relayRun(gw, relayRecords(gw, shape), job.publishWindow);
      result.relayMs.push(relay.wallMs);
      result.relayAttachSpreadMs.push(relay.attachSpreadMs);
      result.baselineMs.push(await baselineRun(gw, shape));
      if (shape.records === 10 && shape.devices === 10 && job.slowKeyMs > 0) {
        (result.relaySlowKeyMs ??= []).push((await relayRun(gw, relayRecords(gw, shape), job.publishWindow, job.slowKeyMs)).wallMs);
      }
    }
    shapes.push(result);
  }
  return { kind: 'round-trips', shapes };
}

async function session(job: SessionJob): Promise<SessionAnswer> {
  const gw = await gateway(job);
  if (job.warmUpRecords > 0) {
    // A warm container: one untimed session first, so code is compiled and per-process state (the TLS trust store,
    // the imported key) is in place, as after the first invocation of a Lambda container.
    const warmShape: QueuedShape = { records: job.warmUpRecords, devices: job.shape.devices, queue: job.shape.queue };
    if (job.client === 'relay') await relayRun(gw, relayRecords(gw, warmShape), job.publishWindow);
    else await runPlainLoop({ endpoint: job.endpoint, registry: job.registry, gatewayId: job.gatewayId, jwt: await gw.jwt(), messages: benchMessages(warmShape), window: job.publishWindow });
  }
  if (job.client === 'relay') {
    const records = relayRecords(gw, job.shape);
    const rssBeforeKb = Math.round(process.memoryUsage().rss / 1024);
    const { wallMs, confirmed } = await relayRun(gw, records, job.publishWindow);
    return { kind: 'session', client: 'relay', warm: job.warmUpRecords > 0, wallMs, delivered: confirmed, rssBeforeKb, maxRssKb: process.resourceUsage().maxRSS };
  }
  const messages = benchMessages(job.shape);
  const rssBeforeKb = Math.round(process.memoryUsage().rss / 1024);
  // Signing is inside the timed part, as it is for the relay, which signs a JWT for every session.
  const started = performance.now();
  const { acknowledged, gatewayErrors } = await runPlainLoop({
    endpoint: job.endpoint,
    registry: job.registry,
    gatewayId: job.gatewayId,
    jwt: await gw.jwt(),
    messages,
    window: job.publishWindow,
  });
  const wallMs = performance.now() - started;
  if (acknowledged !== messages.length || gatewayErrors > 0) {
    throw new Error(`the plain loop got ${acknowledged} of ${messages.length} PUBACKs with ${gatewayErrors} gateway errors`);
  }
  return { kind: 'session', client: 'plain', warm: job.warmUpRecords > 0, wallMs, delivered: acknowledged, rssBeforeKb, maxRssKb: process.resourceUsage().maxRSS };
}

async function httpLoad(job: HttpLoadJob): Promise<ChildAnswer> {
  const credentials = JSON.parse(await readFile(job.credentialsFile, 'utf8')) as { deviceId: string; key: string }[];
  return runClosedLoop({ url: job.url, credentials, concurrency: job.concurrency, durationMs: job.durationMs, marker: job.marker });
}

async function main(): Promise<void> {
  const [jobFile, answerFile] = process.argv.slice(2);
  if (jobFile === undefined || answerFile === undefined) throw new Error('usage: client-child <job.json> <answer.json>');
  const job = JSON.parse(await readFile(jobFile, 'utf8')) as ChildJob;
  let answer: ChildAnswer | ChildFailure;
  try {
    switch (job.kind) {
      case 'round-trips':
        answer = await roundTrips(job);
        break;
      case 'session':
        answer = await session(job);
        break;
      case 'http-load':
        answer = await httpLoad(job);
        break;
    }
  } catch (e) {
    answer = { kind: 'failure', message: (e as Error).message ?? String(e) };
  }
  await writeFile(answerFile, JSON.stringify(answer));
  process.exitCode = answer.kind === 'failure' ? 1 : 0;
}

await main();
