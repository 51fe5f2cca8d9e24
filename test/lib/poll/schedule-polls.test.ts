import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { pollDeduplicationId } from '../../../lib/poll/poll-plan.js';
import type { PollSettings } from '../../../lib/poll/poll-settings.js';
import { scheduleConfigPolls, type PollSources } from '../../../lib/poll/schedule-polls.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';

const GATEWAYS = ['gw-a', 'gw-b'];
let sqs: LocalSqs;
beforeAll(async () => {
  sqs = await startLocalSqs();
});
afterAll(() => sqs.stop());
afterEach(() => sqs.purge());

/** A store that answers `recentlyRelayed` with `devices`, and notes the times it was asked about. */
function storeOf(devices: string[]): PollSources['store'] & { asked: Date[] } {
  const asked: Date[] = [];
  return {
    asked,
    recentlyRelayed: async (since: Date) => {
      asked.push(since);
      return devices;
    },
  };
}

const settings = (over: Partial<PollSettings> = {}): PollSettings => ({
  gatewayIds: GATEWAYS,
  queueUrl: sqs.queueUrl,
  deviceIds: [],
  recentHours: 24,
  chunkSize: 2,
  ...over,
});

// Each test fires its own schedule time: SQS drops a deduplication ID seen within five minutes.
describe('scheduleConfigPolls', () => {
  it('polls the configured and the recent devices once each, in jobs per gateway, and sums them up', async () => {
    const scheduledAt = new Date('2025-04-01T06:00:00Z');
    const store = storeOf(['r-1', 'r-2', 'r-3', 'both']);

    const summary = await scheduleConfigPolls({ store, sqs: sqs.client }, settings({ deviceIds: ['c-1', 'both'] }), scheduledAt);

    const jobs = (await sqs.receiveAll()).map((m) => ({ ...m, job: parseQueueMessage(m.body) }));
    const polled = jobs.flatMap((j) => (j.job.type === 'config-poll' ? j.job.deviceIds : []));
    expect(polled.sort()).toEqual(['both', 'c-1', 'r-1', 'r-2', 'r-3']);
    for (const j of jobs) {
      if (j.job.type !== 'config-poll') throw new Error(`not a poll job: ${j.body}`);
      for (const d of j.job.deviceIds) expect(gatewayFor(d, GATEWAYS)).toBe(j.groupId);
    }
    expect(summary).toMatchObject({ devices: 5, jobs: jobs.length, configured: 2, recent: 4 });
    expect(summary.gateways.reduce((n, g) => n + g.devices, 0)).toBe(5);
    expect(summary.gateways.reduce((n, g) => n + g.jobs, 0)).toBe(jobs.length);
    // Per gateway, chunk indexes from 0 in the deduplication IDs, all of the one schedule time.
    for (const g of summary.gateways) {
      const ids = jobs.filter((j) => j.groupId === g.gatewayId).map((j) => j.deduplicationId).sort();
      expect(ids).toEqual(Array.from({ length: g.jobs }, (_, i) => pollDeduplicationId(scheduledAt, g.gatewayId, i)).sort());
    }
  });

  it('measures the recent window back from the schedule time, not from now', async () => {
    const scheduledAt = new Date('2025-04-01T07:00:00Z');
    const store = storeOf([]);

    await scheduleConfigPolls({ store, sqs: sqs.client }, settings({ deviceIds: ['c-1'], recentHours: 6 }), scheduledAt);

    expect(store.asked).toEqual([new Date('2025-04-01T01:00:00Z')]);
  });

  it('does not ask the store when the recent window is off, and enqueues nothing for no devices', async () => {
    const store = storeOf(['never-asked']);

    const summary = await scheduleConfigPolls({ store, sqs: sqs.client }, settings({ recentHours: 0 }), new Date('2025-04-01T08:00:00Z'));

    expect(store.asked).toEqual([]);
    expect(summary).toEqual({ devices: 0, jobs: 0, configured: 0, recent: 0, gateways: [] });
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('fails when the jobs cannot be enqueued, so the invocation is retried', async () => {
    const missing = settings({ deviceIds: ['c-1'], recentHours: 0, queueUrl: `${sqs.endpoint}/123456789012/missing.fifo` });

    await expect(scheduleConfigPolls({ store: storeOf([]), sqs: sqs.client }, missing, new Date('2025-04-01T09:00:00Z'))).rejects.toMatchObject({
      name: 'RelayError',
      message: expect.stringContaining('gw-'),
    });
  });
});
