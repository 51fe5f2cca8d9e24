/**
 * Round trips: how many bridge round trips one batch costs the relay, against the sample-style baseline
 * (baseline-sample-client.ts), both measured in the same child process, run for run alternately, on two kinds of
 * network:
 *
 * - `emulator latency`: the emulator delays every packet it sends by the round trip (its `latencyMs`). Only MQTT
 *   exchanges pay; TCP and TLS handshakes are free, as on a link whose latency sits in the bridge itself.
 * - `delay proxy`: the emulator answers at once, and delay-proxy.ts between client and emulator delays every chunk
 *   by half the round trip each way, so TCP and TLS handshakes pay too, as across a real network.
 *
 * Wall time divided by the injected round trip is the number of sequential waits on the bridge; the rest is
 * processing time (JWT signing, TLS crypto, both sides' code), which the same ratio turns into a fraction of a
 * round trip.
 *
 * @example
 * const result = await measureRoundTrips(context);
 */
import { startEmulator } from '../emulator/index.js';
import { endpointOf, gatewayAccess, type BenchContext } from './bench-context.js';
import type { QueuedShape, RoundTripShapeResult } from './child-jobs.js';
import { runClientChild } from './child-process.js';
import { startDelayProxy } from './delay-proxy.js';
import type { BridgeEndpoint } from './mqtt-gateway-client.js';

export type NetworkPath = 'emulator latency' | 'delay proxy';

export interface RoundTripRow extends RoundTripShapeResult {
  path: NetworkPath;
}

export interface RoundTripResults {
  roundTripMs: number;
  slowKeyMs: number;
  runs: number;
  publishWindow: number;
  rows: RoundTripRow[];
  /** Shapes drawn as the chart's lines (the others are in the table only). */
  chartShapes: QueuedShape[];
}

export const ROUND_TRIP_MS = 25;
/** The relay's default window (RELAY_PUBLISH_WINDOW). */
export const PUBLISH_WINDOW = 32;
/** A cold container's key: loading the Secrets Manager client and one GetSecretValue take some tens of ms; this stands for them. */
export const SLOW_KEY_MS = 40;

/** Batches of 1 and 10 records over 1 and 10 devices (FIFO), and a big standard-queue batch. */
export function roundTripShapes(quick: boolean): { shapes: QueuedShape[]; chart: QueuedShape[] } {
  const one: QueuedShape = { records: 1, devices: 1, queue: 'fifo' };
  const tenOne: QueuedShape = { records: 10, devices: 1, queue: 'fifo' };
  const tenTen: QueuedShape = { records: 10, devices: 10, queue: 'fifo' };
  const big: QueuedShape = quick ? { records: 40, devices: 4, queue: 'standard' } : { records: 1000, devices: 100, queue: 'standard' };
  return { shapes: [one, tenOne, tenTen, big], chart: [one, tenTen, big] };
}

export async function measureRoundTrips(context: BenchContext): Promise<RoundTripResults> {
  const runs = context.quick ? 1 : 5;
  const { shapes, chart } = roundTripShapes(context.quick);
  const rows: RoundTripRow[] = [];

  const measure = async (path: NetworkPath, endpoint: BridgeEndpoint): Promise<void> => {
    context.progress(`round trips, ${path}: ${shapes.map((s) => `${s.records}/${s.devices}`).join(', ')} records/devices, ${runs} run(s) each`);
    // The 1000-record baseline alone is some 1,200 round trips per run.
    const answer = await runClientChild(
      context.bundles.clientChild,
      context.workDir,
      { kind: 'round-trips', ...gatewayAccess(context, endpoint), shapes, runs, publishWindow: PUBLISH_WINDOW, slowKeyMs: SLOW_KEY_MS },
      { timeoutMs: 30 * 60_000 },
    );
    for (const shape of answer.shapes) rows.push({ path, ...shape });
  };

  const slow = await startEmulator({ registry: context.fleet.document, adminPort: null, latencyMs: ROUND_TRIP_MS, stateRateLimit: false });
  try {
    await measure('emulator latency', endpointOf(slow));
  } finally {
    await slow.close();
  }

  const fast = await startEmulator({ registry: context.fleet.document, adminPort: null, latencyMs: 0, stateRateLimit: false });
  const proxy = await startDelayProxy({ target: { host: fast.host, port: fast.port }, roundTripMs: ROUND_TRIP_MS });
  try {
    await measure('delay proxy', { ...endpointOf(fast), host: proxy.host, port: proxy.port });
  } finally {
    await proxy.close();
    await fast.close();
  }
  return { roundTripMs: ROUND_TRIP_MS, slowKeyMs: SLOW_KEY_MS, runs, publishWindow: PUBLISH_WINDOW, rows, chartShapes: chart };
}
