import { describe, expect, it } from 'vitest';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { planPollJobs, pollDeduplicationId } from '../../../lib/poll/poll-plan.js';
import { CLASSIC_MAX_MESSAGE_BYTES } from '../../../lib/queue/queue-producer.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';

const at = new Date('2025-03-01T06:00:00.000Z');
const ids = (n: number, prefix = 'dev'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(4, '0')}`);

describe('planPollJobs', () => {
  it('puts each device in the job of the gateway that carries it, and every body parses as a config-poll job', () => {
    const gatewayIds = ['gw-default', 'gw-a', 'gw-b', 'gw-c'];
    const devices = ids(50);
    const jobs = planPollJobs(devices, { gatewayIds, chunkSize: 100, scheduledAt: at });
    for (const job of jobs) {
      for (const d of job.deviceIds) expect(gatewayFor(d, gatewayIds)).toBe(job.gatewayId);
      expect(parseQueueMessage(job.body)).toEqual({ v: 1, type: 'config-poll', deviceIds: job.deviceIds });
    }
    expect(jobs.flatMap((j) => j.deviceIds).sort()).toEqual(devices);
    // Every gateway of the pool carries some of the 50 devices: none is set aside.
    expect(jobs.map((j) => j.gatewayId).sort()).toEqual(['gw-a', 'gw-b', 'gw-c', 'gw-default']);
  });

  it('cuts a gateway list into chunks of the chunk size, indexed from 0, sorted', () => {
    const jobs = planPollJobs([...ids(25)].reverse(), { gatewayIds: ['gw-1'], chunkSize: 10, scheduledAt: at });
    expect(jobs.map((j) => [j.chunkIndex, j.deviceIds.length])).toEqual([
      [0, 10],
      [1, 10],
      [2, 5],
    ]);
    expect(jobs[0]!.deviceIds[0]).toBe('dev-0000');
    expect(jobs[2]!.deviceIds.at(-1)).toBe('dev-0024');
  });

  it('gives the same chunks and IDs for the same devices in any order, so a retried run is deduplicated', () => {
    const a = planPollJobs(ids(30), { gatewayIds: ['gw-1', 'gw-2', 'gw-3'], chunkSize: 7, scheduledAt: at });
    const b = planPollJobs([...ids(30), 'dev-0003'].reverse(), { gatewayIds: ['gw-1', 'gw-2', 'gw-3'], chunkSize: 7, scheduledAt: at });
    expect(b).toEqual(a);
  });

  it('derives distinct deduplication IDs per schedule time, gateway and chunk, within SQS limits', () => {
    const jobs = planPollJobs(ids(40), { gatewayIds: ['gw-1', 'gw-2', 'gw-3'], chunkSize: 5, scheduledAt: at });
    const later = planPollJobs(ids(40), { gatewayIds: ['gw-1', 'gw-2', 'gw-3'], chunkSize: 5, scheduledAt: new Date(at.getTime() + 60_000) });
    const all = [...jobs, ...later].map((j) => j.deduplicationId);
    expect(new Set(all).size).toBe(all.length);
    for (const id of all) {
      expect(id.length).toBeLessThanOrEqual(128);
      // SQS allows alphanumerics and punctuation only.
      expect(id).toMatch(/^[A-Za-z0-9!-/:-@[-`{-~]+$/);
    }
    expect(jobs[0]!.deduplicationId).toBe(pollDeduplicationId(at, jobs[0]!.gatewayId, 0));
    // A 255-character gateway ID still yields a short ID.
    expect(pollDeduplicationId(at, `g${'x'.repeat(254)}`, 999).length).toBeLessThanOrEqual(128);
  });

  it('never polls a configured gateway as a device', () => {
    const jobs = planPollJobs(['gw-1', 'gw-2', 'dev-1'], { gatewayIds: ['gw-1', 'gw-2'], chunkSize: 10, scheduledAt: at });
    expect(jobs.flatMap((j) => j.deviceIds)).toEqual(['dev-1']);
  });

  it('returns no job for no device', () => {
    expect(planPollJobs([], { gatewayIds: ['gw-1'], chunkSize: 10, scheduledAt: at })).toEqual([]);
  });

  it('refuses a chunk size outside 1..1000 (the bridge attaches at most 1000 devices to a gateway)', () => {
    for (const chunkSize of [0, 1001, 2.5]) {
      expect(() => planPollJobs(ids(3), { gatewayIds: ['gw-1'], chunkSize, scheduledAt: at })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
    }
    expect(planPollJobs(ids(1000), { gatewayIds: ['gw-1'], chunkSize: 1000, scheduledAt: at })).toHaveLength(1);
  });

  it('refuses an invalid device ID rather than putting it in a job', () => {
    expect(() => planPollJobs(['ok-device', 'bad/id'], { gatewayIds: ['gw-1'], chunkSize: 10, scheduledAt: at })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_DEVICE_ID' }),
    );
  });

  it('fits the largest possible job, 1000 IDs of 255 characters, in one SQS message', () => {
    const longest = Array.from({ length: 1000 }, (_, i) => `d${String(i).padStart(4, '0')}${'x'.repeat(250)}`);
    const jobs = planPollJobs(longest, { gatewayIds: ['gw-1'], chunkSize: 1000, scheduledAt: at });
    expect(jobs).toHaveLength(1);
    expect(Buffer.byteLength(jobs[0]!.body)).toBeLessThanOrEqual(CLASSIC_MAX_MESSAGE_BYTES);
  });
});
