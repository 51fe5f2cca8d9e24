/**
 * The LoRaWAN service's choices that the end-to-end tests do not reach: where The Things Stack's downlink key comes
 * from, what happens without one, and the settings it refuses to start with. Real local SQS, dynalite and the
 * network-server stand-in.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../lib/config-store/config-store.js';
import { integrationSecretsFromEnv, LorawanService, parseIntegrations, type LorawanRequest } from '../../../lib/lorawan/index.js';
import { SqsRelayQueue } from '../../../lib/queue/relay-queue.js';
import { startNetworkServerStandIn, type NetworkServerStandIn } from '../../../local/network-server-stand-in.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';

const KEYS = { tts: 'NNSXS.FROMTHEHEADER', chirpstack: 'cs-key' };
const SECRET = 'service-test-webhook-secret-012345';
let sqs: LocalSqs;
let db: LocalDynamoDb;
let ns: NetworkServerStandIn;
let dir: string;
let secretsFile: string;
let fCnt = 1;

beforeAll(async () => {
  [sqs, db, ns] = await Promise.all([startLocalSqs(), startLocalDynamoDb(), startNetworkServerStandIn({ apiKeys: KEYS })]);
  dir = mkdtempSync(join(tmpdir(), 'lorawan-service-'));
  secretsFile = join(dir, 'secrets.json');
  // No apiKey: The Things Stack's X-Downlink-Apikey header is the only key.
  writeFileSync(secretsFile, JSON.stringify({ 'farm-ttn': { webhookSecret: SECRET } }));
});
afterAll(async () => {
  await Promise.all([sqs.stop(), db.stop(), ns.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function service(integrations: unknown[]): LorawanService {
  return new LorawanService({
    integrations: parseIntegrations(JSON.stringify(integrations)),
    secrets: integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: secretsFile })!,
    gatewayIds: ['gw-1'],
    queue: new SqsRelayQueue({ queueUrl: sqs.queueUrl, client: sqs.client }),
    downlinks: new ConfigStore({ tableName: db.tableName, client: db.client }),
  });
}

function uplink(headers: Record<string, string> = {}): LorawanRequest {
  const doc = JSON.parse(readFileSync(new URL('./fixtures/tts-uplink.json', import.meta.url), 'utf8'));
  doc.uplink_message.f_cnt = fCnt++;
  return {
    method: 'POST',
    path: '/lorawan/farm-ttn/uplink',
    headers: { 'content-type': 'application/json; charset=utf-8', 'x-webhook-secret': SECRET, ...headers },
    body: Buffer.from(JSON.stringify(doc)),
    requestId: `r${fCnt}`,
    query: {},
  };
}

const TTS = { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}', downlink: { apiUrl: '', webhookId: 'iotcore-relay', fPort: 7 } };

describe('The Things Stack downlink key', () => {
  it('comes from X-Downlink-Apikey when the secret has none; without either the config waits, and says why', async () => {
    const store = new ConfigStore({ tableName: db.tableName, client: db.client });
    await store.putConfig('soil-probe-07', Buffer.from('{"rate":2}'), new Date());
    const lorawan = service([{ ...TTS, downlink: { ...TTS.downlink, apiUrl: ns.url } }]);

    const without = await lorawan.handle(uplink());
    expect(without.statusCode).toBe(202);
    expect(without.log.downlink).toEqual({ status: 'error', reason: 'no API key for integration farm-ttn: set apiKey in the secret document' });
    expect(ns.downlinks()).toEqual([]);

    const withHeader = await lorawan.handle(uplink({ 'x-downlink-apikey': KEYS.tts }));
    expect(withHeader.log.downlink).toMatchObject({ status: 'sent', version: 1, marked: true });
    expect(ns.downlinks()).toEqual([expect.objectContaining({ networkServer: 'tts', deviceId: 'soil-probe-07', fPort: 7, data: Buffer.from('{"rate":2}').toString('base64') })]);
    await sqs.purge();
  });
});

describe('settings it refuses', () => {
  it('answers 500 for an integration the secret document lacks, and serves the others', async () => {
    const lorawan = service([
      { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}' },
      { id: 'orphan', networkServer: 'tts', deviceId: '{device_id}' },
    ]);
    const orphan = await lorawan.handle({ ...uplink(), path: '/lorawan/orphan' });
    expect(orphan.statusCode).toBe(500);
    expect(orphan.body).toEqual({ error: { code: 500, status: 'INTERNAL', message: 'internal error' } });
    expect(orphan.log.error).toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('has no entry for integration orphan') });
    expect((await lorawan.handle(uplink())).statusCode).toBe(202);
    await sqs.purge();
  });
});

describe('device IDs it cannot relay', () => {
  it('answers 422 for a device ID IoT Core allows but whose + MQTT forbids in a topic name, queueing nothing', async () => {
    const lorawan = service([{ id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}' }]);
    const request = uplink();
    const doc = JSON.parse(request.body.toString('utf8'));
    doc.end_device_ids.device_id = 'probe+x';
    const answer = await lorawan.handle({ ...request, body: Buffer.from(JSON.stringify(doc)) });
    expect(answer.statusCode).toBe(422);
    expect(answer.body).toMatchObject({
      error: { status: 'INVALID_ARGUMENT', message: expect.stringMatching(/^deviceId "probe\+x" is a valid IoT Core device ID, but its '\+' is an MQTT wildcard/) },
    });
    expect(answer.log.error).toMatchObject({ code: 'ERR_DEVICE_ID_MQTT_WILDCARD' });
    expect(await sqs.receiveAll()).toEqual([]);
  });
});
