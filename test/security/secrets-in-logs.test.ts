/**
 * No secret in any log. The main paths run with everything the process writes captured (Powertools' Logger at
 * DEBUG and its metrics, console, the emulator's connection log) together with every HTTP answer and every
 * dead-letter attribute; then the capture is searched for each secret that existed during the run:
 *
 * - private keys: the `PRIVATE KEY` marker, and every line of every private key's PEM body;
 * - the gateway JWTs, exactly as the relay signed them (read off the CONNECT packets by a proxy), and their
 *   signatures on their own;
 * - the device JWTs signed for the run, the device keys (HMAC-derived) and the master secret they come from.
 *
 * Paths: HTTP ingest (device JWTs and device keys, from Secrets Manager; accepted and refused), the relay
 * handler on what ingest queued and on a batch built to fail every way (malformed records, a token in broken
 * JSON, a forged token, an unbound device, withheld PUBACKs, refused and lost connections, gateway keys that are
 * garbled, unreadable or refused), the relay with its keys in Secrets Manager, and config delivery.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { createConfigHandler } from '../../handlers/config.js';
import { createIngestHandler } from '../../handlers/ingest.js';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/index.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import { ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { keySourceFromEnv } from '../../lib/keys/key-source-from-env.js';
import { httpApiEvent, httpApiPost, httpApiPostJson } from '../helpers/apigw-events.js';
import type { Fleet, JwtOverrides } from '../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { eventBody, GW, lambdaContext, makeRelayFleet, MALFORMED, METERS, pollBody, PUMPS, sqsEvent, sqsRecord, stateBody, UNBOUND, VALVES } from '../helpers/relay-fixtures.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../helpers/secrets-manager-endpoint.js';
import { startInterceptingProxy, type InterceptingProxy } from '../reliability/mqtt-intercepting-proxy.js';
import { startRelayHandler, type RelayHandlerHarness } from '../reliability/relay-handler-harness.js';
import { captureOutput, type CapturedOutput } from '../helpers/captured-output.js';

const MASTER = 'a master secret for device keys, at least 32 bytes long';
const BRIDGE_PATH = (fleet: Fleet, d: string): string => `/v1/projects/${fleet.project}/locations/${fleet.location}/registries/${fleet.registryId}/devices/${d}`;

let fleet: Fleet;
let emulator: Emulator;
let proxy: InterceptingProxy;
let sqs: LocalSqs;
let db: LocalDynamoDb;
let sm: SecretsManagerEndpoint;
let dir: string;
const harnesses: RelayHandlerHarness[] = [];
const emulatorLog: string[] = [];
/** Everything a device or an operator can read besides the logs: HTTP answers, dead-letter attributes. */
const answers: string[] = [];
const deviceTokens: string[] = [];
const deviceKeys: string[] = [];

beforeAll(async () => {
  fleet = await makeRelayFleet();
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false, log: (line) => emulatorLog.push(line) });
  proxy = await startInterceptingProxy(emulator);
  [sqs, db, sm] = await Promise.all([startLocalSqs(), startLocalDynamoDb(), startSecretsManagerEndpoint()]);
  dir = await mkdtemp(join(tmpdir(), 'secrets-in-logs-'));
});
afterAll(async () => {
  for (const h of harnesses) await h.close();
  await proxy?.close();
  await emulator?.close();
  await Promise.all([sqs?.stop(), db?.stop(), sm?.close()]);
  await rm(dir, { recursive: true, force: true });
});

const logger = (): Logger => new Logger({ serviceName: 'iotcore-relay', logLevel: 'DEBUG' });

async function relayHarness(env: Record<string, string> = {}, keySource?: Parameters<typeof startRelayHandler>[0]['keySource']): Promise<RelayHandlerHarness> {
  const h = await startRelayHandler({ fleet, bridge: proxy, env: { RELAY_PUBACK_TIMEOUT_MS: '300', ...env }, logger: logger(), ...(keySource ? { keySource } : {}) });
  harnesses.push(h);
  return h;
}

async function deviceJwt(deviceId: string, overrides?: JwtOverrides): Promise<string> {
  const token = await fleet.jwt(deviceId, overrides);
  deviceTokens.push(token);
  return token;
}

function deviceKey(deviceId: string): string {
  const key = deriveDeviceKey(masterKeyFromText(MASTER, 'test'), deviceId);
  deviceKeys.push(key);
  return key;
}

async function answer(handler: (e: APIGatewayProxyEventV2) => Promise<unknown>, event: APIGatewayProxyEventV2): Promise<number> {
  const result = (await handler(event)) as APIGatewayProxyStructuredResultV2;
  answers.push(JSON.stringify(result.headers ?? {}), String(result.body ?? ''));
  return result.statusCode ?? 0;
}

async function relay(h: RelayHandlerHarness, records: ReturnType<typeof sqsRecord>[]): Promise<void> {
  const before = h.sqs.calls.length;
  await h.handler(sqsEvent(records), lambdaContext(8_000));
  for (const call of h.sqs.calls.slice(before)) {
    // The dead-letter body is the record itself (a device token travels in it by design); its attributes are ours.
    answers.push(JSON.stringify(call.input.MessageAttributes ?? {}), JSON.stringify(call.input.Entries ?? []));
  }
}

/** Every PEM body line of a private key: a key logged without its armour is still the key. */
const pemBodyLines = (pem: string): string[] => pem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));

describe('secrets never reach a log', () => {
  it('not on any main path, accepted or refused, healthy or failing', { timeout: 60_000 }, async () => {
    // --- Prepare: ingest with device keys and the master in Secrets Manager, config delivery with them in files.
    const keyDocument = JSON.stringify({ [METERS[0]!]: [fleet.keys[METERS[0]!]!.pair.publicKeyPem], [METERS[1]!]: [fleet.keys[METERS[1]!]!.pair.publicKeyPem] });
    sm.putSecret('device-public-keys', keyDocument);
    sm.putSecret('device-key-master', MASTER);
    sm.putSecret('gateway-keys', JSON.stringify(Object.fromEntries([GW.assoc, GW.token, GW.east, GW.west].map((g) => [g, { privateKey: fleet.keys[g]!.pair.privateKeyPem }]))));
    await writeFile(join(dir, 'device-keys.json'), keyDocument);
    await writeFile(join(dir, 'master'), `${MASTER}\n`, { mode: 0o600 });
    const ingestEnv = {
      IOTCORE_PROJECT: fleet.project,
      IOTCORE_LOCATION: fleet.location,
      IOTCORE_REGISTRY: fleet.registryId,
      // One gateway: every ingested record goes to the one that authenticates devices by token.
      IOTCORE_GATEWAY_IDS: GW.token,
      RELAY_QUEUE_URL: sqs.queueUrl,
      DEVICE_KEYS_SECRET: 'device-public-keys',
      DEVICE_KEY_MASTER_SECRET: 'device-key-master',
    };
    const store = new ConfigStore({ tableName: db.tableName, client: db.client });
    await store.putConfig(METERS[0]!, Buffer.from('{"rate":60}'), new Date());
    const configEnv = {
      IOTCORE_PROJECT: fleet.project,
      IOTCORE_LOCATION: fleet.location,
      IOTCORE_REGISTRY: fleet.registryId,
      DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
      DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
    };
    const garbledKeys = join(dir, 'garbled-keys.json');
    const pem = fleet.keys[GW.assoc]!.pair.privateKeyPem;
    await writeFile(garbledKeys, JSON.stringify({ [GW.assoc]: { privateKey: pem.replace(/[A-Za-z]{8}\n/, 'AAAA!!!!\n') }, [GW.east]: { privateKey: pem.slice(0, 120) } }));
    const brokenJsonKeys = join(dir, 'broken-json-keys.json');
    await writeFile(brokenJsonKeys, `{"${GW.assoc}": {"privateKey": ${JSON.stringify(pem)} }, `);
    const wrongKeys = join(dir, 'wrong-keys.json');
    // A real key of another device: the bridge refuses the JWT it signs (CONNACK 4).
    await writeFile(wrongKeys, JSON.stringify({ [GW.assoc]: { privateKey: fleet.keys[METERS[0]!]!.pair.privateKeyPem } }));

    const output: CapturedOutput = captureOutput();
    try {
      const ingest = createIngestHandler({
        service: ingestServiceFromEnv(ingestEnv, { sqsClient: sqs.client, secretsProvider: new SecretsProvider({ awsSdkV3Client: sm.client() }) }),
        logger: logger(),
      });
      const config = createConfigHandler({ env: configEnv, store, logger: logger() });
      const relayFile = await relayHarness();
      const relaySecrets = await relayHarness({}, keySourceFromEnv({ GATEWAY_KEY_SECRET: 'gateway-keys' }, { secretsManagerClient: sm.client() }));
      const relayGarbled = await relayHarness({ GATEWAY_KEY_FILE: garbledKeys });
      const relayBrokenJson = await relayHarness({ GATEWAY_KEY_FILE: brokenJsonKeys });
      const relayWrongKey = await relayHarness({ GATEWAY_KEY_FILE: wrongKeys });
      const relayMisconfigured = await relayHarness({ IOTCORE_JWT_LIFETIME_MINUTES: '100000' });

      // --- Act: ingest, accepted and refused.
      const meter = METERS[0]!;
      const bearer = async (d: string, o?: JwtOverrides): Promise<Record<string, string>> => ({ authorization: `Bearer ${await deviceJwt(d, o)}` });
      const statuses = [
        await answer(ingest, httpApiPostJson(`${BRIDGE_PATH(fleet, meter)}:publishEvent`, { binary_data: Buffer.from('{"t":1}').toString('base64'), sub_folder: 'alarms' }, await bearer(meter))),
        await answer(ingest, httpApiPost(`/devices/${meter}/state`, '{"on":true}', await bearer(meter))),
        await answer(ingest, httpApiPostJson(`/devices/${meter}/batch`, { readings: [{ payload: 'a' }, { type: 'state', payload: 'b' }, { payload: 'not base64!', encoding: 'base64' }] }, await bearer(meter))),
        await answer(ingest, httpApiPost(`/devices/${PUMPS[0]}/events`, 'pump reading', { authorization: `Device-Key ${deviceKey(PUMPS[0]!)}` })),
      ];
      expect(statuses).toEqual([202, 202, 202, 202]);
      const refused = [
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', await bearer(METERS[1]!, { claims: { uid: METERS[1] } }))),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', await bearer(METERS[1]!))),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', await bearer(meter, { iat: Math.floor(Date.now() / 1000) - 7200, lifetimeSeconds: 3000 }))),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', await bearer(meter, { lifetimeSeconds: 25 * 3600 }))),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', await bearer(meter, { aud: 'another-project' }))),
        await answer(ingest, httpApiPost(`/devices/${PUMPS[1]}/events`, 'x', { authorization: `Device-Key ${deviceKey(PUMPS[2]!)}` })),
        await answer(ingest, httpApiPost(`/devices/${PUMPS[1]}/events`, 'x', { authorization: `Bearer ${deviceKey(PUMPS[1]!)}` })),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', { authorization: `Device-Key ${await deviceJwt(meter)}` })),
        await answer(ingest, httpApiPost(`/devices/${meter}/events`, 'x', { authorization: `Bearer ${await deviceJwt(meter)} ${deviceKey(meter)}` })),
      ];
      expect(refused).toEqual([403, 401, 401, 401, 401, 401, 401, 401, 401]);

      // --- Act: the relay on what ingest queued (device tokens ride in the records), through the proxy.
      const queued = await sqs.receiveAll();
      expect(queued.length).toBe(5);
      await relay(relayFile, queued.map((m) => sqsRecord(m.body, { groupId: m.groupId! })));

      // --- Act: a batch built to fail every way, then the bridge misbehaving.
      const forged = await deviceJwt(meter);
      const hostile = [
        sqsRecord(eventBody(PUMPS[3]!, { subfolder: 'ok' }), { groupId: GW.assoc }),
        sqsRecord(stateBody(PUMPS[3]!), { groupId: GW.assoc }),
        sqsRecord(pollBody([VALVES[0]!]), { groupId: GW.assoc }),
        sqsRecord(eventBody(METERS[1]!, { deviceToken: forged }), { groupId: GW.token }),
        sqsRecord(eventBody(UNBOUND), { groupId: GW.assoc }),
        sqsRecord(`{"v":1,"deviceId":"${meter}","payload":"x","deviceToken":"${forged}" }}`, { groupId: GW.token }),
        sqsRecord(`{"v":1,"deviceId":"${meter}","payload":"x","deviceToken":"${forged}.extra"}`, { groupId: GW.token }),
        ...MALFORMED.slice(0, 12).map((c) => sqsRecord(c.body, { groupId: GW.assoc })),
      ];
      await relay(relayFile, hostile.slice(0, 10));
      await relay(relayFile, hostile.slice(10));
      for (const faults of [
        { withholdPuback: ['/devices/+/events/#', '/devices/+/detach'] },
        { refuseConnect: 5 as const },
        { closeAtPhase: 'publish' as const },
        { dropPublish: ['/devices/+/attach'] },
      ]) {
        emulator.setFaults(faults);
        await relay(relayFile, [sqsRecord(eventBody(PUMPS[4]!), { groupId: GW.assoc }), sqsRecord(eventBody(METERS[0]!, { deviceToken: await deviceJwt(meter) }), { groupId: GW.token })]);
        emulator.clearFaults();
      }
      await relay(relaySecrets, [sqsRecord(eventBody(PUMPS[5]!), { groupId: GW.assoc })]);
      sm.fail({ type: 'AccessDeniedException', status: 400, message: 'not allowed' });
      await relay(await relayHarness({}, keySourceFromEnv({ GATEWAY_KEY_SECRET: 'gateway-keys-unreadable' }, { secretsManagerClient: sm.client() })), [
        sqsRecord(eventBody(PUMPS[5]!), { groupId: GW.assoc }),
      ]);
      sm.fail(undefined);
      for (const h of [relayGarbled, relayBrokenJson, relayWrongKey, relayMisconfigured]) {
        await relay(h, [sqsRecord(eventBody(PUMPS[6]!), { groupId: GW.assoc }), sqsRecord(eventBody('east-01'), { groupId: GW.east })]);
      }

      // --- Act: config delivery.
      const get = (path: string, headers: Record<string, string>): APIGatewayProxyEventV2 => httpApiEvent({ method: 'GET', path, headers });
      const configStatuses = [
        await answer(config, get(`${BRIDGE_PATH(fleet, meter)}/config`, await bearer(meter))),
        await answer(config, get(`/devices/${meter}/config`, { authorization: `Device-Key ${deviceKey(meter)}` })),
        await answer(config, get(`/devices/${meter}/config`, await bearer(METERS[1]!, { claims: { uid: METERS[1] } }))),
        await answer(config, get(`/devices/${meter}/config`, { authorization: `Device-Key ${deviceKey(METERS[1]!)}` })),
      ];
      expect(configStatuses).toEqual([200, 200, 403, 401]);
    } finally {
      output.restore();
    }

    // --- Assess: the capture is real (the refusals and failures above were logged)...
    const lines = output.jsonLines();
    const messages = new Set(lines.map((l) => l.message));
    for (const m of ['ingest queued', 'ingest refused', 'record not confirmed', 'gateway session ended early', 'batch relayed', 'config request refused', 'relay is misconfigured; every record goes back']) {
      expect(messages, `no "${m}" line was captured`).toContain(m);
    }
    expect(lines.some((l) => l.level === 'DEBUG')).toBe(true);
    // ... the relay did sign gateway JWTs, and the devices did present theirs...
    expect(proxy.passwords.length).toBeGreaterThanOrEqual(8);
    expect(deviceTokens.length).toBeGreaterThanOrEqual(10);

    // ... and none of the secrets is anywhere in it.
    const haystack = [output.text(), ...emulatorLog, ...answers].join('\n');
    const secrets: [string, string][] = [
      ['the PRIVATE KEY marker', 'PRIVATE KEY'],
      ['the master secret', MASTER],
      ...proxy.passwords.flatMap((jwt, i): [string, string][] => [
        [`gateway JWT #${i}`, jwt],
        [`the signature of gateway JWT #${i}`, jwt.split('.')[2]!],
      ]),
      ...deviceTokens.map((t, i): [string, string] => [`device JWT #${i}`, t]),
      ...deviceTokens.map((t, i): [string, string] => [`the signature of device JWT #${i}`, t.split('.')[2]!]),
      ...deviceKeys.map((k, i): [string, string] => [`device key #${i}`, k]),
      ...Object.entries(fleet.keys).flatMap(([id, k]) => pemBodyLines(k.pair.privateKeyPem).map((l, i): [string, string] => [`line ${i} of ${id}'s private key`, l])),
    ];
    const found = secrets.filter(([, value]) => haystack.includes(value)).map(([label]) => label);
    expect(found).toEqual([]);
  });
});
