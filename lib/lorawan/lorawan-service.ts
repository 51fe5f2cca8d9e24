/**
 * The LoRaWAN webhooks: one request from a network server in, at most one record on the relay's FIFO queue out,
 * a config downlink when one is due, and the answer.
 *
 * Order of work, so that nothing is queued for a request that is not wholly acceptable, and each refusal says what
 * was wrong:
 *
 * | step | refusal |
 * |---|---|
 * | route `POST /lorawan/{integration}[/...]` | 404, 405 |
 * | the integration is configured | 404 |
 * | its webhook secret, in constant time (webhook-secret.ts) | 401 |
 * | a JSON body (ChirpStack's Protobuf marshaler is not read) of at most 1 MiB | 415, 413 |
 * | the network server's message (tts-message.ts, chirpstack-event.ts) | 400, 413 |
 * | not an uplink and not listed in `relayEvents`: acknowledged, counted, not relayed | 200 |
 * | device ID, payload and subfolder from the integration's templates, checked with IoT Core's rules | 422 |
 * | the record on the queue (queue contract v1, message group `gatewayFor(deviceId)`) | 503 |
 * | the config downlink (config-downlink.ts); its failure never fails the uplink, which is queued | - |
 * | answer | 202 |
 *
 * Every answer but the 2xx ones tells the network server the webhook failed: 503 asks it to retry (The Things Stack
 * retries when its webhook has retries enabled; ChirpStack does not retry), 4xx says a retry would fail again.
 *
 * Deduplication: the record's FIFO deduplication ID is SHA-256 of the integration, the IoT Core device ID and the
 * message's own deduplication key (the stack's deduplication or correlation ID, or DevEUI + session + frame
 * counter), so a webhook the network server retries within SQS's 5-minute window is queued once.
 *
 * Knows nothing of Lambda: handlers/lorawan.ts turns an API Gateway event into a request and the answer back.
 *
 * @example
 * const service = new LorawanService({ integrations, secrets, gatewayIds: ['gw-1'], queue, downlinks: store });
 * const answer = await service.handle({ method: 'POST', path: '/lorawan/farm-ttn', headers, body, requestId, query: {} });
 */
import { createHash } from 'node:crypto';
import { describeInput, isRelayError, RelayError } from '../errors.js';
import { errorEnvelope, type ErrorEnvelope } from '../http/error-envelope.js';
import type { ApiStatus } from '../iotcore/rpc-status.js';
import type { IngestRequest } from '../ingest/ingest-service.js';
import { telemetryRecord } from '../ingest/queue-record.js';
import { assertTopicDeviceId } from '../iotcore/device-id.js';
import { assertSubfolder } from '../iotcore/topics.js';
import { assertPayloadSize } from '../queue/message.js';
import type { RelayQueue } from '../queue/relay-queue.js';
import type { DownlinkStore } from '../config-store/config-store.js';
import { readChirpstackEvent } from './chirpstack-event.js';
import { deliverConfig, type DownlinkOutcome } from './config-downlink.js';
import type { IntegrationSecrets } from './integration-secrets.js';
import type { Integration } from './integrations.js';
import type { EnqueueDownlink } from './network-server-api.js';
import { renderTemplate } from './templates.js';
import { readTtsMessage } from './tts-message.js';
import { payloadOf, type LoraDevice, type LoraMessage } from './uplink.js';
import { webhookSecretMatches } from './webhook-secret.js';

export interface LorawanRequest extends IngestRequest {
  /** The query string's parameters (ChirpStack names its event there). */
  query: Readonly<Record<string, string | undefined>>;
}

export interface LorawanAnswer {
  /** The relay queue's message ID of the uplink (or relayed event). */
  messageId?: string;
  deviceId?: string;
  /** The event that was only acknowledged. */
  acknowledged?: string;
  downlink?: { status: DownlinkOutcome['status']; version?: number };
}

export interface LorawanResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: LorawanAnswer | ErrorEnvelope;
  /** For the log line and the metrics; never sent. */
  log: {
    integration?: string;
    networkServer?: Integration['networkServer'];
    /** `up` for uplinks, else the event's name. */
    event?: string;
    deviceId?: string;
    queued: number;
    /** The refused request's error. */
    error?: unknown;
    downlink?: DownlinkOutcome;
  };
}

export interface LorawanServiceOptions {
  integrations: ReadonlyMap<string, Integration>;
  /** Required as soon as one integration is configured. */
  secrets?: IntegrationSecrets;
  gatewayIds: readonly string[];
  queue: RelayQueue;
  /** Required when an integration has downlink settings. */
  downlinks?: DownlinkStore;
  enqueueDownlink?: EnqueueDownlink;
  downlinkTimeoutMs?: number;
  now?: () => Date;
}

/** A webhook body larger than this is no network server's message. */
export const MAX_WEBHOOK_BODY_BYTES = 1024 * 1024;
const ROUTE = /^\/lorawan\/([^/]+)(?:\/.*)?$/s;
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/** A refusal of the request: status, Google-style status name, message, and the field it is about. */
class Refusal extends Error {
  constructor(
    readonly statusCode: number,
    readonly status: ApiStatus,
    message: string,
    readonly field?: string,
    readonly error?: unknown,
  ) {
    super(message);
  }
}

export class LorawanService {
  private readonly now: () => Date;

  constructor(private readonly options: LorawanServiceOptions) {
    this.now = options.now ?? (() => new Date());
    if (options.integrations.size > 0 && options.secrets === undefined) {
      throw new RelayError('ERR_CONFIG', 'LoRaWAN integrations are configured without their secrets: set LORAWAN_SECRETS_SECRET or LORAWAN_SECRETS_FILE');
    }
    for (const integration of options.integrations.values()) {
      if (integration.downlink !== undefined && options.downlinks === undefined) {
        throw new RelayError('ERR_CONFIG', `integration ${integration.id} sends config downlinks, which needs the config table: set CONFIG_TABLE`);
      }
    }
  }

  async handle(request: LorawanRequest): Promise<LorawanResponse> {
    const log: LorawanResponse['log'] = { queued: 0 };
    try {
      return await this.process(request, log);
    } catch (e) {
      if (e instanceof Refusal) {
        log.error = e.error ?? new RelayError('ERR_INVALID_MESSAGE', e.message);
        return answer(e.statusCode, errorEnvelope(e.statusCode, e.status, e.message, e.field), log);
      }
      log.error = e;
      return answer(500, errorEnvelope(500, 'INTERNAL', 'internal error'), log);
    }
  }

  private async process(request: LorawanRequest, log: LorawanResponse['log']): Promise<LorawanResponse> {
    const route = ROUTE.exec(request.path);
    if (route === null) throw new Refusal(404, 'NOT_FOUND', `no route for ${request.path.slice(0, 200)}`);
    if (request.method.toUpperCase() !== 'POST') {
      const response = answer(405, errorEnvelope(405, 'UNIMPLEMENTED', `${request.method.toUpperCase()} is not allowed on ${request.path.slice(0, 200)}; use POST`), log);
      return { ...response, headers: { ...response.headers, allow: 'POST' } };
    }
    const integration = this.options.integrations.get(route[1]!);
    if (integration === undefined) throw new Refusal(404, 'NOT_FOUND', `no LoRaWAN integration named ${describeInput(route[1])} is configured`);
    log.integration = integration.id;
    log.networkServer = integration.networkServer;

    const secret = await this.secretOf(integration);
    if (!webhookSecretMatches(request.headers[integration.secretHeader], secret.webhookSecret)) {
      throw new Refusal(401, 'UNAUTHENTICATED', `the webhook secret in header ${integration.secretHeader} is missing or wrong`, undefined, new RelayError('ERR_AUTH_INVALID', 'webhook secret missing or wrong'));
    }

    const message = this.read(integration, request);
    if (message.kind === 'event') {
      log.event = message.event;
      if (!integration.relayEvents.includes(message.event)) return answer(200, { acknowledged: message.event }, log);
    } else {
      log.event = 'up';
    }

    // What to relay, as IoT Core will take it: refusals here are about the integration's mapping, not the body.
    const { device, dedupKey } = message.kind === 'uplink' ? message : this.body(() => message.resolve());
    const deviceId = this.mapping(() => {
      const id = renderTemplate(integration.deviceId, templateValues(device), 'deviceId');
      assertTopicDeviceId(id, 'deviceId');
      return id;
    });
    log.deviceId = deviceId;
    const payload = this.mapping(() =>
      message.kind === 'uplink'
        ? payloadOf(message, integration.payload, integration.networkServer === 'tts' ? 'uplink_message.decoded_payload' : 'object')
        : Buffer.from(JSON.stringify(message.body), 'utf8'),
    );
    try {
      assertPayloadSize('event', payload);
    } catch (e) {
      throw new Refusal(413, 'INVALID_ARGUMENT', (e as Error).message, 'payload', e);
    }
    const subfolder = this.mapping(() => {
      const template = message.kind === 'uplink' ? integration.subfolder : integration.eventSubfolder;
      if (template === undefined) return undefined;
      const values = message.kind === 'uplink' ? { ...templateValues(device), f_port: message.fPort } : { ...templateValues(device), event: message.event };
      const text = renderTemplate(template, values, message.kind === 'uplink' ? 'subfolder' : 'eventSubfolder');
      assertSubfolder(text, 'subfolder');
      return text;
    });

    const record = telemetryRecord(
      { type: 'event', deviceId, payload, ...(subfolder !== undefined ? { subfolder } : {}) },
      this.options.gatewayIds,
      lorawanDeduplicationId(integration.id, deviceId, dedupKey),
    );
    const [outcome] = await this.options.queue.send([record]);
    if (outcome === undefined || !outcome.queued) {
      const error = outcome?.queued === false ? outcome.error : new RelayError('ERR_QUEUE_UNAVAILABLE', 'the queue reported no outcome');
      // Throttled or unavailable alike: 503 is what makes a network server try again.
      const response = answer(503, errorEnvelope(503, 'UNAVAILABLE', 'the relay queue is unavailable; retry later'), { ...log, error });
      return { ...response, headers: { ...response.headers, 'retry-after': '5' } };
    }
    log.queued = 1;
    const body: LorawanAnswer = { messageId: outcome.messageId, deviceId };

    if (message.kind === 'uplink' && integration.downlink !== undefined && this.options.downlinks !== undefined) {
      const downlink = await deliverConfig({
        integration,
        deviceId,
        device,
        store: this.options.downlinks,
        // The Things Stack sends the webhook's downlink API key with every message, when one is set.
        apiKey: secret.apiKey ?? (integration.networkServer === 'tts' ? nonEmpty(request.headers['x-downlink-apikey']) : undefined),
        now: this.now(),
        ...(this.options.enqueueDownlink ? { enqueue: this.options.enqueueDownlink } : {}),
        ...(this.options.downlinkTimeoutMs !== undefined ? { timeoutMs: this.options.downlinkTimeoutMs } : {}),
      });
      log.downlink = downlink;
      body.downlink = { status: downlink.status, ...('version' in downlink ? { version: downlink.version } : {}) };
    }
    return answer(202, body, log);
  }

  private async secretOf(integration: Integration): Promise<Awaited<ReturnType<IntegrationSecrets['get']>>> {
    try {
      // Checked in the constructor: integrations exist only with secrets.
      return await this.options.secrets!.get(integration.id);
    } catch (e) {
      if (isRelayError(e) && e.code === 'ERR_KEY_UNAVAILABLE') {
        throw new Refusal(503, 'UNAVAILABLE', 'the service is unavailable; retry later', undefined, e);
      }
      throw e;
    }
  }

  /** The network server's message, or a 415, 413 or 400 that names what is wrong with the body. */
  private read(integration: Integration, request: LorawanRequest): LoraMessage {
    const type = request.headers['content-type'];
    if (type !== undefined && !JSON_TYPE.test(type)) {
      const hint = integration.networkServer === 'chirpstack' ? " (set the HTTP integration's payload marshaler to JSON)" : ' (set the webhook format to JSON)';
      throw new Refusal(415, 'INVALID_ARGUMENT', `the body must be JSON, not ${type.slice(0, 60)}${hint}`, 'content-type');
    }
    if (request.body.byteLength > MAX_WEBHOOK_BODY_BYTES) {
      throw new Refusal(413, 'INVALID_ARGUMENT', `the body is ${request.body.byteLength} bytes; a webhook message takes at most ${MAX_WEBHOOK_BODY_BYTES}`);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(request.body.toString('utf8'));
    } catch {
      // The parser's message would quote the body back; the position of the error is enough to find it.
      throw new Refusal(400, 'INVALID_ARGUMENT', 'the body is not JSON');
    }
    return this.body(() => (integration.networkServer === 'tts' ? readTtsMessage(doc) : readChirpstackEvent(request.query.event, doc)));
  }

  /** Runs one step of reading the body; its refusals are 400, or 413 for what is too large. */
  private body<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      if (!isRelayError(e)) throw e;
      throw new Refusal(e.code === 'ERR_PAYLOAD_TOO_LARGE' ? 413 : 400, 'INVALID_ARGUMENT', e.message, e.field, e);
    }
  }

  /** Runs one step of the mapping to IoT Core; its refusals are 422: the body is fine, the integration cannot relay it. */
  private mapping<T>(step: () => T): T {
    try {
      return step();
    } catch (e) {
      if (!isRelayError(e)) throw e;
      throw new Refusal(e.code === 'ERR_PAYLOAD_TOO_LARGE' ? 413 : 422, 'INVALID_ARGUMENT', e.message, e.field, e);
    }
  }
}

/** SHA-256 of the integration, the IoT Core device and the message's key: 64 characters, within SQS's 128. */
export function lorawanDeduplicationId(integrationId: string, deviceId: string, dedupKey: string): string {
  return createHash('sha256').update(`lorawan\u0000${integrationId}\u0000${deviceId}\u0000${dedupKey}`).digest('hex');
}

function templateValues(device: LoraDevice): Parameters<typeof renderTemplate>[1] {
  const values: Parameters<typeof renderTemplate>[1] = { tags: device.tags };
  if (device.deviceId !== undefined) values.device_id = device.deviceId;
  if (device.devEui !== undefined) values.dev_eui = device.devEui;
  if (device.applicationId !== undefined) values.application_id = device.applicationId;
  return values;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function answer(statusCode: number, body: LorawanResponse['body'], log: LorawanResponse['log']): LorawanResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body, log };
}
