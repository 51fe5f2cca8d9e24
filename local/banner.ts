/**
 * What `npm start` prints once the local stack is up: where each part listens, the demo registry, how the relay and
 * the poller run here, a curl line to post a first reading, and the LoRaWAN commands. Paths inside the working
 * directory are shown relative to it, so the lines fit a terminal.
 *
 * @example
 * process.stdout.write(readyBanner(facts));
 */
import { relative } from 'node:path';
import type { LorawanDemo } from './lorawan-demo.js';

export type BannerUrl = 'ingest' | 'dashboard' | 'mqtt' | 'admin' | 'sqs' | 'dynamodb' | 'networkServer';

export interface BannerFacts {
  urls: Readonly<Record<BannerUrl, string>>;
  caFile: string;
  serviceAccountFile: string;
  relayQueue: string;
  deadLetterQueue: string;
  configTable: string;
  relayFunction: string;
  batchSize: number;
  /** The scheduled functions, how often they run here (0: on demand only), and their deployed schedules. */
  scheduled: string[];
  everySeconds: number;
  deployedRates: string[];
  simulated: number;
  deviceId: string;
  deviceKey: string;
  registryName: string;
  gatewayId: string;
  gatewayKeyFile: string;
  devices: readonly string[];
  lorawan: { secretsFile: string; devices: LorawanDemo['devices'] };
}

export function readyBanner(f: BannerFacts): string {
  const row = (name: string, url: string, note = ''): string => `  ${name.padEnd(20)}${url.padEnd(32)}${note}`;
  const schedules =
    f.scheduled.length === 0
      ? []
      : [
          `  ${f.scheduled.join(', ')} every ${f.everySeconds > 0 ? `${f.everySeconds} s` : '(on demand only)'} here` +
            ` (deployed: ${f.deployedRates.join(', ')}); --schedule-every <seconds> changes it`,
        ];
  const secretsFile = shortPath(f.lorawan.secretsFile);
  return [
    '',
    'iotcore-relay: the local stack is up (127.0.0.1 only; nothing from AWS or ClearBlade)',
    '',
    row('ingest (HTTP API)', f.urls.ingest),
    row('dashboard', f.urls.dashboard),
    row('bridge (MQTT, TLS)', f.urls.mqtt, `CA: ${shortPath(f.caFile)}`),
    row('bridge admin API', f.urls.admin, `ClearBlade service account: ${shortPath(f.serviceAccountFile)}`),
    row('SQS', f.urls.sqs, `${f.relayQueue}, ${f.deadLetterQueue}`),
    row('DynamoDB', f.urls.dynamodb, f.configTable),
    row('network servers', f.urls.networkServer, 'stand-in for The Things Stack and ChirpStack downlink APIs (GET /downlinks)'),
    '',
    `  registry ${f.registryName}`,
    `  gateway ${f.gatewayId} (key ${shortPath(f.gatewayKeyFile)}); devices ${f.devices.join(', ')} bound to it`,
    '',
    `  ${f.relayFunction} takes batches of up to ${f.batchSize} from ${f.relayQueue}, one session per gateway`,
    ...schedules,
    ...(f.simulated > 0 ? [`  ${f.simulated} simulated device${f.simulated === 1 ? '' : 's'} posting readings (a few wrong on purpose)`] : []),
    '',
    `Post a reading as ${f.deviceId}, then watch it on the dashboard:`,
    '',
    `  curl -i -X POST ${f.urls.ingest}/devices/${f.deviceId}/events \\`,
    `       -H 'Authorization: Device-Key ${f.deviceKey}' \\`,
    `       -H 'Content-Type: application/json' --data '{"temperature": 21.5}'`,
    '',
    `LoRaWAN: ${f.lorawan.devices.tts} behind The Things Stack, ${f.lorawan.devices.chirpstack} behind ChirpStack (docs/lorawan.md):`,
    '',
    `  npx iotcore-relay send --lorawan ttn --url ${f.urls.ingest} --secrets-file ${secretsFile}`,
    `  npx iotcore-relay send --lorawan chirpstack --url ${f.urls.ingest} --secrets-file ${secretsFile}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

/** Relative to the working directory when inside it. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') ? path : rel;
}
