import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { ConfigStore } from '../../../lib/config-store/index.js';
import { RelayError } from '../../../lib/errors.js';
import { GatewaySession, type GatewaySessionOptions, type SessionLog } from '../../../lib/gateway/session.js';
import { admitPollJobs, runConfigPoll, type ConfigPollOptions, type ConfigPollResult } from '../../../lib/relay/config-poll.js';
import type { PollItem } from '../../../lib/relay/route-records.js';
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
const b64 = (text: string): string => Buffer.from(text).toString('base64');

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

interface PollRun {
  result: ConfigPollResult;
  failure: unknown;
}

/** One gateway session against the emulator running one poll. */
async function pollRun(
  deviceIds: string[],
  options: Partial<ConfigPollOptions> & { session?: Partial<GatewaySessionOptions>; attachFirst?: boolean; writer?: ConfigStore | null } = {},
): Promise<PollRun> {
  const session = new GatewaySession(await sessionOptions(emulator, fleet, GATEWAY, options.session));
  let result: ConfigPollResult | undefined;
  const report = await session.run(async (s) => {
    // The relay attaches a batch's telemetry devices before its poll runs; the poll must cope with devices already attached.
    if (options.attachFirst === true) await s.attach(deviceIds.map((deviceId) => ({ deviceId })));
    const writer = options.writer === null ? undefined : (options.writer ?? store);
    result = await runConfigPoll(s, deviceIds, writer, { waitMs: 1500, ...options });
  });
  return { result: result!, failure: report.failure };
}

async function poll(deviceIds: string[], options: Parameters<typeof pollRun>[1] = {}): Promise<ConfigPollResult> {
  const run = await pollRun(deviceIds, options);
  expect(run.failure).toBeUndefined();
  return run.result;
}

const outcome = (r: ConfigPollResult, deviceId: string) => r.outcomes.find((o) => o.deviceId === deviceId);

/** A log that keeps every line. */
function recordingLog(): SessionLog & { lines: { level: string; message: string; extra: Record<string, unknown> }[] } {
  const lines: { level: string; message: string; extra: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, extra: Record<string, unknown> = {}) => void lines.push({ level, message, extra });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn') };
}

describe('runConfigPoll against the emulator', () => {
  it('stores every bound device config and the gateway\'s own as version 1, and reports devices that cannot be attached as missing', async () => {
    emulator.registry.modifyConfig(fleet.registryId, GATEWAY, b64('{"gateway":"relay settings"}'));
    const metrics = new Metrics({ namespace: 'ConfigPollTest', serviceName: 'config-poll-test' });
    const log = recordingLog();
    const result = await poll([...BOUND, BLANK, UNBOUND, UNKNOWN], { metrics, log });

    expect(result.outcomes.map((o) => o.deviceId)).toEqual([...BOUND, BLANK, UNBOUND, UNKNOWN, GATEWAY]);
    for (const id of BOUND) {
      expect(outcome(result, id)).toEqual({ deviceId: id, status: 'changed', version: 1 });
      expect((await store.getConfig(id))?.bytes.toString()).toBe(initial(id));
    }
    expect(outcome(result, BLANK)).toEqual({ deviceId: BLANK, status: 'changed', version: 1 });
    expect((await store.getConfig(BLANK))?.bytes.length).toBe(0);
    // The gateway's own config came through its own config topic, without an attach.
    expect(outcome(result, GATEWAY)).toEqual({ deviceId: GATEWAY, status: 'changed', version: 1 });
    expect((await store.getConfig(GATEWAY))?.bytes.toString()).toBe('{"gateway":"relay settings"}');
    for (const id of [UNBOUND, UNKNOWN]) {
      expect(outcome(result, id)).toMatchObject({ status: 'missing', reason: 'attach-rejected', code: 'ERR_ATTACH_REJECTED' });
      expect(await store.getConfig(id)).toBeUndefined();
    }
    expect(result).toMatchObject({ polled: 7, changed: 5, unchanged: 0, missing: 2, storeFailed: 0, received: 0, interrupted: undefined });

    const emf = metrics.serializeMetrics() as unknown as Record<string, unknown>;
    expect(emf).toMatchObject({ DevicesPolled: 7, ConfigsChanged: 5, ConfigsUnchanged: 0, ConfigsMissing: 2, ConfigsNotStored: 0 });
    expect(emf.ConfigPollDuration).toBeTypeOf('number');
    // One line per missing device, naming it and why, and one summary line.
    expect(log.lines.filter((l) => l.message === 'config missing').map((l) => [l.extra.deviceId, l.extra.reason])).toEqual([
      [UNBOUND, 'attach-rejected'],
      [UNKNOWN, 'attach-rejected'],
    ]);
    expect(log.lines.find((l) => l.message === 'config poll')?.extra).toMatchObject({ gatewayId: GATEWAY, devices: 7, changed: 5, missing: 2 });
    // The QoS 1 configs were acknowledged: the bridge records the acknowledgement as the device's.
    expect(emulator.registry.getDevice(fleet.registryId, BOUND[0]!).config.deviceAckTime).toBeDefined();
  });

  it('stores a config changed through the registry under a new version, and keeps the version of unchanged ones', async () => {
    await poll(BOUND);
    const before = await store.getConfig(BOUND[1]!);
    const changed = '{"rate":5}';
    emulator.registry.modifyConfig(fleet.registryId, BOUND[0]!, b64(changed));

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
    emulator.registry.modifyConfig(fleet.registryId, BOUND[2]!, b64('late'));
    // Every packet from the bridge is late: the attach still succeeds within its timeout, the config misses the wait.
    emulator.setFaults({ latencyMs: 300 });

    const started = Date.now();
    const result = await poll([BOUND[2]!], { waitMs: 100, gatewayConfig: false });

    expect(outcome(result, BOUND[2]!)).toMatchObject({ status: 'missing', reason: 'not-delivered', code: 'ERR_DEVICE_CONFIG_TIMEOUT' });
    expect(await store.getConfig(BOUND[2]!)).toEqual(before);
    // The wait ended on its own: the poll ran to completion.
    expect(result.interrupted).toBeUndefined();
    // Bounded: the wait ended on its own timer, not the attach or subscription timeouts.
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reports a config that arrived but could not be stored as store-failed, with the store\'s code', async () => {
    const missingTable = new ConfigStore({ tableName: 'no-such-table', client: db.client });
    const result = await poll([BOUND[0]!], { writer: missingTable, gatewayConfig: false });
    expect(outcome(result, BOUND[0]!)).toMatchObject({ status: 'store-failed', code: 'ERR_STORE_UNAVAILABLE' });
    expect(result.storeFailed).toBe(1);

    const conflicted = { putConfig: async () => Promise.reject(new RelayError('ERR_STORE_CONFLICT', 'kept changing')) } as unknown as ConfigStore;
    const again = await poll([BOUND[0]!], { writer: conflicted, gatewayConfig: false });
    expect(outcome(again, BOUND[0]!)).toMatchObject({ status: 'store-failed', code: 'ERR_STORE_CONFLICT' });
  });

  it('reports store writes still running at the deadline as store-failed, without waiting for them', async () => {
    const hanging = { putConfig: () => new Promise<never>(() => {}) } as unknown as ConfigStore;
    const started = Date.now();
    const result = await poll([BOUND[1]!], { writer: hanging, gatewayConfig: false, deadline: Date.now() + 400 });
    expect(outcome(result, BOUND[1]!)).toMatchObject({ status: 'store-failed', code: 'ERR_DEADLINE' });
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('counts configs without storing them when there is no store', async () => {
    const metrics = new Metrics({ namespace: 'ConfigPollTest', serviceName: 'config-poll-test' });
    const log = recordingLog();
    const result = await poll([BOUND[2]!, UNBOUND], { writer: null, metrics, log });
    expect(result.outcomes).toEqual([
      { deviceId: BOUND[2], status: 'received' },
      expect.objectContaining({ deviceId: UNBOUND, status: 'missing', reason: 'attach-rejected' }),
      { deviceId: GATEWAY, status: 'received' },
    ]);
    expect(metrics.serializeMetrics()).toMatchObject({ DevicesPolled: 3, ConfigsNotStored: 2, ConfigsMissing: 1, ConfigsChanged: 0 });
    expect(log.lines.find((l) => l.message === 'config poll')?.extra).toMatchObject({ notStored: 2 });
  });

  it('reports devices left out by the attach limit as missing without attaching them', async () => {
    const result = await poll([BOUND[0]!], { overLimit: [BOUND[1]!], gatewayConfig: false });
    expect(outcome(result, BOUND[1]!)).toMatchObject({ status: 'missing', reason: 'attach-limit', code: 'ERR_ATTACH_LIMIT' });
    expect(outcome(result, BOUND[0]!)?.status).toMatch(/changed|unchanged/);
    expect(result.interrupted).toBeUndefined();
  });

  it('says the poll was interrupted when the connection is lost before the configs could arrive', async () => {
    // CONNECT, the errors subscription and the attach are handled; then the bridge drops the connection.
    emulator.setFaults({ closeAfterPackets: 3 });
    const run = await pollRun([BOUND[0]!], { gatewayConfig: false });
    expect(run.result.interrupted).toMatchObject({ code: 'ERR_CONNECTION_LOST' });
    expect(outcome(run.result, BOUND[0]!)).toMatchObject({ status: 'missing', code: 'ERR_CONNECTION_LOST' });
  });
});

describe('admitPollJobs', () => {
  const job = (messageId: string, deviceIds: string[]): PollItem => ({ messageId, message: { v: 1, type: 'config-poll', deviceIds } });
  const ids = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, '0')}`);

  it('serves every job whose devices fit, each distinct device once, the gateway never attached', () => {
    const a = job('m-a', ['valve-01', 'valve-02', 'gw-1']);
    const b = job('m-b', ['valve-02', 'valve-03']);
    const admission = admitPollJobs([a, b], ['valve-01'], 'gw-1', 3);
    expect(admission.admitted).toEqual([a, b]);
    expect(admission.deferred).toEqual([]);
    expect(admission.deviceIds).toEqual(['valve-01', 'valve-02', 'gw-1', 'valve-03']);
    expect(admission.overLimit).toEqual([]);
  });

  it('defers whole jobs that would attach more than the limit, and serves later ones that still fit', () => {
    const first = job('m-1', ids('a', 600));
    const second = job('m-2', ids('b', 600));
    const third = job('m-3', ids('c', 300));
    const admission = admitPollJobs([first, second, third], ['pump-01'], 'gw-1', 1000);
    expect(admission.admitted.map((p) => p.messageId)).toEqual(['m-1', 'm-3']);
    expect(admission.deferred.map((p) => p.messageId)).toEqual(['m-2']);
    expect(admission.deviceIds).toHaveLength(900);
  });

  it('always serves the first job, leaving out the devices that do not fit beside the telemetry', () => {
    const full = job('m-1', ids('a', 1000));
    const admission = admitPollJobs([full], ['pump-01', 'pump-02'], 'gw-1', 1000);
    expect(admission.admitted).toEqual([full]);
    expect(admission.overLimit).toEqual(['a-998', 'a-999']);
    expect(admission.deviceIds).toHaveLength(998);
  });
});
