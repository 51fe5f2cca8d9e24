/** What `npm start` prints when the stack is up. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readyBanner, type BannerFacts } from '../../local/banner.js';

const here = (path: string) => join(process.cwd(), path);

const FACTS: BannerFacts = {
  urls: {
    ingest: 'http://127.0.0.1:3000',
    dashboard: 'http://127.0.0.1:3001',
    mqtt: 'mqtts://127.0.0.1:8883',
    admin: 'http://127.0.0.1:8080',
    sqs: 'http://127.0.0.1:9324',
    dynamodb: 'http://127.0.0.1:8000',
    networkServer: 'http://127.0.0.1:3002',
  },
  caFile: here('.local/emulator/ca.pem'),
  serviceAccountFile: here('.local/clearblade-service-account.json'),
  relayQueue: 'iotcore-relay-local-relay.fifo',
  deadLetterQueue: 'iotcore-relay-local-relay-dlq.fifo',
  configTable: 'iotcore-relay-local-config',
  relayFunction: 'relay',
  batchSize: 10,
  scheduled: ['poll'],
  everySeconds: 60,
  deployedRates: ['rate(15 minutes)'],
  simulated: 0,
  deviceId: 'pump-0001',
  deviceKey: 'k3y',
  registryName: 'projects/demo-project/locations/us-central1/registries/demo-registry',
  gatewayId: 'gw-1',
  gatewayKeyFile: here('.local/keys/gw-1.pem'),
  devices: ['pump-0001', 'pump-0002', 'pump-0003'],
  lorawan: { secretsFile: here('.local/lorawan-secrets.json'), devices: { tts: 'soil-probe-01', chirpstack: 'lora-0004a30b001c0531' } },
};

describe('readyBanner', () => {
  it('lists where everything is, the demo registry, how the relay and the poller run, and what to try', () => {
    expect(readyBanner(FACTS)).toBe(
      [
        '',
        'iotcore-relay: the local stack is up (127.0.0.1 only; nothing from AWS or ClearBlade)',
        '',
        '  ingest (HTTP API)   http://127.0.0.1:3000           ',
        '  dashboard           http://127.0.0.1:3001           ',
        '  bridge (MQTT, TLS)  mqtts://127.0.0.1:8883          CA: .local/emulator/ca.pem',
        '  bridge admin API    http://127.0.0.1:8080           ClearBlade service account: .local/clearblade-service-account.json',
        '  SQS                 http://127.0.0.1:9324           iotcore-relay-local-relay.fifo, iotcore-relay-local-relay-dlq.fifo',
        '  DynamoDB            http://127.0.0.1:8000           iotcore-relay-local-config',
        '  network servers     http://127.0.0.1:3002           stand-in for The Things Stack and ChirpStack downlink APIs (GET /downlinks)',
        '',
        '  registry projects/demo-project/locations/us-central1/registries/demo-registry',
        '  gateway gw-1 (key .local/keys/gw-1.pem); devices pump-0001, pump-0002, pump-0003 bound to it',
        '',
        '  relay takes batches of up to 10 from iotcore-relay-local-relay.fifo, one session per gateway',
        '  poll every 60 s here (deployed: rate(15 minutes)); --schedule-every <seconds> changes it',
        '',
        'Post a reading as pump-0001, then watch it on the dashboard:',
        '',
        '  curl -i -X POST http://127.0.0.1:3000/devices/pump-0001/events \\',
        "       -H 'Authorization: Device-Key k3y' \\",
        "       -H 'Content-Type: application/json' --data '{\"temperature\": 21.5}'",
        '',
        'LoRaWAN: soil-probe-01 behind The Things Stack, lora-0004a30b001c0531 behind ChirpStack (docs/lorawan.md):',
        '',
        '  npx iotcore-relay send --lorawan ttn --url http://127.0.0.1:3000 --secrets-file .local/lorawan-secrets.json',
        '  npx iotcore-relay send --lorawan chirpstack --url http://127.0.0.1:3000 --secrets-file .local/lorawan-secrets.json',
        '',
        'Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
  });

  it('keeps paths outside the working directory absolute', () => {
    const outside = join(process.cwd(), '..', 'elsewhere', 'ca.pem');
    expect(readyBanner({ ...FACTS, caFile: outside })).toContain(`CA: ${outside}\n`);
  });

  it('says when schedules run only on demand, and leaves the line out when nothing is scheduled', () => {
    expect(readyBanner({ ...FACTS, everySeconds: 0 })).toContain('  poll every (on demand only) here (deployed: rate(15 minutes));');
    expect(readyBanner({ ...FACTS, scheduled: [], deployedRates: [] })).not.toContain('--schedule-every');
  });

  it('counts simulated devices, in the singular for one', () => {
    expect(readyBanner(FACTS)).not.toContain('simulated');
    expect(readyBanner({ ...FACTS, simulated: 1 })).toContain('\n  1 simulated device posting readings (a few wrong on purpose)\n');
    expect(readyBanner({ ...FACTS, simulated: 5 })).toContain('\n  5 simulated devices posting readings (a few wrong on purpose)\n');
  });
});
