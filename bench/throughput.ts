/**
 * Throughput and memory of one big session: 10,000 records from 100 devices through one gateway session of the
 * relay (`relayBatch()`, as a standard-queue batch), against the plain mqtt.js loop (plain-mqtt-loop.ts) sending the
 * same messages with the same window, to the same emulator, with no injected latency. Each session runs in a fresh
 * child process, relay and plain loop alternately, so that:
 * - neither shares a thread with the emulator (which stays in the benchmark's process);
 * - `process.resourceUsage().maxRSS` at the end of the child is that session's peak memory.
 *
 * Each pair is measured twice: in a fresh process (the session is the first thing the process does, as in a cold
 * Lambda container: code not yet compiled, TLS trust store not yet built) and in a warm one (after an untimed
 * session of `warmUpRecords` in the same process, as in a warm container). Peak memory is taken from the fresh
 * processes, where the measured session is the only one.
 *
 * @example
 * const result = await measureThroughput(context);
 */
import { startEmulator } from '../emulator/index.js';
import { endpointOf, gatewayAccess, type BenchContext } from './bench-context.js';
import type { QueuedShape, SessionAnswer, SessionClient } from './child-jobs.js';
import { runClientChild, runNode } from './child-process.js';
import { PUBLISH_WINDOW } from './round-trips.js';

export interface ThroughputResults {
  shape: QueuedShape;
  publishWindow: number;
  runs: number;
  /** Records of the untimed session a warm process runs first. */
  warmUpRecords: number;
  /** Fresh processes: the measured session is the first thing the process does (a cold container). */
  relay: SessionAnswer[];
  plain: SessionAnswer[];
  /** The same session after a warm-up session in the same process (a warm container). */
  relayWarm: SessionAnswer[];
  plainWarm: SessionAnswer[];
  /** Peak RSS (KB) of `node -e 0`, each run: the floor any Node process starts from. */
  bareNodeMaxRssKb: number[];
}

export async function measureThroughput(context: BenchContext): Promise<ThroughputResults> {
  const shape: QueuedShape = context.quick ? { records: 300, devices: 10, queue: 'standard' } : { records: 10_000, devices: 100, queue: 'standard' };
  const warmUpRecords = context.quick ? 50 : 2000;
  const runs = context.quick ? 1 : 5;
  context.progress(`throughput: ${shape.records} records from ${shape.devices} devices in one session, window ${PUBLISH_WINDOW}, ${runs} run(s) each, cold and warm`);
  const emulator = await startEmulator({ registry: context.fleet.document, adminPort: null, latencyMs: 0, stateRateLimit: false });
  const results: ThroughputResults = { shape, publishWindow: PUBLISH_WINDOW, runs, warmUpRecords, relay: [], plain: [], relayWarm: [], plainWarm: [], bareNodeMaxRssKb: [] };
  try {
    const access = gatewayAccess(context, endpointOf(emulator));
    for (let run = 0; run < runs; run++) {
      for (const warm of [false, true]) {
        for (const client of ['relay', 'plain'] as SessionClient[]) {
          const before = emulator.registry.events.length;
          const answer = await runClientChild(context.bundles.clientChild, context.workDir, {
            kind: 'session',
            ...access,
            client,
            shape,
            publishWindow: PUBLISH_WINDOW,
            warmUpRecords: warm ? warmUpRecords : 0,
          });
          // What the client counted must be what the bridge recorded.
          const recorded = emulator.registry.events.length - before - (warm ? warmUpRecords : 0);
          if (recorded !== shape.records || answer.delivered !== shape.records) {
            throw new Error(`throughput: the ${client} session reported ${answer.delivered} deliveries, the bridge recorded ${recorded}`);
          }
          const list = warm ? (client === 'relay' ? results.relayWarm : results.plainWarm) : client === 'relay' ? results.relay : results.plain;
          list.push(answer);
          // The emulator keeps every event it receives (up to a cap); the benchmark has counted them.
          emulator.registry.events.length = 0;
        }
      }
      const bare = await runNode(['-e', 'process.stdout.write(String(process.resourceUsage().maxRSS))']);
      results.bareNodeMaxRssKb.push(Number(bare.stdout));
    }
  } finally {
    await emulator.close();
  }
  return results;
}
