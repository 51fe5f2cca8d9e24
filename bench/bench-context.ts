/**
 * What every scenario of the benchmark is given: where the project is, a private working folder, the fleet the
 * emulator serves, the built child processes, the sizes for this mode (full or `--quick`), and where progress goes.
 */
import type { Emulator } from '../emulator/index.js';
import type { BenchFleet } from './bench-fleet.js';
import type { GatewayAccess } from './child-jobs.js';
import type { BridgeEndpoint } from './mqtt-gateway-client.js';
import { BENCH_GATEWAY, BENCH_REGISTRY } from './bench-fleet.js';

export interface BenchContext {
  root: string;
  /** Removed at the end: bundles, job files, the key file. */
  workDir: string;
  quick: boolean;
  fleet: BenchFleet;
  /** The gateway's private key, in a 0600 file of `workDir`. */
  keyFile: string;
  bundles: { clientChild: string };
  /** Progress lines (stderr): stdout carries only the results table. */
  progress(line: string): void;
}

export function endpointOf(emulator: Emulator): BridgeEndpoint {
  if (emulator.ca === undefined) throw new Error('the benchmark needs the emulator to serve TLS');
  return { host: emulator.host, port: emulator.port, caPem: emulator.ca };
}

export function gatewayAccess(context: BenchContext, endpoint: BridgeEndpoint): GatewayAccess {
  return { endpoint, registry: { ...BENCH_REGISTRY }, gatewayId: BENCH_GATEWAY, keyFile: context.keyFile };
}
