import { Metrics } from '@aws-lambda-powertools/metrics';
import { Logger } from '@aws-lambda-powertools/logger';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPollHandler } from '../../handlers/poll.js';
import { ConfigStore } from '../../lib/config-store/index.js';
import { gatewayFor } from '../../lib/gateway-pool.js';
import { pollDeduplicationId } from '../../lib/poll/poll-plan.js';
import { parseQueueMessage } from '../../lib/queue/message.js';
import { captureOutput, type CapturedOutput } from '../helpers/captured-output.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';

const GATEWAYS = ['gw-default', 'gw-a', 'gw-b'];
const SCHEDULED = '2025-03-01T06:00:00Z';
const scheduledAt = new Date(SCHEDULED);
const hoursBefore = (h: number): Date => new Date(scheduledAt.getTime() - h * 3_600_000);

let db: LocalDynamoDb;
let sqs: LocalSqs;
let store: ConfigStore;

beforeAll(async () => {
  [db, sqs] = await Promise.all([startLocalDynamoDb(), startLocalSqs()]);
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
});

afterAll(async () => {
  await Promise.all([sqs.stop(), db.stop()]);
});

// Keeps the EMF documents the handler prints off the test output.
let output: CapturedOutput;
beforeEach(async () => {
  output = captureOutput();
  await sqs.purge();
});
afterEach(() => {
  output.restore();
});
/** The metrics the handler printed so far: metric name -> value. */
const readMetrics = (): Record<string, unknown> => Object.assign({}, ...output.metricDocuments());

interface Received {
  groupId: string | undefined;
  deduplicationId: string | undefined;
  deviceIds: string[];
}

/** Reads and deletes everything on the relay queue; every message must be a config-poll job. */
async function drain(): Promise<Received[]> {
  return (await sqs.receiveAll()).map((m) => {
    const job = parseQueueMessage(m.body);
    if (job.type !== 'config-poll') throw new Error(`unexpected ${job.type} message`);
    return { groupId: m.groupId, deduplicationId: m.deduplicationId, deviceIds: job.deviceIds };
  });
}

function handlerFor(extra: Record<string, string> = {}) {
  const env = { IOTCORE_GATEWAY_IDS: GATEWAYS.join(','), RELAY_QUEUE_URL: sqs.queueUrl, CONFIG_TABLE: db.tableName, ...extra };
  return createPollHandler({
    env,
    sources: { store, sqs: sqs.client },
    logger: new Logger({ serviceName: 'poll-test', logLevel: 'SILENT' }),
    metrics: new Metrics({ namespace: 'PollTest', serviceName: 'poll-test' }),
  });
}

// One queue serves the file and SQS remembers deduplication IDs for five minutes: each test fires its own schedule
// times so that no test's jobs are dropped as repeats of another's.
describe('poll handler', () => {
  it('enqueues, per gateway group, chunked jobs for the configured devices and the recently relayed ones', async () => {
    const recent = Array.from({ length: 23 }, (_, i) => `recent-${String(i).padStart(2, '0')}`);
    const stale = ['stale-1', 'stale-2'];
    await store.noteRelayed(recent, hoursBefore(2));
    await store.noteRelayed(stale, hoursBefore(30));
    const configured = ['fixed-1', 'fixed-2', 'recent-00'];

    const summary = await handlerFor({ POLL_DEVICE_IDS: configured.join(','), POLL_CHUNK_SIZE: '2' })({ time: SCHEDULED });
    const got = await drain();

    const expected = [...new Set([...recent, ...configured])].sort();
    expect(got.flatMap((j) => j.deviceIds).sort()).toEqual(expected);
    expect(summary).toMatchObject({ devices: expected.length, jobs: got.length, configured: 3, recent: recent.length });
    for (const job of got) {
      expect(job.deviceIds.length).toBeLessThanOrEqual(2);
      // Each job travels in the message group of the gateway that carries its devices.
      for (const d of job.deviceIds) expect(gatewayFor(d, GATEWAYS)).toBe(job.groupId);
    }
    // More than ten jobs: several SendMessageBatch calls.
    expect(got.length).toBeGreaterThan(10);
    // Chunk indexes run from 0 in each group, and the deduplication ID names schedule, gateway and chunk.
    for (const gw of new Set(got.map((j) => j.groupId!))) {
      const ids = got.filter((j) => j.groupId === gw).map((j) => j.deduplicationId).sort();
      expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => pollDeduplicationId(scheduledAt, gw, i)).sort());
    }
    expect(readMetrics()).toMatchObject({ ConfigPollDevices: expected.length, ConfigPollJobsEnqueued: got.length });
  });

  it('does not enqueue twice when the same schedule invocation is retried, but does for the next schedule', async () => {
    const handler = handlerFor({ POLL_DEVICE_IDS: 'retry-1,retry-2,retry-3', POLL_RECENT_HOURS: '0', POLL_CHUNK_SIZE: '2' });
    await handler({ time: '2025-03-02T06:00:00Z' });
    await handler({ time: '2025-03-02T06:00:00Z' });
    const first = await drain();
    expect(first.flatMap((j) => j.deviceIds).sort()).toEqual(['retry-1', 'retry-2', 'retry-3']);

    await handler({ time: '2025-03-02T06:15:00Z' });
    expect((await drain()).flatMap((j) => j.deviceIds).sort()).toEqual(['retry-1', 'retry-2', 'retry-3']);
  });

  it('enqueues nothing, and says so, when there is no device to poll', async () => {
    const summary = await handlerFor({ POLL_RECENT_HOURS: '0' })({ time: '2025-03-03T06:00:00Z' });
    expect(summary).toMatchObject({ devices: 0, jobs: 0 });
    expect(await drain()).toEqual([]);
    expect(readMetrics()).toMatchObject({ ConfigPollDevices: 0, ConfigPollJobsEnqueued: 0 });
  });

  it('fails the invocation on a bad setting, before sending anything', async () => {
    await expect(handlerFor({ POLL_DEVICE_IDS: 'ok-1', POLL_CHUNK_SIZE: '5000' })({ time: '2025-03-04T06:00:00Z' })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
    expect(await drain()).toEqual([]);
  });

  it('fails the invocation when the queue does not exist, so Lambda retries it', async () => {
    const handler = handlerFor({ POLL_DEVICE_IDS: 'ok-1', RELAY_QUEUE_URL: sqs.queueUrl.replace(/[^/]+$/, 'missing.fifo') });
    await expect(handler({ time: '2025-03-05T06:00:00Z' })).rejects.toThrow();
  });

  it('builds its store and SQS client from the environment when none is given, and falls back to the current minute', async () => {
    await store.noteRelayed(['env-recent'], new Date());
    const env = { ...db.env, ...sqs.env, IOTCORE_GATEWAY_IDS: 'gw-only', POLL_RECENT_HOURS: '1' };
    // The SDK's default clients read process.env.
    for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
    try {
      const handler = createPollHandler({ env, logger: new Logger({ logLevel: 'SILENT' }), metrics: new Metrics({ namespace: 'PollTest' }) });
      const summary = await handler({});
      expect(summary.devices).toBeGreaterThanOrEqual(1);
      const got = await drain();
      expect(got.flatMap((j) => j.deviceIds)).toContain('env-recent');
      expect(new Set(got.map((j) => j.groupId))).toEqual(new Set(['gw-only']));
      expect(got[0]!.deduplicationId).toMatch(/^config-poll:\d{4}-\d\d-\d\dT\d\d:\d\d:00\.000Z:0:/);
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
