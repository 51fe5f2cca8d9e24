/**
 * Ingestion end to end: an HTTP request to the ingest handler, the record on the FIFO queue, a batch received from
 * it and given to the relay handler, the reading at the bridge emulator, and the message gone from the queue.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpApiPost, httpApiPostJson } from '../helpers/apigw-events.js';
import { startRelayPipeline, type RelayPipeline } from './relay-pipeline.js';

const GATEWAY = 'gw-plant';
const PUMP = 'pump-0042';
const VALVE = 'valve-0007';

let pipeline: RelayPipeline;

beforeAll(async () => {
  pipeline = await startRelayPipeline({
    gateways: [{ id: GATEWAY, bound: [PUMP, VALVE] }],
    devices: [PUMP, VALVE].map((id) => ({ id, keyless: true })),
  });
});
afterEach(() => pipeline.clearLogs());
afterAll(() => pipeline.close());

const eventsOf = (deviceId: string) => pipeline.emulator.registry.events.filter((e) => e.attributes.deviceId === deviceId);

describe('HTTP to the bridge', () => {
  it('delivers a reading with its device, subfolder and bytes exactly once, and deletes it from the queue', async () => {
    // Bytes that are not text: they must arrive untouched.
    const bytes = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f, 0x0a, 0xc3, 0x28]);
    const since = new Date(Date.now() - 1000);

    const answer = await pipeline.ingest(httpApiPost(`/devices/${PUMP}/events/alarms/high`, bytes, pipeline.deviceAuth(PUMP)));
    expect(answer.status).toBe(202);
    const [messageId] = answer.body.messageIds as string[];

    const { records, response } = await pipeline.relayQueueOnce();
    expect(records.map((r) => r.messageId)).toEqual([messageId]);
    expect(records[0]!.attributes.MessageGroupId).toBe(GATEWAY);
    expect(response).toEqual({ batchItemFailures: [] });

    const received = eventsOf(PUMP);
    expect(received).toHaveLength(1);
    expect(Buffer.from(received[0]!.data, 'base64')).toEqual(bytes);
    expect(received[0]!.attributes).toMatchObject({ deviceId: PUMP, subFolder: 'alarms/high', gatewayId: GATEWAY, deviceRegistryId: pipeline.fleet.registryId });

    // Deleted, not merely in flight: nothing visible now, nothing to come back after the visibility timeout.
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
    expect((await pipeline.relayQueueOnce()).records).toEqual([]);
    expect(eventsOf(PUMP)).toHaveLength(1);
    // The relay noted the device, so the scheduled poller will poll its config.
    expect(await pipeline.store.recentlyRelayed(since)).toContain(PUMP);
  });

  it('relays IoT Core\'s publishEvent and setState forms through the same path', async () => {
    const bridge = `/v1/projects/${pipeline.fleet.project}/locations/${pipeline.fleet.location}/registries/${pipeline.fleet.registryId}/devices/${VALVE}`;
    const event = await pipeline.ingest(httpApiPostJson(`${bridge}:publishEvent`, { binary_data: Buffer.from('{"flow":3.2}').toString('base64'), sub_folder: 'flow' }, pipeline.deviceAuth(VALVE)));
    const state = await pipeline.ingest(httpApiPostJson(`${bridge}:setState`, { state: { binary_data: Buffer.from('{"open":true}').toString('base64') } }, pipeline.deviceAuth(VALVE)));
    expect([event.status, state.status]).toEqual([202, 202]);

    const { records, response } = await pipeline.relayQueueOnce();
    expect(records).toHaveLength(2);
    expect(response).toEqual({ batchItemFailures: [] });

    const events = eventsOf(VALVE);
    expect(events).toHaveLength(1);
    expect(events[0]!.attributes.subFolder).toBe('flow');
    expect(Buffer.from(events[0]!.data, 'base64').toString()).toBe('{"flow":3.2}');
    const states = pipeline.emulator.registry.states(pipeline.fleet.registryId, VALVE);
    expect(states.map((s) => Buffer.from(s.binaryData, 'base64').toString())).toEqual(['{"open":true}']);
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
  });
});
