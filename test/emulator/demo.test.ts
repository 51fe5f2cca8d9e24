/**
 * The demo registry: its IDs, its gateway and bindings, and keys generated once into a folder and reused after.
 */
import { createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DEMO, loadDemoRegistry } from '../../emulator/demo.js';
import type { DemoRegistry } from '../../emulator/demo.js';
import { startEmulator } from '../../emulator/index.js';
import { signGatewayJwt } from '../../lib/jwt.js';
import { clientId } from '../../lib/iotcore/topics.js';
import { connectDevice, publishOutcome } from '../helpers/emulator-fixtures.js';

let keysDir: string;
let demo: DemoRegistry;

beforeAll(async () => {
  keysDir = await mkdtemp(join(tmpdir(), 'demo-keys-'));
  demo = await loadDemoRegistry(keysDir);
});
afterAll(() => rm(keysDir, { recursive: true, force: true }));

it('describes demo-project / us-central1 / demo-registry with gw-1 and three bound pumps', () => {
  const { document } = demo;
  expect(document).toMatchObject({ project: 'demo-project', location: 'us-central1' });
  const registry = document.registries[0]!;
  expect(registry.id).toBe('demo-registry');
  expect(registry.devices?.map((d) => d.id)).toEqual(['gw-1', 'pump-0001', 'pump-0002', 'pump-0003']);
  expect(registry.devices?.[0]?.gatewayConfig).toEqual({ gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' });
  expect(registry.bindings).toEqual(DEMO.devices.map((deviceId) => ({ gatewayId: 'gw-1', deviceId })));
});

it('writes an ES256 key pair per device, the private key readable by its owner only, and reuses it', async () => {
  for (const id of [DEMO.gateway, ...DEMO.devices]) {
    const files = demo.keyFiles[id]!;
    expect((await stat(files.privateKey)).mode & 0o777).toBe(0o600);
    expect(createPrivateKey(await readFile(files.privateKey)).asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const registered = demo.document.registries[0]!.devices!.find((d) => d.id === id)!.credentials![0]!;
    expect(registered.publicKey).toEqual({ format: 'ES256_PEM', key: await readFile(files.publicKey, 'utf8') });
  }
  const again = await loadDemoRegistry(keysDir);
  expect(again.document).toEqual(demo.document);
});

it('lets the gateway connect with its key file, attach a pump and publish for it', async () => {
  const emulator = await startEmulator({ registry: demo.document, adminPort: null });
  try {
    const path = { project: DEMO.project, location: DEMO.location, registry: DEMO.registry };
    const key = createPrivateKey(await readFile(demo.keyFiles[DEMO.gateway]!.privateKey));
    const gateway = { clientId: (id: string) => clientId(path, id), jwt: () => signGatewayJwt({ key, alg: 'ES256', project: DEMO.project }) };
    const gw = await connectDevice(emulator, gateway, DEMO.gateway);
    expect(await publishOutcome(gw, '/devices/pump-0001/attach', '{}')).toBe('acked');
    expect(await publishOutcome(gw, '/devices/pump-0001/events', '{"flow": 3.2}')).toBe('acked');
    expect(emulator.registry.events.at(-1)?.attributes).toMatchObject({ deviceId: 'pump-0001', gatewayId: 'gw-1', projectId: 'demo-project' });
    await gw.endAsync();
  } finally {
    await emulator.close();
  }
});
