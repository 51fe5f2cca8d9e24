/**
 * The relay's cold start: importing its bundle must evaluate nothing of the AWS SDK; each client is evaluated by the
 * first invocation that needs it.
 *
 * The relay is bundled as packaged, with marks that record each SDK package when it is evaluated
 * (sdk-evaluation-marks.ts). A fresh Node process imports the bundle, then runs two batches through the exported
 * handler, against the emulator and local stand-ins for Secrets Manager, DynamoDB and SQS, reading the marks after
 * each. The later readings prove the marks do show evaluation, so an empty first reading means something.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { makeFleet, type Fleet } from '../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startSqsStandIn, type SqsStandIn } from '../helpers/local-sqs.js';
import { eventBody, sqsEvent, sqsRecord } from '../helpers/relay-fixtures.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../helpers/secrets-manager-endpoint.js';
import { buildMarkedBundle, DYNAMODB, runMarkedBundle, SECRETS, SQS } from './sdk-evaluation-marks.js';

/** What the relay answered a batch. */
const failedBack = (response: unknown): number => (response as { batchItemFailures: unknown[] }).batchItemFailures.length;

const GATEWAY = 'gw-1';
const DEVICE = 'pump-01';
const SECRET_ID = 'iotcore-relay/test/gateway-keys';

let dir: string;
let bundle: string;
const marked = new Set<string>();
let fleet: Fleet;
let emulator: Emulator;
let secrets: SecretsManagerEndpoint;
let db: LocalDynamoDb;
let sqs: SqsStandIn;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-lazy-sdk-'));
  const building = buildMarkedBundle('handlers/relay.ts', dir, marked).then((file) => (bundle = file));
  [fleet, secrets, db, sqs] = await Promise.all([
    makeFleet({ gateways: [{ id: GATEWAY, bound: [DEVICE] }], devices: [{ id: DEVICE, keyless: true }] }),
    startSecretsManagerEndpoint(),
    startLocalDynamoDb(),
    startSqsStandIn((call) => {
      const body = String(call.input.MessageBody ?? '');
      // The SDK checks the MD5 of the body SQS says it received.
      return { status: 200, body: { MessageId: 'dead-letter-1', MD5OfMessageBody: createHash('md5').update(body).digest('hex') } };
    }),
    building,
  ]);
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  secrets.putSecret(SECRET_ID, JSON.stringify({ [GATEWAY]: fleet.keys[GATEWAY]!.pair.privateKeyPem }));
});

afterAll(async () => {
  await emulator?.close();
  await Promise.all([secrets?.close(), db?.stop(), sqs?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('relay bundle as packaged', () => {
  it('marks every file of the SDK clients the relay uses', () => {
    // Without this, a path the plugin failed to match would leave nothing to observe, and the test would pass.
    for (const pkg of [...SECRETS, ...DYNAMODB, ...SQS, '@aws-sdk/core', '@smithy/core']) expect([...marked]).toContain(pkg);
  });

  it('evaluates no AWS SDK module at import, and each client at its first use', async () => {
    const events = [
      // A clean batch: the key is read from Secrets Manager, the device noted in the config table; nothing for SQS.
      { name: 'clean batch', event: sqsEvent([sqsRecord(eventBody(DEVICE), { groupId: GATEWAY })]) },
      // A malformed record is dead-lettered: the first SQS call.
      { name: 'malformed record', event: sqsEvent([sqsRecord('{"v":1,', { groupId: GATEWAY })]) },
    ];
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...db.env,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      AWS_MAX_ATTEMPTS: '1',
      IOTCORE_PROJECT: fleet.project,
      IOTCORE_LOCATION: fleet.location,
      IOTCORE_REGISTRY: fleet.registryId,
      IOTCORE_GATEWAY_IDS: GATEWAY,
      IOTCORE_MQTT_HOST: emulator.host,
      IOTCORE_MQTT_PORT: String(emulator.port),
      IOTCORE_CA_FILE: emulator.caFile!,
      GATEWAY_KEY_SECRET: SECRET_ID,
      RELAY_DEAD_LETTER_QUEUE_URL: `${sqs.endpoint}/123456789012/relay-dlq.fifo`,
      POWERTOOLS_LOG_LEVEL: 'WARN',
    };

    const run = await runMarkedBundle(bundle, dir, events, env);
    expect(run.code, run.output).toBe(0);
    const [imported, clean, malformed] = run.steps;

    expect(imported?.evaluated, 'SDK packages evaluated by the import of the relay bundle').toEqual([]);

    expect(failedBack(clean?.response), run.output).toBe(0);
    expect(secrets.calls(SECRET_ID)).toBe(1);
    const noted = await db.client.send(new GetCommand({ TableName: db.tableName, Key: { deviceId: DEVICE } }));
    expect(noted.Item?.lastRelayedAt, 'the relayed device noted in the config table').toEqual(expect.any(String));
    expect(clean?.evaluated).toEqual(expect.arrayContaining([...SECRETS, ...DYNAMODB]));
    expect(clean?.evaluated).not.toContain(SQS[0]);

    expect(failedBack(malformed?.response), run.output).toBe(0);
    expect(sqs.calls.map((c) => c.action)).toEqual(['SendMessage']);
    expect(malformed?.evaluated).toEqual(expect.arrayContaining(SQS));
  });
});
