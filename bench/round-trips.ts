/**
 * How many bridge round trips one relay batch costs. A batch of 10 records from 10 devices goes through
 * `relayBatch()` (JWT signing, TLS, CONNECT, errors subscription, attaches, publishes, detaches, DISCONNECT)
 * against the emulator with 25 ms added before every packet the bridge sends. Wall time / 25 ms is the number of
 * sequential waits on the bridge; pipelined attaches and publishes keep it near one per phase.
 *
 *   npx tsx bench/round-trips.ts [runs]
 */
import { randomUUID } from 'node:crypto';
import { startEmulator } from '../emulator/index.js';
import type { RegistryDocument } from '../emulator/registry.js';
import { signGatewayJwt } from '../lib/jwt.js';
import { generateGatewayKeyPair } from '../lib/keys/key-pair.js';
import { importSigningKey } from '../lib/keys/signing-key.js';
import { relayBatch } from '../lib/relay/relay-batch.js';
import type { InboundRecord } from '../lib/relay/route-records.js';

const LATENCY_MS = 25;
const DEVICES = 10;
const runs = Math.max(1, Number(process.argv[2] ?? 7) || 7);

const project = 'bench-project';
const location = 'us-central1';
const registry = 'bench-registry';
const gatewayId = 'gw-bench';
const devices = Array.from({ length: DEVICES }, (_, i) => `sensor-${String(i + 1).padStart(2, '0')}`);

const pair = await generateGatewayKeyPair('ES256');
const document: RegistryDocument = {
  project,
  location,
  registries: [
    {
      id: registry,
      devices: [
        {
          id: gatewayId,
          credentials: [{ publicKey: { format: 'ES256_PEM', key: pair.publicKeyPem } }],
          gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
        },
        ...devices.map((id) => ({ id })),
      ],
      bindings: devices.map((deviceId) => ({ gatewayId, deviceId })),
    },
  ],
};

const emulator = await startEmulator({ registry: document, adminPort: null, latencyMs: LATENCY_MS, stateRateLimit: false });
const signingKey = await importSigningKey(pair.privateKeyPem, { origin: 'bench key' });

const batch = (): InboundRecord[] =>
  devices.map((deviceId, i) => ({
    messageId: randomUUID(),
    groupId: gatewayId,
    receiveCount: 1,
    body: JSON.stringify(i % 2 === 0 ? { v: 1, deviceId, payload: `{"t":${20 + i}}` } : { v: 1, deviceId, type: 'state', payload: `{"on":true}` }),
  }));

const rows: { run: number; wallMs: number; roundTrips: number; confirmed: number }[] = [];
try {
  for (let run = 1; run <= runs; run++) {
    const records = batch();
    const started = performance.now();
    const { outcomes } = await relayBatch(records, {
      settings: {
        registry: { project, location, registry },
        gatewayIds: [gatewayId],
        mqttHost: emulator.host,
        mqttPort: emulator.port,
        extraCaPem: emulator.ca,
        connectTimeoutMs: 5000,
        attachTimeoutMs: 5000,
        pubackTimeoutMs: 5000,
        configTimeoutMs: 5000,
        closeTimeoutMs: 2000,
        publishWindow: 32,
      },
      gatewayJwt: async () => signGatewayJwt({ ...signingKey, project, lifetimeSeconds: 3600 }),
      deadline: Date.now() + 30_000,
    });
    const wallMs = performance.now() - started;
    rows.push({ run, wallMs, roundTrips: wallMs / LATENCY_MS, confirmed: outcomes.filter((o) => o.outcome === 'confirmed').length });
    // State is limited to one update per second per device on the real bridge; the emulator limit is off, but
    // spacing the runs keeps the numbers comparable with a live one.
    await new Promise((r) => setTimeout(r, 50));
  }
} finally {
  await emulator.close();
}

const sorted = rows.map((r) => r.wallMs).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
console.log(`relay batch: ${DEVICES} records from ${DEVICES} devices, one gateway, emulator latency ${LATENCY_MS} ms per bridge packet`);
console.log('run  wall ms  wall / 25 ms  confirmed');
for (const r of rows) console.log(`${String(r.run).padStart(3)}  ${r.wallMs.toFixed(1).padStart(7)}  ${r.roundTrips.toFixed(2).padStart(12)}  ${String(r.confirmed).padStart(9)}`);
console.log(`median ${median.toFixed(1)} ms = ${(median / LATENCY_MS).toFixed(2)} x ${LATENCY_MS} ms (first run includes module warm-up)`);
