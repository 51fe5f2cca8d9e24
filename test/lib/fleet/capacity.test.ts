/**
 * The fleet calculation against numbers worked out by hand (each expectation shows its arithmetic), and its
 * constants against the files they describe: serverless.yml and deploy/relay-timing.cjs.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { isRelayError } from '../../../lib/errors.js';
import {
  DEFAULT_QUOTAS,
  DEFAULT_SESSION_MODEL,
  formatNumber,
  fullestGatewayOf,
  parseInterval,
  QUEUE_SETTINGS,
  sessionMs,
  SOURCES,
  sizeFleet,
  type FleetSize,
} from '../../../lib/fleet/capacity.js';
import { loadServerlessTemplate } from '../../../local/serverless-template.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const ceiling = (plan: FleetSize, id: string) => {
  const c = plan.ceilings.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no ceiling ${id}`);
  return c;
};

describe('parseInterval', () => {
  it('reads seconds, minutes, hours and days', () => {
    expect(parseInterval('30s')).toBe(30);
    expect(parseInterval('10m')).toBe(600);
    expect(parseInterval('1.5h')).toBe(5400);
    expect(parseInterval('1d')).toBe(86_400);
  });

  it('refuses a number without a unit, an unknown unit, and zero, naming the interval', () => {
    for (const bad of ['10', '10 minutes', 'ten', '', '0m', '-1m']) {
      let error: unknown;
      try {
        parseInterval(bad);
      } catch (e) {
        error = e;
      }
      expect(isRelayError(error) && error.code === 'ERR_INVALID_FIELD' && error.field === 'interval', bad).toBe(true);
    }
  });
});

describe('session model', () => {
  it('goes through the two medians of bench/results.md: 116 ms for 10 records, 935 ms for 1,000', () => {
    // (935 - 116) / (1000 - 10) = 0.82727 ms a record; 116 - 10 * 0.82727 = 107.727 ms.
    expect(DEFAULT_SESSION_MODEL.perRecordMs).toBeCloseTo(0.82727, 5);
    expect(DEFAULT_SESSION_MODEL.baseMs).toBeCloseTo(107.727, 3);
    expect(sessionMs(10)).toBeCloseTo(116, 9);
    expect(sessionMs(1000)).toBeCloseTo(935, 9);
    expect(sessionMs(1)).toBeCloseTo(108.5545, 4);
  });

  it('takes an overriding model', () => {
    expect(sessionMs(10, { baseMs: 200, perRecordMs: 2 })).toBe(220);
    const slow = sizeFleet({ devices: 1000, intervalSeconds: 60, session: { baseMs: 190 } });
    // One record: 190 + 0.82727 = 190.827 ms; 10 records / 0.190827 s = 52.40 a second per invocation;
    // 800 publishes a second (80 % of 60,000 a minute) / 52.40 = 15.27 -> 15.
    expect(slow.session.oneRecordMs).toBeCloseTo(190.827, 3);
    expect(slow.relay.maxConcurrency).toBe(15);
  });
});

describe('sizeFleet: 100,000 devices every 10 minutes, default quotas', () => {
  const plan = sizeFleet({ devices: 100_000, intervalSeconds: 600 });

  it('carries 10,000 records a minute, 166.7 a second', () => {
    expect(plan.load.recordsPerMinute).toBe(10_000);
    expect(plan.load.recordsPerSecond).toBeCloseTo(166.667, 3);
  });

  it('caps the relay at 8: 800 publishes a second allowed / 92.12 per invocation at its fastest', () => {
    // 10 records / 108.5545 ms = 92.1196 a second; 60,000 * 0.8 / 60 = 800; 800 / 92.1196 = 8.68 -> 8.
    expect(plan.session.invocationPeakRecordsPerSecond).toBeCloseTo(92.1196, 4);
    expect(plan.relay.maxConcurrency).toBe(8);
    // 8 * 92.1196 * 60 = 44,217.4 a minute at most: within 80 % of 60,000.
    expect(plan.publishes.peakPerMinute).toBeCloseTo(44_217.4, 1);
    expect(ceiling(plan, 'publishesPeak').level).toBe('ok');
    // Uncapped, the 14 gateways' groups could run 14 invocations: 14 * 92.1196 * 60 = 77,380.5, above the quota.
    expect(plan.publishes.peakUncappedPerMinute).toBeCloseTo(77_380.5, 1);
  });

  it('needs 14 gateways: 13 would put about 8,030 devices on the fullest, above 80 % of 10,000', () => {
    // 13: 7,692.3 + 4 * sqrt(100,000 * 1/13 * 12/13) = 7,692.3 + 337.1 = 8,029.4 -> 8,030 > 8,000.
    expect(fullestGatewayOf(100_000, 13)).toBe(8030);
    // 14: 7,142.9 + 4 * sqrt(100,000 * 1/14 * 13/14) = 7,142.9 + 325.8 = 7,468.6 -> 7,469.
    expect(fullestGatewayOf(100_000, 14)).toBe(7469);
    expect(plan.pool).toMatchObject({ gateways: 14, minimum: 14, byBindings: 14, fullestGateway: 7469 });
    // Drain: one gateway relays 10 records / 116 ms = 86.2 a second; 166.7 / (86.2 * 0.8) = 2.42 -> 3.
    expect(plan.session.gatewayRecordsPerSecond).toBeCloseTo(86.2069, 4);
    expect(plan.pool.byDrainRate).toBe(3);
  });

  it('keeps 1.9 invocations busy on average, and would relay every device at once in 145 s', () => {
    // 166.7 records a second * 0.116 s / 10 records a batch = 1.93.
    expect(plan.relay.concurrencyNeeded).toBeCloseTo(1.9333, 4);
    expect(plan.relay.effectiveConcurrency).toBe(8);
    // 100,000 / (8 * 86.2069) = 145.0 s.
    expect(plan.relay.burstDrainSeconds).toBeCloseTo(145, 6);
    // A cap with headroom over the load: ceil(1.93 / 0.8 = 2.42) = 3 invocations; its peak within headroom of the
    // quota: 3 * 92.1196 * 60 / 0.8 = 20,726.9 -> 20,727 a minute would do.
    expect(plan.publishes.quotaNeededPerMinute).toBe(20_727);
  });

  it('opens 1,000 to 10,000 sessions a minute, at most 80 at once, 31 messages each', () => {
    expect(plan.sessions.perMinuteFullBatches).toBe(1000);
    expect(plan.sessions.perMinuteWorst).toBe(10_000);
    expect(plan.sessions.openConnectionsPeak).toBe(80);
    expect(plan.sessions.messagesPerSession).toBe(31);
  });

  it('calls SQS 166.7 times a second to send and 16.7 to receive: no high throughput needed', () => {
    expect(plan.queue.sendCallsPerSecond).toBeCloseTo(166.667, 3);
    expect(plan.queue.receiveCallsPerSecond).toBeCloseTo(16.667, 3);
    // The busiest group carries 7,469 of 100,000 devices: 166.67 * 0.07469 = 12.45 sends a second.
    expect(plan.queue.busiestGroupCallsPerSecond).toBeCloseTo(12.448, 3);
    expect(plan.queue.highThroughputNeeded).toBe(false);
    expect(plan.queue).toMatchObject({ batchSize: 10, visibilityTimeoutSeconds: 360, relayTimeoutSeconds: 60, maxReceiveCount: 10 });
  });

  it('warns only that the registry needs more than its default 100,000 devices, gateways included', () => {
    expect(ceiling(plan, 'devicesPerProject')).toMatchObject({ value: 100_014, limit: 100_000, level: 'exceeded' });
    expect(plan.warnings).toHaveLength(1);
    expect(plan.warnings[0]).toMatch(/100,014 devices against a limit of 100,000: ask ClearBlade/);
  });

  it('takes 33.3 minutes to create the devices at 3,000 a minute', () => {
    expect(plan.provisioning.createMinutes).toBeCloseTo(100_014 / 3000, 9);
    expect(plan.provisioning.bindMinutes).toBeCloseTo(33.333, 3);
  });

  it('cites a public source for every ceiling, and marks Google-only figures unconfirmed', () => {
    for (const c of plan.ceilings) expect(c.source, c.id).toMatch(/^https:\/\//);
    expect(plan.ceilings.filter((c) => !c.confirmed).map((c) => c.id).sort()).toEqual(['connectionsPerMinute', 'messagesPerConnection']);
    expect(ceiling(plan, 'connectionsPerMinute').source).toBe(SOURCES.googleIotCore);
    expect(ceiling(plan, 'boundPerGateway').source).toBe(SOURCES.clearblade);
  });
});

describe('sizeFleet: 1,000,000 devices every minute', () => {
  it('with the default quotas: 242 gateways for the drain rate, and the publish quota is 28 times too small', () => {
    const plan = sizeFleet({ devices: 1_000_000, intervalSeconds: 60 });
    expect(plan.load.recordsPerSecond).toBeCloseTo(16_666.667, 3);
    // 16,666.7 / (86.2069 * 0.8) = 241.7 -> 242; bindings alone need 131.
    expect(plan.pool).toMatchObject({ byDrainRate: 242, byBindings: 131, gateways: 242 });
    // 16,666.7 / 86.2069 = 193.3 invocations; / 0.8 = 241.7 -> 242; 242 * 92.1196 * 60 / 0.8 = 1,671,970.5 -> 1,671,971.
    expect(plan.relay.concurrencyNeeded).toBeCloseTo(193.333, 3);
    expect(plan.publishes.quotaNeededPerMinute).toBe(1_671_971);
    expect(ceiling(plan, 'publishesAverage').level).toBe('exceeded');
    expect(ceiling(plan, 'relayDrain').level).toBe('exceeded');
    expect(plan.warnings.join('\n')).toMatch(/publish quota of at least 1,671,971 a minute/);
    // 16,666.7 sends a second needs high throughput, which the queue has; 73 a second on the busiest group.
    expect(plan.queue.highThroughputNeeded).toBe(true);
    expect(ceiling(plan, 'fifoCallsPerSecond').level).toBe('ok');
    expect(ceiling(plan, 'fifoCallsPerSecondPerGroup').level).toBe('ok');
  });

  it('with that publish quota the cap rises to 242 and drains the load; the connection rate then needs asking', () => {
    const plan = sizeFleet({ devices: 1_000_000, intervalSeconds: 60, quotas: { publishesPerMinute: 1_671_971, devicesPerProject: 2_000_000 } });
    // 1,671,971 * 0.8 / 60 = 22,292.9 a second; / 92.1196 = 242.0001 -> 242.
    expect(plan.relay.maxConcurrency).toBe(242);
    expect(plan.relay.effectiveConcurrency).toBe(242);
    // 193.3 of 242 invocations: 79.9 %, within the 80 % headroom.
    expect(ceiling(plan, 'relayDrain').level).toBe('ok');
    expect(ceiling(plan, 'publishesAverage').level).toBe('ok');
    expect(ceiling(plan, 'publishesPeak').level).toBe('ok');
    // 1,000,000 records a minute, one each: the cap would allow 242 * 10 sessions / 108.55 ms = 1,337,576 a minute.
    expect(plan.sessions.perMinuteWorst).toBe(1_000_000);
    expect(ceiling(plan, 'connectionsPerMinute')).toMatchObject({ level: 'exceeded', confirmed: false });
    expect(plan.sessions.openConnectionsPeak).toBe(2420);
    expect(ceiling(plan, 'openConnections').level).toBe('ok');
  });
});

describe('sizeFleet: inputs and edges', () => {
  it('checks a given pool that is too small', () => {
    const plan = sizeFleet({ devices: 100_000, intervalSeconds: 600, gateways: 9 });
    // 11,111.1 + 4 * sqrt(100,000 * 1/9 * 8/9) = 11,111.1 + 397.5 -> 11,509 > 10,000.
    expect(plan.pool).toMatchObject({ gateways: 9, minimum: 14, fullestGateway: 11_509 });
    expect(ceiling(plan, 'boundPerGateway').level).toBe('exceeded');
    expect(plan.warnings.join('\n')).toMatch(/use at least 14 gateways \(the pool has 9\)/);
  });

  it('counts one SendMessageBatch per 10 readings of a report', () => {
    // 1,000 devices / 60 s * ceil(25 / 10) = 50 calls a second; 25,000 records a minute.
    const plan = sizeFleet({ devices: 1000, intervalSeconds: 60, readingsPerReport: 25 });
    expect(plan.queue.sendCallsPerSecond).toBeCloseTo(50, 9);
    expect(plan.load.recordsPerMinute).toBe(25_000);
  });

  it('holds the cap at 2 when the quota allows less, and says a burst can exceed it', () => {
    // 100 * 0.8 / 60 = 1.33 a second: floor(1.33 / 92.12) = 0.
    const plan = sizeFleet({ devices: 10, intervalSeconds: 600, quotas: { publishesPerMinute: 100 } });
    expect(plan.relay.maxConcurrency).toBe(2);
    expect(ceiling(plan, 'maximumConcurrency').level).toBe('exceeded');
    expect(plan.warnings.join('\n')).toMatch(/below 2, the least an event source can be capped at/);
  });

  it('holds the cap at 1,000, the most CloudFormation accepts', () => {
    const plan = sizeFleet({ devices: 10, intervalSeconds: 600, quotas: { publishesPerMinute: 100_000_000, lambdaConcurrency: 5000 } });
    expect(plan.relay.maxConcurrency).toBe(1000);
    // One gateway: a FIFO event source runs one invocation per message group.
    expect(plan.relay.effectiveConcurrency).toBe(1);
  });

  it('uses batch size and headroom as given', () => {
    // Batch 1: 1 record / 108.5545 ms = 9.212 a second; headroom 0.5: 500 / 9.212 = 54.3 -> 54.
    const plan = sizeFleet({ devices: 1000, intervalSeconds: 600, batchSize: 1, headroom: 0.5 });
    expect(plan.relay.maxConcurrency).toBe(54);
    expect(plan.sessions.messagesPerSession).toBe(4);
  });

  it('refuses bad input with ERR_INVALID_FIELD naming the field', () => {
    const cases: [Parameters<typeof sizeFleet>[0], string][] = [
      [{ devices: 0, intervalSeconds: 60 }, 'devices'],
      [{ devices: 1.5, intervalSeconds: 60 }, 'devices'],
      [{ devices: 10, intervalSeconds: 0 }, 'intervalSeconds'],
      [{ devices: 10, intervalSeconds: Number.NaN }, 'intervalSeconds'],
      [{ devices: 10, intervalSeconds: 60, batchSize: 11 }, 'batchSize'],
      [{ devices: 10, intervalSeconds: 60, headroom: 1.5 }, 'headroom'],
      [{ devices: 10, intervalSeconds: 60, gateways: 0 }, 'gateways'],
      [{ devices: 10, intervalSeconds: 60, session: { baseMs: 0 } }, 'session.baseMs'],
      [{ devices: 10, intervalSeconds: 60, quotas: { publishesPerMinute: -1 } }, 'quotas.publishesPerMinute'],
      [{ devices: 10, intervalSeconds: 60, quotas: { nonsense: 5 } as never }, 'quotas.nonsense'],
    ];
    for (const [input, field] of cases) {
      let error: unknown;
      try {
        sizeFleet(input);
      } catch (e) {
        error = e;
      }
      expect(isRelayError(error) ? [error.code, error.field] : error, field).toEqual(['ERR_INVALID_FIELD', field]);
    }
  });
});

describe('the constants and the deployment agree', () => {
  const template = loadServerlessTemplate(join(ROOT, 'serverless.yml'), { stage: 'dev' });
  const timing = createRequire(import.meta.url)('../../../deploy/relay-timing.cjs') as { relayTimeoutSeconds: number; queueVisibilityTimeoutSeconds: number };

  it('queue settings are those of serverless.yml and deploy/relay-timing.cjs', () => {
    const queue = template.resource('RelayQueue').Properties;
    const [event] = template.functionEvents('relay', 'sqs') as { batchSize: number }[];
    expect(QUEUE_SETTINGS.batchSize).toBe(event!.batchSize);
    expect(QUEUE_SETTINGS.visibilityTimeoutSeconds).toBe(timing.queueVisibilityTimeoutSeconds);
    expect(QUEUE_SETTINGS.relayTimeoutSeconds).toBe(timing.relayTimeoutSeconds);
    expect(QUEUE_SETTINGS.maxReceiveCount).toBe(Number((queue.RedrivePolicy as { maxReceiveCount: unknown }).maxReceiveCount));
    expect(QUEUE_SETTINGS.highThroughput).toBe(queue.DeduplicationScope === 'messageGroup' && queue.FifoThroughputLimit === 'perMessageGroupId');
    expect(QUEUE_SETTINGS.oldestMessageAlarmSeconds).toBe(Number(template.get(['params', 'default', 'oldestMessageAlarmSeconds'])));
  });

  it("relayMaxConcurrency's default is the cap the default quotas give", () => {
    const cap = sizeFleet({ devices: 1, intervalSeconds: 600 }).relay.maxConcurrency;
    expect(Number(template.get(['params', 'default', 'relayMaxConcurrency']))).toBe(cap);
    expect(DEFAULT_QUOTAS.publishesPerMinute).toBe(60_000);
  });
});

describe("docs/deploy.md's worked examples", () => {
  const text = readFileSync(join(ROOT, 'docs', 'deploy.md'), 'utf8');
  const doc = text.slice(text.indexOf('### Worked examples'));
  /** The cells of the worked-examples row that starts with `label`. */
  const row = (label: string): string[] => {
    const line = doc.split('\n').find((l) => l.startsWith(`| ${label} |`));
    if (line === undefined) throw new Error(`no row "${label}" in docs/deploy.md`);
    return line.split('|').slice(2, -1).map((c) => c.trim().replace(/\*\*/g, ''));
  };
  const cases = [
    { devices: 100_000, intervalSeconds: 600 },
    { devices: 100_000, intervalSeconds: 60 },
    { devices: 1_000_000, intervalSeconds: 600 },
    { devices: 1_000_000, intervalSeconds: 60 },
  ];
  const plans = cases.map((c) => {
    const asIs = sizeFleet(c);
    const publishesPerMinute = Math.max(asIs.publishes.quotaNeededPerMinute, DEFAULT_QUOTAS.publishesPerMinute);
    return { asIs, raised: sizeFleet({ ...c, quotas: { publishesPerMinute, devicesPerProject: 2 * c.devices } }) };
  });

  it('are what sizeFleet computes', () => {
    expect(row('gateways: for the bindings / the drain rate')).toEqual(plans.map(({ asIs }) => `${asIs.pool.byBindings} / ${asIs.pool.byDrainRate}`));
    expect(row('devices on the fullest gateway (limit 10,000)')).toEqual(plans.map(({ asIs }) => formatNumber(asIs.pool.fullestGateway)));
    expect(row('publish quota to ask for (default 60,000)')).toEqual(
      plans.map(({ asIs }) => (asIs.publishes.quotaNeededPerMinute <= DEFAULT_QUOTAS.publishesPerMinute ? 'default is enough' : formatNumber(asIs.publishes.quotaNeededPerMinute))),
    );
    expect(row('`relayMaxConcurrency`')).toEqual(plans.map(({ raised }) => String(raised.relay.maxConcurrency)));
    expect(row('peak publishes a minute with the cap')).toEqual(plans.map(({ raised }) => formatNumber(Math.round(raised.publishes.peakPerMinute))));
    expect(row('devices in the registry, gateways included (default quota 100,000)')).toEqual(plans.map(({ asIs }) => formatNumber(asIs.input.devices + asIs.pool.gateways)));
    expect(row('MQTT connections open at once, at most (limit 10,000)')).toEqual(plans.map(({ raised }) => formatNumber(raised.sessions.openConnectionsPeak)));
    // With the quotas raised, nothing but the unconfirmed connection rate is left to settle.
    for (const { raised } of plans) {
      expect(raised.ceilings.filter((c) => c.level === 'exceeded').every((c) => c.id === 'connectionsPerMinute')).toBe(true);
    }
  });
});
