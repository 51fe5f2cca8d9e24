/**
 * `iotcore-relay send --lorawan ttn|chirpstack` against the lorawan handler served over HTTP, with the relay queue on
 * the local SQS server: the uplinks it posts are read as each stack's, queued with the integration's mapping, and a
 * retried post is queued once.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { chirpstackUplink, DEMO_LORAWAN, sampleReading, ttsUplink } from '../../cli/lorawan-uplinks.js';
import { sendCommand } from '../../cli/send-command.js';
import { createLorawanHandler } from '../../handlers/lorawan.js';
import { lorawanServiceFromEnv } from '../../lib/lorawan/index.js';
import { readChirpstackEvent } from '../../lib/lorawan/chirpstack-event.js';
import { readTtsMessage } from '../../lib/lorawan/tts-message.js';
import { serveHttpApi, type ServedHttpApi } from '../../lib/local/http-adapter.js';
import { parseQueueMessage, type TelemetryMessage } from '../../lib/queue/message.js';
import { withCapturedOutput } from '../helpers/captured-output.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';

const SECRETS = {
  [DEMO_LORAWAN.tts.integration]: { webhookSecret: 'cli-test-ttn-secret-0123456789' },
  [DEMO_LORAWAN.chirpstack.integration]: { webhookSecret: 'cli-test-cs-secret-0123456789' },
};

let sqs: LocalSqs;
let api: ServedHttpApi;
let dir: string;
let secretsFile: string;

async function run(...argv: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const { result: code, output } = await withCapturedOutput(() => sendCommand(argv));
  return { code, out: output.lines('stdout'), err: output.text('stderr') };
}

const telemetry = (body: string): TelemetryMessage => parseQueueMessage(body) as TelemetryMessage;

beforeAll(async () => {
  // The handler's EMF documents would mix with the command's output on stdout.
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'lorawan-send-'));
  secretsFile = join(dir, 'lorawan-secrets.json');
  writeFileSync(secretsFile, JSON.stringify(SECRETS));
  const env = {
    IOTCORE_GATEWAY_IDS: 'gw-1',
    RELAY_QUEUE_URL: sqs.queueUrl,
    LORAWAN_SECRETS_FILE: secretsFile,
    LORAWAN_INTEGRATIONS: JSON.stringify([
      { id: DEMO_LORAWAN.tts.integration, networkServer: 'tts', deviceId: '{device_id}', subfolder: 'lorawan/{f_port}' },
      { id: DEMO_LORAWAN.chirpstack.integration, networkServer: 'chirpstack', deviceId: 'lora-{dev_eui}', payload: 'decoded', subfolder: 'lorawan/{f_port}' },
    ]),
  };
  const handler = createLorawanHandler({
    service: lorawanServiceFromEnv(env, { sqsClient: sqs.client }),
    logger: new Logger({ logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'CliTest', serviceName: 'cli' }),
  });
  api = await serveHttpApi([{ method: 'POST', path: /^\/lorawan\//, handler }]);
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await api.close();
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => sqs.purge());

describe('iotcore-relay send --lorawan', () => {
  it('builds uplinks each stack\'s reader takes, default values left out as the stacks do', () => {
    const tts = readTtsMessage(ttsUplink({ fCnt: 0 }));
    const cs = readChirpstackEvent('up', chirpstackUplink({ fCnt: 0 }));
    for (const m of [tts, cs]) {
      expect(m).toMatchObject({ kind: 'uplink', fCnt: 0, fPort: 2, payload: sampleReading(0).payload, decoded: sampleReading(0).decoded });
    }
    expect(ttsUplink({ fCnt: 0 }).uplink_message).not.toHaveProperty('f_cnt');
    expect(chirpstackUplink({ fCnt: 0 })).not.toHaveProperty('fCnt');
  });

  it('posts The Things Stack uplinks; a retried one is queued once', async () => {
    const { code, out } = await run('--lorawan', 'ttn', '--url', api.url, '--secrets-file', secretsFile, '--f-cnt', '40', '--count', '2', '--retries', '1');
    expect(code).toBe(0);
    expect(out).toHaveLength(4);
    for (const line of out) expect(line).toMatch(/^202 \{"messageId":"[^"]+","deviceId":"soil-probe-01"\}$/);
    // Each uplink and its retry got the same message ID.
    expect(out[0]).toBe(out[1]);
    expect(out[2]).toBe(out[3]);
    const received = (await sqs.receiveAll()).map((m) => telemetry(m.body));
    expect(received).toHaveLength(2);
    expect(received).toMatchObject([40, 41].map((fCnt) => ({ deviceId: 'soil-probe-01', subfolder: 'lorawan/2', payload: sampleReading(fCnt).payload })));
  });

  it('posts ChirpStack uplinks with ?event=up, with the given port and payload', async () => {
    const { code, out } = await run('--lorawan', 'chirpstack', '--url', `${api.url}/`, '--secrets-file', secretsFile, '--f-port', '5', '--data-hex', '0102');
    // The integration relays decoded payloads, and a payload given by hand has none.
    expect(code).toBe(1);
    expect(out[0]).toMatch(/^422 .*object is missing/);
    const ok = await run('--lorawan', 'chirpstack', '--url', api.url, '--secrets-file', secretsFile, '--f-port', '5');
    expect(ok.code).toBe(0);
    const [message] = (await sqs.receiveAll()).map((m) => telemetry(m.body));
    expect(message).toMatchObject({ deviceId: `lora-${DEMO_LORAWAN.chirpstack.devEui}`, subfolder: 'lorawan/5' });
    expect(Object.keys(JSON.parse(message!.payload.toString()))).toEqual(['moisture', 'temperature', 'battery_mv']);
  });

  it('exits 1 when the network server would be refused, and 2 for usage errors', async () => {
    const wrong = await run('--lorawan', 'ttn', '--url', api.url, '--secret', 'not-the-secret');
    expect(wrong.code).toBe(1);
    expect(wrong.out[0]).toMatch(/^401 /);
    expect((await run('--lorawan', 'loriot', '--url', api.url, '--secret', 's')).code).toBe(2);
    expect((await run('--lorawan', 'ttn', '--secret', 's')).err).toMatch(/--url is required/);
    expect((await run('--lorawan', 'ttn', '--url', api.url, '--secret', 's', '--secrets-file', secretsFile)).code).toBe(2);
    expect((await run('--lorawan', 'ttn', '--url', api.url, '--secret', 's', '--dev-eui', 'xyz')).err).toMatch(/16 hexadecimal digits/);
    const missing = await run('--lorawan', 'ttn', '--url', api.url, '--secrets-file', secretsFile, '--integration', 'other');
    expect(missing).toMatchObject({ code: 1, err: expect.stringContaining('has no webhookSecret for integration other') });
    const help = await run('--lorawan', 'ttn', '--help');
    expect(help.code).toBe(0);
    expect(help.out[0]).toMatch(/^usage: iotcore-relay send --lorawan ttn\|chirpstack/);
  });
});
