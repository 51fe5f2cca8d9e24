/**
 * An independent gateway implementation against the emulator: Eclipse Paho (Python) with PyJWT, run by Debian's
 * /usr/bin/python3, connects over TLS, attaches a bound device, publishes for it, receives its config, detaches.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { makeFleet } from '../helpers/emulator-fixtures.js';
import { DEBIAN_PYTHON, describeWithTools } from '../helpers/interop-tools.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

const SCRIPT = fileURLToPath(new URL('./paho_gateway.py', import.meta.url));
// Debian's interpreter: the one that sees python3-paho-mqtt and python3-jwt.
const PYTHON = DEBIAN_PYTHON;

describeWithTools('a Paho (Python) gateway against the emulator', ['paho'], () => {
  let fleet: Fleet;
  let emulator: Emulator;
  let dir: string;

  beforeAll(async () => {
    fleet = await makeFleet({ gateways: [{ id: 'gw-paho', bound: ['pump-paho'] }], devices: [{ id: 'pump-paho', keyless: true, config: '{"valve":"open"}' }] });
    emulator = await startEmulator({ registry: fleet.document, adminPort: null });
    dir = await mkdtemp(join(tmpdir(), 'paho-'));
  });
  afterAll(async () => {
    await emulator.close();
    await rm(dir, { recursive: true, force: true });
  });

  function runGateway(settings: Record<string, unknown>): Promise<{ code: number; steps: Record<string, unknown>[]; stderr: string }> {
    return new Promise((resolve) => {
      execFile(PYTHON, [SCRIPT, JSON.stringify(settings)], { timeout: 30_000 }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        const steps = stdout
          .split('\n')
          .filter((l) => l.trim() !== '')
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        resolve({ code, steps, stderr });
      });
    });
  }

  it('connects, attaches, publishes, receives config and detaches, each step acknowledged', async () => {
    const keyFile = join(dir, 'gw-paho.pem');
    await writeFile(keyFile, fleet.keys['gw-paho']!.pair.privateKeyPem, { mode: 0o600 });
    const result = await runGateway({
      host: '127.0.0.1',
      port: emulator.port,
      caFile: emulator.caFile,
      project: fleet.project,
      location: fleet.location,
      registry: fleet.registryId,
      gatewayId: 'gw-paho',
      keyFile,
      deviceId: 'pump-paho',
      payload: 'flow=4.2',
    });
    expect(result.stderr).toBe('');
    expect(result.steps).toEqual([
      { step: 'connect', ok: true, rc: 0 },
      { step: 'subscribe-errors', granted: [0] },
      { step: 'attach', acked: true },
      { step: 'publish', acked: true },
      { step: 'config', granted: [1], received: true, payload: '{"valve":"open"}' },
      { step: 'detach', acked: true },
      { step: 'errors', errors: [] },
    ]);
    expect(result.code).toBe(0);
    expect(emulator.registry.events.at(-1)).toMatchObject({ attributes: { deviceId: 'pump-paho', gatewayId: 'gw-paho' } });
    expect(Buffer.from(emulator.registry.events.at(-1)!.data, 'base64').toString()).toBe('flow=4.2');
    expect(emulator.registry.getDevice(fleet.registryId, 'pump-paho').config.deviceAckTime).toBeDefined();
  });

  it('is refused at attach time for a device that is not bound, and hears why on its errors topic', async () => {
    emulator.registry.unbind(fleet.registryId, 'gw-paho', 'pump-paho');
    try {
      const keyFile = join(dir, 'gw-paho.pem');
      const result = await runGateway({
        host: '127.0.0.1', port: emulator.port, caFile: emulator.caFile, project: fleet.project, location: fleet.location,
        registry: fleet.registryId, gatewayId: 'gw-paho', keyFile, deviceId: 'pump-paho', payload: 'x', timeoutSeconds: 1,
      });
      expect(result.code).toBe(1);
      expect(result.steps.map((s) => s['step'])).toEqual(['connect', 'subscribe-errors', 'attach', 'errors']);
      expect(result.steps[2]).toEqual({ step: 'attach', acked: false });
      const errors = result.steps[3]!['errors'] as Record<string, unknown>[];
      expect(errors).toEqual([expect.objectContaining({ error_type: 'GATEWAY_ATTACHMENT_ERROR', device_id: 'pump-paho' })]);
    } finally {
      emulator.registry.bind(fleet.registryId, 'gw-paho', 'pump-paho');
    }
  });
});
