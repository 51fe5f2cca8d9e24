/**
 * The local files that stand in for the deployment's device-authentication secrets:
 * - the device key master secret (`DEVICE_KEY_MASTER_FILE`), made once with 32 random bytes and kept, so device
 *   keys printed by one run keep working in the next;
 * - the device public key document (`DEVICE_KEYS_FILE`), written on every start from the demo devices' public
 *   keys, so a device JWT signed with `.local/keys/<device>.pem` is accepted.
 *
 * @example
 * const creds = await prepareDeviceCredentials('.local', demo);
 * creds.deviceKey('pump-0001'); // the 43-character key to send as `Authorization: Device-Key <key>`
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DemoRegistry } from '../emulator/demo.js';
import { deriveDeviceKey, masterKeyFromText } from '../lib/auth/device-key.js';

export interface DeviceCredentials {
  masterFile: string;
  publicKeysFile: string;
  /** The device key of any device ID, derived from the master secret. */
  deviceKey(deviceId: string): string;
}

/** Twice the minimum the relay accepts (lib/auth/device-key.ts), as base64url text. */
const MASTER_BYTES = 32;

export async function prepareDeviceCredentials(dataDir: string, demo: DemoRegistry): Promise<DeviceCredentials> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const masterFile = join(dataDir, 'device-key-master.txt');
  const master = masterKeyFromText(await ensureMaster(masterFile), `file ${masterFile}`);

  const publicKeysFile = join(dataDir, 'device-keys.json');
  const gatewayIds = new Set(
    demo.document.registries.flatMap((r) => (r.devices ?? []).filter((d) => d.gatewayConfig?.gatewayType === 'GATEWAY').map((d) => d.id)),
  );
  const document: Record<string, string[]> = {};
  for (const [deviceId, files] of Object.entries(demo.keyFiles)) {
    // Gateways sign their own MQTT JWTs; only devices post to the ingest.
    if (!gatewayIds.has(deviceId)) document[deviceId] = [await readFile(files.publicKey, 'utf8')];
  }
  await writeFile(publicKeysFile, `${JSON.stringify(document, null, 2)}\n`);

  return { masterFile, publicKeysFile, deviceKey: (deviceId) => deriveDeviceKey(master, deviceId) };
}

async function ensureMaster(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const text = `${randomBytes(MASTER_BYTES).toString('base64url')}\n`;
  try {
    // 'wx': a second stack starting at the same moment keeps the first one's secret.
    await writeFile(path, text, { mode: 0o600, flag: 'wx' });
    return text;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return readFile(path, 'utf8');
  }
}
