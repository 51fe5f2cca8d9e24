/**
 * `iotcore-relay fleet` at fleet scale against the emulator's ClearBlade REST form: 100,000 devices and 100
 * gateways (`--quick`: 2,000 and 20).
 *
 * 1. `fleet apply` from an empty registry, devices from a file, the gateways created with one shared ES256 key;
 * 2. a check through the REST API that every device is bound to exactly its gateway (`gatewayFor`);
 * 3. a resize to 101 gateways: `fleet apply` (the new gateway and the new bindings; each moved device is then
 *    bound to its old and its new gateway), then `fleet apply --finish` (the old bindings go);
 * 4. the same check on the new pool, and the share of devices rebound: at most 1/(N+1) + 1 %, which for 100 -> 101
 *    is within the 2 % target.
 *
 * Each step is timed and its calls counted by operation. The command runs in this process exactly as
 * `iotcore-relay fleet` runs (its pacing switched off: `--rate reads=off,creates=off,binds=off`, so the figures
 * are the tool and the emulator, not ClearBlade's quotas; the quotas' time is worked out beside them). The emulator
 * runs in a child process (`iotcore-relay emulator --no-tls`), so they do not share an event loop.
 *
 * @example
 * const results = await measureFleetProvisioning(context);
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fleetCommand, type FleetReport } from '../cli/fleet-command.js';
import { ClearBladeClient, DEFAULT_RATES_PER_MINUTE, type CallKind } from '../lib/clearblade/rest-client.js';
import { readServiceAccount } from '../lib/clearblade/service-account.js';
import { gatewayFor, parseGatewayIds } from '../lib/gateway-pool.js';
import { generateGatewayKeyPair } from '../lib/keys/key-pair.js';
import type { BenchContext } from './bench-context.js';

const PROJECT = 'fleet-bench';
const LOCATION = 'us-central1';
const REGISTRY = 'fleet-registry';
const CONCURRENCY = 32;

export interface FleetStep {
  name: string;
  command: string;
  exitCode: number;
  wallMs: number;
  calls: FleetReport['calls'];
  callsByKind: Record<CallKind, number>;
  changes: { gateways: number; devices: number; bindingsAdded: number; bindingsRemoved: number };
}

export interface BindingCheck {
  devices: number;
  /** Devices bound to exactly their gateway and nothing else. */
  exact: number;
  /** Calls and time the check took (list calls through the REST API). */
  calls: number;
  wallMs: number;
}

export interface FleetResults {
  devices: number;
  gatewaysBefore: number;
  gatewaysAfter: number;
  concurrency: number;
  steps: FleetStep[];
  afterApply: BindingCheck;
  afterResize: BindingCheck;
  /** Devices bound to both their old and new gateway between the resize's apply and its --finish. */
  boundTwiceDuringResize: number;
  rebound: number;
  /** The assignment's own bound on the share rebound: 1/(N+1) + 1 %. */
  reboundBound: number;
  /** What the first apply's creates and binds take at ClearBlade's default quotas, paced as the tool paces them. */
  minutesAtDefaultQuotas: number;
}

const kinds = (r: FleetReport): Record<CallKind, number> => r.callsByKind;

export async function measureFleetProvisioning(context: BenchContext): Promise<FleetResults> {
  const devicesCount = context.quick ? 2_000 : 100_000;
  const gatewaysBefore = context.quick ? 20 : 100;
  const width = String(gatewaysBefore).length;
  const poolText = (n: number): string => `gw-{${'0'.repeat(width)}..${String(n - 1).padStart(width, '0')}}`;
  const dir = join(context.workDir, 'fleet');
  await mkdir(dir, { recursive: true });
  const registryFile = join(dir, 'registry.json');
  const accountFile = join(dir, 'service-account.json');
  const devicesFile = join(dir, 'devices.txt');
  const keyFile = join(dir, 'gateway_public.pem');
  const devices = Array.from({ length: devicesCount }, (_, i) => `meter-${String(i + 1).padStart(6, '0')}`);
  await writeFile(registryFile, JSON.stringify({ project: PROJECT, location: LOCATION, registries: [{ id: REGISTRY }] }));
  await writeFile(devicesFile, `${devices.join('\n')}\n`);
  await writeFile(keyFile, (await generateGatewayKeyPair('ES256')).publicKeyPem);

  const child = spawn(
    process.execPath,
    [join(context.root, 'bin/iotcore-relay.mjs'), 'emulator', '--no-tls', '--port', '0', '--registry', registryFile, '--service-account-out', accountFile, '--quiet'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`the emulator exited (${code}) before it was ready`)));
    });
    const common = ['--service-account', accountFile, '--location', LOCATION, '--registry', REGISTRY, '--rate', 'reads=off,creates=off,binds=off', '--concurrency', String(CONCURRENCY)];
    const steps: FleetStep[] = [];
    const step = async (name: string, argv: string[]): Promise<FleetStep> => {
      context.progress(`fleet: ${name}`);
      let report: FleetReport | undefined;
      let stdout = '';
      const code = await fleetCommand([...argv, ...common], {
        stdout: { write: (s: string) => (stdout += s) },
        stderr: { write: (s: string) => process.stderr.write(`  ${s}`) },
        env: {},
        stderrTty: false,
        progressIntervalMs: 15_000,
        onInterrupt: () => () => {},
        exitNow: () => {},
        onReport: (r) => (report = r),
      });
      if (code !== 0 || report === undefined) throw new Error(`fleet ${argv.join(' ')} exited ${code}:\n${stdout}`);
      const r = report.result;
      const s: FleetStep = {
        name,
        command: `fleet ${argv.map((a) => (a.includes('{') ? `'${a}'` : a.startsWith(dir) ? a.slice(dir.length + 1) : a)).join(' ')}`,
        exitCode: code,
        wallMs: report.wallMs,
        calls: report.calls,
        callsByKind: kinds(report),
        changes: {
          gateways: r?.done['create-gateway'] ?? 0,
          devices: r?.done['create-device'] ?? 0,
          bindingsAdded: r?.done.bind ?? 0,
          bindingsRemoved: r?.done.unbind ?? 0,
        },
      };
      steps.push(s);
      context.progress(`fleet: ${name}: ${(s.wallMs / 1000).toFixed(1)} s, ${Object.values(s.callsByKind).reduce((a, b) => a + b, 0)} calls`);
      return s;
    };

    const account = await readServiceAccount(accountFile);
    /** Device -> gateways, read through the REST API as anyone would check it. */
    const bindings = async (gateways: readonly string[]): Promise<{ of: Map<string, string[]>; calls: number; wallMs: number }> => {
      const client = new ClearBladeClient({
        serviceAccount: account,
        registry: { project: PROJECT, location: LOCATION, registry: REGISTRY },
        ratesPerMinute: { reads: Infinity, creates: Infinity, binds: Infinity },
        concurrency: CONCURRENCY,
      });
      const t = performance.now();
      const of = new Map<string, string[]>();
      const queue = [...gateways];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let g = queue.shift(); g !== undefined; g = queue.shift()) {
            for (const d of await client.listAllDevices({ associationsGatewayId: g })) of.set(d.id, [...(of.get(d.id) ?? []), g]);
          }
        }),
      );
      return { of, calls: client.totalCalls, wallMs: performance.now() - t };
    };
    const check = async (pool: readonly string[], allGateways: readonly string[]): Promise<BindingCheck> => {
      const { of, calls, wallMs } = await bindings(allGateways);
      const exact = devices.filter((d) => {
        const g = of.get(d);
        return g !== undefined && g.length === 1 && g[0] === gatewayFor(d, pool);
      }).length;
      return { devices: devices.length, exact, calls, wallMs };
    };

    const before = parseGatewayIds(poolText(gatewaysBefore));
    const after = parseGatewayIds(poolText(gatewaysBefore + 1));
    const first = await step(`apply from empty: ${devicesCount.toLocaleString('en-US')} devices, ${gatewaysBefore} gateways`, [
      'apply',
      '--pool',
      poolText(gatewaysBefore),
      '--devices',
      devicesFile,
      '--gateway-public-key',
      keyFile,
    ]);
    context.progress('fleet: checking every binding');
    const afterApply = await check(before, before);

    const resize = await step(`resize to ${gatewaysBefore + 1} gateways: apply`, ['apply', '--pool', poolText(gatewaysBefore + 1), '--gateway-public-key', keyFile]);
    const during = await bindings(after);
    const boundTwiceDuringResize = [...during.of.values()].filter((g) => g.length === 2).length;
    await step(`resize to ${gatewaysBefore + 1} gateways: apply --finish`, ['apply', '--finish', '--pool', poolText(gatewaysBefore + 1)]);
    context.progress('fleet: checking every binding');
    const afterResize = await check(after, after);

    const creates = first.callsByKind.creates;
    const binds = first.callsByKind.binds;
    return {
      devices: devicesCount,
      gatewaysBefore,
      gatewaysAfter: gatewaysBefore + 1,
      concurrency: CONCURRENCY,
      steps,
      afterApply,
      afterResize,
      boundTwiceDuringResize,
      rebound: resize.changes.bindingsAdded,
      reboundBound: 1 / (gatewaysBefore + 1) + 0.01,
      minutesAtDefaultQuotas: Math.max(creates / DEFAULT_RATES_PER_MINUTE.creates, binds / DEFAULT_RATES_PER_MINUTE.binds),
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}
