/**
 * The cold start of the functions other than the relay (relay-bundle-lazy-sdk.test.ts has its own): importing the
 * ingest, config or poll bundle must evaluate nothing of the AWS SDK, and an HTTP request refused before its
 * credentials are checked must not either; a device waits on both. Each client is evaluated by the first request that
 * needs it: Secrets Manager to check a device key, SQS to queue a reading or a poll job, DynamoDB to use the table.
 *
 * The bundles are built as packaged, with marks that record each SDK package when it is evaluated
 * (sdk-evaluation-marks.ts), and run in fresh processes against local SQS, DynamoDB and Secrets Manager servers.
 * The later requests prove the marks do show evaluation, so an empty first reading means something.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/device-key.js';
import { ConfigStore } from '../../lib/config-store/config-store.js';
import { httpApiEvent, httpApiPost } from '../helpers/apigw-events.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../helpers/secrets-manager-endpoint.js';
import { buildMarkedBundle, DYNAMODB, runMarkedBundle, SECRETS, SQS } from './sdk-evaluation-marks.js';

const DEVICE = 'pump-01';
const MASTER_SECRET = 'iotcore-relay/test/device-key-master';
const KEYS_SECRET = 'iotcore-relay/test/device-keys';

let dir: string;
const bundles: Record<'ingest' | 'config' | 'poll', string> = { ingest: '', config: '', poll: '' };
const marked = new Set<string>();
let secrets: SecretsManagerEndpoint;
let db: LocalDynamoDb;
let sqs: LocalSqs;
let authorization: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bundles-lazy-sdk-'));
  // One after the other: each build takes a core.
  bundles.ingest = await buildMarkedBundle('handlers/ingest.ts', join(dir, 'ingest'), marked);
  bundles.config = await buildMarkedBundle('handlers/config.ts', join(dir, 'config'), marked);
  bundles.poll = await buildMarkedBundle('handlers/poll.ts', join(dir, 'poll'), marked);
  [secrets, db, sqs] = await Promise.all([startSecretsManagerEndpoint(), startLocalDynamoDb(), startLocalSqs()]);
  const master = randomBytes(32).toString('base64url');
  secrets.putSecret(MASTER_SECRET, master);
  secrets.putSecret(KEYS_SECRET, '{}');
  authorization = `Device-Key ${deriveDeviceKey(masterKeyFromText(master, 'test'), DEVICE)}`;
  await new ConfigStore({ tableName: db.tableName, client: db.client }).putConfig(DEVICE, Buffer.from('{"rate":5}'), new Date());
}, 120_000);

afterAll(async () => {
  await Promise.all([secrets?.close(), db?.stop(), sqs?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The functions' environment as deployed, every AWS service a local server. */
function functionEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...sqs.env,
    ...db.env,
    AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
    AWS_MAX_ATTEMPTS: '1',
    IOTCORE_PROJECT: 'demo-project',
    IOTCORE_LOCATION: 'us-central1',
    IOTCORE_REGISTRY: 'demo-registry',
    IOTCORE_GATEWAY_IDS: 'gw-1',
    DEVICE_KEYS_SECRET: KEYS_SECRET,
    DEVICE_KEY_MASTER_SECRET: MASTER_SECRET,
    POWERTOOLS_LOG_LEVEL: 'ERROR',
  };
}

const statusOf = (response: unknown): number | undefined => (response as { statusCode?: number } | undefined)?.statusCode;

describe('ingest, config and poll bundles as packaged', () => {
  it('marks every file of the SDK clients the functions use', () => {
    // Without this, a path the plugin failed to match would leave nothing to observe, and the test would pass.
    for (const pkg of [...SECRETS, ...DYNAMODB, ...SQS, '@aws-sdk/core', '@smithy/core']) expect([...marked]).toContain(pkg);
  });

  it('ingest: evaluates no AWS SDK module at import nor for a bad request, and each client at its first use', async () => {
    const events = [
      // Refused on its path: a device ID may not start with a digit.
      { name: 'bad request', event: httpApiPost('/devices/1-pump/events', Buffer.from('{}'), { authorization }) },
      { name: 'reading', event: httpApiPost(`/devices/${DEVICE}/events`, Buffer.from('{"t":1}'), { authorization }) },
      // Naming a config version it holds: the answer then carries the newer one, read from the table.
      { name: 'reading with a config version', event: httpApiPost(`/devices/${DEVICE}/events`, Buffer.from('{"t":2}'), { authorization, 'x-config-version': '0' }) },
    ];
    const run = await runMarkedBundle(bundles.ingest, dir, events, functionEnv());
    expect(run.code, run.output).toBe(0);
    const [imported, bad, reading, withConfig] = run.steps;

    expect(imported?.evaluated, 'SDK packages evaluated by the import of the ingest bundle').toEqual([]);
    expect(statusOf(bad?.response), run.output).toBe(400);
    expect(bad?.evaluated, 'SDK packages evaluated to answer a bad request').toEqual([]);

    expect(statusOf(reading?.response), run.output).toBe(202);
    expect(reading?.evaluated).toEqual(expect.arrayContaining([...SECRETS, ...SQS]));
    expect(reading?.evaluated).not.toContain(DYNAMODB[0]);

    expect(statusOf(withConfig?.response), run.output).toBe(202);
    expect(JSON.parse((withConfig?.response as { body: string }).body).config?.version).toBe('1');
    expect(withConfig?.evaluated).toEqual(expect.arrayContaining(DYNAMODB));
    expect((await sqs.receiveAll()).map((m) => JSON.parse(m.body).deviceId)).toEqual([DEVICE, DEVICE]);
  });

  it('config: evaluates no AWS SDK module at import nor for a bad request, and each client at its first use', async () => {
    const events = [
      { name: 'bad request', event: httpApiEvent({ method: 'GET', path: '/devices/1-pump/config', headers: { authorization } }) },
      { name: 'config', event: httpApiEvent({ method: 'GET', path: `/devices/${DEVICE}/config`, headers: { authorization } }) },
    ];
    const run = await runMarkedBundle(bundles.config, dir, events, functionEnv());
    expect(run.code, run.output).toBe(0);
    const [imported, bad, config] = run.steps;

    expect(imported?.evaluated, 'SDK packages evaluated by the import of the config bundle').toEqual([]);
    expect(statusOf(bad?.response), run.output).toBe(400);
    expect(bad?.evaluated, 'SDK packages evaluated to answer a bad request').toEqual([]);

    expect(statusOf(config?.response), run.output).toBe(200);
    expect(Buffer.from((config?.response as { body: string }).body, 'base64').toString('utf8')).toBe('{"rate":5}');
    expect(config?.evaluated).toEqual(expect.arrayContaining([...SECRETS, ...DYNAMODB]));
    expect(config?.evaluated).not.toContain(SQS[0]);
  });

  it('poll: evaluates no AWS SDK module at import, and the DynamoDB and SQS clients in its first invocation', async () => {
    const env = { ...functionEnv(), POLL_DEVICE_IDS: DEVICE, POLL_RECENT_HOURS: '24' };
    const run = await runMarkedBundle(bundles.poll, dir, [{ name: 'schedule', event: { time: '2026-01-01T00:15:00Z' } }], env);
    expect(run.code, run.output).toBe(0);
    const [imported, scheduled] = run.steps;

    expect(imported?.evaluated, 'SDK packages evaluated by the import of the poll bundle').toEqual([]);
    expect((scheduled?.response as { jobs?: number } | undefined)?.jobs, run.output).toBe(1);
    expect(scheduled?.evaluated).toEqual(expect.arrayContaining([...DYNAMODB, ...SQS]));
    expect(scheduled?.evaluated).not.toContain(SECRETS[1]);
    expect((await sqs.receiveAll()).map((m) => JSON.parse(m.body).type)).toEqual(['config-poll']);
  });
});
