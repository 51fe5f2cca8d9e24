/**
 * The benchmark's results as markdown: the machine and the run first, then the targets (met or not, with the
 * figures they are judged on), then one section per scenario. Every figure is a median of the run's repetitions;
 * every comparison is a ratio of medians measured side by side in the same run.
 *
 * @example
 * process.stdout.write(renderResults(results));
 */
import { INGEST_READING, PACKAGED_RELAY, type ColdStartResults, type ProcessTimings } from './cold-start.js';
import type { FleetResults } from './fleet-provisioning.js';
import type { HttpResults } from './http-path.js';
import type { RoundTripResults, RoundTripRow } from './round-trips.js';
import type { ScalingResults, ScalingRun } from './scaling.js';
import { median, ratio } from './statistics.js';
import type { ThroughputResults } from './throughput.js';

export interface BenchMeta {
  date: string;
  cpuModel: string;
  cores: number;
  node: string;
  platform: string;
  mode: 'full' | 'quick';
  /** 1-minute load average when the run started: how busy the shared machine was. */
  loadAverage: number;
  durationMs?: number;
}

export interface BenchResults {
  meta: BenchMeta;
  roundTrips?: RoundTripResults;
  throughput?: ThroughputResults;
  coldStart?: ColdStartResults;
  http?: HttpResults;
  scaling?: ScalingResults;
  fleet?: FleetResults;
  /** What went wrong: a scenario that could not run, a run whose deliveries did not add up. */
  problems: string[];
}

export interface TargetCheck {
  claim: string;
  target: string;
  measured: string;
  met: boolean | undefined;
}

const ms = (v: number): string => (!Number.isFinite(v) ? '–' : v < 100 ? v.toFixed(1) : v.toFixed(0));
const x = (v: number): string => (!Number.isFinite(v) ? '–' : v.toFixed(2));
const mb = (kb: number): string => (!Number.isFinite(kb) ? '–' : (kb / 1024).toFixed(1));
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(0)} KiB`;
const signedMs = (v: number): string => (!Number.isFinite(v) ? '–' : `${v > 0 ? '+' : v < 0 ? '−' : '±'}${ms(Math.abs(v))}`);
const int = (v: number): string => (!Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US'));
const verdict = (met: boolean | undefined): string => (met === undefined ? 'not measured' : met ? 'met' : '**missed**');

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function batchLabel(row: Pick<RoundTripRow['shape'], 'records' | 'devices' | 'queue'>): string {
  return `${row.records} record${row.records === 1 ? '' : 's'} / ${row.devices} device${row.devices === 1 ? '' : 's'} (${row.queue === 'fifo' ? 'FIFO' : 'standard queue'})`;
}

function findRow(rt: RoundTripResults | undefined, path: RoundTripRow['path'], records: number, devices: number): RoundTripRow | undefined {
  return rt?.rows.find((r) => r.path === path && r.shape.records === records && r.shape.devices === devices);
}

/** The claims the benchmark exists to check, judged on this run's medians. */
export function targetChecks(results: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const rt = results.roundTrips;
  const rtMs = rt?.roundTripMs ?? 25;
  for (const [path, trips] of [
    ['emulator latency', 5],
    ['delay proxy', 7],
  ] as const) {
    const row = findRow(rt, path, 10, 10);
    const relay = row === undefined ? Number.NaN : median(row.relayMs);
    const baseline = row === undefined ? Number.NaN : median(row.baselineMs);
    const limit = trips * rtMs + 30;
    checks.push({
      claim: `10 records from 10 devices, ${path}`,
      target: `≤ ${trips} round trips + 30 ms (${limit} ms)`,
      measured: `${ms(relay)} ms (${x(relay / rtMs)} round trips)`,
      met: row === undefined ? undefined : relay <= limit,
    });
    checks.push({
      claim: `10 records from 10 devices, ${path}, against the baseline`,
      target: '≤ 1/5 of the baseline (ratio ≤ 0.20)',
      measured: `${ms(relay)} / ${ms(baseline)} ms = ${x(ratio(relay, baseline))}`,
      met: row === undefined ? undefined : relay <= baseline / 5,
    });
  }
  const tp = results.throughput;
  for (const warm of [false, true]) {
    const relay = tp === undefined ? Number.NaN : median((warm ? tp.relayWarm : tp.relay).map(rate));
    const plain = tp === undefined ? Number.NaN : median((warm ? tp.plainWarm : tp.plain).map(rate));
    const r = ratio(relay, plain);
    checks.push({
      claim: `session throughput${tp === undefined ? '' : `, ${int(tp.shape.records)} records`}, relay / plain mqtt.js loop, ${warm ? 'warm process' : 'fresh process'}`,
      target: '≥ 0.80',
      measured: `${int(relay)} / ${int(plain)} msg/s = ${x(r)}`,
      met: tp === undefined ? undefined : r >= 0.8,
    });
  }
  const cs = results.coldStart;
  const relayImport = cs === undefined ? Number.NaN : median(cs.imports.find((i) => i.target === 'relay')?.importMs ?? []);
  const mqttImport = cs === undefined ? Number.NaN : median(cs.imports.find((i) => i.target === cs.mqttAlone.name)?.importMs ?? []);
  checks.push({
    claim: 'relay bundle import, against mqtt alone (bundled the same way)',
    target: '< 2×',
    measured: `${ms(relayImport)} / ${ms(mqttImport)} ms = ${x(ratio(relayImport, mqttImport))}×`,
    met: cs === undefined ? undefined : relayImport < 2 * mqttImport,
  });
  const coldIngest = coldTotal(cs?.invocation.functions.find((t) => t.name === INGEST_READING));
  const coldRelay = coldTotal(cs?.invocation.variants.find((t) => t.name === PACKAGED_RELAY));
  checks.push({
    claim: 'cold ingest request: import of the ingest bundle + its first answer to a valid reading (sent to SQS)',
    target: '≤ relay import + first invocation',
    measured: `${ms(coldIngest)} / ${ms(coldRelay)} ms = ${x(ratio(coldIngest, coldRelay))}`,
    met: cs === undefined ? undefined : coldIngest <= coldRelay,
  });
  const f = results.fleet;
  checks.push({
    claim: `fleet apply from empty${f === undefined ? '' : `, ${int(f.devices)} devices on ${f.gatewaysBefore} gateways`}: every device bound to exactly its gateway`,
    target: 'all',
    measured: f === undefined ? '–' : `${int(f.afterApply.exact)} of ${int(f.afterApply.devices)}`,
    met: f === undefined ? undefined : f.afterApply.exact === f.afterApply.devices,
  });
  checks.push({
    claim: `fleet resize${f === undefined ? '' : ` ${f.gatewaysBefore} → ${f.gatewaysAfter} gateways`}: devices rebound`,
    target:
      f === undefined
        ? '≤ 1/(N+1) + 1 %'
        : `≤ 1/${f.gatewaysAfter} + 1 % = ${(f.reboundBound * 100).toFixed(2)} %${f.reboundBound <= 0.02 ? ' (within 2 %)' : ''}`,
    measured: f === undefined ? '–' : `${int(f.rebound)} of ${int(f.devices)} = ${((f.rebound / f.devices) * 100).toFixed(2)} %`,
    met: f === undefined ? undefined : f.rebound / f.devices <= f.reboundBound && f.afterResize.exact === f.afterResize.devices,
  });
  return checks;
}

const rate = (s: { wallMs: number; delivered: number }): number => (s.delivered / s.wallMs) * 1000;

/** A container's whole cold start, summed per process before the median: import and first invocation happen in one process. */
function coldTotal(t: ProcessTimings | undefined): number {
  return t === undefined ? Number.NaN : median(t.importMs.map((m, i) => m + (t.firstMs[i] ?? Number.NaN)));
}

function roundTripSection(rt: RoundTripResults): string {
  const rows = rt.rows.map((r) => {
    const relay = median(r.relayMs);
    const baseline = median(r.baselineMs);
    return [r.path, batchLabel(r.shape), ms(relay), x(relay / rt.roundTripMs), ms(baseline), x(baseline / rt.roundTripMs), x(ratio(relay, baseline))];
  });
  const spreads = rt.rows.filter((r) => r.shape.devices >= 10 && r.shape.records <= 10);
  const spreadLines = spreads.map((r) => `${r.path}: ${ms(median(r.relayAttachSpreadMs))} ms`);
  const slowKeyLines = rt.rows.flatMap((r) => {
    if (r.relaySlowKeyMs === undefined || r.relaySlowKeyMs.length === 0) return [];
    const slow = median(r.relaySlowKeyMs);
    const atOnce = median(r.relayMs);
    return [`${r.path}: ${ms(slow)} ms against ${ms(atOnce)} ms with the key at once (${signedMs(slow - atOnce)} ms)`];
  });
  return [
    '## Round trips',
    '',
    `Injected round trip: ${rt.roundTripMs} ms. Median wall time of ${rt.runs} run${rt.runs === 1 ? '' : 's'}, the relay and the baseline taking turns in one process; ` +
      `"RT" is wall time / ${rt.roundTripMs} ms. The relay runs \`relayBatch()\` (publish window ${rt.publishWindow}); the baseline does what the public ` +
      'gateway samples do without their sleeps: every attach, publish and detach awaited in turn (bench/baseline-sample-client.ts). ' +
      '`emulator latency`: the emulator delays each packet it sends (handshakes are free); `delay proxy`: a TCP proxy delays every chunk ' +
      'by half the round trip each way (TCP and TLS handshakes pay too).',
    '',
    table(['network', 'batch', 'relay ms', 'relay RT', 'baseline ms', 'baseline RT', 'relay / baseline'], rows),
    '',
    `Spread of the attach PUBACKs within one burst of 10 attaches (relay, median): ${spreadLines.join('; ')}. ` +
      'Acknowledgements of one burst leave the bridge together; a spread near 40 ms means they are held back by Nagle\'s algorithm on the ' +
      "bridge's socket meeting the client's delayed ACK.",
    ...(slowKeyLines.length === 0
      ? []
      : [
          '',
          `A key that takes ${rt.slowKeyMs} ms to come (a cold container loading the Secrets Manager client and fetching the secret), 10 records from ` +
            `10 devices, relay, median, in the same runs: ${slowKeyLines.join('; ')}. The session opens TCP and TLS while the key comes, so behind ` +
            'the delay proxy the fetch hides behind the handshakes\' round trips; with the emulator\'s latency the handshakes are free and the fetch shows.',
        ]),
  ].join('\n');
}

function throughputSection(tp: ThroughputResults): string {
  const row = (label: string, sessions: ThroughputResults['relay']): string[] => [label, int(median(sessions.map(rate))), ms(median(sessions.map((s) => s.wallMs)))];
  const r = (a: ThroughputResults['relay'], b: ThroughputResults['relay']): string => x(ratio(median(a.map(rate)), median(b.map(rate))));
  return [
    '## Session throughput',
    '',
    `${int(tp.shape.records)} records from ${tp.shape.devices} devices in one gateway session, no injected latency, window ${tp.publishWindow}; ` +
      `each session in its own process, relay and plain loop taking turns; median of ${tp.runs}. The plain loop is mqtt.js alone doing the same ` +
      'protocol steps with the same messages (bench/plain-mqtt-loop.ts), trusting the same certificates (the system roots plus the emulator\'s CA, ' +
      'about 20 ms to build once per process). Wall time covers JWT signing, connection, attaches, publishes, detaches and ' +
      `disconnect. "Fresh": the session is the first thing its process does (a cold container); "warm": it follows an untimed ${int(tp.warmUpRecords)}-record ` +
      'session in the same process (a warm container).',
    '',
    table(
      ['client', 'messages/s', 'wall ms'],
      [
        row('relay (`relayBatch()`), fresh process', tp.relay),
        row('plain mqtt.js loop, fresh process', tp.plain),
        row('relay (`relayBatch()`), warm process', tp.relayWarm),
        row('plain mqtt.js loop, warm process', tp.plainWarm),
      ],
    ),
    '',
    `Relay / plain mqtt.js: **${r(tp.relay, tp.plain)}** in a fresh process, **${r(tp.relayWarm, tp.plainWarm)}** in a warm one.`,
    '',
    '## Memory',
    '',
    `Peak resident set size (\`process.resourceUsage().maxRSS\`) of the fresh processes above, median of ${tp.runs}; "before" is the RSS once the code is loaded and the batch built.`,
    '',
    table(
      ['process', 'peak RSS MB', 'RSS before the session MB'],
      [
        ['`node -e 0`', mb(median(tp.bareNodeMaxRssKb)), '–'],
        [`relay, ${int(tp.shape.records)}-record session`, mb(median(tp.relay.map((s) => s.maxRssKb))), mb(median(tp.relay.map((s) => s.rssBeforeKb)))],
        [`plain mqtt.js loop, ${int(tp.shape.records)} messages`, mb(median(tp.plain.map((s) => s.maxRssKb))), mb(median(tp.plain.map((s) => s.rssBeforeKb)))],
      ],
    ),
  ].join('\n');
}

function coldStartSection(cs: ColdStartResults): string {
  const bare = median(cs.imports.find((i) => i.target === 'node -e 0')?.processMs ?? []);
  const mqttImport = median(cs.imports.find((i) => i.target === cs.mqttAlone.name)?.importMs ?? []);
  const sizes = [...cs.bundles, cs.mqttAlone].map((b) => [
    b.name,
    kib(b.bytes),
    kib(b.gzipBytes),
    b.chunks === undefined || b.chunks.files === 0 ? '–' : `${b.chunks.files} files, ${kib(b.chunks.bytes)} (${kib(b.chunks.gzipBytes)} gzipped)`,
  ]);
  const imports = cs.imports.map((i) => {
    const imp = median(i.importMs);
    const proc = median(i.processMs);
    return [i.target, i.importMs.length === 0 ? '–' : ms(imp), ms(proc), i.target === 'node -e 0' ? '–' : ms(proc - bare), i.importMs.length === 0 ? '–' : `${x(ratio(imp, mqttImport))}×`];
  });
  const inv = cs.invocation;
  const processes = inv.variants[0]?.firstMs.length ?? 0;
  const row = (step: string, f: (v: ProcessTimings) => number): string[] => [step, ...inv.variants.map((v) => ms(f(v)))];
  const relay = inv.variants.find((v) => v.name === PACKAGED_RELAY);
  const perFunction = [...inv.functions, ...(relay === undefined ? [] : [relay])].map((t) => [
    t.name,
    ms(median(t.importMs)),
    ms(median(t.firstMs)),
    ms(coldTotal(t)),
    ms(median(t.warmMs)),
    [...new Set(t.secretCalls)].join(', '),
  ]);
  const [packaged, reference] = inv.variants;
  const moved =
    packaged === undefined || reference === undefined
      ? []
      : [
          '',
          `${packaged.name} against ${reference.name}, difference of the medians: import ${signedMs(median(packaged.importMs) - median(reference.importMs))} ms, ` +
            `first invocation ${signedMs(median(packaged.firstMs) - median(reference.firstMs))} ms, ` +
            `import + first invocation ${signedMs(coldTotal(packaged) - coldTotal(reference))} ms. The packaged relay evaluates the SDK in its first invocation ` +
            'instead of at import: the first two figures show the cost moving, the last what a cold container gains or loses overall.',
        ];
  return [
    '## Cold start',
    '',
    'Bundles as `npm run package` builds them (esbuild, minified, ES module, options from serverless.yml `custom.esbuild`); source maps not counted. ' +
      'What a handler loads with `import()` is split into chunks of its own (deploy/handler-chunks-plugin.cjs), which Node reads only when that import runs.',
    '',
    table(['bundle', 'size (read at import)', 'gzipped', 'chunks (read on demand)'], sizes),
    '',
    `Import in a fresh Node process with the functions' NODE_OPTIONS (\`${cs.nodeOptions || 'none'}\`), median of ${cs.runs}; the targets take turns. ` +
      '"import" is timed inside the process around `import()`; "process" is spawn to exit.',
    '',
    table(['module', 'import ms', 'process ms', 'process − `node -e 0` ms', 'import vs mqtt alone'], imports),
    '',
    `Each function in fresh processes: its bundle imported, then ${1 + inv.warmPerProcess} invocations, the first cold, with its environment from serverless.yml ` +
      `and local stand-ins for ${inv.localServices.join(', ')} (real SDK clients), the emulator without latency. The ingest answers a valid reading (a device key ` +
      'checked against the master secret from Secrets Manager, the record sent to SQS), or a bad request (refused on its path, before any secret or queue); ' +
      `config serves a stored config (the same secret, a DynamoDB read); poll enqueues its config-poll jobs (a DynamoDB scan, SQS); the relay takes SQS batches of ${inv.records} records from ${inv.records} devices. ` +
      `The kinds of process take turns. Median of ${processes} process${processes === 1 ? '' : 'es'} each, ms; the sum is taken per process.`,
    '',
    table(['function', 'import ms', 'first invocation ms', '**import + first invocation** ms', 'warm invocation ms', 'GetSecretValue calls'], perFunction),
    '',
    'The relay side by side with a reference build, in the same turns: the relay as packaged, which loads the AWS SDK from its chunks at first use, and a reference that evaluates Powertools Parameters and the ' +
      'Secrets Manager and DynamoDB clients at import (one file: the same handler plus static imports of those modules). ' +
      `Median of ${processes} process${processes === 1 ? '' : 'es'} each, ms.`,
    '',
    table(
      ['step', ...inv.variants.map((v) => v.name)],
      [
        row('import of the bundle', (v) => median(v.importMs)),
        row('first invocation (settings, key from Secrets Manager, TLS trust store, session, config table)', (v) => median(v.firstMs)),
        row('**import + first invocation** (the cold start)', (v) => coldTotal(v)),
        row('warm invocation', (v) => median(v.warmMs)),
        row('first − warm', (v) => median(v.firstMs) - median(v.warmMs)),
      ],
    ),
    ...moved,
  ].join('\n');
}

function httpSection(h: HttpResults): string {
  const rows = h.runs.map((r, i) => [
    String(i + 1),
    int(r.sent),
    int(r.accepted),
    int(r.requestsPerSecond),
    ms(r.p50Ms),
    ms(r.p99Ms),
    int(r.atBridge),
    int(r.deadLettered),
    int(r.duplicates),
    ms(r.drainMs),
    r.accountedFor ? 'yes' : '**NO**',
  ]);
  const med = (f: (r: HttpResults['runs'][number]) => number): number => median(h.runs.map(f));
  rows.push([
    '**median**',
    int(med((r) => r.sent)),
    int(med((r) => r.accepted)),
    `**${int(med((r) => r.requestsPerSecond))}**`,
    `**${ms(med((r) => r.p50Ms))}**`,
    `**${ms(med((r) => r.p99Ms))}**`,
    int(med((r) => r.atBridge)),
    int(med((r) => r.deadLettered)),
    int(med((r) => r.duplicates)),
    ms(med((r) => r.drainMs)),
    h.runs.every((r) => r.accountedFor) ? 'yes' : '**NO**',
  ]);
  const statuses = [...new Set(h.runs.flatMap((r) => Object.keys(r.statuses)))].sort();
  return [
    '## HTTP path',
    '',
    `\`POST /devices/{device}/events\` on the local stack (\`npm start\`'s stack: real handlers, local SQS, the relay's event source, the emulator), ` +
      `${h.runs.length} run${h.runs.length === 1 ? '' : 's'} of ${h.durationMs} ms from a closed-loop generator in its own process (Node's fetch, ` +
      `${h.concurrency} concurrent requests, devices ${h.devices.join(', ')}). After each run the relay drains the queue; every accepted reading must be ` +
      'at the bridge or in the dead-letter queue.',
    '',
    table(['run', 'requests', 'accepted (202)', 'req/s', 'p50 ms', 'p99 ms', 'at the bridge', 'dead-lettered', 'duplicates', 'drain ms', 'all accounted for'], rows),
    '',
    `Response codes seen: ${statuses.map((s) => `${s} × ${int(h.runs.reduce((n, r) => n + (r.statuses[s] ?? 0), 0))}`).join(', ')}.`,
  ].join('\n');
}

const seconds = (ms: number): string => (!Number.isFinite(ms) ? '–' : ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 120_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 60_000).toFixed(1)} min`);

function fleetSection(f: FleetResults): string {
  const changes = (s: FleetResults['steps'][number]): string =>
    [
      s.changes.gateways > 0 ? `${int(s.changes.gateways)} gateway${s.changes.gateways === 1 ? '' : 's'} created` : '',
      s.changes.devices > 0 ? `${int(s.changes.devices)} devices created` : '',
      s.changes.bindingsAdded > 0 ? `${int(s.changes.bindingsAdded)} bindings added` : '',
      s.changes.bindingsRemoved > 0 ? `${int(s.changes.bindingsRemoved)} bindings removed` : '',
    ]
      .filter(Boolean)
      .join(', ') || 'none';
  const totalCalls = (s: FleetResults['steps'][number]): number => s.callsByKind.reads + s.callsByKind.creates + s.callsByKind.binds;
  const rows = f.steps.map((s) => [
    s.name,
    seconds(s.wallMs),
    int(totalCalls(s)),
    `${int(s.callsByKind.reads)} / ${int(s.callsByKind.creates)} / ${int(s.callsByKind.binds)}`,
    int((totalCalls(s) / s.wallMs) * 1000),
    changes(s),
  ]);
  const ops = f.steps.map((s) => `${s.name}: ${Object.entries(s.calls).filter(([, n]) => n > 0).map(([op, n]) => `${op} ${int(n)}`).join(', ')}`);
  const check = (c: FleetResults['afterApply']): string => `${int(c.exact)} of ${int(c.devices)} (${int(c.calls)} list calls, ${seconds(c.wallMs)})`;
  return [
    '## Fleet provisioning',
    '',
    `\`iotcore-relay fleet\` against the emulator's ClearBlade REST form over HTTP (the emulator in a child process, the command in the benchmark's), ` +
      `${int(f.devices)} devices, ${f.concurrency} calls in flight, the command's pacing off (\`--rate reads=off,creates=off,binds=off\`): the times are ` +
      "the tool's and the emulator's on this machine, not ClearBlade's quotas. Calls by quota kind: reads (list, get, getRegistryCredentials) / creates / binds (bind, unbind).",
    '',
    table(['step', 'wall time', 'calls', 'reads / creates / binds', 'calls/s', 'changes'], rows),
    '',
    `Calls by operation: ${ops.join('; ')}.`,
    '',
    `Every device bound to exactly its gateway, checked through the REST API: after the apply from empty ${check(f.afterApply)}; ` +
      `after the resize to ${f.gatewaysAfter} gateways and its --finish ${check(f.afterResize)}. Between the resize's apply and its --finish, ` +
      `${int(f.boundTwiceDuringResize)} devices were bound to both their old and their new gateway (make-before-break).`,
    '',
    `Devices rebound by the resize: **${int(f.rebound)} of ${int(f.devices)} = ${((f.rebound / f.devices) * 100).toFixed(2)} %**, each to the new ` +
      `gateway (bound: 1/${f.gatewaysAfter} + 1 % = ${(f.reboundBound * 100).toFixed(2)} %; the target for 100 → 101 gateways is 2 %).`,
    '',
    `At ClearBlade's default quotas (3,000 creates and 3,000 binds a minute, which the tool paces separately and in parallel), the apply from empty ` +
      `would take at least ${f.minutesAtDefaultQuotas.toFixed(1)} minutes.`,
  ].join('\n');
}

function scalingSection(sc: ScalingResults): string {
  const med = (runs: readonly ScalingRun[], f: (r: ScalingRun) => number): number => median(runs.map(f));
  const perReading = (cpu: number, readings: number): number => (readings > 0 ? cpu / readings : Number.NaN);
  const stackCost = (runs: readonly ScalingRun[]): number => med(runs, (r) => perReading(r.stackCpuMs, r.accepted));
  const rows = sc.points.map((p) => [
    int(p.gateways),
    p.runs.map((r) => String(r.gatewaysCarrying)).join(', '),
    `**${int(med(p.runs, (r) => r.acceptedPerSecond))}**`,
    `**${int(med(p.runs, (r) => r.deliveredPerSecond))}**`,
    int(med(p.runs, (r) => r.drainDeliveredPerSecond)),
    ms(med(p.runs, (r) => r.p50Ms)),
    ms(med(p.runs, (r) => r.p99Ms)),
    int(med(p.runs, (r) => r.drainMs)),
    int(med(p.runs, (r) => r.sessions)),
    x(med(p.runs, (r) => (r.sessions > 0 ? r.atBridge / r.sessions : Number.NaN))),
    x(med(p.runs, (r) => (r.batches > 0 ? r.sessions / r.batches : Number.NaN))),
    `**${x(stackCost(p.runs))}**`,
    x(med(p.runs, (r) => perReading(r.generatorCpuMs, r.sent))),
  ]);
  const accounting = sc.points.flatMap((p) =>
    p.runs.map((r, i) => [
      int(p.gateways),
      String(i + 1),
      int(r.accepted),
      int(r.atBridge),
      int(r.deadLettered),
      int(r.duplicates),
      int(r.retried),
      r.accountedFor ? 'yes' : '**NO**',
    ]),
  );
  const warmUpsAccounted = sc.points.every((p) => p.warmUps.every((w) => w.accountedFor));
  const warmUpReadings = sc.points.reduce((n, p) => n + p.warmUps.reduce((m, w) => m + w.accepted, 0), 0);
  const [first] = sc.points;
  const last = sc.points[sc.points.length - 1];
  const costRatio = first === undefined || last === undefined ? Number.NaN : ratio(stackCost(last.runs), stackCost(first.runs));
  const idle = median(sc.points.flatMap((p) => p.idleCpuMsPerSecond));
  const seed = median(sc.points.flatMap((p) => p.seedMs));
  const statuses = [...new Set(sc.points.flatMap((p) => p.runs.flatMap((r) => Object.keys(r.statuses))))].sort();
  const statusCount = (s: string): number => sc.points.reduce((n, p) => n + p.runs.reduce((m, r) => m + (r.statuses[s] ?? 0), 0), 0);
  return [
    '## Relay scaling',
    '',
    `The local stack with a pool of ${sc.points.map((p) => p.gateways).join(', ')} gateways (one key shared by the pool), ${int(sc.devices)} devices at the bridge, ` +
      'each bound to its gateway by `gatewayFor`. A closed-loop generator in its own process posts readings from the devices in turn (Device-Key ' +
      `credentials, ${sc.concurrency} concurrent requests) for ${sc.durationMs} ms; then the relay drains the queue. Each point is a fresh stack process ` +
      `(bench/scaling-stack.ts) that first runs an untimed ${sc.warmUpMs} ms warm-up; pool sizes take turns, ${sc.runs} run${sc.runs === 1 ? '' : 's'} each; medians. ` +
      'The relay queue is FIFO with the gateway as message group, so one gateway means one batch at a time, and more gateways mean more batches at once ' +
      'and more sessions per batch (a batch of 10 opens one session per gateway among its records). The whole stack (ingest, SQS and DynamoDB servers, ' +
      "relay, bridge emulator) is one Node thread, as under `npm start`; on a 2-core machine shared with other work, read the shape and the cost per " +
      'reading, not a ceiling.',
    '',
    table(
      [
        'gateways',
        'gateways carrying readings (per run)',
        'accepted/s',
        'delivered/s',
        'delivered/s after the load',
        'ingest p50 ms',
        'ingest p99 ms',
        'drain ms',
        'relay sessions',
        'readings per session',
        'sessions per batch',
        'stack CPU ms / reading',
        'generator CPU ms / request',
      ],
      rows,
    ),
    '',
    '"delivered/s": accepted readings at the bridge per second from the first request to the last arrival; "after the load": the readings that arrived ' +
      'after the last request, per second until the last arrival, the relay working with the ingest quiet ("–" when nothing was left). ' +
      '"relay sessions": CONNECTs the bridge accepted from the start of the load to the end of the drain. "stack CPU": `process.cpuUsage()` of the ' +
      "stack's process over the same time, per accepted reading; it includes what AWS and ClearBlade run elsewhere (the SQS and DynamoDB stand-ins, " +
      'the SDK calls to them, the bridge emulator), so it is an upper bound of what the relay and the ingest cost. "generator CPU": the load ' +
      "generator's process, per request sent.",
    '',
    `Stack CPU per reading, ${last?.gateways ?? '–'} gateways against ${first?.gateways ?? '–'}: **${x(costRatio)}×**. ` +
      `The idle stack (its pollers and timers) takes ${x(idle)} ms of CPU per second; seeding ${int(sc.devices)} devices and their bindings took ${ms(seed)} ms.`,
    '',
    'Accounting: every reading answered 202 must be at the bridge or in the dead-letter queue, once.',
    '',
    table(['gateways', 'run', 'accepted (202)', 'at the bridge', 'dead-lettered', 'duplicates', 'sent back by the relay', 'all accounted for'], accounting),
    '',
    `Warm-ups: ${int(warmUpReadings)} readings accepted, ${warmUpsAccounted ? 'all accounted for' : '**not all accounted for**'}. ` +
      `Response codes seen in the runs: ${statuses.map((s) => `${s} × ${int(statusCount(s))}`).join(', ')}.`,
  ].join('\n');
}

export function renderResults(results: BenchResults, notes: readonly string[] = []): string {
  const m = results.meta;
  const checks = targetChecks(results);
  const parts = [
    '# iotcore-relay benchmark',
    '',
    `${m.date} · ${m.cpuModel}, ${m.cores} cores · Node ${m.node} (${m.platform}) · ${m.mode === 'quick' ? '**quick mode** (tiny sizes, one run each: proves the benchmark runs, measures nothing)' : 'full run'} · ` +
      `load average at start ${m.loadAverage.toFixed(2)}${m.durationMs === undefined ? '' : ` · took ${Math.round(m.durationMs / 1000)} s`}`,
    '',
    'Generated by `npm run bench` (bench/run.ts). Medians of repeated runs; comparisons are ratios of medians taken side by side in this run.',
    '',
    '## Targets',
    '',
    table(
      ['claim', 'target', 'measured', ''],
      checks.map((c) => [c.claim, c.target, c.measured, verdict(c.met)]),
    ),
  ];
  if (notes.length > 0) parts.push('', ...notes.map((n) => `- ${n}`));
  if (results.roundTrips) parts.push('', roundTripSection(results.roundTrips));
  if (results.throughput) parts.push('', throughputSection(results.throughput));
  if (results.coldStart) parts.push('', coldStartSection(results.coldStart));
  if (results.http) parts.push('', httpSection(results.http));
  if (results.scaling) parts.push('', scalingSection(results.scaling));
  if (results.fleet) parts.push('', fleetSection(results.fleet));
  if (results.problems.length > 0) parts.push('', '## Problems', '', ...results.problems.map((p) => `- ${p}`));
  return `${parts.join('\n')}\n`;
}
