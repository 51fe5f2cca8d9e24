/**
 * Config polling end to end: the poll handler enqueues a job, the relay handler runs it in a gateway session
 * against the emulator, the config lands in the table; then a device's upload answer carries the new config.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpApiPost } from '../helpers/apigw-events.js';
import { startRelayPipeline, type RelayPipeline } from './relay-pipeline.js';

const GATEWAY = 'gw-field';
const SENSORS = ['sensor-01', 'sensor-02'];
/** Registered, but bound to no gateway: the bridge refuses to attach it. */
const LOOSE = 'sensor-loose';
const initial = (id: string): string => `{"sensor":"${id}","intervalS":900}`;
const b64 = (text: string): string => Buffer.from(text).toString('base64');

let pipeline: RelayPipeline;
let scheduleMinute = 0;

beforeAll(async () => {
  pipeline = await startRelayPipeline(
    {
      gateways: [{ id: GATEWAY, bound: SENSORS }],
      devices: [...SENSORS.map((id) => ({ id, keyless: true, config: initial(id) })), { id: LOOSE, keyless: true }],
    },
    { env: { POLL_DEVICE_IDS: [...SENSORS, LOOSE].join(',') } },
  );
});
afterEach(() => pipeline.clearLogs());
afterAll(() => pipeline.close());

/**
 * One run of the schedule: the poll handler enqueues, the relay handler serves what is on the queue. Each run has
 * its own schedule time, as EventBridge's would be, so SQS does not drop its jobs as repeats.
 */
async function nextPoll(): Promise<void> {
  const time = new Date(Date.UTC(2025, 0, 1, 0, scheduleMinute++)).toISOString();
  const summary = await pipeline.poll({ time });
  expect(summary.jobs).toBe(1);
  const { records, response } = await pipeline.relayQueueOnce();
  expect(records.map((r) => JSON.parse(r.body).type)).toEqual(['config-poll']);
  expect(records[0]!.attributes.MessageGroupId).toBe(GATEWAY);
  expect(response).toEqual({ batchItemFailures: [] });
}

describe('config polling, schedule to store', () => {
  it('stores a config changed through the emulator under a new version, keeps the version of an unchanged one, and reports a device it cannot attach', async () => {
    await nextPoll();
    expect(await pipeline.store.getConfig(SENSORS[0]!)).toMatchObject({ version: 1, bytes: Buffer.from(initial(SENSORS[0]!)) });
    const unchangedBefore = await pipeline.store.getConfig(SENSORS[1]!);
    expect(unchangedBefore).toMatchObject({ version: 1, bytes: Buffer.from(initial(SENSORS[1]!)) });
    expect(await pipeline.store.getConfig(LOOSE)).toBeUndefined();
    const lines = pipeline.logLines();
    expect(lines.find((l) => l.message === 'config missing')).toMatchObject({ level: 'WARN', gatewayId: GATEWAY, deviceId: LOOSE, reason: 'attach-rejected' });
    expect(Object.assign({}, ...lines.filter((l) => '_aws' in l))).toMatchObject({ ConfigPollDevices: 3, DevicesPolled: 4, ConfigsMissing: 1, ConfigsChanged: 3 });

    const changed = '{"sensor":"sensor-01","intervalS":60}';
    pipeline.emulator.registry.modifyConfig(pipeline.fleet.registryId, SENSORS[0]!, b64(changed));
    await nextPoll();

    expect(await pipeline.store.getConfig(SENSORS[0]!)).toMatchObject({ version: 2, bytes: Buffer.from(changed) });
    const unchangedAfter = await pipeline.store.getConfig(SENSORS[1]!);
    expect(unchangedAfter?.version).toBe(1);
    expect(unchangedAfter!.receivedAt >= unchangedBefore!.receivedAt).toBe(true);
    // The jobs were deleted from the queue once served.
    expect(await pipeline.queueDepth()).toEqual({ visible: 0, inFlight: 0 });
  });

  it('hands the new config to the device in the answer to its next upload, exactly once', async () => {
    const device = SENSORS[1]!;
    await nextPoll();
    const held = (await pipeline.store.getConfig(device))!.version;
    const changed = '{"sensor":"sensor-02","intervalS":30}';
    pipeline.emulator.registry.modifyConfig(pipeline.fleet.registryId, device, b64(changed));
    await nextPoll();

    const upload = (version: number) =>
      pipeline.ingest(httpApiPost(`/devices/${device}/events`, '{"t":21.5}', { ...pipeline.deviceAuth(device), 'x-config-version': String(version) }));
    const first = await upload(held);
    expect(first.status).toBe(202);
    expect(first.body.config).toEqual({ version: String(held + 1), binaryData: b64(changed) });

    // The device applied it and says so: nothing more to send.
    const second = await upload(held + 1);
    expect(second.status).toBe(202);
    expect(second.body).not.toHaveProperty('config');
    expect(second.body.messageIds).toHaveLength(1);

    // Both readings went on to the bridge.
    const { records, response } = await pipeline.relayQueueOnce();
    expect(records).toHaveLength(2);
    expect(response).toEqual({ batchItemFailures: [] });
  });
});
