/**
 * What the bridge received and sent, kept for tests, the dashboard and the admin API's `/emulator/*` routes:
 * telemetry as the registry's Pub/Sub topic would carry it, and the messages sent (or only logged) on gateways'
 * errors topics. In memory, oldest dropped first past `maxRecords`.
 *
 * @example
 * const log = new TrafficLog();
 * const msg = log.addEvent({ publishTime, topic, data, attributes });
 * log.eventsMatching({ since: msg.messageId }); // those after it
 */

/** Telemetry as the registry's Pub/Sub topic would carry it. */
export interface PubsubMessage {
  messageId: string;
  publishTime: string;
  /** The topic the registry's eventNotificationConfigs route it to. */
  topic: string;
  data: string;
  attributes: {
    deviceId: string;
    deviceNumId: string;
    deviceRegistryId: string;
    deviceRegistryLocation: string;
    projectId: string;
    subFolder: string;
    /** Which gateway relayed it; absent when the device connected by itself. */
    gatewayId?: string;
  };
}

/** What the bridge sent on a gateway's errors topic. */
export interface ErrorRecord {
  time: string;
  gatewayId: string;
  /** false when the gateway was not subscribed and the error was only logged. */
  delivered: boolean;
  payload: Record<string, unknown>;
}

/** Which events to list; every field given must match. `since` is a messageId: only later ones are listed. */
export interface EventFilter {
  since?: string;
  registryId?: string;
  deviceId?: string;
  gatewayId?: string;
}

/** Enough for a long run of the local stack, not so many that memory grows without bound. */
const MAX_RECORDS = 100_000;

export class TrafficLog {
  /** Oldest first. Readers may also empty it (`length = 0`) between two measurements. */
  readonly events: PubsubMessage[] = [];
  readonly errors: ErrorRecord[] = [];
  readonly #maxRecords: number;
  #nextMessageId = 1;

  constructor(options: { maxRecords?: number } = {}) {
    this.#maxRecords = options.maxRecords ?? MAX_RECORDS;
  }

  /** Keeps an event under the next messageId (increasing from 1, never reused) and returns it. */
  addEvent(message: Omit<PubsubMessage, 'messageId'>): PubsubMessage {
    const kept: PubsubMessage = { messageId: String(this.#nextMessageId++), ...message };
    keep(this.events, kept, this.#maxRecords);
    return kept;
  }

  addError(record: ErrorRecord): void {
    keep(this.errors, record, this.#maxRecords);
  }

  eventsMatching(filter: EventFilter): PubsubMessage[] {
    const since = filter.since === undefined ? undefined : BigInt(filter.since);
    return this.events.filter(
      (m) =>
        (since === undefined || BigInt(m.messageId) > since) &&
        (filter.registryId === undefined || m.attributes.deviceRegistryId === filter.registryId) &&
        (filter.deviceId === undefined || m.attributes.deviceId === filter.deviceId) &&
        (filter.gatewayId === undefined || m.attributes.gatewayId === filter.gatewayId),
    );
  }

  /** The errors sent to one gateway, or to all. */
  errorsOf(gatewayId: string | undefined): ErrorRecord[] {
    return this.errors.filter((e) => gatewayId === undefined || e.gatewayId === gatewayId);
  }
}

function keep<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.shift();
}
