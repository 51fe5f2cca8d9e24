/**
 * One connection per gateway at a time (docs/design.md rule 1), with telemetry and config polls competing for the same
 * gateways: uploads through the ingest handler and jobs from the poll handler share each gateway's FIFO message
 * group, and the queue runs through the relay handler as Lambda's SQS integration runs a FIFO queue (one batch per
 * message group at a time, several groups in parallel; local/sqs-event-source.ts). The bridge emulator counts
 * every connection dropped for a newer one with the same client ID: there must be none.
 */
import type { SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqsEventSource } from '../../local/sqs-event-source.js';
import { gatewayFor } from '../../lib/gateway-pool.js';
import { eventually } from '../helpers/emulator-fixtures.js';
import { httpApiPost } from '../helpers/apigw-events.js';
import { QUEUE_ARN, RELAY_TIMEOUT_MS, startRelayPipeline, type RelayPipeline } from './relay-pipeline.js';

/** The first gateway is the default; devices spread over the other two (lib/gateway-pool.ts). */
const GATEWAYS = ['gw-default', 'gw-north', 'gw-south'];
const SENSORS = Array.from({ length: 8 }, (_, i) => `sensor-${String(i + 1).padStart(2, '0')}`);

let pipeline: RelayPipeline;

beforeAll(async () => {
  pipeline = await startRelayPipeline(
    {
      gateways: GATEWAYS.map((id) => ({ id, bound: SENSORS.filter((d) => gatewayFor(d, GATEWAYS) === id) })),
      devices: SENSORS.map((id) => ({ id, keyless: true, config: `{"sensor":"${id}"}` })),
    },
    // Two devices per poll job, so every gateway gets several jobs; a little latency per bridge packet, so sessions
    // last long enough for a second one of the same gateway to collide with them if the grouping let it run.
    { env: { POLL_DEVICE_IDS: SENSORS.join(','), POLL_CHUNK_SIZE: '2' }, latencyMs: 10 },
  );
});
afterAll(() => pipeline.close());

interface Invocation {
  startedAt: number;
  endedAt: number;
  /** Message group -> record types of the batch in that group. */
  groups: Map<string, Set<string>>;
}

describe('a gateway\'s sessions', () => {
  it('never overlap, though polls and telemetry of the same gateway reach the queue together', async () => {
    const takeoversBefore = pipeline.emulator.takeovers;
    const invocations: Invocation[] = [];
    // The relay handler, watched: which groups and record types each invocation carried, and when it ran.
    const watched = async (event: SQSEvent, context: Parameters<typeof pipeline.relay>[1]) => {
      const groups = new Map<string, Set<string>>();
      for (const r of event.Records) {
        const group = r.attributes.MessageGroupId ?? '';
        const types = groups.get(group) ?? new Set<string>();
        types.add((JSON.parse(r.body) as { type?: string }).type ?? 'event');
        groups.set(group, types);
      }
      const invocation: Invocation = { startedAt: Date.now(), endedAt: Number.POSITIVE_INFINITY, groups };
      invocations.push(invocation);
      try {
        return await pipeline.relay(event, context);
      } finally {
        invocation.endedAt = Date.now();
      }
    };
    const payloads: string[] = [];
    const upload = async (deviceId: string, round: number): Promise<void> => {
      const payload = JSON.stringify({ deviceId, round });
      payloads.push(payload);
      const answer = await pipeline.ingest(httpApiPost(`/devices/${deviceId}/events`, payload, pipeline.deviceAuth(deviceId)));
      expect(answer.status).toBe(202);
    };
    let jobs = 0;
    const schedule = async (minute: number): Promise<void> => {
      jobs += (await pipeline.poll({ time: new Date(Date.UTC(2025, 0, 1, 6, minute)).toISOString() })).jobs;
    };

    // Telemetry and polls of the same gateways wait in the queue together before the first batch is taken.
    await Promise.all(SENSORS.map((d) => upload(d, 1)));
    await schedule(0);
    const source = new SqsEventSource({
      client: pipeline.sqs.client,
      queue: { url: pipeline.sqs.queueUrl, arn: QUEUE_ARN },
      handler: watched,
      fn: { functionName: 'relay', timeoutSeconds: RELAY_TIMEOUT_MS / 1000, region: 'us-east-1' },
      visibilityTimeoutSeconds: 30,
    });
    source.start();
    try {
      // More of both while batches run.
      await Promise.all([...SENSORS.map((d) => upload(d, 2)), schedule(1)]);
      const total = payloads.length + jobs;
      await eventually(() => source.stats().deleted === total, 20_000, `not every one of ${total} messages was relayed and deleted`);
    } finally {
      await source.stop();
    }

    expect(pipeline.emulator.takeovers).toBe(takeoversBefore);
    expect(source.stats()).toMatchObject({ retried: 0, inFlight: 0 });
    // One batch per group at a time: the invocations of a group follow one another.
    for (const gateway of GATEWAYS.slice(1)) {
      const runs = invocations.filter((i) => i.groups.has(gateway)).sort((a, b) => a.startedAt - b.startedAt);
      expect(runs.length, gateway).toBeGreaterThan(0);
      for (let k = 1; k < runs.length; k++) expect(runs[k]!.startedAt, `${gateway} batch ${k}`).toBeGreaterThanOrEqual(runs[k - 1]!.endedAt);
    }
    // The case that matters happened: one session carried a gateway's poll job and its telemetry.
    expect(invocations.some((i) => [...i.groups.values()].some((types) => types.has('config-poll') && types.has('event')))).toBe(true);
    // Every reading arrived once; every config was stored.
    for (const p of payloads) {
      const data = Buffer.from(p).toString('base64');
      expect(pipeline.emulator.registry.events.filter((e) => e.data === data), p).toHaveLength(1);
    }
    for (const d of SENSORS) expect((await pipeline.store.getConfig(d))?.bytes.toString(), d).toBe(`{"sensor":"${d}"}`);
  });
});
