/**
 * The benchmark's registry and its traffic: one association-only gateway with every device bound to it, and the
 * telemetry both sides of a comparison send. The relay and the clients it is compared with publish the very same
 * messages (same device, same topic, same bytes), so a difference in time is a difference in how they are sent.
 *
 * Records go to devices round-robin (record i to device i mod n), as readings from a fleet arrive interleaved.
 *
 * @example
 * const fleet = await makeBenchFleet(100);
 * const messages = benchMessages({ records: 1000, devices: 100 });
 * const records = queueRecords(messages, { fifoGroup: undefined }); // a standard-queue batch
 */
import { randomUUID } from 'node:crypto';
import type { RegistryDocument } from '../emulator/registry.js';
import type { RegistryPath } from '../lib/iotcore/topics.js';
import { generateGatewayKeyPair } from '../lib/keys/key-pair.js';
import { encodeTelemetryMessage } from '../lib/queue/message.js';
import type { InboundRecord } from '../lib/relay/route-records.js';

export const BENCH_REGISTRY: Readonly<RegistryPath> = { project: 'bench-project', location: 'us-central1', registry: 'bench-registry' };
export const BENCH_GATEWAY = 'gw-bench';

/** `sensor-0001`, `sensor-0002`, ...: valid IoT Core device IDs, sortable. */
export const deviceName = (index: number): string => `sensor-${String(index + 1).padStart(4, '0')}`;

export interface BenchFleet {
  document: RegistryDocument;
  /** PKCS#8 PEM of the gateway key. Handed to child processes through a 0600 file, never printed. */
  gatewayPrivateKeyPem: string;
  devices: string[];
}

/** ES256: key generation is instant, and the bridge accepts it as well as RS256. */
export async function makeBenchFleet(deviceCount: number): Promise<BenchFleet> {
  const pair = await generateGatewayKeyPair('ES256');
  const devices = Array.from({ length: deviceCount }, (_, i) => deviceName(i));
  const document: RegistryDocument = {
    project: BENCH_REGISTRY.project,
    location: BENCH_REGISTRY.location,
    registries: [
      {
        id: BENCH_REGISTRY.registry,
        devices: [
          {
            id: BENCH_GATEWAY,
            credentials: [{ publicKey: { format: 'ES256_PEM', key: pair.publicKeyPem } }],
            gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
          },
          ...devices.map((id) => ({ id })),
        ],
        bindings: devices.map((deviceId) => ({ gatewayId: BENCH_GATEWAY, deviceId })),
      },
    ],
  };
  return { document, gatewayPrivateKeyPem: pair.privateKeyPem, devices };
}

/** One telemetry event as it leaves for the bridge: `/devices/{deviceId}/events`, these bytes. */
export interface BenchMessage {
  deviceId: string;
  payload: Buffer;
}

export interface BatchShape {
  records: number;
  devices: number;
}

/** A reading of about 40 bytes, unique per record so that the bridge's record shows each one arrived. */
export function benchMessages(shape: BatchShape): BenchMessage[] {
  const run = randomUUID().slice(0, 8);
  return Array.from({ length: shape.records }, (_, i) => ({
    deviceId: deviceName(i % shape.devices),
    payload: Buffer.from(JSON.stringify({ run, seq: i, t: 20 + (i % 50) / 10 })),
  }));
}

/**
 * The same messages as queue records (contract v1, base64 as producers send binary). `fifoGroup` is the message
 * group of a FIFO queue (the gateway ID); undefined is a standard queue, where the relay picks the gateway by hashing.
 */
export function queueRecords(messages: readonly BenchMessage[], options: { fifoGroup: string | undefined }): InboundRecord[] {
  return messages.map((m) => ({
    messageId: randomUUID(),
    body: encodeTelemetryMessage({ deviceId: m.deviceId, type: 'event', payload: m.payload }),
    groupId: options.fifoGroup,
    receiveCount: 1,
  }));
}
