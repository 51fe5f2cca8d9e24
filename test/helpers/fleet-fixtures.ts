/**
 * For tests of `iotcore-relay fleet` against the emulator's ClearBlade REST form: an emulator with a registry of
 * gateways, devices and bindings, the project's service-account file, and a way to run the command in this process
 * with its output, exit code and report captured.
 *
 * @example
 * const fleet = await startFleetEmulator({ devices: ids('pump', 100) });
 * const r = await runFleet(fleet, 'apply', '--pool', 'gw-{1..3}', '--gateway-public-key', keyFile);
 * expect(fleet.boundTo('pump-00001')).toEqual([gatewayFor('pump-00001', pool)]);
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetCommand, type FleetIo, type FleetReport } from '../../cli/fleet-command.js';
import { startEmulator, type Emulator, type EmulatorOptions } from '../../emulator/index.js';
import type { DeviceInput, RegistryDocument } from '../../emulator/registry.js';

export const FLEET_PROJECT = 'fleet-project';
export const FLEET_LOCATION = 'us-central1';
export const FLEET_REGISTRY = 'fleet-registry';

export const ids = (prefix: string, n: number, from = 1): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + from).padStart(5, '0')}`);

export interface FleetEmulator {
  emulator: Emulator;
  dir: string;
  serviceAccountFile: string;
  /** The options every fleet command needs here: the service account and the registry. */
  registryArgs: string[];
  /** Gateways a device is bound to, sorted. */
  boundTo(deviceId: string): string[];
  /** Devices bound to a gateway, sorted. */
  boundDevices(gatewayId: string): string[];
  deviceIds(): string[];
  close(): Promise<void>;
}

export interface FleetSetup {
  gateways?: readonly (string | { id: string; marked?: boolean; publicKeyPem?: string })[];
  devices?: readonly string[];
  bindings?: readonly { gatewayId: string; deviceId: string }[];
  emulator?: Partial<EmulatorOptions>;
}

export async function startFleetEmulator(setup: FleetSetup = {}): Promise<FleetEmulator> {
  const gatewayInputs: DeviceInput[] = (setup.gateways ?? []).map((g) => {
    const { id, marked, publicKeyPem } = typeof g === 'string' ? { id: g, marked: false, publicKeyPem: undefined } : g;
    return {
      id,
      gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
      ...(publicKeyPem === undefined ? {} : { credentials: [{ publicKey: { format: 'ES256_PEM', key: publicKeyPem } }] }),
      ...(marked === true ? { metadata: { 'iotcore-relay-pool': 'true' } } : {}),
    };
  });
  const document: RegistryDocument = {
    project: FLEET_PROJECT,
    location: FLEET_LOCATION,
    registries: [{ id: FLEET_REGISTRY, devices: [...gatewayInputs, ...(setup.devices ?? []).map((id) => ({ id }))], bindings: [...(setup.bindings ?? [])] }],
  };
  const emulator = await startEmulator({ registry: document, tls: false, ...setup.emulator });
  const dir = await mkdtemp(join(tmpdir(), 'fleet-test-'));
  const serviceAccountFile = join(dir, 'service-account.json');
  await writeFile(serviceAccountFile, JSON.stringify(emulator.serviceAccount()), { mode: 0o600 });
  const registry = emulator.registry;
  return {
    emulator,
    dir,
    serviceAccountFile,
    registryArgs: ['--service-account', serviceAccountFile, '--location', FLEET_LOCATION, '--registry', FLEET_REGISTRY],
    boundTo: (d) => registry.gatewaysOf(FLEET_REGISTRY, d).sort(),
    boundDevices: (g) => registry.boundDevices(FLEET_REGISTRY, g).sort(),
    deviceIds: () => registry.listDevices(FLEET_REGISTRY).filter((d) => d.gatewayConfig.gatewayType !== 'GATEWAY').map((d) => d.id),
    close: async () => {
      await emulator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface FleetRunResult {
  code: number;
  stdout: string;
  stderr: string;
  report: FleetReport | undefined;
}

/** Runs `iotcore-relay fleet <argv>` in this process, with the fleet's service account and registry. */
export async function runFleet(fleet: FleetEmulator | undefined, sub: string, ...argv: string[]): Promise<FleetRunResult> {
  let stdout = '';
  let stderr = '';
  let report: FleetReport | undefined;
  const io: FleetIo = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    env: {},
    stderrTty: false,
    onInterrupt: () => () => {},
    exitNow: (code) => {
      throw new Error(`exitNow(${code}) in a test`);
    },
    progressIntervalMs: 60_000,
    onReport: (r) => (report = r),
  };
  const code = await fleetCommand([sub, ...(fleet?.registryArgs ?? []), ...argv], io);
  return { code, stdout, stderr, report };
}

/** Writes a device list file, one ID a line. */
export async function deviceFile(fleet: FleetEmulator, name: string, devices: readonly string[]): Promise<string> {
  const path = join(fleet.dir, name);
  await writeFile(path, `${devices.join('\n')}\n`);
  return path;
}
