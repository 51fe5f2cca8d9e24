import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { ConfigStore } from '../../../lib/config-store/index.js';
import { GatewaySession, type GatewaySessionOptions } from '../../../lib/gateway/session.js';
import { runConfigPoll, type ConfigPollOptions, type ConfigPollResult } from '../../../lib/poll/poll-job.js';
import { makeFleet, type Fleet } from '../../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';
import { sessionOptions } from '../../helpers/relay-fixtures.js';

const GATEWAY = 'gw-poll';
const BOUND = ['cfg-01', 'cfg-02', 'cfg-03'];
/** Registered with no config: IoT Core gives it version 1 with empty bytes. */
const BLANK = 'cfg-blank';
/** Registered, bound to no gateway. */
const UNBOUND = 'cfg-unbound';
/** Not registered at all. */
const UNKNOWN = 'cfg-unknown';
const initial = (id: string): string => `{"device":"${id}","rate":60}`;

let fleet: Fleet;
let emulator: Emulator;
let db: LocalDynamoDb;
let store: ConfigStore;

beforeAll(async () => {
  [fleet, db] = await Promise.all([
    makeFleet({
      gateways: [{ id: GATEWAY, bound: [...BOUND, BLANK] }],
      devices: [...BOUND.map((id) => ({ id, keyless: true, config: initial(id) })), { id: BLANK, keyless: true }, { id: UNBOUND, keyless: true }],
    }),
    startLocalDynamoDb(),
  ]);
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
});
afterEach(() => emulator.clearFaults());
afterAll(async () => {
  await Promise.all([emulator.close(), db.stop()]);
});

/** One gateway session against the emulator running one poll job. */
async function poll(
  deviceIds: string[],
  options: Partial<ConfigPollOptions> & { session?: Partial<GatewaySessionOptions>; attachFirst?: boolean; writer?: ConfigStore } = {},
): Promise<ConfigPollResult> {
  const session = new GatewaySession(await sessionOptions(emulator, fleet, GATEWAY, options.session));
  let result: ConfigPollResult | undefined;
  const report = await session.run(async (s) => {
    // The relay attaches a batch's devices before its jobs run; the poll must cope with devices already attached.
    if (options.attachFirst === true) await s.attach(deviceIds.map((deviceId) => ({ deviceId })));
    result = await runConfigPoll(s, deviceIds, options.writer ?? store, { waitMs: options.waitMs ?? 1500, ...options });
  });
  expect(report.failure).toBeUndefined();
  return result!;
}

const outcome = (r: ConfigPollResult, deviceId: string) => r.outcomes.find((o) => o.deviceId === deviceId);

describe('runConfigPoll against the emulator', () => {
  it('stores every bound device config as version 1 and reports devices that cannot be attached as missing', async () => {
    const metrics = new Metrics({ namespace: 'PollJobTest', serviceName: 'poll-job-test' });
    const result = await poll([...BOUND, BLANK, UNBOUND, UNKNOWN], { metrics });

    expect(result.outcomes.map((o) => o.deviceId)).toEqual([...BOUND, BLANK, UNBOUND, UNKNOWN]);
    for (const id of BOUND) {
      expect(outcome(result, id)).toEqual({ deviceId: id, status: 'changed', version: 1 });
      expect((await store.getConfig(id))?.bytes.toString()).toBe(initial(id));
    }
    expect(outcome(result, BLANK)).toEqual({ deviceId: BLANK, status: 'changed', version: 1 });
    expect((await store.getConfig(BLANK))?.bytes.length).toBe(0);
    for (const id of [UNBOUND, UNKNOWN]) {
      expect(outcome(result, id)).toMatchObject({ status: 'missing', reason: 'attach-rejected', code: 'ERR_ATTACH_REJECTED' });
      expect(await store.getConfig(id)).toBeUndefined();
    }
    expect(result).toMatchObject({ changed: 4, unchanged: 0, missing: 2, storeFailed: 0 });

    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
    expect(emf).toMatchObject({ ConfigsChanged: 4, ConfigsMissing: 2, ConfigsUnchanged: 0 });
    expect(emf.ConfigPollDuration).toBeTypeOf('number');
    // The QoS 1 configs were acknowledged: the bridge records the acknowledgement as the device's.
    expect(emulator.registry.getDevice(fleet.registryId, BOUND[0]!).config.deviceAckTime).toBeDefined();
  });

  it('stores a config changed through the registry under a new version, and keeps the version of unchanged ones', async () => {
    await poll(BOUND);
    const before = await store.getConfig(BOUND[1]!);
    const changed = '{"rate":5}';
    emulator.registry.modifyConfig(fleet.registryId, BOUND[0]!, Buffer.from(changed).toString('base64'));

    const result = await poll(BOUND, { attachFirst: true });

    expect(outcome(result, BOUND[0]!)).toEqual({ deviceId: BOUND[0], status: 'changed', version: 2 });
    expect(outcome(result, BOUND[1]!)).toEqual({ deviceId: BOUND[1], status: 'unchanged', version: 1 });
    expect(await store.getConfig(BOUND[0]!)).toMatchObject({ version: 2, bytes: Buffer.from(changed) });
    const after = await store.getConfig(BOUND[1]!);
    expect(after?.version).toBe(1);
    // Seen again: receivedAt moves even though the bytes did not.
    expect(after!.receivedAt >= before!.receivedAt).toBe(true);
  });

  it('reports a config that does not arrive within the wait as not delivered, and stores nothing for it', async () => {
    await poll([BOUND[2]!]);
    const before = await store.getConfig(BOUND[2]!);
    emulator.registry.modifyConfig(fleet.registryId, BOUND[2]!, Buffer.from('late').toString('base64'));
    // Every packet from the bridge is late: the attach still succeeds within its timeout, the config misses the wait.
    emulator.setFaults({ latencyMs: 300 });

    const started = Date.now();
    const result = await poll([BOUND[2]!], { waitMs: 100 });

    expect(outcome(result, BOUND[2]!)).toMatchObject({ status: 'missing', reason: 'not-delivered', code: 'ERR_DEVICE_CONFIG_TIMEOUT' });
    expect(await store.getConfig(BOUND[2]!)).toEqual(before);
    // Bounded: the wait ended on its own timer, not the attach or subscription timeouts.
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reports a config that arrived but could not be stored as store-failed', async () => {
    const missingTable = new ConfigStore({ tableName: 'no-such-table', client: db.client });
    const result = await poll([BOUND[0]!], { writer: missingTable });
    expect(outcome(result, BOUND[0]!)).toMatchObject({ status: 'store-failed' });
    expect(result.storeFailed).toBe(1);
  });

  it('subscribes at QoS 0 when asked, leaving the acknowledgement to the device', async () => {
    emulator.registry.modifyConfig(fleet.registryId, BOUND[1]!, Buffer.from('{"rate":7}').toString('base64'));
    const result = await poll([BOUND[1]!], { qos: 0 });
    expect(outcome(result, BOUND[1]!)).toMatchObject({ status: 'changed' });
    const device = emulator.registry.getDevice(fleet.registryId, BOUND[1]!);
    expect(device.config.deviceAckTime).toBeUndefined();
  });
});
