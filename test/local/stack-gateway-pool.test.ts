/**
 * The local stack with a pool of gateways: the pool's gateways exist at the bridge with the demo gateway's key, each
 * demo device is bound to its gateway in the pool, and a reading travels through the gateway `gatewayFor` picks.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEMO } from '../../emulator/demo.js';
import { RelayError } from '../../lib/errors.js';
import { gatewayFor } from '../../lib/gateway-pool.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startStack, type Stack } from '../../local/stack.js';
import { until as waitUntil } from '../helpers/until.js';

const POOL = ['gw-1', 'gw-2', 'gw-3', 'gw-4'];

let stack: Stack;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-stack-pool-'));
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR', gatewayIds: POOL });
});

afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** This file's waits: up to 15,000 ms, polling every 50 ms. */
const until = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 15_000): Promise<T> =>
  waitUntil(what, probe, timeoutMs, 50);

it('creates every gateway of the pool at the bridge, association-only, with the demo gateway key', () => {
  const registry = stack.emulator.registry;
  const demoKey = registry.getDevice(DEMO.registry, DEMO.gateway).credentials;

  expect(stack.registry.gatewayIds).toEqual(POOL);
  for (const id of POOL) {
    const gateway = registry.getDevice(DEMO.registry, id);
    expect(gateway.gatewayConfig).toEqual({ gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' });
    expect(gateway.credentials).toEqual(demoKey);
  }
  for (const deviceId of DEMO.devices) {
    expect(registry.isBound(DEMO.registry, gatewayFor(deviceId, POOL), deviceId)).toBe(true);
  }
});

it("carries each demo device's reading through its own gateway of the pool", async () => {
  const marker = randomUUID();
  for (const deviceId of DEMO.devices) {
    const res = await fetch(`${stack.urls.ingest}/devices/${deviceId}/events`, {
      method: 'POST',
      headers: { authorization: `Device-Key ${stack.deviceKey(deviceId)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ marker, deviceId }),
    });
    expect(res.status).toBe(202);
  }
  const arrived = await until('the three readings at the bridge', () => {
    const found = stack.emulator.registry.events.filter((e) => Buffer.from(e.data, 'base64').toString('utf8').includes(marker));
    return found.length >= DEMO.devices.length ? found : undefined;
  });
  await until('an empty relay queue', async () => {
    const d = await queueDepth(stack.sqs.client, stack.relayQueue.url);
    return d.waiting === 0 && d.inFlight === 0 ? d : undefined;
  });

  expect(arrived.map((e) => [e.attributes.deviceId, e.attributes.gatewayId]).sort()).toEqual(
    DEMO.devices.map((deviceId) => [deviceId, gatewayFor(deviceId, POOL)]).sort(),
  );
  expect(await queueDepth(stack.sqs.client, stack.deadLetterQueue.url)).toEqual({ waiting: 0, inFlight: 0 });
});

it('refuses a malformed pool before it starts anything', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'iotcore-stack-pool-bad-'));
  try {
    await expect(startStack({ ports: 'free', dataDir: dir, scheduleEverySeconds: 0, gatewayIds: ['gw-1', 'not a gateway'] })).rejects.toBeInstanceOf(RelayError);
    // The bridge writes its CA there when it starts.
    expect(existsSync(join(dir, 'emulator'))).toBe(false);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
