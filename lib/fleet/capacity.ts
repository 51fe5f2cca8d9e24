/**
 * Capacity on paper: for a fleet of N devices reporting every interval, the gateway pool, the relay's concurrency
 * cap and the queue's rates, each held against the published ceiling it must stay under.
 *
 * Pure arithmetic, no I/O. The model, in the order it is computed:
 *
 * - Load. Every device sends `readingsPerReport` readings each interval; each reading is one queue record and one
 *   PUBLISH at the bridge, so records per minute = publishes per minute.
 * - Session time. One gateway session of r records takes `baseMs + perRecordMs * r`. The defaults are the straight
 *   line through two medians of bench/results.md (emulator latency, 25 ms round trip): 116 ms for 10 records over
 *   10 devices, 935 ms for 1,000 records over 100 devices. Devices barely matter there (attaches are pipelined: 10
 *   records of one device take 114 ms), so the model counts records only. A longer round trip to the real bridge
 *   makes sessions longer: the cap below then errs on the safe side, and the pool and drain figures on the
 *   optimistic one. Both numbers can be overridden.
 * - Peak rate of one invocation. A batch may hold records of several gateways (one session each, side by side), so
 *   the fastest an invocation publishes its `batchSize` records is one record per session: batchSize / session(1).
 * - Drain rate of one gateway. FIFO hands out one batch per message group at a time, and the group is the gateway:
 *   a gateway drains at most batchSize / session(batchSize) records a second, however many invocations run.
 * - Concurrency cap. Lambda runs at most min(active message groups, maximum concurrency) invocations of a FIFO
 *   event source, so capping the event source at floor(quota share / peak rate of one invocation) keeps even a
 *   burst of every device at once under `headroom` of the project's publish quota.
 * - Pool. Enough gateways that the fullest (rendezvous hashing spreads devices like a uniform hash) is bound to
 *   at most `headroom` of its 10,000 devices, and that the gateways together drain the average load within
 *   `headroom` of their drain rate.
 *
 * Each ceiling carries its public source; `confirmed: false` marks a figure the ClearBlade documentation does not
 * show (it is Google Cloud IoT Core's published figure for the same API, or an assumption) and that is worth
 * asking ClearBlade about before relying on it.
 *
 * @example
 * const plan = sizeFleet({ devices: 100_000, intervalSeconds: parseInterval('10m') });
 * plan.pool.minimum;          // 14 gateways
 * plan.relay.maxConcurrency;  // 8: serverless.yml's relayMaxConcurrency
 * plan.warnings;              // one: 100,014 devices with the gateways, above the default 100,000
 */
import { RelayError } from '../errors.js';

/** Where each ceiling is published. */
export const SOURCES = {
  clearblade: 'https://clearblade.atlassian.net/wiki/spaces/IC/pages/2203385926/Quotas+and+limits',
  googleIotCore: 'https://cloud.google.com/iot/quotas',
  sqsQuotas: 'https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html',
  sqsHighThroughput: 'https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/high-throughput-fifo.html',
  lambdaSqsScaling: 'https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html',
  lambdaScalingConfig: 'https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-eventsourcemapping-scalingconfig.html',
  lambdaQuotas: 'https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html',
  benchmark: 'bench/results.md',
} as const;

/** The quotas the calculation holds the fleet against. Those that can be raised are defaults, overridable. */
export interface Quotas {
  /** ClearBlade: devices bound to one gateway (fixed). */
  boundPerGateway: number;
  /** ClearBlade: devices attached to one gateway at once (fixed). */
  attachedPerGateway: number;
  /** ClearBlade: gateways one device may be bound to (fixed). */
  gatewaysPerDevice: number;
  /** ClearBlade: devices per project and region (a default; can be raised). */
  devicesPerProject: number;
  /** ClearBlade: device telemetry publishes per project, per minute (a default; can be raised). */
  publishesPerMinute: number;
  /** ClearBlade: open MQTT connections per project and region (a default; can be raised). */
  openConnections: number;
  /** MQTT connections opened per project, per minute (Google's figure; not in ClearBlade's table). */
  connectionsPerMinute: number;
  /** MQTT messages a connection may send per second (Google's figure; not in ClearBlade's table). */
  messagesPerSecondPerConnection: number;
  /** ClearBlade device manager: create and delete calls per project, per minute. */
  deviceCreatesPerMinute: number;
  /** Device manager: bind calls per minute (an assumption: the create and delete figure). */
  deviceBindsPerMinute: number;
  /** SQS FIFO without high throughput: API calls per second, per action. */
  fifoCallsPerSecond: number;
  /** SQS FIFO without high throughput, batching 10 a call: messages per second, per action. */
  fifoBatchedMessagesPerSecond: number;
  /** SQS FIFO high throughput: API calls per second, per action (70,000 in us-east-1, us-west-2, eu-west-1). */
  fifoHighThroughputCallsPerSecond: number;
  /** SQS FIFO high throughput: requests per second, per message group. */
  fifoCallsPerSecondPerGroup: number;
  /** Lambda: concurrent executions per account and region (a default; can be raised). */
  lambdaConcurrency: number;
}

export const DEFAULT_QUOTAS: Readonly<Quotas> = Object.freeze({
  boundPerGateway: 10_000,
  attachedPerGateway: 1_000,
  gatewaysPerDevice: 10,
  devicesPerProject: 100_000,
  publishesPerMinute: 60_000,
  openConnections: 10_000,
  connectionsPerMinute: 60_000,
  messagesPerSecondPerConnection: 100,
  deviceCreatesPerMinute: 3_000,
  deviceBindsPerMinute: 3_000,
  fifoCallsPerSecond: 300,
  fifoBatchedMessagesPerSecond: 3_000,
  fifoHighThroughputCallsPerSecond: 70_000,
  fifoCallsPerSecondPerGroup: 300,
  lambdaConcurrency: 1_000,
});

/** `ScalingConfig.MaximumConcurrency` of an SQS event source: the range CloudFormation accepts. */
export const MAXIMUM_CONCURRENCY_RANGE = Object.freeze({ min: 2, max: 1000 });

/** The most records Lambda hands a FIFO event source in one batch. */
export const MAX_FIFO_BATCH = 10;

/**
 * The relay queue and its event source as serverless.yml and deploy/relay-timing.cjs set them
 * (test/lib/fleet/capacity.test.ts checks that they still agree).
 */
export const QUEUE_SETTINGS = Object.freeze({
  batchSize: 10,
  relayTimeoutSeconds: 60,
  visibilityTimeoutSeconds: 360,
  maxReceiveCount: 10,
  oldestMessageAlarmSeconds: 1200,
  /** `DeduplicationScope: messageGroup` and `FifoThroughputLimit: perMessageGroupId`. */
  highThroughput: true,
});

/** Wall time of one gateway session: `baseMs + perRecordMs * records`. */
export interface SessionModel {
  baseMs: number;
  perRecordMs: number;
}

/** The two measurements of bench/results.md the default session model goes through. */
export const SESSION_MEASUREMENTS = Object.freeze({
  roundTripMs: 25,
  small: Object.freeze({ records: 10, devices: 10, ms: 116 }),
  large: Object.freeze({ records: 1000, devices: 100, ms: 935 }),
});

const { small, large } = SESSION_MEASUREMENTS;
const measuredPerRecordMs = (large.ms - small.ms) / (large.records - small.records);
export const DEFAULT_SESSION_MODEL: Readonly<SessionModel> = Object.freeze({
  baseMs: small.ms - small.records * measuredPerRecordMs,
  perRecordMs: measuredPerRecordMs,
});

export function sessionMs(records: number, model: SessionModel = DEFAULT_SESSION_MODEL): number {
  return model.baseMs + model.perRecordMs * records;
}

export interface FleetSizeInput {
  devices: number;
  /** How often each device reports. */
  intervalSeconds: number;
  /** Readings in one report (sent as one request; one queue record each). Default 1. */
  readingsPerReport?: number;
  /** Records per relay invocation, 1 to 10. Default 10, serverless.yml's batchSize. */
  batchSize?: number;
  /** Fraction of each ceiling the plan may use, above 0 and at most 1. Default 0.8. */
  headroom?: number;
  /** An existing or intended pool size to check, instead of the minimum. */
  gateways?: number;
  session?: Partial<SessionModel>;
  quotas?: Partial<Quotas>;
}

export type CeilingLevel = 'ok' | 'tight' | 'exceeded';

/** One ceiling, the fleet's value against it, and where the ceiling is published. */
export interface Ceiling {
  id: string;
  what: string;
  value: number;
  limit: number;
  unit: string;
  /** `exceeded` above the limit; `tight` within it but above `headroom` of it. */
  level: CeilingLevel;
  source: string;
  /** False where ClearBlade does not publish the figure (it is Google's, or an assumption). */
  confirmed: boolean;
  note?: string;
}

export interface FleetSize {
  input: {
    devices: number;
    intervalSeconds: number;
    readingsPerReport: number;
    batchSize: number;
    headroom: number;
    session: SessionModel;
    quotas: Quotas;
  };
  load: {
    recordsPerMinute: number;
    recordsPerSecond: number;
    /** Every device reporting at the same moment. */
    burstRecords: number;
  };
  session: {
    /** One gateway, a full batch. */
    fullBatchMs: number;
    /** One record: the shortest session. */
    oneRecordMs: number;
    /** Most records a second one gateway (one FIFO group) drains. */
    gatewayRecordsPerSecond: number;
    /** Most records a second one invocation publishes (a batch spread one record per gateway). */
    invocationPeakRecordsPerSecond: number;
  };
  pool: {
    /** The gateways to run: the minimum, or the given pool. */
    gateways: number;
    minimum: number;
    byBindings: number;
    byDrainRate: number;
    devicesPerGateway: number;
    /** Devices on the fullest gateway, estimated as the mean plus 4 standard deviations of a uniform hash. */
    fullestGateway: number;
  };
  relay: {
    /** The event source's maximum concurrency (serverless.yml `relayMaxConcurrency`). */
    maxConcurrency: number;
    /** min(maxConcurrency, gateways): a FIFO event source runs at most one invocation per active message group. */
    effectiveConcurrency: number;
    /** Average invocations in flight for the average load (full batches). */
    concurrencyNeeded: number;
    drainRecordsPerSecond: number;
    /** Seconds to relay a burst of every device's report, at the drain rate. */
    burstDrainSeconds: number;
  };
  publishes: {
    averagePerMinute: number;
    /** The most a minute can carry with the cap. */
    peakPerMinute: number;
    /** The most a minute could carry without a cap (the pool's groups, up to the account's concurrency). */
    peakUncappedPerMinute: number;
    quotaPerMinute: number;
    /** The publish quota whose cap carries the average load within headroom of the relay's capacity. */
    quotaNeededPerMinute: number;
  };
  sessions: {
    /** Every batch full and of one gateway. */
    perMinuteFullBatches: number;
    /** Every record in a session of its own, as far as the concurrency allows. */
    perMinuteWorst: number;
    openConnectionsPeak: number;
    /** MQTT messages of one session: attach and detach per device, a publish per record, the errors subscribe. */
    messagesPerSession: number;
  };
  queue: {
    batchSize: number;
    visibilityTimeoutSeconds: number;
    relayTimeoutSeconds: number;
    maxReceiveCount: number;
    sendCallsPerSecond: number;
    receiveCallsPerSecond: number;
    deleteCallsPerSecond: number;
    messagesPerSecond: number;
    /** Send calls a second on the busiest message group (gateway). */
    busiestGroupCallsPerSecond: number;
    highThroughputNeeded: boolean;
    /** serverless.yml's relay queue has high throughput on. */
    highThroughputEnabled: boolean;
  };
  provisioning: {
    createMinutes: number;
    bindMinutes: number;
  };
  ceilings: Ceiling[];
  warnings: string[];
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/;
const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `30s`, `10m`, `1.5h`, `1d` -> seconds. */
export function parseInterval(text: string): number {
  const m = DURATION.exec(text.trim());
  if (m === null) {
    throw new RelayError('ERR_INVALID_FIELD', `an interval is a number and a unit s, m, h or d, such as 10m (got ${JSON.stringify(text)})`, { field: 'interval' });
  }
  const seconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  if (!(seconds > 0)) throw new RelayError('ERR_INVALID_FIELD', `an interval must be longer than 0 (got ${JSON.stringify(text)})`, { field: 'interval' });
  return seconds;
}

export function sizeFleet(input: FleetSizeInput): FleetSize {
  const devices = wholeNumber(input.devices, 'devices', 1);
  const intervalSeconds = positive(input.intervalSeconds, 'intervalSeconds');
  const readingsPerReport = wholeNumber(input.readingsPerReport ?? 1, 'readingsPerReport', 1);
  const batchSize = wholeNumber(input.batchSize ?? QUEUE_SETTINGS.batchSize, 'batchSize', 1, MAX_FIFO_BATCH);
  const headroom = positive(input.headroom ?? 0.8, 'headroom');
  if (headroom > 1) throw new RelayError('ERR_INVALID_FIELD', `headroom is a fraction of each ceiling, at most 1 (got ${headroom})`, { field: 'headroom' });
  const session: SessionModel = {
    baseMs: positive(input.session?.baseMs ?? DEFAULT_SESSION_MODEL.baseMs, 'session.baseMs'),
    perRecordMs: nonNegative(input.session?.perRecordMs ?? DEFAULT_SESSION_MODEL.perRecordMs, 'session.perRecordMs'),
  };
  const quotas: Quotas = { ...DEFAULT_QUOTAS };
  for (const [name, value] of Object.entries(input.quotas ?? {})) {
    if (!(name in DEFAULT_QUOTAS)) throw new RelayError('ERR_INVALID_FIELD', `there is no quota named ${name}`, { field: `quotas.${name}` });
    if (value !== undefined) quotas[name as keyof Quotas] = positive(value, `quotas.${name}`);
  }

  // Load
  const recordsPerMinute = (devices * readingsPerReport * 60) / intervalSeconds;
  const recordsPerSecond = recordsPerMinute / 60;
  const burstRecords = devices * readingsPerReport;

  // Sessions
  const fullBatchMs = sessionMs(batchSize, session);
  const oneRecordMs = sessionMs(1, session);
  const gatewayRecordsPerSecond = (batchSize * 1000) / fullBatchMs;
  const invocationPeakRecordsPerSecond = (batchSize * 1000) / oneRecordMs;

  // Pool
  const devicesPerGatewayTarget = Math.max(1, Math.floor(quotas.boundPerGateway * headroom));
  let byBindings = Math.ceil(devices / devicesPerGatewayTarget);
  while (fullestGatewayOf(devices, byBindings) > devicesPerGatewayTarget && byBindings < devices) byBindings++;
  const byDrainRate = Math.ceil(recordsPerSecond / (gatewayRecordsPerSecond * headroom));
  const minimum = Math.max(1, byBindings, byDrainRate);
  const gateways = input.gateways === undefined ? minimum : wholeNumber(input.gateways, 'gateways', 1);
  const fullestGateway = fullestGatewayOf(devices, gateways);

  // Relay concurrency
  const quotaSharePerSecond = (quotas.publishesPerMinute * headroom) / 60;
  // The epsilon keeps a quota computed as exactly enough for n invocations (quotaNeededPerMinute) from giving n - 1.
  const rawCap = Math.floor(quotaSharePerSecond / invocationPeakRecordsPerSecond + 1e-9);
  const maxConcurrency = Math.min(Math.max(rawCap, MAXIMUM_CONCURRENCY_RANGE.min), MAXIMUM_CONCURRENCY_RANGE.max, Math.max(quotas.lambdaConcurrency, MAXIMUM_CONCURRENCY_RANGE.min));
  const effectiveConcurrency = Math.min(maxConcurrency, gateways);
  const concurrencyNeeded = recordsPerSecond / gatewayRecordsPerSecond;
  const drainRecordsPerSecond = effectiveConcurrency * gatewayRecordsPerSecond;
  const burstDrainSeconds = burstRecords / drainRecordsPerSecond;

  // Publishes
  const peakPerMinute = effectiveConcurrency * invocationPeakRecordsPerSecond * 60;
  const peakUncappedPerMinute = Math.min(gateways, quotas.lambdaConcurrency) * invocationPeakRecordsPerSecond * 60;
  // A cap that keeps the average load within headroom of the relay's capacity, and a quota that keeps that cap's
  // peak within headroom of the quota.
  const quotaNeededPerMinute = Math.ceil((Math.ceil(concurrencyNeeded / headroom) * invocationPeakRecordsPerSecond * 60) / headroom);

  // Sessions and connections
  const sessionsPerBatch = Math.min(batchSize, gateways);
  const perMinuteFullBatches = recordsPerMinute / batchSize;
  const perMinuteWorst = Math.min(recordsPerMinute, (effectiveConcurrency * sessionsPerBatch * 60_000) / oneRecordMs);
  const openConnectionsPeak = effectiveConcurrency * sessionsPerBatch;
  const messagesPerSession = 2 * batchSize + batchSize + 1;

  // Queue
  const sendCallsPerSecond = (devices / intervalSeconds) * Math.ceil(readingsPerReport / MAX_FIFO_BATCH);
  const receiveCallsPerSecond = recordsPerSecond / batchSize;
  const deleteCallsPerSecond = receiveCallsPerSecond;
  const busiestGroupCallsPerSecond = (sendCallsPerSecond * fullestGateway) / devices;
  const highThroughputNeeded =
    Math.max(sendCallsPerSecond, receiveCallsPerSecond, deleteCallsPerSecond) > quotas.fifoCallsPerSecond ||
    recordsPerSecond > quotas.fifoBatchedMessagesPerSecond;

  const level = (value: number, limit: number): CeilingLevel => (value > limit ? 'exceeded' : value > limit * headroom ? 'tight' : 'ok');
  const ceiling = (c: Omit<Ceiling, 'level'> & { level?: CeilingLevel }): Ceiling => ({ ...c, level: c.level ?? level(c.value, c.limit) });
  const ceilings: Ceiling[] = [
    ceiling({ id: 'boundPerGateway', what: 'devices bound to the fullest gateway', value: fullestGateway, limit: quotas.boundPerGateway, unit: 'devices', source: SOURCES.clearblade, confirmed: true }),
    ceiling({
      id: 'gatewaysPerDevice',
      what: 'gateways bound to one device during a pool change (old and new)',
      value: 2,
      limit: quotas.gatewaysPerDevice,
      unit: 'gateways',
      source: SOURCES.clearblade,
      confirmed: true,
    }),
    ceiling({ id: 'attachedPerGateway', what: 'devices attached in one session', value: batchSize, limit: quotas.attachedPerGateway, unit: 'devices', source: SOURCES.clearblade, confirmed: true }),
    ceiling({
      id: 'devicesPerProject',
      what: 'devices in the registry, gateways included',
      value: devices + gateways,
      limit: quotas.devicesPerProject,
      unit: 'devices',
      source: SOURCES.clearblade,
      confirmed: true,
      note: 'a default; ClearBlade can raise it',
    }),
    ceiling({
      id: 'publishesAverage',
      what: 'telemetry publishes, average',
      value: recordsPerMinute,
      limit: quotas.publishesPerMinute,
      unit: 'per minute',
      source: SOURCES.clearblade,
      confirmed: true,
      note: 'a default; ClearBlade can raise it',
    }),
    ceiling({
      id: 'publishesPeak',
      what: 'telemetry publishes, peak with the concurrency cap',
      value: peakPerMinute,
      limit: quotas.publishesPerMinute,
      unit: 'per minute',
      source: SOURCES.clearblade,
      confirmed: true,
    }),
    ceiling({
      id: 'openConnections',
      what: 'MQTT connections open at once, at most',
      value: openConnectionsPeak,
      limit: quotas.openConnections,
      unit: 'connections',
      source: SOURCES.clearblade,
      confirmed: true,
    }),
    ceiling({
      id: 'connectionsPerMinute',
      what: 'MQTT connections opened, one record per session',
      value: perMinuteWorst,
      limit: quotas.connectionsPerMinute,
      unit: 'per minute',
      source: SOURCES.googleIotCore,
      confirmed: false,
      note: "Google Cloud IoT Core's figure; not in ClearBlade's table",
    }),
    ceiling({
      id: 'messagesPerConnection',
      what: 'MQTT messages of one session (it lasts well under a second)',
      value: messagesPerSession,
      limit: quotas.messagesPerSecondPerConnection,
      unit: 'per second',
      source: SOURCES.googleIotCore,
      confirmed: false,
      note: "Google Cloud IoT Core's figure; not in ClearBlade's table",
    }),
    ceiling({
      id: 'fifoCallsPerSecond',
      what: 'SQS calls per action (send, receive, delete), the busiest',
      value: Math.max(sendCallsPerSecond, receiveCallsPerSecond, deleteCallsPerSecond),
      limit: quotas.fifoCallsPerSecond,
      unit: 'per second',
      source: SOURCES.sqsQuotas,
      confirmed: true,
      // The relay queue runs in high-throughput mode, so going over the plain FIFO limit is a note, not a failure.
      ...(QUEUE_SETTINGS.highThroughput
        ? { level: 'ok' as const, note: highThroughputNeeded ? 'needs high throughput, which the relay queue has on' : 'the limit without high throughput (the relay queue has it on)' }
        : {}),
    }),
    ceiling({
      id: 'fifoHighThroughputCallsPerSecond',
      what: 'SQS calls per action in high-throughput mode, the busiest',
      value: Math.max(sendCallsPerSecond, receiveCallsPerSecond, deleteCallsPerSecond),
      limit: quotas.fifoHighThroughputCallsPerSecond,
      unit: 'per second',
      source: SOURCES.sqsQuotas,
      confirmed: true,
      note: 'us-east-1, us-west-2, eu-west-1; lower in other regions',
    }),
    ceiling({
      id: 'fifoCallsPerSecondPerGroup',
      what: 'SQS send calls on the busiest message group (gateway)',
      value: busiestGroupCallsPerSecond,
      limit: quotas.fifoCallsPerSecondPerGroup,
      unit: 'per second',
      source: SOURCES.sqsHighThroughput,
      confirmed: true,
    }),
    ceiling({
      id: 'relayDrain',
      what: 'relay invocations needed on average, against those the cap and the pool allow',
      value: concurrencyNeeded,
      limit: effectiveConcurrency,
      unit: 'invocations',
      source: SOURCES.lambdaSqsScaling,
      confirmed: true,
      note: 'a FIFO event source runs at most one invocation per active message group',
    }),
    ceiling({
      id: 'maximumConcurrency',
      what: 'concurrency cap the publish quota allows',
      value: rawCap,
      limit: MAXIMUM_CONCURRENCY_RANGE.max,
      unit: 'invocations',
      source: SOURCES.lambdaScalingConfig,
      confirmed: true,
      // Above the range the cap is held at its maximum, which only leaves quota unused.
      level: rawCap < MAXIMUM_CONCURRENCY_RANGE.min ? 'exceeded' : 'ok',
      note: `ScalingConfig.MaximumConcurrency takes ${MAXIMUM_CONCURRENCY_RANGE.min} to ${MAXIMUM_CONCURRENCY_RANGE.max}`,
    }),
    ceiling({
      id: 'lambdaConcurrency',
      what: 'relay concurrency against the account concurrency',
      value: effectiveConcurrency,
      limit: quotas.lambdaConcurrency,
      unit: 'invocations',
      source: SOURCES.lambdaQuotas,
      confirmed: true,
      note: "shared with the account's other functions; a default AWS can raise",
    }),
  ];

  const warnings = ceilings.filter((c) => c.level === 'exceeded').map((c) => warningFor(c, { quotaNeededPerMinute, gateways, minimum, rawCap }));
  if (burstDrainSeconds > QUEUE_SETTINGS.oldestMessageAlarmSeconds) {
    warnings.push(
      `a report of every device at once takes ${Math.ceil(burstDrainSeconds)} s to relay, longer than the oldest-message alarm's ${QUEUE_SETTINGS.oldestMessageAlarmSeconds} s: spread the devices' reporting times`,
    );
  }

  return {
    input: { devices, intervalSeconds, readingsPerReport, batchSize, headroom, session, quotas },
    load: { recordsPerMinute, recordsPerSecond, burstRecords },
    session: { fullBatchMs, oneRecordMs, gatewayRecordsPerSecond, invocationPeakRecordsPerSecond },
    pool: { gateways, minimum, byBindings, byDrainRate, devicesPerGateway: devices / gateways, fullestGateway },
    relay: { maxConcurrency, effectiveConcurrency, concurrencyNeeded, drainRecordsPerSecond, burstDrainSeconds },
    publishes: { averagePerMinute: recordsPerMinute, peakPerMinute, peakUncappedPerMinute, quotaPerMinute: quotas.publishesPerMinute, quotaNeededPerMinute },
    sessions: { perMinuteFullBatches, perMinuteWorst, openConnectionsPeak, messagesPerSession },
    queue: {
      batchSize,
      visibilityTimeoutSeconds: QUEUE_SETTINGS.visibilityTimeoutSeconds,
      relayTimeoutSeconds: QUEUE_SETTINGS.relayTimeoutSeconds,
      maxReceiveCount: QUEUE_SETTINGS.maxReceiveCount,
      sendCallsPerSecond,
      receiveCallsPerSecond,
      deleteCallsPerSecond,
      messagesPerSecond: recordsPerSecond,
      busiestGroupCallsPerSecond,
      highThroughputNeeded,
      highThroughputEnabled: QUEUE_SETTINGS.highThroughput,
    },
    provisioning: {
      createMinutes: (devices + gateways) / quotas.deviceCreatesPerMinute,
      bindMinutes: devices / quotas.deviceBindsPerMinute,
    },
    ceilings,
    warnings,
  };
}

/**
 * Devices on the fullest of `gateways` gateways when a hash spreads `devices` uniformly: the mean plus 4 standard
 * deviations of the binomial count. The expected maximum of G such counts is about sqrt(2 ln G) deviations above
 * the mean (3.7 for 1,000 gateways), so 4 bounds it with room to spare.
 */
export function fullestGatewayOf(devices: number, gateways: number): number {
  const share = 1 / gateways;
  return Math.min(devices, Math.ceil(devices * share + 4 * Math.sqrt(devices * share * (1 - share))));
}

function warningFor(c: Ceiling, plan: { quotaNeededPerMinute: number; gateways: number; minimum: number; rawCap: number }): string {
  const over = `${c.what}: ${formatNumber(c.value)} ${c.unit} against a limit of ${formatNumber(c.limit)}`;
  switch (c.id) {
    case 'boundPerGateway':
      return `${over}: use at least ${plan.minimum} gateways (the pool has ${plan.gateways})`;
    case 'devicesPerProject':
      return `${over}: ask ClearBlade to raise the project's device quota`;
    case 'publishesAverage':
      return `${over}: ask ClearBlade for a publish quota of at least ${formatNumber(plan.quotaNeededPerMinute)} a minute, then size again with it`;
    case 'publishesPeak':
      return `${over}: the concurrency cap cannot go below ${MAXIMUM_CONCURRENCY_RANGE.min}; ask ClearBlade to raise the publish quota`;
    case 'relayDrain':
      return plan.gateways < plan.minimum
        ? `${over}: the queue grows; use at least ${plan.minimum} gateways`
        : `${over}: the queue grows; raise the publish quota to at least ${formatNumber(plan.quotaNeededPerMinute)} a minute so that the cap can rise`;
    case 'maximumConcurrency':
      return `${c.what}: ${formatNumber(plan.rawCap)}, below ${MAXIMUM_CONCURRENCY_RANGE.min}, the least an event source can be capped at: a burst can exceed the publish quota`;
    case 'connectionsPerMinute':
    case 'messagesPerConnection':
      return `${over} (${c.note}): ask ClearBlade whether it applies`;
    default:
      return `${over}`;
  }
}

/** 12,345 for whole numbers and large ones; one decimal below 100, two below 1. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const digits = Number.isInteger(n) || Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 1 ? 1 : 2;
  return n.toLocaleString('en-US', { minimumFractionDigits: 0, maximumFractionDigits: digits });
}

function wholeNumber(value: number, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `${min} to ${max}`;
    throw new RelayError('ERR_INVALID_FIELD', `${field} must be a whole number ${range} (got ${value})`, { field });
  }
  return value;
}

function positive(value: number, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RelayError('ERR_INVALID_FIELD', `${field} must be a number above 0 (got ${value})`, { field });
  }
  return value;
}

function nonNegative(value: number, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RelayError('ERR_INVALID_FIELD', `${field} must be a number of at least 0 (got ${value})`, { field });
  }
  return value;
}
