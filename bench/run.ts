/**
 * `npm run bench`: every benchmark of the relay, side by side with what it is compared against, in one run.
 *
 *   npm run bench                      full run (several minutes); writes bench/results.md and bench/round-trips.svg
 *   npm run bench -- --quick           tiny sizes, one run each: proves the benchmark works (CI runs this)
 *   npm run bench -- --out <dir>       write results.md and round-trips.svg there instead
 *   npm run bench -- --only a,b        only these scenarios: round-trips, throughput, cold-start, http, scaling, fleet
 *
 * The results table goes to stdout, progress to stderr. The quick mode writes files only when given --out, so that
 * it never replaces a full run's results. The exit code is 1 when a scenario could not run or a run's deliveries
 * did not add up (an accepted reading that is nowhere); the table is still printed.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchContext } from './bench-context.js';
import { makeBenchFleet } from './bench-fleet.js';
import { buildChildBundle, buildHandlerBundles, buildMqttAloneBundle } from './bundles.js';
import { privateFile } from './child-process.js';
import { measureColdStart } from './cold-start.js';
import { measureFleetProvisioning } from './fleet-provisioning.js';
import { measureHttpPath } from './http-path.js';
import { renderResults, type BenchResults } from './results-report.js';
import { roundTripsSvg } from './round-trips-chart.js';
import { measureRoundTrips } from './round-trips.js';
import { measureScaling } from './scaling.js';
import { measureThroughput } from './throughput.js';

const SCENARIOS = ['round-trips', 'throughput', 'cold-start', 'http', 'scaling', 'fleet'] as const;
type Scenario = (typeof SCENARIOS)[number];

interface RunOptions {
  quick: boolean;
  outDir: string | undefined;
  only: Set<Scenario>;
}

function parseOptions(argv: string[], root: string): RunOptions {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' } },
    strict: true,
  });
  const quick = values.quick === true;
  const only = new Set<Scenario>();
  for (const name of (values.only ?? SCENARIOS.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`--only: unknown scenario ${name} (known: ${SCENARIOS.join(', ')})`);
    only.add(name as Scenario);
  }
  const outDir = values.out !== undefined ? resolve(values.out) : quick ? undefined : join(root, 'bench');
  return { quick, outDir, only };
}

/** Notes that explain the run's figures; written with the results. */
function runNotes(results: BenchResults): string[] {
  const notes: string[] = [];
  const spread = results.roundTrips?.rows.find((r) => r.path === 'emulator latency' && r.shape.devices >= 10 && r.shape.records <= 10);
  if (spread !== undefined) {
    const sorted = [...spread.relayAttachSpreadMs].sort((a, b) => a - b);
    const mid = sorted[Math.floor(sorted.length / 2)] ?? 0;
    if (mid >= 30) {
      notes.push(
        `The attach PUBACKs of one burst arrived spread over ${mid.toFixed(0)} ms (median): the emulator's accepted sockets still run with ` +
          "Nagle's algorithm on, so each burst of acknowledgements waits for the client's delayed ACK (up to 40 ms on Linux). Every pipelined " +
          'phase of the relay (attaches, publishes, detaches) pays it; the fix belongs in the emulator (`setNoDelay(true)` on accepted sockets).',
      );
    }
  }
  return notes;
}

async function main(): Promise<number> {
  const started = performance.now();
  const root = fileURLToPath(new URL('../', import.meta.url));
  const options = parseOptions(process.argv.slice(2), root);
  const progress = (line: string): void => {
    process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
  };
  const results: BenchResults = {
    meta: {
      date: new Date().toISOString(),
      cpuModel: cpus()[0]?.model ?? 'unknown CPU',
      cores: cpus().length,
      node: process.version,
      platform: `${process.platform} ${process.arch}`,
      mode: options.quick ? 'quick' : 'full',
      loadAverage: loadavg()[0] ?? 0,
    },
    problems: [],
  };

  const workDir = await mkdtemp(join(tmpdir(), 'iotcore-relay-bench-'));
  try {
    progress('building bundles (esbuild, serverless.yml settings)');
    const bundleDir = join(workDir, 'bundles');
    await mkdir(bundleDir);
    const clientChild = await buildChildBundle(root, bundleDir, 'bench/client-child.ts');
    const fleet = await makeBenchFleet(100);
    const context: BenchContext = {
      root,
      workDir,
      quick: options.quick,
      fleet,
      keyFile: await privateFile(workDir, 'gateway-key', fleet.gatewayPrivateKeyPem),
      bundles: { clientChild },
      progress,
    };

    const attempt = async (scenario: Scenario, work: () => Promise<void>): Promise<void> => {
      if (!options.only.has(scenario)) return;
      try {
        await work();
      } catch (e) {
        const message = `${scenario}: ${(e as Error).message}`;
        results.problems.push(message);
        progress(`FAILED ${message}`);
      }
    };
    await attempt('round-trips', async () => {
      results.roundTrips = await measureRoundTrips(context);
    });
    await attempt('throughput', async () => {
      results.throughput = await measureThroughput(context);
    });
    await attempt('cold-start', async () => {
      const handlers = await buildHandlerBundles(root, bundleDir);
      const mqttAlone = await buildMqttAloneBundle(root, bundleDir);
      const invocationChild = await buildChildBundle(root, bundleDir, 'bench/invocation-child.ts');
      results.coldStart = await measureColdStart(context, { handlers, mqttAlone, invocationChild });
    });
    await attempt('http', async () => {
      results.http = await measureHttpPath(context);
      for (const [i, r] of results.http.runs.entries()) {
        if (!r.accountedFor) {
          results.problems.push(`http: run ${i + 1}: ${r.accepted} readings accepted, ${r.atBridge} at the bridge and ${r.deadLettered} dead-lettered after ${Math.round(r.drainMs)} ms`);
        }
      }
    });
    await attempt('scaling', async () => {
      results.scaling = await measureScaling(context);
      for (const point of results.scaling.points) {
        const labelled = [...point.runs.map((run, n) => ({ label: `run ${n + 1}`, run })), ...point.warmUps.map((run, n) => ({ label: `warm-up of run ${n + 1}`, run }))];
        for (const { label, run } of labelled) {
          if (run.accountedFor) continue;
          results.problems.push(
            `scaling: ${point.gateways} gateways, ${label}: ${run.accepted} readings accepted, ${run.atBridge} at the bridge and ${run.deadLettered} dead-lettered after ${Math.round(run.drainMs)} ms`,
          );
        }
      }
    });
    await attempt('fleet', async () => {
      const f = await measureFleetProvisioning(context);
      results.fleet = f;
      for (const [when, check] of [
        ['after apply from empty', f.afterApply],
        [`after the resize to ${f.gatewaysAfter} gateways`, f.afterResize],
      ] as const) {
        if (check.exact !== check.devices) results.problems.push(`fleet: ${when}, ${check.devices - check.exact} of ${check.devices} devices are not bound to exactly their gateway`);
      }
      if (f.rebound / f.devices > f.reboundBound) {
        results.problems.push(`fleet: the resize rebound ${f.rebound} of ${f.devices} devices, more than 1/${f.gatewaysAfter} + 1 %`);
      }
    });
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }

  results.meta.durationMs = performance.now() - started;
  const markdown = renderResults(results, runNotes(results));
  process.stdout.write(markdown);
  if (options.outDir !== undefined) {
    await mkdir(options.outDir, { recursive: true });
    await writeFile(join(options.outDir, 'results.md'), markdown);
    if (results.roundTrips !== undefined) await writeFile(join(options.outDir, 'round-trips.svg'), roundTripsSvg(results.roundTrips));
    progress(`wrote ${join(options.outDir, 'results.md')}${results.roundTrips === undefined ? '' : ' and round-trips.svg'}`);
  }
  return results.problems.length === 0 ? 0 : 1;
}

process.exitCode = await main();
