/**
 * The simulated devices of `npm start -- --simulate N`: each kind of post, good or wrong on purpose, gets the
 * answer the table in local/device-simulator.ts promises, from the real stack.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceSimulator, type SimulatedKind } from '../../local/device-simulator.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startStack, type Stack } from '../../local/stack.js';

let stack: Stack;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-sim-'));
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR' });
});

afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

const until = <T>(what: string, probe: () => T | undefined): Promise<T> => untilAsync(what, async () => probe());

async function untilAsync<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('DeviceSimulator', () => {
  it('gets the promised answer for each kind of post', async () => {
    // Prepare
    const answers: Partial<Record<SimulatedKind, number | 'failed'>> = {};
    const sim = new DeviceSimulator({
      ingestUrl: stack.urls.ingest,
      devices: ['pump-0003'],
      deviceKey: (id) => stack.deviceKey(id),
      unregisteredDevice: 'ghost-0042',
      onPost: (kind, _device, status) => (answers[kind] = status),
    });

    // Act
    for (const kind of ['reading', 'state', 'wrong-key', 'bad-subfolder', 'oversize', 'unregistered'] as const) await sim.post('pump-0003', kind);
    const refusal = await until('the bridge refusing the unregistered device', () =>
      stack.emulator.registry.errors.find((e) => e.payload.device_id === 'ghost-0042'),
    );
    const parked = await untilAsync('the record in the dead-letter queue', async () => {
      const d = await queueDepth(stack.sqs.client, stack.deadLetterQueue.url);
      return d.waiting === 1 ? d : undefined;
    });

    // Assess
    expect(answers).toEqual({ reading: 202, state: 202, 'wrong-key': 401, 'bad-subfolder': 400, oversize: 413, unregistered: 202 });
    expect(refusal.payload.error_type).toBe('GATEWAY_ATTACHMENT_ERROR');
    expect(parked).toEqual({ waiting: 1, inFlight: 0 });
    expect(sim.stats()).toEqual({ devices: 1, sent: 6, accepted: 3, refused: 3, failed: 0 });
    expect(stack.emulator.registry.events.some((e) => e.attributes.deviceId === 'ghost-0042')).toBe(false);
  });

  it('mixes about one wrong post in ten into the readings', () => {
    const kinds = Array.from({ length: 1000 }, (_, i) => DeviceSimulator.kindFor(i / 1000));
    const wrong = kinds.filter((k) => k !== 'reading' && k !== 'state').length;
    expect(wrong).toBeGreaterThanOrEqual(50);
    expect(wrong).toBeLessThanOrEqual(150);
    expect(new Set(kinds)).toEqual(new Set(['reading', 'state', 'wrong-key', 'bad-subfolder', 'oversize', 'unregistered']));
  });
});
