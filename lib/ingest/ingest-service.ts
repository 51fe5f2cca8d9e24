/**
 * The ingest: one HTTP request from a device in, records on the relay's FIFO queue out, and the answer.
 *
 * Order of work, so that nothing is queued for a request that is not wholly acceptable:
 * route (404/405) -> device ID in the path (400) -> authentication as that device (401/403) -> body (400/413)
 * -> queue (429/503) -> 202 with the queued message IDs.
 *
 * Each record goes to message group `gatewayFor(deviceId)`: every job that connects as a gateway goes through that
 * gateway's group, so SQS never runs two sessions of one gateway at once (docs/design.md rule 1). A device JWT travels
 * on the record as `deviceToken` for gateways that authenticate their devices by token.
 *
 * Knows nothing of Lambda: the handler turns an API Gateway event into an `IngestRequest` and the answer back.
 *
 * @example
 * const ingest = new IngestService({ registry, gatewayIds: ['gw-1'], authenticator, queue });
 * const answer = await ingest.handle({ method: 'POST', path: '/devices/pump-0042/state', headers, body, requestId });
 */
import { parseHeldConfigVersion } from '../config-store/config-delivery.js';
import { RelayError } from '../errors.js';
import { assertTopicDeviceId } from '../iotcore/device-id.js';
import type { RegistryPath } from '../iotcore/topics.js';
import type { AuthScheme } from '../auth/authorization-header.js';
import type { AuthenticatedDevice } from '../auth/device-authenticator.js';
import { errorEnvelope, errorEnvelopeFor, wwwAuthenticate, type ApiErrorBody, type ErrorEnvelope } from '../http/error-envelope.js';
import type { HttpRequest } from '../http/api-gateway.js';
import type { QueueOutcome, QueueRecord, RelayQueue } from '../queue/relay-queue.js';
import { assertMessageId, deviceDeduplicationId, requestDeduplicationId } from './deduplication.js';
import { batchItemsFrom, readingFromPublishEvent, readingFromRaw, readingFromSetState, type BatchItem, type Reading } from './readings.js';
import { telemetryRecord } from './queue-record.js';
import { matchRoute, type IngestRoute } from './routes.js';

/**
 * A request as lib/http/api-gateway.ts reads it, without the query, which no ingest route reads. The request ID is
 * the deduplication ID when the device gives none.
 */
export type IngestRequest = Omit<HttpRequest, 'query'>;

/** The device's newest config, in the shape of IoT Core's HTTP getConfig answer. */
export interface AnswerConfig {
  version: string;
  binaryData: string;
}

export interface AcceptedAnswer {
  messageIds: string[];
  /** Batch only: what became of each reading. */
  readings?: ReadingOutcome[];
  /**
   * The device's newest config, when it sent `X-Config-Version` naming another version than the newest one stored
   * (see `IngestServiceOptions.latestConfig`).
   */
  config?: AnswerConfig;
}

export type ReadingOutcome =
  | { index: number; status: 'QUEUED'; messageId: string }
  /** The reading is invalid as it is: resending it unchanged will fail again. */
  | { index: number; status: 'REJECTED'; error: ApiErrorBody }
  /** The queue did not take it: resend it later. */
  | { index: number; status: 'NOT_QUEUED'; error: ApiErrorBody };

export type AnswerBody = AcceptedAnswer | (ErrorEnvelope & { messageIds?: string[]; readings?: ReadingOutcome[] });

export interface IngestResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: AnswerBody;
  /** For the log line only; never sent. */
  log: {
    deviceId?: string;
    route?: IngestRoute['kind'];
    queued: number;
    error?: unknown;
    /** The config version put into the answer. */
    configVersion?: string;
    /** Why the config lookup failed; the answer went without a config. */
    configError?: unknown;
  };
}

export interface IngestServiceOptions {
  registry: RegistryPath;
  gatewayIds: readonly string[];
  authenticator: {
    readonly schemes: readonly AuthScheme[];
    authenticate(authorization: string | undefined, deviceId: string): Promise<AuthenticatedDevice>;
  };
  queue: RelayQueue;
  /**
   * The device's newest config when it differs from the version the device holds, so a device that wakes only to
   * post a reading also learns its config. Asked only when the request says which version the device holds
   * (`X-Config-Version: <n>`, 0 when it holds none); `ingestServiceFromEnv` wires it to the config store when
   * `CONFIG_TABLE` is set. A failure here never fails the ingest: the answer goes without the config.
   */
  latestConfig?: (deviceId: string, heldVersion: number) => Promise<AnswerConfig | undefined>;
}

/** API Gateway (HTTP API) takes 10 MB and Lambda 6 MB per request; a larger body cannot have come through them. */
export const MAX_REQUEST_BODY_BYTES = 6 * 1024 * 1024;
/** Seconds a throttled or unavailable device is asked to wait (Retry-After). */
const RETRY_AFTER_SECONDS: Record<number, string> = { 429: '1', 503: '5' };

export class IngestService {
  constructor(private readonly options: IngestServiceOptions) {}

  async handle(request: IngestRequest): Promise<IngestResponse> {
    const match = matchRoute(request.method, request.path, this.options.registry);
    if ('notFound' in match) return this.answer(404, errorEnvelope(404, 'NOT_FOUND', match.notFound), { queued: 0 });
    if ('methodNotAllowed' in match) {
      return this.answer(405, errorEnvelope(405, 'UNIMPLEMENTED', match.methodNotAllowed), { queued: 0 }, { allow: 'POST' });
    }
    const { route } = match;
    const log = { deviceId: route.deviceId, route: route.kind };
    try {
      assertTopicDeviceId(route.deviceId, 'deviceId');
      const device = await this.options.authenticator.authenticate(request.headers['authorization'], route.deviceId);
      if (request.body.byteLength > MAX_REQUEST_BODY_BYTES) {
        throw new RelayError('ERR_PAYLOAD_TOO_LARGE', `the body is ${request.body.byteLength} bytes; at most ${MAX_REQUEST_BODY_BYTES}`);
      }
      if (route.kind === 'batch') return await this.batch(request, device);
      const reading = readingOf(route, request.body);
      const messageId = request.headers['x-message-id'];
      if (messageId !== undefined) {
        assertMessageId(messageId, 'X-Message-Id');
        reading.messageId = messageId;
      }
      const [outcome] = await this.options.queue.send([this.record(device, reading, request.requestId)]);
      if (outcome === undefined) throw new RelayError('ERR_QUEUE_UNAVAILABLE', 'the queue reported no outcome');
      if (!outcome.queued) throw outcome.error;
      return this.accepted(request, route.deviceId, { messageIds: [outcome.messageId] }, { ...log, queued: 1 });
    } catch (e) {
      return this.failure(e, log);
    }
  }

  private async batch(request: IngestRequest, device: AuthenticatedDevice): Promise<IngestResponse> {
    if (request.headers['x-message-id'] !== undefined) {
      throw new RelayError('ERR_INVALID_FIELD', 'X-Message-Id names a single reading; give each batch reading its own messageId', {
        field: 'X-Message-Id',
      });
    }
    const items = batchItemsFrom(request.body);
    const valid = items.filter((i): i is Extract<BatchItem, { reading: Reading }> => 'reading' in i);
    const outcomes = await this.options.queue.send(valid.map((i) => this.record(device, i.reading, request.requestId, i.index)));
    const byIndex = new Map<number, QueueOutcome>(valid.map((item, k) => [item.index, outcomes[k]!]));

    let queueError: RelayError | undefined;
    const readings = items.map((item): ReadingOutcome => {
      if ('error' in item) return { index: item.index, status: 'REJECTED', error: errorEnvelopeFor(item.error).envelope.error };
      const outcome = byIndex.get(item.index)!;
      if (outcome.queued) return { index: item.index, status: 'QUEUED', messageId: outcome.messageId };
      queueError ??= outcome.error;
      return { index: item.index, status: 'NOT_QUEUED', error: errorEnvelopeFor(outcome.error).envelope.error };
    });
    const messageIds = readings.flatMap((r) => (r.status === 'QUEUED' ? [r.messageId] : []));
    const log = { deviceId: device.deviceId, route: 'batch' as const, queued: messageIds.length };

    if (queueError !== undefined) {
      // The status says what to do next (wait and resend); the readings say which ones to resend.
      const { httpCode, envelope } = errorEnvelopeFor(queueError);
      envelope.error.message = `${messageIds.length} of ${items.length} readings were queued; resend those marked NOT_QUEUED later`;
      return this.answer(httpCode, { ...envelope, messageIds, readings }, { ...log, error: queueError });
    }
    if (messageIds.length === 0) {
      const envelope = errorEnvelope(400, 'INVALID_ARGUMENT', 'no reading of the batch is valid; see readings');
      return this.answer(400, { ...envelope, messageIds, readings }, log);
    }
    return this.accepted(request, device.deviceId, { messageIds, readings }, log);
  }

  private record(device: AuthenticatedDevice, reading: Reading, requestId: string, index?: number): QueueRecord {
    const message = {
      type: reading.type,
      deviceId: device.deviceId,
      payload: reading.payload,
      ...(reading.subfolder !== undefined ? { subfolder: reading.subfolder } : {}),
      ...(device.method === 'jwt' ? { deviceToken: device.token } : {}),
    };
    const deduplicationId =
      reading.messageId !== undefined
        ? deviceDeduplicationId(device.deviceId, reading.type, reading.messageId)
        : requestDeduplicationId(requestId, index);
    return telemetryRecord(message, this.options.gatewayIds, deduplicationId);
  }

  /** The 202 answer, with the device's newest config when it said which version it holds and holds another. */
  private async accepted(request: IngestRequest, deviceId: string, answer: AcceptedAnswer, log: IngestResponse['log']): Promise<IngestResponse> {
    const held = parseHeldConfigVersion(request.headers['x-config-version']);
    if (this.options.latestConfig === undefined || held === undefined) return this.answer(202, answer, log);
    try {
      const config = await this.options.latestConfig(deviceId, held);
      if (config === undefined) return this.answer(202, answer, log);
      return this.answer(202, { ...answer, config }, { ...log, configVersion: config.version });
    } catch (e) {
      // The readings are queued; the config can wait for the next request.
      return this.answer(202, answer, { ...log, configError: e });
    }
  }

  private failure(e: unknown, log: { deviceId: string; route: IngestRoute['kind'] }): IngestResponse {
    const { httpCode, envelope } = errorEnvelopeFor(e);
    const headers: Record<string, string> = {};
    const challenge = httpCode === 401 ? wwwAuthenticate(this.options.authenticator.schemes) : undefined;
    if (challenge !== undefined) headers['www-authenticate'] = challenge;
    return this.answer(httpCode, envelope, { ...log, queued: 0, error: e }, headers);
  }

  private answer(statusCode: number, body: AnswerBody, log: IngestResponse['log'], headers: Record<string, string> = {}): IngestResponse {
    const retryAfter = RETRY_AFTER_SECONDS[statusCode];
    return {
      statusCode,
      headers: { 'content-type': 'application/json', ...(retryAfter ? { 'retry-after': retryAfter } : {}), ...headers },
      body,
      log,
    };
  }
}

function readingOf(route: Exclude<IngestRoute, { kind: 'batch' }>, body: Buffer): Reading {
  if (route.form === 'bridge') return route.kind === 'event' ? readingFromPublishEvent(body) : readingFromSetState(body);
  return readingFromRaw(route.kind, body, route.kind === 'event' ? route.subfolder : undefined);
}
