/**
 * The demo registry the emulator serves when given none: project `demo-project`, location `us-central1`,
 * registry `demo-registry`, gateway `gw-1` (ASSOCIATION_ONLY) and three devices bound to it, `pump-0001` to
 * `pump-0003`. Each of the four has an ES256 key pair, generated on first use into a git-ignored folder
 * (`.local/keys/` by default) and reused after, so a client configured once keeps working across restarts.
 *
 * @example
 * const demo = await loadDemoRegistry();
 * const emulator = await startEmulator({ registry: demo.document });
 * // sign the gateway's JWT with demo.keyFiles['gw-1'].privateKey
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateGatewayKeyPair } from '../lib/keys/key-pair.js';
import type { RegistryDocument } from './registry.js';

export const DEMO = {
  project: 'demo-project',
  location: 'us-central1',
  registry: 'demo-registry',
  gateway: 'gw-1',
  devices: ['pump-0001', 'pump-0002', 'pump-0003'],
} as const;

export interface DemoKeyFiles {
  /** PKCS#8 PEM, mode 0600. */
  privateKey: string;
  /** SubjectPublicKeyInfo PEM, as registered (ES256_PEM). */
  publicKey: string;
}

export interface DemoRegistry {
  document: RegistryDocument;
  keysDir: string;
  /** By device ID, the gateway included. */
  keyFiles: Record<string, DemoKeyFiles>;
}

/** `.local/keys/` at the project root. */
export function defaultDemoKeysDir(): string {
  return fileURLToPath(new URL('../.local/keys/', import.meta.url));
}

/** The public key PEM of a device's key pair, generating the pair if it does not exist yet. */
async function ensureKeyPair(files: DemoKeyFiles): Promise<string> {
  try {
    const privatePem = await readFile(files.privateKey, 'utf8');
    return createPublicKey(privatePem).export({ type: 'spki', format: 'pem' }).toString();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const pair = await generateGatewayKeyPair('ES256');
  // Written whole under a temporary name, then linked into place: link() fails if the key exists, so two processes
  // starting at once never overwrite a key the other is already using, nor read half a file.
  const temporary = `${files.privateKey}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(temporary, pair.privateKeyPem, { mode: 0o600 });
  try {
    await link(temporary, files.privateKey);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return ensureKeyPair(files);
  } finally {
    await unlink(temporary);
  }
  await writeFile(files.publicKey, pair.publicKeyPem);
  return pair.publicKeyPem;
}

export async function loadDemoRegistry(keysDir = defaultDemoKeysDir()): Promise<DemoRegistry> {
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  const ids = [DEMO.gateway, ...DEMO.devices];
  const keyFiles: Record<string, DemoKeyFiles> = {};
  const publicKeys: Record<string, string> = {};
  for (const id of ids) {
    const files = { privateKey: join(keysDir, `${id}.pem`), publicKey: join(keysDir, `${id}.pub.pem`) };
    keyFiles[id] = files;
    publicKeys[id] = await ensureKeyPair(files);
  }
  const credentials = (id: string) => [{ publicKey: { format: 'ES256_PEM' as const, key: publicKeys[id]! } }];
  const initialConfig = Buffer.from(JSON.stringify({ sampleIntervalSeconds: 60 })).toString('base64');
  const document: RegistryDocument = {
    project: DEMO.project,
    location: DEMO.location,
    registries: [
      {
        id: DEMO.registry,
        devices: [
          {
            id: DEMO.gateway,
            credentials: credentials(DEMO.gateway),
            gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' },
          },
          ...DEMO.devices.map((id) => ({ id, credentials: credentials(id), config: { binaryData: initialConfig } })),
        ],
        bindings: DEMO.devices.map((deviceId) => ({ gatewayId: DEMO.gateway, deviceId })),
      },
    ],
  };
  return { document, keysDir, keyFiles };
}
