/**
 * `iotcore-relay fleet` against the emulator's ClearBlade REST form over HTTP: plans from the registry and from a
 * file, apply from empty, a resize make-before-break, a gateway removed, dry runs, limits, rate limits, and runs
 * interrupted (Ctrl-C and a crash, in a child process) then finished by the same command.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fleetCommand, parseRates } from '../../cli/fleet-command.js';
import { gatewayFor, parseGatewayIds } from '../../lib/gateway-pool.js';
import { generateGatewayKeyPair, type GatewayKeyPair } from '../../lib/keys/key-pair.js';
import { deviceFile, FLEET_REGISTRY, ids, runFleet, startFleetEmulator, type FleetEmulator } from '../helpers/fleet-fixtures.js';

const FAST = ['--rate', 'creates=off,binds=off,reads=off'];
let es256: GatewayKeyPair;
let rs256: GatewayKeyPair;
beforeAll(async () => {
  [es256, rs256] = await Promise.all([generateGatewayKeyPair('ES256'), generateGatewayKeyPair('RS256')]);
});

const open: FleetEmulator[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

async function fleetWith(setup: Parameters<typeof startFleetEmulator>[0] = {}): Promise<FleetEmulator> {
  const fleet = await startFleetEmulator(setup);
  open.push(fleet);
  return fleet;
}

async function keyFile(fleet: FleetEmulator, name = 'gateway_public.pem', pair = es256): Promise<string> {
  const path = join(fleet.dir, name);
  await writeFile(path, pair.publicKeyPem);
  return path;
}

/** Every device bound to exactly its gateway of `pool`, and to nothing else. */
function expectAssigned(fleet: FleetEmulator, devices: readonly string[], pool: readonly string[]): void {
  const wrong = devices.filter((d) => fleet.boundTo(d).join() !== gatewayFor(d, pool));
  expect(wrong, `devices not bound to exactly their gateway: ${wrong.slice(0, 5).join(', ')}`).toEqual([]);
}

describe('fleet: usage', () => {
  it('answers 2 with a reason for a bad command line, before any call', async () => {
    const fleet = await fleetWith();
    const cases: [string[], RegExp][] = [
      [['plan'], /give the pool with --pool/],
      [['plan', '--pool', 'gw-{9..1}'], /--pool item "gw-\{9\.\.1\}": write the range low to high/],
      [['plan', '--pool', 'gw-1', '--bogus'], /Unknown option '--bogus'/],
      [['plan', '--pool', 'gw-1', '--finish'], /--finish does not apply to 'fleet plan'/],
      [['apply', '--pool', 'gw-1', '--detailed-exitcode'], /--detailed-exitcode does not apply to 'fleet apply'/],
      [['apply', '--pool', 'gw-1', '--finish', '--gateway-public-key', 'k.pem'], /--finish creates nothing/],
      [['gateways', '--pool', 'gw-1'], /give the gateways' public key/],
      [['plan', '--pool', 'gw-1', '--rate', 'binds=fast'], /--rate: "binds=fast" is not/],
      [['plan', '--pool', 'gw-1', '--concurrency', '0'], /--concurrency must be a whole number from 1 to 1000/],
      [['plan', '--pool', 'gw-1', '--retired', 'gw-1'], /--retired lists gateways of the pool: gw-1/],
      [['plan', '--pool', 'gw-1', '--devices', join(fleet.dir, 'none.txt')], /device list .*none\.txt cannot be read: ENOENT/],
    ];
    for (const [argv, message] of cases) {
      const [sub, ...rest] = argv;
      const r = await runFleet(fleet, sub!, ...rest);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr, argv.join(' ')).toMatch(message);
    }
    const noAccount = await runFleet(undefined, 'plan', '--pool', 'gw-1', '--location', 'us-central1', '--registry', FLEET_REGISTRY);
    expect([noAccount.code, noAccount.stderr]).toEqual([2, expect.stringMatching(/give the service account JSON with --service-account/)]);
    expect(fleet.emulator.registry.listDevices(FLEET_REGISTRY)).toEqual([]);
  });

  it('prints its help with every exit code', async () => {
    let out = '';
    const code = await fleetCommand(['--help'], { stdout: { write: (s: string) => (out += s) }, stderr: { write: () => {} }, env: {}, stderrTty: false, onInterrupt: () => () => {}, exitNow: () => {} });
    expect(code).toBe(0);
    for (const c of ['0 ', '1 ', '2 ', '3 ', '4 ', '130']) expect(out).toContain(`\n  ${c}`);
  });

  it('reads rates per kind in calls a minute or a second', () => {
    expect(parseRates('creates=1200/min, binds=5/s,reads=off')).toEqual({ creates: 1200, binds: 300, reads: Infinity });
    expect(parseRates(undefined)).toEqual({ reads: 30_000, creates: 3_000, binds: 3_000 });
  });
});

describe('fleet plan', () => {
  it('plans from the registry: a fleet bound to every gateway (the old runbook) moves to one gateway each', async () => {
    const old = ['gw-1', 'gw-2', 'gw-3'];
    const devices = ids('pump', 300);
    const fleet = await fleetWith({ gateways: [...old, 'edge-1'], devices, bindings: devices.flatMap((d) => [...old, ...(d.endsWith('0') ? ['edge-1'] : [])].map((g) => ({ gatewayId: g, deviceId: d }))) });
    const pool = parseGatewayIds('gw-{1..6}');
    const out = join(fleet.dir, 'plan.json');
    const r = await runFleet(fleet, 'plan', '--pool', 'gw-{1..6}', '--out', out, '--detailed-exitcode');
    expect(r.code).toBe(3);
    const moved = devices.filter((d) => !old.includes(gatewayFor(d, pool)));
    expect(r.stdout).toMatch(new RegExp(`gateways to create +3 +gw-4, gw-5, gw-6`));
    expect(r.stdout).toMatch(new RegExp(`bindings to add +${moved.length} `));
    expect(r.stdout).toMatch(new RegExp(`bindings to remove +${devices.length * 3 - (devices.length - moved.length)} `));
    expect(r.stdout).toMatch(/30 bindings to 1 gateway\(s\) the tool does not own: edge-1/);
    expect(r.stdout).toMatch(/gateways per device +at most 5 of 10/);
    const plan = JSON.parse(await readFile(out, 'utf8'));
    expect(plan).toMatchObject({ version: 1, registry: `projects/fleet-project/locations/us-central1/registries/${FLEET_REGISTRY}`, devicesFrom: 'registry', deviceCount: 300 });
    expect(plan.bindingsToAdd).toEqual(moved.map((d) => ({ deviceId: d, gatewayId: gatewayFor(d, pool) })));
    expect(plan.bindingsToRemove.some((b: { gatewayId: string }) => b.gatewayId === 'edge-1')).toBe(false);
    // A plan reads and changes nothing.
    expect(r.report!.callsByKind).toEqual({ reads: expect.any(Number), creates: 0, binds: 0 });
    expect(fleet.boundTo('pump-00010')).toEqual(['edge-1', 'gw-1', 'gw-2', 'gw-3']);
  });

  it('plans from a device file: only the missing devices are created, and a plain plan exits 0', async () => {
    const fleet = await fleetWith({ gateways: ['gw-1', 'gw-2'], devices: ids('pump', 50) });
    const file = await deviceFile(fleet, 'devices.txt', ids('pump', 80));
    const r = await runFleet(fleet, 'plan', '--pool', 'gw-1,gw-2', '--devices', file);
    expect(r.code).toBe(0);
    expect(r.report!.plan).toEqual({ deviceCount: 80, gatewaysToCreate: 0, devicesToCreate: 30, bindingsToAdd: 80, bindingsToRemove: 0, violations: 0 });
    expect(r.stdout).toMatch(/devices to create +30 +pump-00051, pump-00052, pump-00053, …/);
    expect(r.stdout).toContain(`next: iotcore-relay fleet apply --pool gw-1,gw-2 --devices ${file} …`);
  });

  it('exits 4 when a device would be bound to 11 gateways, or a pool ID is a device; apply then changes nothing', async () => {
    const edges = parseGatewayIds('edge-{1..10}');
    const fleet = await fleetWith({ gateways: edges, devices: ['pump-1', 'pump-2', 'gw-3'], bindings: edges.map((g) => ({ gatewayId: g, deviceId: 'pump-1' })) });
    const plan = await runFleet(fleet, 'plan', '--pool', 'gw-{1..3}', '--detailed-exitcode');
    expect(plan.code).toBe(4);
    expect(plan.stdout).toMatch(/LIMITS: 2 problem\(s\)/);
    expect(plan.stdout).toMatch(/pump-1 would be bound to 11 gateways between apply and --finish/);
    expect(plan.stdout).toMatch(/gw-3 is in the pool but exists in the registry as a device that is not a gateway/);
    const key = await keyFile(fleet);
    const apply = await runFleet(fleet, 'apply', '--pool', 'gw-{1..3}', '--gateway-public-key', key, ...FAST);
    expect(apply.code).toBe(4);
    expect(apply.stdout).toContain('nothing was done (exit 4)');
    expect(apply.report!.callsByKind.creates + apply.report!.callsByKind.binds).toBe(0);
    expect(fleet.emulator.registry.findDevice(FLEET_REGISTRY, 'gw-1')).toBeUndefined();
    expect(fleet.boundTo('pump-2')).toEqual([]);
  });
});

describe('fleet apply', () => {
  it('from empty: creates the pool and the devices of a file, and binds every device to exactly its gateway', async () => {
    const fleet = await fleetWith();
    const devices = ids('sensor', 800);
    const file = await deviceFile(fleet, 'devices.txt', devices);
    const key = await keyFile(fleet);
    const pool = parseGatewayIds('gw-{01..10}');
    const r = await runFleet(fleet, 'apply', '--pool', 'gw-{01..10}', '--devices', file, '--gateway-public-key', key, ...FAST);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expectAssigned(fleet, devices, pool);
    for (const g of pool) {
      const gw = fleet.emulator.registry.getDevice(FLEET_REGISTRY, g);
      expect(gw.gatewayConfig).toMatchObject({ gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' });
      expect(gw.credentials.map((c) => c.publicKey.format)).toEqual(['ES256_PEM']);
      expect(gw.metadata).toEqual({ 'iotcore-relay-pool': 'true' });
    }
    expect(r.report!.calls).toMatchObject({ create: 810, bind: 800, unbind: 0, delete: 0 });
    expect(r.stdout).toContain('10 gateways created, 800 devices created, 800 bindings added');
    expect(r.stdout).toContain('no old binding to remove: apply --finish has nothing to do');
    expect(r.stderr).toMatch(/apply: devices and bindings: 1,600\/1,600 calls · .* · took /);

    // Done is done: the same command again reads, and changes nothing.
    const again = await runFleet(fleet, 'apply', '--pool', 'gw-{01..10}', '--devices', file, '--gateway-public-key', key, ...FAST);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('apply: nothing to add; every device is bound to its gateway');
    expect(again.report!.callsByKind).toMatchObject({ creates: 0, binds: 0 });
    const plan = await runFleet(fleet, 'plan', '--pool', 'gw-{01..10}', '--detailed-exitcode');
    expect([plan.code, plan.stdout]).toEqual([0, expect.stringContaining('nothing to do')]);
  });

  it('needs a key to create gateways: says which command creates them, and does nothing (exit 2)', async () => {
    const fleet = await fleetWith({ gateways: ['gw-1'], devices: ids('pump', 20) });
    const r = await runFleet(fleet, 'apply', '--pool', 'gw-{1..3}', ...FAST);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/2 gateway\(s\) of the pool do not exist \(gw-2, gw-3\); nothing was done/);
    expect(r.stdout).toContain("Create them first: iotcore-relay fleet gateways --pool 'gw-{1..3}' … --gateway-public-key <file or template>");
    expect(fleet.boundDevices('gw-1')).toEqual([]);
  });

  it('resizes N -> N+1 make-before-break: old and new binding after apply, only the new after --finish', async () => {
    const devices = ids('meter', 6000);
    const old = parseGatewayIds('gw-{1..8}');
    const pool = parseGatewayIds('gw-{1..9}');
    const fleet = await fleetWith({ gateways: old.map((id) => ({ id, marked: true })), devices, bindings: devices.map((d) => ({ gatewayId: gatewayFor(d, old), deviceId: d })) });
    const key = await keyFile(fleet);
    const moved = devices.filter((d) => gatewayFor(d, pool) === 'gw-9');
    expect(moved.length / devices.length).toBeLessThanOrEqual(1 / 9 + 0.01);

    const apply = await runFleet(fleet, 'apply', '--pool', 'gw-{1..9}', '--gateway-public-key', key, ...FAST);
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.report!.calls).toMatchObject({ create: 1, bind: moved.length, unbind: 0 });
    for (const d of devices) {
      const want = moved.includes(d) ? [gatewayFor(d, old), 'gw-9'].sort() : [gatewayFor(d, old)];
      expect(fleet.boundTo(d)).toEqual(want);
    }
    expect(apply.stdout).toContain("iotcore-relay fleet apply --finish --pool 'gw-{1..9}' …");

    const dry = await runFleet(fleet, 'apply', '--pool', 'gw-{1..9}', '--finish', '--dry-run', ...FAST);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`unbind: ${moved.length}`);
    expect(dry.report!.callsByKind.binds).toBe(0);
    expect(fleet.boundTo(moved[0]!)).toHaveLength(2);

    const finish = await runFleet(fleet, 'apply', '--pool', 'gw-{1..9}', '--finish', ...FAST);
    expect(finish.code, finish.stdout).toBe(0);
    expect(finish.report!.calls).toMatchObject({ unbind: moved.length, bind: 0 });
    expectAssigned(fleet, devices, pool);
    expect(finish.stdout).toContain(`${moved.length} old bindings removed`);
  });

  it('removing a gateway from the pool moves only its devices, and --finish unbinds them from it', async () => {
    const devices = ids('valve', 1200);
    const old = parseGatewayIds('gw-{1..6}');
    const pool = old.filter((g) => g !== 'gw-4');
    const fleet = await fleetWith({ gateways: old.map((id) => ({ id, marked: true })), devices, bindings: devices.map((d) => ({ gatewayId: gatewayFor(d, old), deviceId: d })) });
    const onGw4 = devices.filter((d) => gatewayFor(d, old) === 'gw-4');
    const before = new Map(devices.map((d) => [d, fleet.boundTo(d)]));

    const apply = await runFleet(fleet, 'apply', '--pool', pool.join(','), ...FAST);
    expect(apply.code, apply.stdout).toBe(0);
    expect(apply.report!.calls.bind).toBe(onGw4.length);
    for (const d of devices) if (!onGw4.includes(d)) expect(fleet.boundTo(d)).toEqual(before.get(d));

    const finish = await runFleet(fleet, 'apply', '--pool', pool.join(','), '--finish', ...FAST);
    expect(finish.code, finish.stdout).toBe(0);
    expect(finish.report!.calls.unbind).toBe(onGw4.length);
    expect(fleet.boundDevices('gw-4')).toEqual([]);
    expectAssigned(fleet, devices, pool);
    // The retired gateway itself stays: the tool never deletes.
    expect(fleet.emulator.registry.findDevice(FLEET_REGISTRY, 'gw-4')).toBeDefined();
  });

  it('--finish keeps the old binding of a device not yet bound to its gateway (exit 1)', async () => {
    const devices = ids('pump', 100);
    const old = ['gw-1', 'gw-2'];
    const fleet = await fleetWith({ gateways: ['gw-1', 'gw-2', 'gw-3'], devices, bindings: devices.map((d) => ({ gatewayId: gatewayFor(d, old), deviceId: d })) });
    const pool = ['gw-1', 'gw-2', 'gw-3'];
    const r = await runFleet(fleet, 'apply', '--pool', pool.join(','), '--finish', ...FAST);
    const waiting = devices.filter((d) => gatewayFor(d, pool) === 'gw-3');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`KEPT: ${waiting.length} old binding\\(s\\), because their devices are not bound to their own gateway yet`));
    for (const d of devices) expect(fleet.boundTo(d)).toEqual([gatewayFor(d, old)]);
  });

  it('a dry run prints the calls and changes nothing', async () => {
    const fleet = await fleetWith({ devices: ids('pump', 40) });
    const key = await keyFile(fleet);
    const out = join(fleet.dir, 'dry-plan.json');
    const r = await runFleet(fleet, 'apply', '--pool', 'gw-{1..2}', '--gateway-public-key', key, '--dry-run', '--out', out, ...FAST);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('dry run: these calls would be made (nothing was changed):');
    expect(r.stdout).toMatch(/create-gateway: 2\n {4}create gateway gw-1 \(ES256_PEM, association only\)\n {4}create gateway gw-2/);
    expect(r.stdout).toMatch(/bind: 40\n {4}bind pump-00001 -> gw-\d/);
    expect(r.report!.callsByKind).toMatchObject({ creates: 0, binds: 0 });
    expect(fleet.emulator.registry.listDevices(FLEET_REGISTRY)).toHaveLength(40);
    expect(JSON.parse(await readFile(out, 'utf8')).bindingsToAdd).toHaveLength(40);
  });

  it('stays under the server quota: answered 429, it slows down and does not fail', async () => {
    const devices = ids('pump', 160);
    const fleet = await fleetWith({ gateways: ['gw-1', 'gw-2'], devices, emulator: { rateLimits: { bind: 40 }, rateLimitWindowMs: 1000 } });
    const t = performance.now();
    // The default pace (3,000 binds a minute, 50 a second) is above this server's 40 a second.
    const r = await runFleet(fleet, 'apply', '--pool', 'gw-1,gw-2');
    const took = performance.now() - t;
    expect(r.code, r.stdout).toBe(0);
    expect(r.report!.result!.failed).toEqual([]);
    expect(r.report!.rateLimited.binds).toBeGreaterThan(0);
    expect(took).toBeGreaterThanOrEqual(3000); // 160 binds, 40 a window of 1 s
    expect(r.stdout).toMatch(/answered 429 and were retried later/);
    expectAssigned(fleet, devices, ['gw-1', 'gw-2']);
  }, 60_000);

  it('a bind refused for good is listed as failed, the others go on (exit 1)', async () => {
    const devices = ids('pump', 30);
    // This server lets a gateway hold 5 devices: the plan, made for ClearBlade's 10,000, cannot know.
    const fleet = await fleetWith({ gateways: ['gw-1'], devices, emulator: { maxDevicesPerGateway: 5, bindingLimitStatus: 'FAILED_PRECONDITION' } });
    const r = await runFleet(fleet, 'apply', '--pool', 'gw-1', ...FAST);
    expect(r.code).toBe(1);
    expect(r.report!.result!.failed).toHaveLength(25);
    expect(r.report!.result!.done.bind).toBe(5);
    expect(r.stdout).toMatch(/FAILED: 25 call\(s\) failed after their retries/);
    expect(r.stdout).toMatch(/bind pump-\d+ -> gw-1: bind: HTTP 400 FAILED_PRECONDITION: gw-1 already has 5 bound devices/);
  });

  it('Ctrl-C stops new calls, waits for those in flight, says how far it got, exits 130; the same command finishes', async () => {
    const devices = ids('pump', 400);
    const fleet = await fleetWith({ gateways: ['gw-1', 'gw-2', 'gw-3'], devices });
    let interrupt: (() => void) | undefined;
    let stdout = '';
    const running = fleetCommand(['apply', '--pool', 'gw-{1..3}', ...fleet.registryArgs, '--rate', 'binds=3000/min', '--concurrency', '4'], {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: () => {} },
      env: {},
      stderrTty: false,
      onInterrupt: (h) => ((interrupt = h), () => (interrupt = undefined)),
      exitNow: () => {},
    });
    const bound = (): number => devices.filter((d) => fleet.boundTo(d).length > 0).length;
    while (bound() < 60) await new Promise((r) => setTimeout(r, 20));
    interrupt!();
    expect(await running).toBe(130);
    const after = bound();
    expect(stdout).toMatch(new RegExp(`${after} bindings added`));
    expect(stdout).toMatch(new RegExp(`INTERRUPTED: ${devices.length - after} call\\(s\\) not made`));

    const again = await runFleet(fleet, 'apply', '--pool', 'gw-{1..3}', ...FAST);
    expect(again.code).toBe(0);
    expect(again.report!.calls.bind).toBe(devices.length - after);
    expectAssigned(fleet, devices, ['gw-1', 'gw-2', 'gw-3']);
  });
});

describe('fleet apply in a child process', () => {
  const bin = join(import.meta.dirname, '../../bin/iotcore-relay.mjs');

  function start(fleet: FleetEmulator, args: string[]): { exit: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>; kill: (s: NodeJS.Signals) => void } {
    const child = spawn(process.execPath, [bin, 'fleet', 'apply', ...fleet.registryArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, IOTCORE_GATEWAY_IDS: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exit = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) =>
      child.on('exit', (code, signal) => setImmediate(() => resolve({ code, signal, stdout, stderr }))),
    );
    return { exit, kill: (s) => child.kill(s) };
  }

  it('SIGINT mid-apply exits 130 with the in-flight calls done; SIGKILL mid-apply; a re-run finishes either', async () => {
    const devices = ids('pump', 500);
    const fleet = await fleetWith();
    const file = await deviceFile(fleet, 'devices.txt', devices);
    const key = await keyFile(fleet);
    const pool = parseGatewayIds('gw-{1..4}');
    const args = ['--pool', 'gw-{1..4}', '--devices', file, '--gateway-public-key', key, '--rate', 'creates=off,binds=1800/min'];
    const bound = (): number => devices.filter((d) => fleet.boundTo(d).length > 0).length;
    const waitFor = async (n: number): Promise<void> => {
      while (bound() < n) await new Promise((r) => setTimeout(r, 25));
    };

    const first = start(fleet, args);
    await waitFor(50);
    first.kill('SIGINT');
    const interrupted = await first.exit;
    expect(interrupted.code, interrupted.stderr).toBe(130);
    expect(interrupted.stderr).toContain('stopping: no new calls; waiting for the calls in flight');
    const afterInt = bound();
    expect(interrupted.stdout).toMatch(new RegExp(`${afterInt} bindings added`));
    expect(interrupted.stdout).toMatch(/INTERRUPTED: \d+ call\(s\) not made\. Run the same command again to finish/);

    const second = start(fleet, args);
    await waitFor(afterInt + 50);
    second.kill('SIGKILL');
    expect((await second.exit).signal).toBe('SIGKILL');
    const afterKill = bound();
    expect(afterKill).toBeLessThan(devices.length);

    const existing = fleet.deviceIds().length;
    const last = await runFleet(fleet, 'apply', '--pool', 'gw-{1..4}', '--devices', file, '--gateway-public-key', key, ...FAST);
    expect(last.code, last.stdout).toBe(0);
    // Re-planned from the registry: only what is still missing is done (the gateways all came first).
    expect(last.report!.calls.bind).toBe(devices.length - afterKill);
    expect(last.report!.calls.create).toBe(devices.length - existing);
    expectAssigned(fleet, devices, pool);
    expect(fleet.deviceIds().sort()).toEqual(devices);
  }, 60_000);
});

describe('fleet gateways', () => {
  it("creates the pool's gateways from per-gateway keys, skips those in place, and reports a key that differs", async () => {
    const other = await generateGatewayKeyPair('ES256');
    const fleet = await fleetWith({ gateways: [{ id: 'gw-1', publicKeyPem: es256.publicKeyPem }, { id: 'gw-2', publicKeyPem: other.publicKeyPem }] });
    await keyFile(fleet, 'gw-1_public.pem', es256);
    await keyFile(fleet, 'gw-2_public.pem', es256);
    await keyFile(fleet, 'gw-3_public.pem', rs256);
    await keyFile(fleet, 'gw-4_public.pem', es256);
    const template = join(fleet.dir, '{gateway}_public.pem');

    const dry = await runFleet(fleet, 'gateways', '--pool', 'gw-{1..4}', '--gateway-public-key', template, '--dry-run');
    expect(dry.stdout).toMatch(/create-gateway: 2\n {4}create gateway gw-3 \(RSA_PEM, association only\)\n {4}create gateway gw-4 \(ES256_PEM, association only\)/);
    expect(fleet.emulator.registry.findDevice(FLEET_REGISTRY, 'gw-3')).toBeUndefined();

    const r = await runFleet(fleet, 'gateways', '--pool', 'gw-{1..4}', '--gateway-public-key', template);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('pool       4 gateways: 1 in place, 2 to create, 1 to check');
    expect(r.stdout).toContain(`gw-2 exists, but its stored key differs from ${join(fleet.dir, 'gw-2_public.pem')}`);
    expect(fleet.emulator.registry.getDevice(FLEET_REGISTRY, 'gw-3').credentials[0]!.publicKey).toEqual({ format: 'RSA_PEM', key: rs256.publicKeyPem });
    expect(fleet.emulator.registry.getDevice(FLEET_REGISTRY, 'gw-4').gatewayConfig.gatewayAuthMethod).toBe('ASSOCIATION_ONLY');
    expect(r.report!.calls.create).toBe(2);
  });

  it('refuses a private key given as the public key, before any call', async () => {
    const fleet = await fleetWith();
    const key = join(fleet.dir, 'oops.pem');
    await writeFile(key, es256.privateKeyPem);
    const r = await runFleet(fleet, 'gateways', '--pool', 'gw-1', '--gateway-public-key', key);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('holds a PRIVATE key; give the public key');
    expect(r.stderr + r.stdout).not.toContain(es256.privateKeyPem.split('\n')[1]!);
    expect(fleet.emulator.registry.listDevices(FLEET_REGISTRY)).toEqual([]);
  });
});
