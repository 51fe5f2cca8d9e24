/**
 * What the dashboard shows, gathered in one place: gateways and their sessions, devices and their attach state
 * (the emulator's live connections), readings and gateway errors as the bridge recorded them, queue depths over
 * time, relay batches, HTTP requests, and the config versions in the config store next to the bridge's own.
 *
 * Cheap things are read when a snapshot is taken; SQS and DynamoDB are sampled on timers (`sampleEveryMs`,
 * `configEveryMs`) so the page's refresh rate does not turn into API calls. `change` is emitted whenever
 * something new arrived, for the page's live stream.
 *
 * @example
 * const feed = new DashboardFeed(sources);
 * feed.start();
 * feed.on('change', () => push(feed.snapshot()));
 */
import { EventEmitter } from 'node:events';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Emulator } from '../emulator/index.js';
import type { StoredConfig } from '../lib/config-store/config-store.js';
import type { LorawanDashboardState } from './lorawan-dashboard.js';
import type { BatchSummary } from './batch-outcomes.js';
import type { DeadLetterPanel } from './dead-letter-watch.js';
import { queueDepth, type QueueDepth } from './queue-depth.js';
import type { BatchReport } from './sqs-event-source.js';

export interface DashboardSources {
  emulator: Pick<Emulator, 'registry' | 'connections'>;
  registryId: string;
  gatewayIds: readonly string[];
  sqs: SQSClient;
  queues: { relay: { name: string; url: string }; deadLetter: { name: string; url: string } };
  configs: { getConfigs(deviceIds: readonly string[]): Promise<Map<string, StoredConfig>> };
  /** LoRaWAN downlinks and refusals (lorawan-dashboard.ts). */
  lorawan?: { start(onChange: () => void): void; stop(): Promise<void>; snapshot(): LorawanDashboardState };
  /** The dead-letter panel (local/dead-letter-watch.ts); it emits `change` when its list changes. */
  deadLetters?: Pick<EventEmitter, 'on' | 'off'> & { snapshot(): DeadLetterPanel };
}

export interface DashboardFeedOptions {
  sampleEveryMs?: number;
  configEveryMs?: number;
  /** Depth samples kept for the chart. */
  historyLength?: number;
}

export interface HttpLogEntry {
  at: string;
  method: string;
  path: string;
  status: number;
  durationMs: number;
}

export interface SimulatorStats {
  devices: number;
  sent: number;
  accepted: number;
  refused: number;
  failed: number;
}

/** The JSON the page renders. */
export interface DashboardState {
  now: string;
  startedAt: string;
  gateways: {
    id: string;
    connected: boolean;
    attached: string[];
    subscriptions: string[];
    sessions: number;
    lastSession?: { at: string; durationMs: number; records: number; outcome: string; summary?: Pick<BatchSummary, 'text' | 'tone'> };
  }[];
  devices: {
    id: string;
    gateways: string[];
    attachedTo: string[];
    lastEventTime?: string;
    bridgeConfigVersion: string;
    storeConfigVersion?: number;
    storeConfigReceivedAt?: string;
  }[];
  /** Devices in the registry (gateways aside); `devices` holds at most DEVICE_ROWS of them. */
  deviceCount: number;
  readings: { total: number; recent: { id: string; time: string; deviceId: string; subFolder: string; gatewayId?: string; bytes: number; preview: string }[] };
  errors: { total: number; recent: { time: string; gatewayId: string; delivered: boolean; errorType: string; deviceId: string; description: string }[] };
  queues: {
    relay: { name: string } & QueueDepth;
    deadLetter: { name: string } & QueueDepth;
    history: { t: number; relay: number; relayInFlight: number; deadLetter: number }[];
    error?: string;
  };
  batches: {
    at: string;
    outcome: string;
    groups: string[];
    records: number;
    deleted: number;
    retried: number;
    durationMs: number;
    /** Confirmed, retried, dead-lettered, with codes; the text is the stack's terminal line. */
    summary?: Pick<BatchSummary, 'confirmed' | 'retried' | 'deadLettered' | 'text' | 'tone'>;
  }[];
  deadLetters?: DeadLetterPanel;
  http: HttpLogEntry[];
  simulator?: SimulatorStats;
  configError?: string;
  lorawan?: LorawanDashboardState;
}

const RECENT = 50;
/** Device rows of the page at most (shownDevices). */
export const DEVICE_ROWS = 200;
const BATCHES_KEPT = 30;
const HTTP_KEPT = 30;
const PREVIEW_CHARS = 120;

export class DashboardFeed extends EventEmitter {
  readonly #s: DashboardSources;
  readonly #o: Required<DashboardFeedOptions>;
  readonly #startedAt = new Date().toISOString();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #tasks = new Set<Promise<void>>();
  #stopped = false;
  #depths: { relay: QueueDepth; deadLetter: QueueDepth } = { relay: { waiting: 0, inFlight: 0 }, deadLetter: { waiting: 0, inFlight: 0 } };
  #history: DashboardState['queues']['history'] = [];
  #queueError: string | undefined;
  #configs = new Map<string, StoredConfig>();
  #configError: string | undefined;
  #batches: DashboardState['batches'] = [];
  #sessions = new Map<string, { count: number; last: NonNullable<DashboardState['gateways'][number]['lastSession']> }>();
  #http: HttpLogEntry[] = [];
  #simulator: SimulatorStats | undefined;
  readonly #onRegistry = (): void => {
    this.emit('change');
  };

  constructor(sources: DashboardSources, options: DashboardFeedOptions = {}) {
    super();
    this.#s = sources;
    this.#o = { sampleEveryMs: options.sampleEveryMs ?? 1000, configEveryMs: options.configEveryMs ?? 3000, historyLength: options.historyLength ?? 180 };
  }

  start(): void {
    this.#s.emulator.registry.on('event', this.#onRegistry);
    this.#s.emulator.registry.on('error-sent', this.#onRegistry);
    this.#s.deadLetters?.on('change', this.#onRegistry);
    this.#every(this.#o.sampleEveryMs, () => this.#sampleQueues());
    this.#every(this.#o.configEveryMs, () => this.#sampleConfigs());
    this.#s.lorawan?.start(() => this.emit('change'));
  }

  /** Stops sampling and waits for a sample in progress. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#s.emulator.registry.off('event', this.#onRegistry);
    this.#s.emulator.registry.off('error-sent', this.#onRegistry);
    this.#s.deadLetters?.off('change', this.#onRegistry);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    await Promise.all([...this.#tasks, this.#s.lorawan?.stop()]);
  }

  noteBatch(report: BatchReport, summary?: BatchSummary): void {
    const at = new Date(report.startedAt).toISOString();
    this.#batches.unshift({
      at,
      outcome: report.outcome,
      groups: report.groups,
      records: report.messageIds.length,
      deleted: report.deleted.length,
      retried: report.retried.length,
      durationMs: report.durationMs,
      ...(summary === undefined
        ? {}
        : { summary: { confirmed: summary.confirmed, retried: summary.retried, deadLettered: summary.deadLettered, text: summary.text, tone: summary.tone } }),
    });
    this.#batches.length = Math.min(this.#batches.length, BATCHES_KEPT);
    // On the relay's queue a message group is a gateway, so a batch is one session per gateway it holds.
    for (const g of report.groups) {
      const s = this.#sessions.get(g) ?? { count: 0, last: { at, durationMs: 0, records: 0, outcome: '' } };
      s.count += 1;
      s.last = {
        at,
        durationMs: report.durationMs,
        records: report.messageIds.length,
        outcome: report.outcome,
        ...(summary === undefined ? {} : { summary: { text: summary.text, tone: summary.tone } }),
      };
      this.#sessions.set(g, s);
    }
    this.emit('change');
  }

  noteHttp(entry: HttpLogEntry): void {
    this.#http.unshift(entry);
    this.#http.length = Math.min(this.#http.length, HTTP_KEPT);
    this.emit('change');
  }

  noteSimulator(stats: SimulatorStats): void {
    this.#simulator = stats;
  }

  snapshot(): DashboardState {
    const { registry } = this.#s.emulator;
    const registryId = this.#s.registryId;
    const connections = this.#s.emulator.connections().filter((c) => c.registryId === registryId);
    const devices = registry.listDevices(registryId);
    const gatewayIds = [...new Set([...this.#s.gatewayIds, ...devices.filter((d) => d.gatewayConfig.gatewayType === 'GATEWAY').map((d) => d.id)])];
    const gateways = gatewayIds.map((id) => {
      const live = connections.find((c) => c.deviceId === id);
      const sessions = this.#sessions.get(id);
      return {
        id,
        connected: live !== undefined,
        attached: live?.attached ?? [],
        subscriptions: live?.subscriptions ?? [],
        sessions: sessions?.count ?? 0,
        ...(sessions ? { lastSession: sessions.last } : {}),
      };
    });
    const all = devices.filter((d) => d.gatewayConfig.gatewayType !== 'GATEWAY');
    const attachedNow = new Set(connections.flatMap((c) => (c.gateway ? c.attached : [])));
    const deviceRows = shownDevices(all, attachedNow)
      .map((d) => {
        const stored = this.#configs.get(d.id);
        return {
          id: d.id,
          gateways: registry.gatewaysOf(registryId, d.id),
          attachedTo: connections.filter((c) => c.gateway && c.attached.includes(d.id)).map((c) => c.deviceId),
          ...(d.lastEventTime !== undefined ? { lastEventTime: d.lastEventTime } : {}),
          bridgeConfigVersion: d.config.version,
          ...(stored ? { storeConfigVersion: stored.version, storeConfigReceivedAt: stored.receivedAt } : {}),
        };
      });
    const readings = registry.events
      .slice(-RECENT)
      .reverse()
      .map((m) => {
        const data = Buffer.from(m.data, 'base64');
        return {
          id: m.messageId,
          time: m.publishTime,
          deviceId: m.attributes.deviceId,
          subFolder: m.attributes.subFolder,
          ...(m.attributes.gatewayId !== undefined ? { gatewayId: m.attributes.gatewayId } : {}),
          bytes: data.byteLength,
          preview: preview(data),
        };
      });
    const errors = registry.errors
      .slice(-RECENT)
      .reverse()
      .map((e) => ({
        time: e.time,
        gatewayId: e.gatewayId,
        delivered: e.delivered,
        errorType: String(e.payload.error_type ?? 'UNKNOWN'),
        deviceId: String(e.payload.device_id ?? ''),
        description: String(e.payload.description ?? ''),
      }));
    return {
      now: new Date().toISOString(),
      startedAt: this.#startedAt,
      gateways,
      devices: deviceRows,
      deviceCount: all.length,
      readings: { total: registry.events.length, recent: readings },
      errors: { total: registry.errors.length, recent: errors },
      queues: {
        relay: { name: this.#s.queues.relay.name, ...this.#depths.relay },
        deadLetter: { name: this.#s.queues.deadLetter.name, ...this.#depths.deadLetter },
        history: this.#history,
        ...(this.#queueError !== undefined ? { error: this.#queueError } : {}),
      },
      batches: this.#batches,
      ...(this.#s.deadLetters ? { deadLetters: this.#s.deadLetters.snapshot() } : {}),
      http: this.#http,
      ...(this.#simulator ? { simulator: this.#simulator } : {}),
      ...(this.#configError !== undefined ? { configError: this.#configError } : {}),
      ...(this.#s.lorawan !== undefined ? { lorawan: this.#s.lorawan.snapshot() } : {}),
    };
  }

  /** Runs `task` now and then every `ms` after it ends, so a slow call never piles up behind itself. */
  #every(ms: number, task: () => Promise<void>): void {
    const run = (): void => {
      const running = task().finally(() => {
        this.#tasks.delete(running);
        if (!this.#stopped) this.#schedule(run, ms);
      });
      this.#tasks.add(running);
    };
    this.#schedule(run, 0);
  }

  #schedule(fn: () => void, ms: number): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, ms);
    this.#timers.add(timer);
  }

  async #sampleQueues(): Promise<void> {
    try {
      const [relay, deadLetter] = await Promise.all([
        queueDepth(this.#s.sqs, this.#s.queues.relay.url),
        queueDepth(this.#s.sqs, this.#s.queues.deadLetter.url),
      ]);
      const changed = JSON.stringify({ relay, deadLetter }) !== JSON.stringify(this.#depths);
      this.#depths = { relay, deadLetter };
      this.#queueError = undefined;
      this.#history.push({ t: Date.now(), relay: relay.waiting, relayInFlight: relay.inFlight, deadLetter: deadLetter.waiting + deadLetter.inFlight });
      if (this.#history.length > this.#o.historyLength) this.#history.shift();
      if (changed) this.emit('change');
    } catch (e) {
      this.#queueError = (e as Error).message;
    }
  }

  async #sampleConfigs(): Promise<void> {
    const connections = this.#s.emulator.connections().filter((c) => c.registryId === this.#s.registryId);
    const attachedNow = new Set(connections.flatMap((c) => (c.gateway ? c.attached : [])));
    const all = this.#s.emulator.registry.listDevices(this.#s.registryId).filter((d) => d.gatewayConfig.gatewayType !== 'GATEWAY');
    // Only the rows the page shows: a fleet of 100,000 devices must not cost 1,000 reads of the table a sample.
    const ids = shownDevices(all, attachedNow).map((d) => d.id);
    try {
      const configs = await this.#s.configs.getConfigs(ids);
      const changed = [...configs].some(([id, c]) => this.#configs.get(id)?.version !== c.version);
      this.#configs = configs;
      this.#configError = undefined;
      if (changed) this.emit('change');
    } catch (e) {
      this.#configError = (e as Error).message;
    }
  }
}

/**
 * The devices the page lists, at most DEVICE_ROWS: those attached now, then those heard from most recently, then the
 * rest in registry order. A registry of a provisioned fleet holds 100,000 devices; the page and the config samples
 * stay the size of what a person can read.
 */
export function shownDevices<D extends { id: string; lastEventTime?: string | undefined }>(all: readonly D[], attachedNow: ReadonlySet<string>): D[] {
  if (all.length <= DEVICE_ROWS) return [...all];
  const heard = all.filter((d) => attachedNow.has(d.id) || d.lastEventTime !== undefined);
  heard.sort((a, b) => Number(attachedNow.has(b.id)) - Number(attachedNow.has(a.id)) || (b.lastEventTime ?? '').localeCompare(a.lastEventTime ?? ''));
  const shown = heard.slice(0, DEVICE_ROWS);
  if (shown.length < DEVICE_ROWS) {
    const taken = new Set(shown.map((d) => d.id));
    for (const d of all) {
      if (shown.length >= DEVICE_ROWS) break;
      if (!taken.has(d.id)) shown.push(d);
    }
  }
  return shown;
}

/** Text when the payload is printable UTF-8, else its first bytes in hex; shortened either way. */
function preview(data: Buffer): string {
  const text = data.subarray(0, PREVIEW_CHARS * 4).toString('utf8');
  // U+FFFD marks bytes that were not UTF-8; control characters other than whitespace mean binary.
  const printable = !text.includes('\uFFFD') && !/[\u0000-\u0008\u000e-\u001f\u007f]/.test(text);
  const shown = printable ? text.replace(/\s+/g, ' ') : data.subarray(0, PREVIEW_CHARS / 2).toString('hex');
  return shown.length > PREVIEW_CHARS || data.byteLength > PREVIEW_CHARS * 4 ? `${shown.slice(0, PREVIEW_CHARS)}…` : shown;
}
