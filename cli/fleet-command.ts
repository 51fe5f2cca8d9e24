/**
 * `iotcore-relay fleet`: brings a ClearBlade IoT Core registry in line with the relay's gateway pool, so that
 * every device is bound to its own gateway (`gatewayFor` in lib/gateway-pool.ts) and the pool can grow to hundreds
 * of gateways and a million devices within ClearBlade's limits (10,000 devices a gateway, 10 gateways a device).
 *
 *   plan       read the registry (or a device list file) and print what must change; --out writes it as JSON
 *   gateways   create the pool's gateway devices (association only) with their public keys
 *   apply      make-before-break: create gateways and devices, add each device's new binding; removes nothing
 *   apply --finish   after the pool switch is deployed: remove the old bindings
 *   size       the capacity calculation of docs/deploy.md, "Sizing a fleet" (cli/fleet-size-command.ts)
 *
 * Every run plans afresh from the live registry, so a run that crashed or was stopped with Ctrl-C is finished by
 * running the same command again; nothing is done twice that the registry shows as done. Ctrl-C stops sending new
 * calls, waits for those in flight, prints how far the run got, and exits 130. The calls are paced per kind to
 * ClearBlade's device-manager quotas and limited in number in flight. docs/fleet.md has every option.
 *
 * @example
 * iotcore-relay fleet plan  --pool 'gw-{000..099}' --service-account sa.json --location us-central1 --registry prod
 * iotcore-relay fleet apply --pool 'gw-{000..099}' --service-account sa.json --location us-central1 --registry prod \
 *   --gateway-public-key keys/gateway_public.pem
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  CALL_KINDS,
  ClearBladeClient,
  DEFAULT_RATES_PER_MINUTE,
  isClearBladeError,
  type CallKind,
  type DeviceResource,
  type Operation,
} from '../lib/clearblade/rest-client.js';
import { readServiceAccount, type ServiceAccount } from '../lib/clearblade/service-account.js';
import { isRelayError } from '../lib/errors.js';
import { readDeviceList } from '../lib/fleet/device-list.js';
import { countSteps, runTasks, type RunResult, type Step, type StepKind, type Task } from '../lib/fleet/execute.js';
import { gatewayKeySource, hasKey, type GatewayCredential, type GatewayKeySource } from '../lib/fleet/gateway-keys.js';
import {
  MAX_DEVICES_PER_GATEWAY,
  MAX_GATEWAYS_PER_DEVICE,
  POOL_GATEWAY_METADATA,
  finishRemovals,
  planFleet,
  type Binding,
  type FleetPlan,
} from '../lib/fleet/plan.js';
import { isMarkedPoolGateway, readRegistryState } from '../lib/fleet/registry-state.js';
import { parseGatewayIds } from '../lib/gateway-pool.js';
import { deviceIdProblem } from '../lib/iotcore/device-id.js';
import type { RegistryPath } from '../lib/iotcore/topics.js';
import { Progress, count, formatDuration } from './progress.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, CHANGES: 3, LIMITS: 4, INTERRUPTED: 130 } as const;

export const FLEET_USAGE = `usage: iotcore-relay fleet <plan|gateways|apply|size> [options]

Brings a ClearBlade IoT Core registry in line with the relay's gateway pool: every device bound to its own
gateway, make-before-break.

  plan              read the registry and print what must change (--out plan.json writes all of it)
  gateways          create the pool's gateway devices (association only) with their public keys
  apply             create missing gateways and devices, bind each device to its gateway; removes nothing
  apply --finish    once the new pool is deployed: remove every other binding the tool owns
  size              size a fleet on paper: pool, relay concurrency cap and queue rates against each ceiling
                    (--devices N --interval 10m; 'iotcore-relay fleet size --help')

where:
  --pool <ids>                 the pool, e.g. 'gw-{000..099}' (default: $IOTCORE_GATEWAY_IDS)
  --service-account <file>     the project's service account JSON (default: $CLEARBLADE_CONFIGURATION)
  --project <id>               default: $IOTCORE_PROJECT, else the service account's project
  --location <region>          default: $IOTCORE_LOCATION
  --registry <id>              default: $IOTCORE_REGISTRY
  --devices <file>             place these devices (one ID a line, or a JSON array) instead of the registry's
                               non-gateway devices; apply creates those that do not exist
  --retired <ids>              gateways out of the pool whose bindings --finish removes too (gateways created
                               by 'fleet gateways' are recognised without it)

options:
  --gateway-public-key <path>  gateways, apply (also --public-key): the public key PEM every pool gateway
                               gets, or a template with {gateway}, e.g. 'keys/{gateway}_public.pem';
                               the format (ES256_PEM, RSA_PEM, or _X509_PEM for a certificate) from the key
  --finish                     apply: remove the old bindings (only of devices bound to their gateway)
  --dry-run                    apply, gateways: print the calls that would be made; change nothing
  --out <file>                 plan, apply --dry-run: write the full plan as JSON
  --detailed-exitcode          plan: exit 3 when there are changes to make
  --concurrency <n>            calls in flight at once (default 16)
  --rate <kind=n/min,...>      pace per kind of call: reads, creates, binds; n/min, n/s or off
                               (default reads=${DEFAULT_RATES_PER_MINUTE.reads}/min,creates=${DEFAULT_RATES_PER_MINUTE.creates}/min,binds=${DEFAULT_RATES_PER_MINUTE.binds}/min, ClearBlade's quotas)
  -h, --help

exit status:
  0    done, or nothing to do
  1    some calls failed after their retries (listed); --finish kept bindings of devices not yet bound to
       their gateway; gateways found a pool gateway with another key or auth method; or the registry
       could not be read
  2    usage error (bad option, pool, file, key), or apply needs a gateway key it was not given
  3    plan --detailed-exitcode: changes pending
  4    limits would be exceeded (10 gateways a device, 10,000 devices a gateway) or a pool ID is taken
       by a device that is not a gateway; nothing was done
  130  interrupted (Ctrl-C): run the same command again to finish`;

export interface FleetIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  env: Readonly<Record<string, string | undefined>>;
  /** Whether stderr is a terminal: a redrawn progress bar, else plain lines. */
  stderrTty: boolean;
  columns?: number;
  /** Calls `handler` on each Ctrl-C; returns what undoes that. */
  onInterrupt(handler: () => void): () => void;
  /** Leaves at once: a second Ctrl-C. */
  exitNow(code: number): void;
  /** Plain progress lines at most this often (ms). */
  progressIntervalMs?: number;
  /** Told what the run did, for scripts and benchmarks that run the command in their own process. */
  onReport?: (report: FleetReport) => void;
}

/** What one run of the command did. */
export interface FleetReport {
  subcommand: 'plan' | 'gateways' | 'apply' | 'apply --finish';
  exitCode: number;
  wallMs: number;
  /** Sizes of the plan the run made (not for `gateways`). */
  plan?: { deviceCount: number; gatewaysToCreate: number; devicesToCreate: number; bindingsToAdd: number; bindingsToRemove: number; violations: number };
  /** What the run changed (apply, apply --finish, gateways). */
  result?: RunResult;
  calls: Record<Operation, number>;
  callsByKind: Record<CallKind, number>;
  rateLimited: Record<CallKind, number>;
}

export function processIo(): FleetIo {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    env: process.env,
    stderrTty: process.stderr.isTTY === true,
    columns: process.stderr.columns,
    onInterrupt(handler) {
      process.on('SIGINT', handler);
      process.on('SIGTERM', handler);
      return () => {
        process.off('SIGINT', handler);
        process.off('SIGTERM', handler);
      };
    },
    exitNow: (code) => process.exit(code),
  };
}

class UsageError extends Error {}

type Subcommand = 'plan' | 'gateways' | 'apply';

interface Settings {
  sub: Subcommand;
  poolText: string;
  pool: string[];
  registry: RegistryPath;
  serviceAccount: ServiceAccount;
  devicesFile: string | undefined;
  retired: string[];
  concurrency: number;
  rates: Record<CallKind, number>;
  dryRun: boolean;
  out: string | undefined;
  detailedExitcode: boolean;
  keys: GatewayKeySource | undefined;
  finish: boolean;
}

const OPTIONS = {
  pool: { type: 'string' },
  'service-account': { type: 'string' },
  project: { type: 'string' },
  location: { type: 'string' },
  registry: { type: 'string' },
  devices: { type: 'string' },
  retired: { type: 'string' },
  'gateway-public-key': { type: 'string' },
  'public-key': { type: 'string' },
  finish: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  out: { type: 'string' },
  'detailed-exitcode': { type: 'boolean' },
  concurrency: { type: 'string' },
  rate: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which options each subcommand takes besides the common ones. */
const ONLY: Record<string, readonly Subcommand[]> = {
  devices: ['plan', 'apply'],
  retired: ['plan', 'apply'],
  'gateway-public-key': ['gateways', 'apply'],
  'public-key': ['gateways', 'apply'],
  finish: ['apply'],
  'dry-run': ['gateways', 'apply'],
  out: ['plan', 'apply'],
  'detailed-exitcode': ['plan'],
};

const PROJECT_ID = /^[a-z][-a-z0-9.:]{2,62}$/;
const LOCATION = /^[a-z][-a-z0-9]{1,62}$/;

export async function fleetCommand(argv: string[], io: FleetIo = processIo()): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    io.stdout.write(`${FLEET_USAGE}\n`);
    return sub === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (sub === 'size') {
    // A calculation on paper: no registry, no service account (lib/fleet/capacity.ts).
    const { fleetSizeCommand } = await import('./fleet-size-command.js');
    return fleetSizeCommand(rest, io);
  }
  if (sub !== 'plan' && sub !== 'gateways' && sub !== 'apply') {
    io.stderr.write(`iotcore-relay fleet: unknown subcommand '${sub}'\n\n${FLEET_USAGE}\n`);
    return EXIT.USAGE;
  }
  let settings: Settings | 'help';
  try {
    settings = await readSettings(sub, rest, io.env);
  } catch (e) {
    if (e instanceof UsageError || isParseArgsError(e) || isRelayError(e)) {
      io.stderr.write(`iotcore-relay fleet ${sub}: ${(e as Error).message}\n`);
      if (e instanceof UsageError || isParseArgsError(e)) io.stderr.write(`Run 'iotcore-relay fleet --help' for the options.\n`);
      return EXIT.USAGE;
    }
    throw e;
  }
  if (settings === 'help') {
    io.stdout.write(`${FLEET_USAGE}\n`);
    return EXIT.OK;
  }

  const stop = new AbortController();
  let interrupts = 0;
  const off = io.onInterrupt(() => {
    interrupts += 1;
    if (interrupts > 1) {
      io.stderr.write('\ninterrupted again: leaving now; run the same command again to finish\n');
      io.exitNow(EXIT.INTERRUPTED);
      return;
    }
    io.stderr.write('\nstopping: no new calls; waiting for the calls in flight (Ctrl-C again to leave at once)\n');
    stop.abort(new Interrupted());
  });
  const run = new FleetRun(settings, io, stop.signal);
  let code: number = EXIT.FAILED;
  try {
    code = await run.main();
    return code;
  } catch (e) {
    if (stop.signal.aborted) {
      io.stderr.write(`iotcore-relay fleet ${sub}: interrupted before any change was made\n`);
      return (code = EXIT.INTERRUPTED);
    }
    if (isRelayError(e) && (e.code === 'ERR_CONFIG' || e.code === 'ERR_KEY_INVALID')) {
      io.stderr.write(`iotcore-relay fleet ${sub}: ${e.message}\n`);
      return (code = EXIT.USAGE);
    }
    if (isClearBladeError(e) || isRelayError(e)) {
      io.stderr.write(`iotcore-relay fleet ${sub}: ${(e as Error).message}\n`);
      return (code = EXIT.FAILED);
    }
    throw e;
  } finally {
    off();
    io.onReport?.(run.summary(code));
  }
}

class Interrupted extends Error {
  override readonly name = 'AbortError';
  constructor() {
    super('interrupted');
  }
}

function isParseArgsError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

async function readSettings(sub: Subcommand, argv: string[], env: FleetIo['env']): Promise<Settings | 'help'> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false });
  if (values.help === true) return 'help';
  for (const [name, subs] of Object.entries(ONLY)) {
    if ((values as Record<string, unknown>)[name] !== undefined && !subs.includes(sub)) {
      throw new UsageError(`--${name} does not apply to 'fleet ${sub}'`);
    }
  }
  if (values.out !== undefined && sub === 'apply' && values['dry-run'] !== true) throw new UsageError('--out applies to apply only with --dry-run');

  const text = (v: string | undefined): string | undefined => (v === undefined || v.trim() === '' ? undefined : v.trim());
  const poolText = text(values.pool) ?? text(env.IOTCORE_GATEWAY_IDS);
  if (poolText === undefined) throw new UsageError('give the pool with --pool (or IOTCORE_GATEWAY_IDS)');
  const pool = parseGatewayIds(poolText, text(values.pool) !== undefined ? '--pool' : 'IOTCORE_GATEWAY_IDS');

  const saPath = text(values['service-account']) ?? text(env.CLEARBLADE_CONFIGURATION);
  if (saPath === undefined) throw new UsageError('give the service account JSON with --service-account (or CLEARBLADE_CONFIGURATION)');
  const serviceAccount = await readServiceAccount(saPath);

  const project = text(values.project) ?? text(env.IOTCORE_PROJECT) ?? serviceAccount.project;
  const location = text(values.location) ?? text(env.IOTCORE_LOCATION);
  const registry = text(values.registry) ?? text(env.IOTCORE_REGISTRY);
  if (project === undefined) throw new UsageError('give the project with --project (or IOTCORE_PROJECT); the service account names none');
  if (location === undefined) throw new UsageError('give the region with --location (or IOTCORE_LOCATION), e.g. us-central1');
  if (registry === undefined) throw new UsageError('give the registry with --registry (or IOTCORE_REGISTRY)');
  if (!PROJECT_ID.test(project)) throw new UsageError(`--project must be a project ID (got ${JSON.stringify(project)})`);
  if (!LOCATION.test(location)) throw new UsageError(`--location must be a region such as us-central1 (got ${JSON.stringify(location)})`);
  const registryProblem = deviceIdProblem(registry);
  if (registryProblem !== undefined) throw new UsageError(`--registry ${registryProblem}`);

  const retiredText = text(values.retired);
  const retired = retiredText === undefined ? [] : parseGatewayIds(retiredText, '--retired');
  const inPool = retired.filter((g) => pool.includes(g));
  if (inPool.length > 0) throw new UsageError(`--retired lists gateways of the pool: ${inPool.slice(0, 5).join(', ')}`);

  const concurrency = values.concurrency === undefined ? 16 : Number(values.concurrency);
  if (!/^\d{1,4}$/.test(values.concurrency ?? '16') || concurrency < 1 || concurrency > 1000) {
    throw new UsageError(`--concurrency must be a whole number from 1 to 1000 (got ${JSON.stringify(values.concurrency)})`);
  }
  if (values['gateway-public-key'] !== undefined && values['public-key'] !== undefined) {
    throw new UsageError('--public-key and --gateway-public-key are the same option: give one');
  }
  const keySpec = text(values['gateway-public-key'] ?? values['public-key']);
  if (sub === 'gateways' && keySpec === undefined) {
    throw new UsageError("give the gateways' public key with --public-key <file>, or a template such as 'keys/{gateway}_public.pem'");
  }
  if (values.finish === true && keySpec !== undefined) throw new UsageError('--finish creates nothing; leave --gateway-public-key out');
  const devicesFile = text(values.devices);
  return {
    sub,
    poolText,
    pool,
    registry: { project, location, registry },
    serviceAccount,
    devicesFile,
    retired,
    concurrency,
    rates: parseRates(values.rate),
    dryRun: values['dry-run'] === true,
    out: text(values.out),
    detailedExitcode: values['detailed-exitcode'] === true,
    keys: keySpec === undefined ? undefined : gatewayKeySource(keySpec),
    finish: values.finish === true,
  };
}

/** `creates=3000/min,binds=50/s,reads=off` over the defaults. */
export function parseRates(value: string | undefined): Record<CallKind, number> {
  const rates = { ...DEFAULT_RATES_PER_MINUTE };
  if (value === undefined) return rates;
  for (const item of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z]+)=(?:(off|unlimited)|(\d+(?:\.\d+)?)(?:\/(min|m|s|sec))?)$/.exec(item);
    const kind = m?.[1];
    if (m === null || kind === undefined || !(CALL_KINDS as readonly string[]).includes(kind)) {
      throw new UsageError(`--rate: ${JSON.stringify(item)} is not <kind>=<n>/min, <n>/s or off, with kind one of ${CALL_KINDS.join(', ')}`);
    }
    let perMinute = Infinity;
    if (m[2] === undefined) {
      perMinute = Number(m[3]) * (m[4] === 's' || m[4] === 'sec' ? 60 : 1);
      if (!(perMinute > 0)) throw new UsageError(`--rate: ${kind} must be above 0 (or off)`);
    }
    rates[kind as CallKind] = perMinute;
  }
  return rates;
}

const rateText = (perMinute: number): string => (perMinute === Infinity ? 'off' : `${count(Math.round(perMinute))}/min`);

/** The first few items of a list, for a summary line. */
function sample<T>(items: readonly T[], show: (t: T) => string, n = 3): string {
  if (items.length === 0) return '';
  const shown = items.slice(0, n).map(show).join(', ');
  return items.length > n ? `${shown}, …` : shown;
}

const arrow = (b: Binding): string => `${b.deviceId} -> ${b.gatewayId}`;
const cross = (b: Binding): string => `${b.deviceId} -x ${b.gatewayId}`;

class FleetRun {
  private readonly client: ClearBladeClient;
  private readonly started = performance.now();
  private progress: Progress | undefined;
  private lastPlan: FleetPlan | undefined;
  private lastResult: RunResult | undefined;

  constructor(
    private readonly s: Settings,
    private readonly io: FleetIo,
    private readonly stop: AbortSignal,
  ) {
    this.client = new ClearBladeClient({
      serviceAccount: s.serviceAccount,
      registry: s.registry,
      ratesPerMinute: s.rates,
      concurrency: s.concurrency,
      signal: stop,
      onRetry: ({ operation, httpStatus, delayMs }) => {
        if (httpStatus === 429) this.progress?.setNote(`rate limited on ${operation}: waiting ${formatDuration(delayMs)}, then slower`);
        else this.progress?.setNote(`retrying ${operation} (${httpStatus === undefined ? 'no answer' : `HTTP ${httpStatus}`})`);
      },
    });
  }

  summary(exitCode: number): FleetReport {
    const p = this.lastPlan;
    return {
      subcommand: this.s.sub === 'apply' && this.s.finish ? 'apply --finish' : this.s.sub,
      exitCode,
      wallMs: performance.now() - this.started,
      plan:
        p === undefined
          ? undefined
          : {
              deviceCount: p.deviceCount,
              gatewaysToCreate: p.gatewaysToCreate.length,
              devicesToCreate: p.devicesToCreate.length,
              bindingsToAdd: p.bindingsToAdd.length,
              bindingsToRemove: p.bindingsToRemove.length,
              violations: p.violations.length,
            },
      result: this.lastResult,
      calls: { ...this.client.calls },
      callsByKind: this.client.callsByKind(),
      rateLimited: { ...this.client.rateLimited },
    };
  }

  private get registryName(): string {
    return this.client.parent;
  }

  private out(text: string): void {
    this.io.stdout.write(`${text}\n`);
  }

  private newProgress(label: string, total: number | undefined, unit?: string): Progress {
    this.progress = new Progress(this.io.stderr, {
      label,
      total,
      tty: this.io.stderrTty,
      columns: this.io.columns,
      intervalMs: this.io.progressIntervalMs,
      unit,
    });
    return this.progress;
  }

  async main(): Promise<number> {
    if (this.s.sub === 'gateways') return this.gateways();
    const plan = await this.plan();
    if (this.s.sub === 'plan') return this.reportPlan(plan);
    return this.s.finish ? this.finish(plan) : this.apply(plan);
  }

  // --- reading and planning ---------------------------------------------------------------------------------------

  private async plan(): Promise<FleetPlan> {
    const devices = this.s.devicesFile === undefined ? undefined : await readDeviceList(this.s.devicesFile);
    const bar = this.newProgress('reading the registry', undefined, 'items');
    const snapshot = await readRegistryState(this.client, { onPage: (n) => bar.tick(n), parallel: Math.min(8, this.s.concurrency) });
    bar.finish();
    this.progress = undefined;
    return (this.lastPlan = planFleet({
      pool: this.s.pool,
      devices: devices ?? [...snapshot.state.devices],
      devicesFrom: devices === undefined ? 'registry' : 'file',
      state: snapshot.state,
      retired: this.s.retired,
    }));
  }

  private describePlan(plan: FleetPlan): void {
    const readCalls = this.client.calls.list + this.client.calls.getRegistryCredentials;
    this.out(`registry   ${this.registryName} (read with ${count(readCalls)} calls in ${formatDuration(performance.now() - this.started)})`);
    this.out(`pool       ${count(plan.pool.length)} gateway${plan.pool.length === 1 ? '' : 's'}: ${sample(plan.pool, (g) => g, 4)}`);
    this.out(`devices    ${count(plan.deviceCount)}, from ${plan.devicesFrom === 'file' ? this.s.devicesFile : 'the registry (devices that are not gateways)'}`);
    this.out('');
    this.out('fleet apply:');
    this.out(`  gateways to create   ${count(plan.gatewaysToCreate.length).padStart(9)}   ${sample(plan.gatewaysToCreate, (g) => g)}`.trimEnd());
    this.out(`  devices to create    ${count(plan.devicesToCreate.length).padStart(9)}   ${sample(plan.devicesToCreate, (d) => d)}`.trimEnd());
    this.out(`  bindings to add      ${count(plan.bindingsToAdd.length).padStart(9)}   ${sample(plan.bindingsToAdd, arrow)}`.trimEnd());
    this.out('fleet apply --finish (once the pool is deployed):');
    this.out(`  bindings to remove   ${count(plan.bindingsToRemove.length).padStart(9)}   ${sample(plan.bindingsToRemove, cross)}`.trimEnd());
    if (plan.foreignBindings.count > 0 || plan.devicesOutsideSet > 0) {
      this.out('left alone:');
      if (plan.foreignBindings.count > 0) {
        this.out(`  ${count(plan.foreignBindings.count)} bindings to ${plan.foreignBindings.gateways.length} gateway(s) the tool does not own: ${sample(plan.foreignBindings.gateways, (g) => g, 5)}`);
      }
      if (plan.devicesOutsideSet > 0) this.out(`  ${count(plan.devicesOutsideSet)} devices bound to pool gateways but not in the device list`);
    }
    const finals = Object.values(plan.finalDevicesPerGateway);
    const { gatewaysPerDevice: gpd, devicesPerGateway: dpg } = plan.peak;
    this.out('limits, between apply and --finish:');
    this.out(`  gateways per device  ${gpd === undefined ? '–' : `at most ${gpd.count} of ${MAX_GATEWAYS_PER_DEVICE} (${gpd.id})`}`);
    this.out(`  devices per gateway  ${dpg === undefined ? '–' : `at most ${count(dpg.count)} of ${count(MAX_DEVICES_PER_GATEWAY)} (${dpg.id})`}`);
    if (finals.length > 0) this.out(`  after --finish       ${count(Math.min(...finals))} to ${count(Math.max(...finals))} devices per gateway`);
    if (plan.violations.length > 0) {
      this.out('');
      this.out(`LIMITS: ${count(plan.violations.length)} problem(s); nothing can be applied until they are solved:`);
      for (const v of plan.violations.slice(0, 20)) this.out(`  ${v.message}`);
      if (plan.violations.length > 20) this.out(`  … and ${count(plan.violations.length - 20)} more (--out writes them all)`);
    }
  }

  private async writePlan(plan: FleetPlan): Promise<void> {
    if (this.s.out === undefined) return;
    const doc = { version: 1, generated: new Date().toISOString(), registry: this.registryName, ...plan };
    await writeFile(this.s.out, `${JSON.stringify(doc, null, 1)}\n`);
    this.io.stderr.write(`wrote the plan to ${this.s.out}\n`);
  }

  private async reportPlan(plan: FleetPlan): Promise<number> {
    this.describePlan(plan);
    await this.writePlan(plan);
    if (plan.violations.length > 0) return EXIT.LIMITS;
    const changes = plan.gatewaysToCreate.length + plan.devicesToCreate.length + plan.bindingsToAdd.length + plan.bindingsToRemove.length;
    this.out('');
    if (changes === 0) {
      this.out('nothing to do: every device is bound to its gateway and to no other gateway of the pool');
      return EXIT.OK;
    }
    if (plan.gatewaysToCreate.length + plan.devicesToCreate.length + plan.bindingsToAdd.length > 0) {
      this.out(`next: iotcore-relay fleet apply ${this.commonArgs()}${plan.gatewaysToCreate.length > 0 ? ' --gateway-public-key <file or template>' : ''}`);
    } else {
      this.out(`next: once the relay runs with this pool, iotcore-relay fleet apply --finish ${this.commonArgs()}`);
    }
    return this.s.detailedExitcode ? EXIT.CHANGES : EXIT.OK;
  }

  /** The options that name the pool, registry and devices, to repeat in the next command. */
  private commonArgs(): string {
    const q = (v: string): string => (/^[-A-Za-z0-9_./:=@,]+$/.test(v) ? v : `'${v.replaceAll("'", `'\\''`)}'`);
    const args = [`--pool ${q(this.s.poolText)}`];
    if (this.s.devicesFile !== undefined) args.push(`--devices ${q(this.s.devicesFile)}`);
    if (this.s.retired.length > 0) args.push(`--retired ${q(this.s.retired.join(','))}`);
    return `${args.join(' ')} …`;
  }

  // --- steps --------------------------------------------------------------------------------------------------------

  private gatewayBody(id: string, credential: GatewayCredential): DeviceResource {
    return {
      id,
      credentials: [credential],
      gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
      metadata: { [POOL_GATEWAY_METADATA]: 'true' },
    };
  }

  private createGatewayStep(id: string, credential: GatewayCredential): Step {
    return {
      kind: 'create-gateway',
      label: `create gateway ${id} (${credential.publicKey.format}, association only)`,
      run: async () => {
        try {
          await this.client.createDevice(this.gatewayBody(id, credential));
          return 'done';
        } catch (e) {
          if (isAlreadyExists(e)) return 'already';
          throw e;
        }
      },
    };
  }

  private createDeviceStep(id: string): Step {
    return {
      kind: 'create-device',
      label: `create device ${id}`,
      run: async () => {
        try {
          await this.client.createDevice({ id });
          return 'done';
        } catch (e) {
          if (isAlreadyExists(e)) return 'already';
          throw e;
        }
      },
    };
  }

  private bindStep(b: Binding): Step {
    return {
      kind: 'bind',
      label: `bind ${arrow(b)}`,
      run: async () => {
        try {
          await this.client.bindDeviceToGateway(b.gatewayId, b.deviceId);
          return 'done';
        } catch (e) {
          if (isAlreadyExists(e)) return 'already';
          throw e;
        }
      },
    };
  }

  private unbindStep(b: Binding): Step {
    return {
      kind: 'unbind',
      label: `unbind ${cross(b)}`,
      run: async () => {
        try {
          await this.client.unbindDeviceFromGateway(b.gatewayId, b.deviceId);
          return 'done';
        } catch (e) {
          if (isClearBladeError(e) && (e.status === 'NOT_FOUND' || e.httpStatus === 404)) return 'already';
          throw e;
        }
      },
    };
  }

  /** The gateways' credentials, all read before any call, so a bad key file stops the run before it starts. */
  private async credentials(ids: readonly string[]): Promise<Map<string, GatewayCredential>> {
    const keys = this.s.keys;
    const out = new Map<string, GatewayCredential>();
    if (keys === undefined) return out;
    for (const id of ids) out.set(id, await keys.credentialFor(id));
    return out;
  }

  private async execute(phase: string, tasks: readonly Task[]): Promise<RunResult> {
    const counts = countSteps(tasks);
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const bar = this.newProgress(phase, total, 'calls');
    const result = await runTasks(tasks, {
      workers: this.s.concurrency,
      stop: this.stop,
      onStep: (outcome) => bar.tick(1, outcome !== 'ok'),
    });
    bar.finish();
    this.progress = undefined;
    this.lastResult = result;
    return result;
  }

  private printDryRun(tasks: readonly Task[]): void {
    const byKind = new Map<StepKind, Step[]>();
    for (const task of tasks) for (const step of task) byKind.set(step.kind, [...(byKind.get(step.kind) ?? []), step]);
    this.out('');
    this.out('dry run: these calls would be made (nothing was changed):');
    if (byKind.size === 0) this.out('  none');
    for (const [kind, steps] of byKind) {
      this.out(`  ${kind}: ${count(steps.length)}`);
      for (const step of steps.slice(0, 20)) this.out(`    ${step.label}`);
      if (steps.length > 20) this.out(`    … and ${count(steps.length - 20)} more${this.s.out === undefined ? ' (--out writes the whole plan)' : ''}`);
    }
    const rates = this.s.rates;
    const creates = (byKind.get('create-gateway')?.length ?? 0) + (byKind.get('create-device')?.length ?? 0);
    const binds = (byKind.get('bind')?.length ?? 0) + (byKind.get('unbind')?.length ?? 0);
    const minutes = Math.max(creates / rates.creates, binds / rates.binds);
    if (Number.isFinite(minutes) && minutes > 0) this.out(`at --rate ${CALL_KINDS.map((k) => `${k}=${rateText(rates[k])}`).join(',')}: at least ${formatDuration(minutes * 60_000)}`);
  }

  private report(result: RunResult, what: Partial<Record<StepKind, string>>): void {
    const parts: string[] = [];
    for (const [kind, name] of Object.entries(what) as [StepKind, string][]) {
      const done = result.done[kind];
      const already = result.already[kind];
      if (done + already === 0) continue;
      parts.push(`${count(done)} ${done === 1 ? name.replace(/^(\w+)s\b/, '$1') : name}${already > 0 ? ` (${count(already)} more already were)` : ''}`);
    }
    const calls = this.client.callsByKind();
    const limited = Object.values(this.client.rateLimited).reduce((a, b) => a + b, 0);
    this.out(`${parts.length === 0 ? 'no change' : parts.join(', ')}; ${formatDuration(performance.now() - this.started)} in all`);
    this.out(
      `calls: ${count(this.client.totalCalls)} (reads ${count(calls.reads)}, creates ${count(calls.creates)}, binds ${count(calls.binds)})` +
        `${limited > 0 ? `; ${count(limited)} answered 429 and were retried later (rates now ${CALL_KINDS.map((k) => `${k}=${rateText(this.client.buckets[k].rate * 60_000)}`).join(',')})` : ''}`,
    );
    if (result.failed.length > 0) {
      this.out('');
      this.out(`FAILED: ${count(result.failed.length)} call(s) failed after their retries${result.skipped > 0 ? ` (${count(result.skipped)} dependent calls skipped)` : ''}:`);
      for (const f of result.failed.slice(0, 50)) this.out(`  ${f.label}: ${f.error}`);
      if (result.failed.length > 50) this.out(`  … and ${count(result.failed.length - 50)} more`);
      this.out('Run the same command again to retry them once the cause is fixed.');
    }
    if (result.interrupted) {
      this.out('');
      this.out(`INTERRUPTED: ${count(result.notStarted)} call(s) not made. Run the same command again to finish; it plans afresh from the registry.`);
    }
  }

  private exitCode(result: RunResult, more = false): number {
    if (result.interrupted) return EXIT.INTERRUPTED;
    return result.failed.length > 0 || more ? EXIT.FAILED : EXIT.OK;
  }

  // --- apply ----------------------------------------------------------------------------------------------------

  private async apply(plan: FleetPlan): Promise<number> {
    this.describePlan(plan);
    await this.writePlan(plan);
    if (plan.violations.length > 0) {
      this.out('');
      this.out('nothing was done (exit 4)');
      return EXIT.LIMITS;
    }
    if (plan.gatewaysToCreate.length > 0 && this.s.keys === undefined) {
      this.out('');
      this.out(`${count(plan.gatewaysToCreate.length)} gateway(s) of the pool do not exist (${sample(plan.gatewaysToCreate, (g) => g)}); nothing was done.`);
      this.out(`Create them first: iotcore-relay fleet gateways ${this.commonArgs()} --gateway-public-key <file or template>`);
      this.out('or give apply --gateway-public-key to create them in the same run.');
      return EXIT.USAGE;
    }
    const credentials = await this.credentials(plan.gatewaysToCreate);
    const gatewayTasks: Task[] = plan.gatewaysToCreate.map((id) => [this.createGatewayStep(id, credentials.get(id)!)]);
    const creates = new Set(plan.devicesToCreate);
    const deviceTasks: Task[] = [];
    for (const b of plan.bindingsToAdd) {
      deviceTasks.push(creates.has(b.deviceId) ? [this.createDeviceStep(b.deviceId), this.bindStep(b)] : [this.bindStep(b)]);
      creates.delete(b.deviceId);
    }
    // A device to create whose binding is in place already cannot exist; kept for completeness of the plan.
    for (const id of creates) deviceTasks.push([this.createDeviceStep(id)]);

    if (this.s.dryRun) {
      this.printDryRun([...gatewayTasks, ...deviceTasks]);
      return EXIT.OK;
    }
    this.out('');
    if (gatewayTasks.length + deviceTasks.length === 0) {
      this.out('apply: nothing to add; every device is bound to its gateway');
    } else {
      let result = await this.execute('apply: gateways', gatewayTasks);
      if (result.failed.length === 0 && !result.interrupted) {
        const gateways = result;
        result = await this.execute('apply: devices and bindings', deviceTasks);
        for (const kind of ['create-gateway'] as const) {
          result.done[kind] += gateways.done[kind];
          result.already[kind] += gateways.already[kind];
        }
      } else {
        result.notStarted += deviceTasks.reduce((n, t) => n + t.length, 0);
      }
      this.report(result, { 'create-gateway': 'gateways created', 'create-device': 'devices created', bind: 'bindings added' });
      const code = this.exitCode(result);
      if (code !== EXIT.OK) return code;
    }
    this.out('');
    this.out('next:');
    this.out(`  1. deploy the relay with this pool: IOTCORE_GATEWAY_IDS (serverless parameter gatewayIds) = ${this.s.poolText}`);
    if (plan.bindingsToRemove.length === 0) {
      this.out('  2. no old binding to remove: apply --finish has nothing to do');
    } else {
      this.out('  2. when the relay queue holds no message older than that deploy, remove the old bindings:');
      this.out(`     iotcore-relay fleet apply --finish ${this.commonArgs()}`);
    }
    return EXIT.OK;
  }

  // --- apply --finish -------------------------------------------------------------------------------------------

  private async finish(plan: FleetPlan): Promise<number> {
    this.describePlan(plan);
    const { now, waiting } = finishRemovals(plan);
    const tasks: Task[] = now.map((b) => [this.unbindStep(b)]);
    if (this.s.dryRun) {
      this.printDryRun(tasks);
      if (waiting.length > 0) this.out(`kept: ${count(waiting.length)} old binding(s) of devices not yet bound to their gateway (run apply first)`);
      return EXIT.OK;
    }
    this.out('');
    let result: RunResult;
    if (tasks.length === 0) {
      this.out('apply --finish: no old binding to remove');
      result = { done: { 'create-gateway': 0, 'create-device': 0, bind: 0, unbind: 0 }, already: { 'create-gateway': 0, 'create-device': 0, bind: 0, unbind: 0 }, failed: [], skipped: 0, notStarted: 0, interrupted: false };
    } else {
      result = await this.execute('apply --finish: unbind', tasks);
      this.report(result, { unbind: 'old bindings removed' });
    }
    if (waiting.length > 0) {
      this.out('');
      this.out(`KEPT: ${count(waiting.length)} old binding(s), because their devices are not bound to their own gateway yet (${sample(waiting, cross)}).`);
      this.out(`Run iotcore-relay fleet apply ${this.commonArgs()} first, then --finish again.`);
    }
    return this.exitCode(result, waiting.length > 0);
  }

  // --- gateways -------------------------------------------------------------------------------------------------

  private async gateways(): Promise<number> {
    const bar = this.newProgress('reading the gateways', undefined, 'gateways');
    const existing = new Map<string, DeviceResource>();
    for await (const page of this.client.listDevices({ gatewayType: 'GATEWAY', fieldMask: ['gatewayConfig', 'metadata', 'credentials'] })) {
      for (const d of page) existing.set(d.id, d);
      bar.tick(page.length);
    }
    bar.finish();
    this.progress = undefined;
    const credentials = await this.credentials(this.s.pool);
    const problems: string[] = [];
    let ok = 0;
    for (const id of this.s.pool) {
      const device = existing.get(id);
      if (device === undefined) continue;
      const credential = credentials.get(id)!;
      const method = device.gatewayConfig?.gatewayAuthMethod;
      if (!hasKey(device.credentials, credential)) {
        problems.push(`${id} exists, but its stored key differs from ${this.s.keys!.pathFor(id)} (the relay signs with the matching private key; fix one of them)`);
      } else if (method !== undefined && method !== 'ASSOCIATION_ONLY') {
        problems.push(`${id} exists with gatewayAuthMethod ${method}; the relay needs ASSOCIATION_ONLY`);
      } else {
        ok += 1;
      }
    }
    const missing = this.s.pool.filter((id) => !existing.has(id));
    this.out(`registry   ${this.registryName}`);
    this.out(`pool       ${count(this.s.pool.length)} gateways: ${count(ok)} in place, ${count(missing.length)} to create, ${count(problems.length)} to check`);
    const marked = [...existing.values()].filter((d) => isMarkedPoolGateway(d) && !this.s.pool.includes(d.id)).map((d) => d.id);
    if (marked.length > 0) this.out(`           ${count(marked.length)} gateway(s) created for an earlier pool are not in this one: ${sample(marked, (g) => g, 5)}`);
    const tasks: Task[] = missing.map((id) => [this.createGatewayStep(id, credentials.get(id)!)]);
    let result: RunResult | undefined;
    if (this.s.dryRun) {
      this.printDryRun(tasks);
    } else if (tasks.length > 0) {
      result = await this.execute('gateways: create', tasks);
      this.report(result, { 'create-gateway': 'gateways created' });
      // Created meanwhile, or taken by a device that is not a gateway: the list says which.
      if (result.already['create-gateway'] > 0) {
        const now = new Set((await this.client.listAllDevices({ gatewayType: 'GATEWAY' })).map((d) => d.id));
        for (const id of missing) if (!now.has(id)) problems.push(`${id} exists in the registry as a device that is not a gateway`);
      }
    }
    if (problems.length > 0) {
      this.out('');
      this.out(`CHECK: ${count(problems.length)} gateway(s) of the pool cannot be used as they are:`);
      for (const p of problems.slice(0, 50)) this.out(`  ${p}`);
      if (problems.length > 50) this.out(`  … and ${count(problems.length - 50)} more`);
    }
    if (result !== undefined && result.interrupted) return EXIT.INTERRUPTED;
    return (result?.failed.length ?? 0) > 0 || problems.length > 0 ? EXIT.FAILED : EXIT.OK;
  }
}

function isAlreadyExists(e: unknown): boolean {
  return isClearBladeError(e) && (e.status === 'ALREADY_EXISTS' || e.httpStatus === 409);
}

