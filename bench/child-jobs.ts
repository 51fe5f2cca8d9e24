/**
 * What the benchmark asks of its client processes, and what they answer. The bridge emulator, the delay proxy and
 * the local stack live in the benchmark's own process; every client (the relay, the baseline, the plain mqtt.js
 * loop, the HTTP load generator) runs in a child process of its own, so that a client never shares a thread with
 * the server it is measured against, and so that a session's peak memory is the session's alone.
 *
 * A job travels as a JSON file (mode 0600: it names the file holding the gateway key) and the answer comes back as a
 * JSON file; the child's stdout and stderr stay free for whatever the code under test logs.
 */
import type { RegistryPath } from '../lib/iotcore/topics.js';
import type { BatchShape } from './bench-fleet.js';
import type { BridgeEndpoint } from './mqtt-gateway-client.js';

export type RoundTripClient = 'relay' | 'baseline';

/** A batch as the queue delivers it: FIFO batches carry the gateway as message group; standard ones carry none. */
export interface QueuedShape extends BatchShape {
  queue: 'fifo' | 'standard';
}

export interface GatewayAccess {
  endpoint: BridgeEndpoint;
  registry: RegistryPath;
  gatewayId: string;
  /** A file holding the gateway's PKCS#8 PEM private key. */
  keyFile: string;
}

export interface RoundTripJob extends GatewayAccess {
  kind: 'round-trips';
  shapes: QueuedShape[];
  runs: number;
  /** QoS 1 publishes the relay keeps unacknowledged at once. */
  publishWindow: number;
  /**
   * Also run the relay on the 10-record, 10-device batch with its JWT ready only after this long, as when a cold
   * container fetches the key first.
   */
  slowKeyMs: number;
}

export interface RoundTripShapeResult {
  shape: QueuedShape;
  /** Wall time of each run, in run order. Runs alternate relay / baseline. */
  relayMs: number[];
  baselineMs: number[];
  /** Per relay run: milliseconds between the first and the last attach PUBACK of the burst. */
  relayAttachSpreadMs: number[];
  /** The relay with its JWT ready only after the job's `slowKeyMs` (10-record, 10-device batch only). */
  relaySlowKeyMs?: number[];
}

export interface RoundTripAnswer {
  kind: 'round-trips';
  shapes: RoundTripShapeResult[];
}

export type SessionClient = 'relay' | 'plain';

export interface SessionJob extends GatewayAccess {
  kind: 'session';
  client: SessionClient;
  shape: QueuedShape;
  publishWindow: number;
  /** Records of an untimed session run first in the same process (0: the measured session is the process's first). */
  warmUpRecords: number;
}

export interface SessionAnswer {
  kind: 'session';
  client: SessionClient;
  wallMs: number;
  /** Records confirmed (relay) or acknowledged (plain loop); the benchmark fails a run where this falls short. */
  delivered: number;
  warm: boolean;
  /** Resident set size once the client code is loaded and the batch built, just before the session starts (KB). */
  rssBeforeKb: number;
  /** `process.resourceUsage().maxRSS` at the end: the peak of the whole process (KB). */
  maxRssKb: number;
}

export interface HttpLoadJob {
  kind: 'http-load';
  /** Base URL of the ingest HTTP API. */
  url: string;
  /** A file holding `[{ deviceId, key }]`: the Device-Key credentials to post with. */
  credentialsFile: string;
  concurrency: number;
  durationMs: number;
  /** Put in every reading, so that the readings of this run can be found at the bridge. */
  marker: string;
}

export interface HttpLoadAnswer {
  kind: 'http-load';
  sent: number;
  /** Responses by status code; `error` counts requests that got no response. */
  statuses: Record<string, number>;
  /** Sequence numbers of the readings answered 202 Accepted. */
  acceptedSeqs: number[];
  latencyMs: { p50: number; p99: number; max: number };
  /** From the first request sent to the last answer received. */
  elapsedMs: number;
  /** Wall-clock time (epoch ms) of the first request, to set against times taken in other processes. */
  startedAtEpochMs: number;
  /** CPU time (user + system) of the generator's process from the first request to the last answer. */
  cpuMs: number;
}

export type ChildJob = RoundTripJob | SessionJob | HttpLoadJob;
export type ChildAnswer = RoundTripAnswer | SessionAnswer | HttpLoadAnswer;
export type AnswerOf<J extends ChildJob> = J extends RoundTripJob ? RoundTripAnswer : J extends SessionJob ? SessionAnswer : HttpLoadAnswer;

/** A child that could not do its job answers this instead. */
export interface ChildFailure {
  kind: 'failure';
  message: string;
}
