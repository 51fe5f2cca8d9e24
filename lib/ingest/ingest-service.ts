/**
 * The ingest: one HTTP request from a device in, records on the relay's FIFO queue out, and the answer.
 *
 * Order of work, so that nothing is queued for a request that is not wholly acceptable:
 * route (404/405) -> device ID in the path (400) -> authentication as that device (401/403) -> body (400/413)
 * -> queue (429/503) -> 202 with the queued message IDs.
 *
 * Each record goes to message group `gatewayFor(deviceId)`: every job that connects as a gateway goes through that
 * gateway's group, so SQS never runs two sessions of one gateway at once (DESIGN.md rule 1). A device JWT travels
 * on the record as `deviceToken` for gateways that authenticate their devices by token.
 *
 * Knows nothing of Lambda: the handler turns an API Gateway event into an `IngestRequest` and the answer back.
 *
 * @example
 * const ingest = new IngestService({ registry, gatewayIds: ['gw-1'], authenticator, queue });
 * const answer = await ingest.handle({ method: 'POST', path: '/devices/pump-0042/state', headers, body, requestId });
 */
import { RelayError } from '../errors.js';
import { assertDeviceId } from '../iotcore/device-id.js';
import type { RegistryPath } from '../iotcore/topics.js';
import { gatewayFor } from '../gateway-pool.js';
import { encodeTelemetryMessage } from '../queue/message.js';
import type { AuthScheme } from '../auth/authorization-header.js';
import type { AuthenticatedDevice } from '../auth/device-authenticator.js';
import type { QueueOutcome, QueueRecord, RelayQueue } from '../sqs-send/relay-queue-sender.js';
import { assertMessageId, deviceDeduplicationId, requestDeduplicationId } from './deduplication.js';
import { errorEnvelope, errorEnvelopeFor, type ApiErrorBody, type ErrorEnvelope } from './error-envelope.js';
import { batchItemsFrom, readingFromPublishEvent, readingFromRaw, readingFromSetState, type BatchItem, type Reading } from './readings.js';
import { matchRoute, type IngestRoute } from './routes.js';

export interface IngestRequest {
  method: string;
  /** Decoded path, without the API's stage prefix. */
  path: string;
  /** Header names in lower case; repeated headers joined with commas. */
  headers: Readonly<Record<string, string | undefined>>;
  body: Buffer;
  /** Unique per request (API Gateway's request ID); the deduplication ID when the device gives none. */
  requestId: string;
}

/** The device's newest config, in the shape of IoT Core's HTTP getConfig answer. */
export interface AnswerConfig {
  version: string;
  binaryData: string;
}

export interface AcceptedAnswer {
  messageIds: string[];
  /** Batch only: what became of each reading. */
  readings?: ReadingOutcome[];
  /** Present when a config source is wired in and knows the device (see `IngestServiceOptions.latestConfig`). */
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
  log: { deviceId?: string; route?: IngestRoute['kind']; queued: number; error?: unknown };
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
   * Where a later version looks up the device's newest config to hand back with the answer, so a device that
   * wakes only to post a reading also learns its config. Not wired by `ingestServiceFromEnv` yet. A failure here
   * never fails the ingest: the answer goes without the config.
   */
  latestConfig?: (deviceId: string) => Promise<AnswerConfig | undefined>;
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
      assertDeviceId(route.deviceId, 'deviceId');
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
      return this.answer(202, await this.accepted(route.deviceId, { messageIds: [outcome.messageId] }), { ...log, queued: 1 });
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
    return this.answer(202, await this.accepted(device.deviceId, { messageIds, readings }), log);
  }

  private record(device: AuthenticatedDevice, reading: Reading, requestId: string, index?: number): QueueRecord {
    const body = encodeTelemetryMessage({
      type: reading.type,
      deviceId: device.deviceId,
      payload: reading.payload,
      ...(reading.subfolder !== undefined ? { subfolder: reading.subfolder } : {}),
      ...(device.method === 'jwt' ? { deviceToken: device.token } : {}),
    });
    return {
      body,
      groupId: gatewayFor(device.deviceId, this.options.gatewayIds),
      deduplicationId:
        reading.messageId !== undefined
          ? deviceDeduplicationId(device.deviceId, reading.type, reading.messageId)
          : requestDeduplicationId(requestId, index),
    };
  }

  private async accepted(deviceId: string, answer: AcceptedAnswer): Promise<AcceptedAnswer> {
    if (this.options.latestConfig === undefined) return answer;
    try {
      const config = await this.options.latestConfig(deviceId);
      return config === undefined ? answer : { ...answer, config };
    } catch {
      return answer;
    }
  }

  private failure(e: unknown, log: { deviceId: string; route: IngestRoute['kind'] }): IngestResponse {
    const { httpCode, envelope } = errorEnvelopeFor(e);
    const headers: Record<string, string> = {};
    // RFC 9110 §15.5.2: a 401 names the schemes that could succeed.
    if (httpCode === 401) headers['www-authenticate'] = this.options.authenticator.schemes.map((s) => `${s} realm="iotcore-relay"`).join(', ');
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
