/**
 * The LoRaWAN part of the local stack: two integrations, one per network server, whose downlinks go to the
 * network-server stand-in (network-server-stand-in.ts), and one demo device behind each, registered in the bridge
 * emulator with a config and bound to the gateway, so an uplink posted with `iotcore-relay send --lorawan` reaches
 * the bridge and the device's config comes back as a downlink.
 *
 * | integration | network server | device | IoT Core device ID | payload |
 * |---|---|---|---|---|
 * | `ttn-demo` | The Things Stack | `soil-probe-01` of application `relay-demo` | `soil-probe-01` (`{device_id}`) | `raw` |
 * | `chirpstack-demo` | ChirpStack | DevEUI `0004a30b001c0531` | `lora-0004a30b001c0531` (`lora-{dev_eui}`) | `envelope` |
 *
 * Both relay to subfolder `lorawan/{f_port}` and send configs on fPort 10, at most 51 bytes. What replaces the
 * deployment's secret: `.local/lorawan-secrets.json` (`LORAWAN_SECRETS_FILE`), made once with random webhook secrets
 * and API keys, which the stand-in accepts.
 *
 * @example
 * const demo = await startLorawanDemo({ dataDir: '.local', emulator, registryId: 'demo-registry', gatewayIds: ['gw-1'], port: 3002 });
 * demo.env; // { LORAWAN_INTEGRATIONS: '[...]', LORAWAN_SECRETS_FILE: '.local/lorawan-secrets.json' }
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Emulator } from '../emulator/index.js';
import { DEMO_LORAWAN } from '../cli/lorawan-uplinks.js';
import { gatewayFor } from '../lib/gateway-pool.js';
import { startNetworkServerStandIn, type NetworkServerStandIn } from './network-server-stand-in.js';

export interface LorawanDemo {
  standIn: NetworkServerStandIn;
  secretsFile: string;
  /** The lorawan function's variables that the stack sets in place of the deployment's. */
  env: { LORAWAN_INTEGRATIONS: string; LORAWAN_SECRETS_FILE: string };
  /** The IoT Core device IDs of the demo devices, by network server. */
  devices: { tts: string; chirpstack: string };
  integrations: { tts: string; chirpstack: string };
  close(): Promise<void>;
}

export interface LorawanDemoOptions {
  dataDir: string;
  emulator: Pick<Emulator, 'registry'>;
  registryId: string;
  /** The pool: each demo device is bound to its gateway in it (`gatewayFor`). */
  gatewayIds: readonly string[];
  port?: number;
  host?: string;
}

interface DemoSecrets {
  [integration: string]: { webhookSecret: string; apiKey: string };
}

/** The demo devices' first config: 19 bytes, within the integrations' 51. */
const INITIAL_CONFIG = '{"interval_s":900}\n';

export async function startLorawanDemo(options: LorawanDemoOptions): Promise<LorawanDemo> {
  const secretsFile = join(options.dataDir, 'lorawan-secrets.json');
  const secrets = await ensureSecrets(secretsFile);
  const { tts, chirpstack } = DEMO_LORAWAN;
  const standIn = await startNetworkServerStandIn({
    apiKeys: { tts: secrets[tts.integration]!.apiKey, chirpstack: secrets[chirpstack.integration]!.apiKey },
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
  });
  const devices = { tts: tts.deviceId, chirpstack: `lora-${chirpstack.devEui}` };
  for (const id of Object.values(devices)) {
    if (options.emulator.registry.findDevice(options.registryId, id) === undefined) {
      options.emulator.registry.createDevice(options.registryId, { id, config: { binaryData: Buffer.from(INITIAL_CONFIG).toString('base64') } });
    }
    options.emulator.registry.bind(options.registryId, gatewayFor(id, options.gatewayIds), id);
  }
  const downlink = { apiUrl: standIn.url, fPort: 10, maxBytes: 51 };
  const integrations = [
    {
      id: tts.integration,
      networkServer: 'tts',
      deviceId: '{device_id}',
      payload: 'raw',
      subfolder: 'lorawan/{f_port}',
      downlink: { ...downlink, webhookId: tts.webhookId },
    },
    {
      id: chirpstack.integration,
      networkServer: 'chirpstack',
      deviceId: 'lora-{dev_eui}',
      payload: 'envelope',
      subfolder: 'lorawan/{f_port}',
      downlink,
    },
  ];
  return {
    standIn,
    secretsFile,
    env: { LORAWAN_INTEGRATIONS: JSON.stringify(integrations), LORAWAN_SECRETS_FILE: secretsFile },
    devices,
    integrations: { tts: tts.integration, chirpstack: chirpstack.integration },
    close: () => standIn.close(),
  };
}

/** Made once and kept, so a network server configured by hand keeps working across restarts. */
async function ensureSecrets(path: string): Promise<DemoSecrets> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as DemoSecrets;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const secrets: DemoSecrets = {
    [DEMO_LORAWAN.tts.integration]: { webhookSecret: randomBytes(24).toString('base64url'), apiKey: `NNSXS.${randomBytes(30).toString('base64url').toUpperCase()}` },
    [DEMO_LORAWAN.chirpstack.integration]: { webhookSecret: randomBytes(24).toString('base64url'), apiKey: randomBytes(32).toString('base64url') },
  };
  try {
    // 'wx': a second stack starting at the same moment keeps the first one's secrets.
    await writeFile(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    return secrets;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return JSON.parse(await readFile(path, 'utf8')) as DemoSecrets;
  }
}
