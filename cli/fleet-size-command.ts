/**
 * `iotcore-relay fleet size`: sizes a fleet on paper (lib/fleet/capacity.ts) and prints the gateway pool, the relay's
 * concurrency cap, the queue's settings and rates, and every ceiling with its value, its limit and its public source.
 * Nothing is contacted: the quotas are the published defaults unless options give the project's own.
 *
 * Exit status: 0 when the fleet fits every ceiling, 1 when one is exceeded (the warnings say which and what to do),
 * 2 for a usage error.
 *
 * @example
 * iotcore-relay fleet size --devices 100000 --interval 10m
 * iotcore-relay fleet size --devices 1M --interval 1m --publish-quota 1400000 --json
 */
import { parseArgs } from 'node:util';
import { isRelayError } from '../lib/errors.js';
import {
  DEFAULT_QUOTAS,
  DEFAULT_SESSION_MODEL,
  formatNumber,
  MAX_FIFO_BATCH,
  parseInterval,
  sizeFleet,
  SOURCES,
  type Ceiling,
  type FleetSize,
  type FleetSizeInput,
  type Quotas,
} from '../lib/fleet/capacity.js';
import type { CommandOutput } from './keys-command.js';

export const FLEET_SIZE_USAGE = `usage: iotcore-relay fleet size --devices <n> --interval <duration> [options]

Sizes a fleet on paper: the gateway pool, the relay's concurrency cap (serverless.yml relayMaxConcurrency), the
queue's settings and rates, and each ClearBlade, SQS and Lambda ceiling with its public source.

  --devices <n>                  devices in the fleet: 100000, 100_000, 100,000, 100k or 1M
  --interval <duration>          how often each device reports: 30s, 10m, 1h, 1d
  --readings <n>                 readings in one report (one request), default 1
  --gateways <n>                 check this pool size instead of computing the minimum
  --headroom <percent>           share of each ceiling the plan may use, default 80
  --batch-size <n>               records per relay invocation, 1 to ${MAX_FIFO_BATCH}, default ${MAX_FIFO_BATCH}
  --publish-quota <n>            the project's telemetry publishes a minute, default ${formatNumber(DEFAULT_QUOTAS.publishesPerMinute)}
  --device-quota <n>             the project's devices per region, default ${formatNumber(DEFAULT_QUOTAS.devicesPerProject)}
  --open-connections <n>         the project's open MQTT connections, default ${formatNumber(DEFAULT_QUOTAS.openConnections)}
  --connections-per-minute <n>   MQTT connections a minute, default ${formatNumber(DEFAULT_QUOTAS.connectionsPerMinute)} (unconfirmed for ClearBlade)
  --lambda-concurrency <n>       the AWS account's Lambda concurrency, default ${formatNumber(DEFAULT_QUOTAS.lambdaConcurrency)}
  --session-base-ms <ms>         session time model: fixed part, default ${DEFAULT_SESSION_MODEL.baseMs.toFixed(2)}
  --session-per-record-ms <ms>   session time model: per record, default ${DEFAULT_SESSION_MODEL.perRecordMs.toFixed(4)}
                                 (the line through two medians of bench/results.md)
  --json                         print the whole calculation as JSON
  -h, --help                     show this help

exit status: 0 when every ceiling is met, 1 when one is exceeded, 2 for a usage error.`;

const OPTIONS = {
  devices: { type: 'string' },
  interval: { type: 'string' },
  readings: { type: 'string' },
  gateways: { type: 'string' },
  headroom: { type: 'string' },
  'batch-size': { type: 'string' },
  'publish-quota': { type: 'string' },
  'device-quota': { type: 'string' },
  'open-connections': { type: 'string' },
  'connections-per-minute': { type: 'string' },
  'lambda-concurrency': { type: 'string' },
  'session-base-ms': { type: 'string' },
  'session-per-record-ms': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** Quota options -> the quota each sets. */
const QUOTA_OPTIONS: Record<string, keyof Quotas> = {
  'publish-quota': 'publishesPerMinute',
  'device-quota': 'devicesPerProject',
  'open-connections': 'openConnections',
  'connections-per-minute': 'connectionsPerMinute',
  'lambda-concurrency': 'lambdaConcurrency',
};

class UsageError extends Error {}

export async function fleetSizeCommand(argv: string[], io: CommandOutput = process): Promise<number> {
  let input: FleetSizeInput | 'help';
  let json = false;
  try {
    const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
    json = values.json === true;
    input = values.help ? 'help' : inputFrom(values);
  } catch (e) {
    if (!(e instanceof UsageError) && !isParseArgsError(e)) throw e;
    io.stderr.write(`iotcore-relay fleet size: ${(e as Error).message}\n\n${FLEET_SIZE_USAGE}\n`);
    return 2;
  }
  if (input === 'help') {
    io.stdout.write(`${FLEET_SIZE_USAGE}\n`);
    return 0;
  }
  let plan: FleetSize;
  try {
    plan = sizeFleet(input);
  } catch (e) {
    // Values each option accepts were checked above; what is left is a combination sizeFleet refuses.
    if (!isRelayError(e)) throw e;
    io.stderr.write(`iotcore-relay fleet size: ${e.message}\n`);
    return 2;
  }
  io.stdout.write(json ? `${JSON.stringify(plan, null, 2)}\n` : renderPlan(plan));
  return plan.ceilings.some((c) => c.level === 'exceeded') ? 1 : 0;
}

function inputFrom(values: Values): FleetSizeInput {
  if (values.devices === undefined) throw new UsageError('--devices is required');
  if (values.interval === undefined) throw new UsageError('--interval is required');
  const input: FleetSizeInput = {
    devices: count(values.devices, '--devices'),
    intervalSeconds: interval(values.interval),
  };
  if (values.readings !== undefined) input.readingsPerReport = count(values.readings, '--readings');
  if (values.gateways !== undefined) input.gateways = count(values.gateways, '--gateways');
  if (values['batch-size'] !== undefined) {
    input.batchSize = count(values['batch-size'], '--batch-size');
    if (input.batchSize > MAX_FIFO_BATCH) throw new UsageError(`--batch-size must be 1 to ${MAX_FIFO_BATCH}, the most a FIFO batch holds (got ${values['batch-size']})`);
  }
  if (values.headroom !== undefined) {
    const percent = decimal(values.headroom.replace(/%$/, ''), '--headroom');
    if (percent <= 0 || percent > 100) throw new UsageError(`--headroom is a percentage above 0 and at most 100 (got ${values.headroom})`);
    input.headroom = percent / 100;
  }
  const quotas: Partial<Quotas> = {};
  for (const [option, quota] of Object.entries(QUOTA_OPTIONS)) {
    const text = values[option as keyof Values];
    if (typeof text === 'string') quotas[quota] = count(text, `--${option}`);
  }
  if (Object.keys(quotas).length > 0) input.quotas = quotas;
  const baseMs = values['session-base-ms'];
  const perRecordMs = values['session-per-record-ms'];
  if (baseMs !== undefined || perRecordMs !== undefined) {
    input.session = {};
    if (baseMs !== undefined) {
      input.session.baseMs = decimal(baseMs, '--session-base-ms');
      if (input.session.baseMs <= 0) throw new UsageError(`--session-base-ms must be above 0 (got ${baseMs})`);
    }
    if (perRecordMs !== undefined) input.session.perRecordMs = decimal(perRecordMs, '--session-per-record-ms');
  }
  return input;
}

/** A whole number of at least 1, with `_` or `,` between thousands, or a k / M suffix. */
function count(text: string, option: string): number {
  const t = text.trim();
  let n = Number.NaN;
  if (/^\d{1,3}(?:[_,]\d{3})+$/.test(t) || /^\d+$/.test(t)) n = Number(t.replace(/[_,]/g, ''));
  else {
    const m = /^(\d+(?:\.\d+)?)([kKmM])$/.exec(t);
    if (m !== null) n = Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6);
  }
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${option} must be a whole number of at least 1, such as 100000, 100,000 or 100k (got ${JSON.stringify(text)})`);
  return n;
}

function decimal(text: string, option: string): number {
  const t = text.trim();
  if (!/^\d+(?:\.\d+)?$/.test(t)) throw new UsageError(`${option} must be a number (got ${JSON.stringify(text)})`);
  return Number(t);
}

function interval(text: string): number {
  try {
    return parseInterval(text);
  } catch (e) {
    throw new UsageError(`--interval: ${(e as Error).message}`);
  }
}

function isParseArgsError(e: unknown): boolean {
  return typeof (e as { code?: unknown })?.code === 'string' && (e as { code: string }).code.startsWith('ERR_PARSE_ARGS_');
}

// --- The readable form -----------------------------------------------------------------------------------------

const n = formatNumber;

function renderPlan(p: FleetSize): string {
  const { input } = p;
  const lines: string[] = [];
  const readings = input.readingsPerReport === 1 ? '1 reading' : `${n(input.readingsPerReport)} readings`;
  lines.push(
    `Fleet: ${n(input.devices)} devices, ${readings} every ${duration(input.intervalSeconds)}: ${n(p.load.recordsPerMinute)} records a minute, ` +
      `${n(p.load.recordsPerSecond)} a second. Headroom ${n(input.headroom * 100)} % of each ceiling.`,
  );
  lines.push('');
  lines.push('Deploy');
  lines.push(
    ...rows([
      [
        'gateways in the pool',
        n(p.pool.gateways),
        `${p.pool.gateways === p.pool.minimum ? 'the minimum' : `given; the minimum is ${n(p.pool.minimum)}`}: ${n(p.pool.byBindings)} for the bindings, ` +
          `${n(p.pool.byDrainRate)} for the drain rate; about ${n(p.pool.fullestGateway)} devices on the fullest (mean ${n(p.pool.devicesPerGateway)})`,
      ],
      [
        'relayMaxConcurrency',
        n(p.relay.maxConcurrency),
        `--param="relayMaxConcurrency=${p.relay.maxConcurrency}"; at most ${n(p.publishes.peakPerMinute)} publishes a minute ` +
          `(${n(p.publishes.peakUncappedPerMinute)} uncapped)`,
      ],
      [
        'relay queue',
        `batch ${p.queue.batchSize}`,
        `visibility timeout ${p.queue.visibilityTimeoutSeconds} s, relay timeout ${p.queue.relayTimeoutSeconds} s, maxReceiveCount ${p.queue.maxReceiveCount}, ` +
          `high throughput ${p.queue.highThroughputEnabled ? 'on' : 'off'} (${p.queue.highThroughputNeeded ? 'needed' : 'not needed'} at this load)`,
      ],
    ]),
  );
  lines.push('');
  lines.push('Rates');
  lines.push(
    ...rows([
      ['publishes a minute', n(p.publishes.averagePerMinute), `average; quota ${n(p.publishes.quotaPerMinute)}, and ${n(p.publishes.quotaNeededPerMinute)} would do with headroom`],
      [
        'relay invocations',
        n(p.relay.concurrencyNeeded),
        `busy on average, of ${n(p.relay.effectiveConcurrency)} allowed; every device reporting at once is relayed in ${n(p.relay.burstDrainSeconds)} s`,
      ],
      [
        'sessions a minute',
        n(p.sessions.perMinuteFullBatches),
        `with full batches, ${n(p.sessions.perMinuteWorst)} with one record each as far as the cap allows; at most ${n(p.sessions.openConnectionsPeak)} open at once`,
      ],
      [
        'session time',
        `${n(p.session.fullBatchMs)} ms`,
        `for ${input.batchSize} records, ${n(p.session.oneRecordMs)} ms for 1 (${n(input.session.baseMs)} ms + ${n(input.session.perRecordMs)} ms a record; ${SOURCES.benchmark})`,
      ],
      [
        'SQS calls a second',
        n(p.queue.sendCallsPerSecond),
        `to send; ${n(p.queue.receiveCallsPerSecond)} to receive and ${n(p.queue.deleteCallsPerSecond)} to delete; ${n(p.queue.busiestGroupCallsPerSecond)} sends on the busiest group`,
      ],
      [
        'provisioning',
        `${n(p.provisioning.createMinutes)} min`,
        `to create the devices at ${n(input.quotas.deviceCreatesPerMinute)} a minute, ${n(p.provisioning.bindMinutes)} min to bind them ` +
          `(${n(input.quotas.deviceBindsPerMinute)} a minute, assumed)`,
      ],
    ]),
  );
  lines.push('');
  lines.push('Ceilings');
  const cited = [...new Set(p.ceilings.map((c) => c.source))];
  const table: string[][] = [['ceiling', 'fleet', 'limit', 'status', 'source']];
  for (const c of p.ceilings) {
    table.push([`${c.what}${c.confirmed ? '' : ' (*)'}`, n(c.value), `${n(c.limit)} ${c.unit}`, status(c), `[${cited.indexOf(c.source) + 1}]`]);
  }
  lines.push(...columns(table, [false, true, true, false, false]));
  lines.push("  (*) not in ClearBlade's published quotas: Google Cloud IoT Core's figure for the same API; ask ClearBlade.");
  // Notes matter where a ceiling is near or over its limit (whether it can be raised, the mode that lifts it).
  for (const c of p.ceilings) if (c.note !== undefined && c.confirmed && c.level !== 'ok') lines.push(`  ${c.what}: ${c.note}.`);
  lines.push('');
  lines.push('Sources');
  cited.forEach((url, i) => lines.push(`  [${i + 1}] ${url}`));
  lines.push('');
  if (p.warnings.length === 0) lines.push('No ceiling is exceeded.');
  else {
    lines.push('Warnings');
    for (const w of p.warnings) lines.push(`  - ${w}`);
  }
  return `${lines.join('\n')}\n`;
}

function status(c: Ceiling): string {
  return c.level === 'exceeded' ? 'EXCEEDED' : c.level;
}

function duration(seconds: number): string {
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['min', 60]] as const) {
    if (seconds >= size && seconds % size === 0) return `${n(seconds / size)} ${unit}`;
  }
  return `${n(seconds)} s`;
}

/** Label, value, detail: the label and value padded into columns. */
function rows(items: [string, string, string][]): string[] {
  const labelWidth = Math.max(...items.map(([l]) => l.length));
  const valueWidth = Math.max(...items.map(([, v]) => v.length));
  return items.map(([l, v, d]) => `  ${l.padEnd(labelWidth)}  ${v.padStart(valueWidth)}  ${d}`);
}

function columns(table: string[][], rightAligned: boolean[]): string[] {
  const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) =>
    `  ${r.map((cell, i) => (i === r.length - 1 ? cell : rightAligned[i] ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ')}`.trimEnd(),
  );
}
