import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LorawanService, lorawanServiceFromEnv } from '../../../lib/lorawan/index.js';
import { parseQueueMessage, type TelemetryMessage } from '../../../lib/queue/message.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';
import { fixture } from './lora-fixtures.js';

const SECRET = 'index-test-webhook-secret-0123456789';
const TTS = { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}' };
const DOWNLINK = { apiUrl: 'https://eu1.cloud.thethings.network', webhookId: 'iotcore-relay', fPort: 7 };

let sqs: LocalSqs;
let dir: string;
let secretsFile: string;
beforeAll(async () => {
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'lorawan-from-env-'));
  secretsFile = join(dir, 'secrets.json');
  writeFileSync(secretsFile, JSON.stringify({ 'farm-ttn': { webhookSecret: SECRET } }));
});
afterAll(async () => {
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});

const configError = (env: NodeJS.ProcessEnv): string => thrownRelayError(() => lorawanServiceFromEnv(env, { sqsClient: sqs.client }), 'ERR_CONFIG').message;

describe('lorawanServiceFromEnv', () => {
  it('builds a service that queues an uplink on the relay queue, grouped by its gateway', async () => {
    const lorawan = lorawanServiceFromEnv(
      { IOTCORE_GATEWAY_IDS: 'gw-1', RELAY_QUEUE_URL: sqs.queueUrl, LORAWAN_INTEGRATIONS: JSON.stringify([TTS]), LORAWAN_SECRETS_FILE: secretsFile },
      { sqsClient: sqs.client },
    );
    const answer = await lorawan.handle({
      method: 'POST',
      path: '/lorawan/farm-ttn',
      headers: { 'content-type': 'application/json', 'x-webhook-secret': SECRET },
      body: Buffer.from(JSON.stringify(fixture('tts-uplink.json'))),
      requestId: 'r1',
      query: {},
    });
    expect(answer.statusCode).toBe(202);
    const [message, ...rest] = await sqs.receiveAll();
    expect(rest).toEqual([]);
    expect(message!.groupId).toBe('gw-1');
    expect(parseQueueMessage(message!.body) as TelemetryMessage).toMatchObject({ type: 'event', deviceId: 'soil-probe-07' });
  });

  it('integrations without their secrets, downlinks without the config table, a bad timeout', () => {
    const base = { IOTCORE_GATEWAY_IDS: 'gw-1', RELAY_QUEUE_URL: sqs.queueUrl, LORAWAN_INTEGRATIONS: JSON.stringify([{ ...TTS, downlink: DOWNLINK }]) };
    expect(configError(base)).toMatch(/without their secrets/);
    expect(configError({ ...base, LORAWAN_SECRETS_FILE: secretsFile })).toMatch(/needs the config table: set CONFIG_TABLE/);
    expect(configError({ ...base, RELAY_QUEUE_URL: ' ' })).toBe('RELAY_QUEUE_URL must be set');
    // No integration at all is a valid, if idle, deployment.
    expect(lorawanServiceFromEnv({ IOTCORE_GATEWAY_IDS: 'gw-1', RELAY_QUEUE_URL: sqs.queueUrl })).toBeInstanceOf(LorawanService);
  });

  it('takes a downlink timeout from 100 to 4000 ms', () => {
    const env = { IOTCORE_GATEWAY_IDS: 'gw-1', RELAY_QUEUE_URL: sqs.queueUrl };
    for (const ms of ['100', '4000', ' 2500 ', '']) expect(lorawanServiceFromEnv({ ...env, LORAWAN_DOWNLINK_TIMEOUT_MS: ms })).toBeInstanceOf(LorawanService);
    for (const ms of ['99', '4001', '9000', '2.5', 'soon']) {
      expect(configError({ ...env, LORAWAN_DOWNLINK_TIMEOUT_MS: ms })).toBe(`LORAWAN_DOWNLINK_TIMEOUT_MS must be a whole number from 100 to 4000 (got ${JSON.stringify(ms)})`);
    }
  });

  it('passes on the refusals of the settings it reads', () => {
    const env = { IOTCORE_GATEWAY_IDS: 'gw-1', RELAY_QUEUE_URL: sqs.queueUrl };
    expect(configError({ ...env, LORAWAN_INTEGRATIONS: '{' })).toMatch(/^LORAWAN_INTEGRATIONS: not JSON/);
    expect(configError({ ...env, LORAWAN_SECRETS_FILE: secretsFile, LORAWAN_SECRETS_SECRET: 's' })).toBe('set LORAWAN_SECRETS_SECRET or LORAWAN_SECRETS_FILE, not both');
    expect(() => lorawanServiceFromEnv({ RELAY_QUEUE_URL: sqs.queueUrl })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('IOTCORE_GATEWAY_IDS') }));
  });
});
