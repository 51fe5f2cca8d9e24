/**
 * The LoRaWAN integrations, read from `LORAWAN_INTEGRATIONS`: a JSON array, one object per webhook a network server
 * posts to (`POST /lorawan/{id}`). Their secrets (the webhook secret, the network server's API key) are not here
 * but in the secret document (integration-secrets.ts). docs/lorawan.md walks through each setting.
 *
 * ```json
 * [{ "id": "farm-ttn", "networkServer": "tts", "deviceId": "{device_id}", "payload": "raw", "subfolder": "lorawan/{f_port}",
 *    "downlink": { "apiUrl": "https://eu1.cloud.thethings.network", "webhookId": "iotcore-relay", "fPort": 10, "maxBytes": 51 } },
 *  { "id": "plant-chirpstack", "networkServer": "chirpstack", "deviceId": "lora-{dev_eui}", "payload": "envelope",
 *    "relayEvents": ["status"], "downlink": { "apiUrl": "https://chirpstack.example.com:8090", "fPort": 10 } }]
 * ```
 *
 * | setting | default | meaning |
 * |---|---|---|
 * | `id` | required | `[a-z0-9-]`, 1 to 63 characters: the route `/lorawan/{id}` and the key in the secret document |
 * | `networkServer` | required | `tts` (The Things Stack v3 webhooks) or `chirpstack` (ChirpStack v4 HTTP integration, JSON) |
 * | `deviceId` | required | template of the IoT Core device ID (templates.ts) |
 * | `payload` | `raw` | `raw`, `decoded` or `envelope` (uplink.ts) |
 * | `subfolder` | none | template of the events subfolder, e.g. `lorawan/{f_port}` |
 * | `relayEvents` | `[]` | other events relayed as telemetry (their JSON body), e.g. `["status"]`; the rest are only acknowledged |
 * | `eventSubfolder` | `lorawan/{event}` | template of the subfolder of relayed events |
 * | `secretHeader` | `x-webhook-secret` | the request header carrying the webhook secret |
 * | `downlink` | none | configs as downlinks: `apiUrl`, `fPort` (1-223), `maxBytes` (1-242, default 51), `queue` (`replace` or `push`, default `replace`), `confirmed` (default false), and for `tts` `webhookId` |
 *
 * Every mistake is a RelayError ERR_CONFIG naming the setting; no integration is served until all are valid.
 *
 * @example
 * const integrations = parseIntegrations(process.env.LORAWAN_INTEGRATIONS);
 * integrations.get('farm-ttn')?.networkServer; // 'tts'
 */
import { RelayError } from '../errors.js';
import { CHIRPSTACK_EVENTS } from './chirpstack-event.js';
import { compileTemplate, DEVICE_PLACEHOLDERS, EVENT_PLACEHOLDERS, hasPlaceholder, SUBFOLDER_PLACEHOLDERS, usesTags, type CompiledTemplate } from './templates.js';
import { TTS_EVENTS } from './tts-message.js';
import type { PayloadMode } from './uplink.js';

export type NetworkServer = 'tts' | 'chirpstack';

export interface DownlinkSettings {
  /** The network server's API, without a trailing slash: `https://eu1.cloud.thethings.network`. */
  apiUrl: string;
  /** The Things Stack: the webhook whose `down/push` or `down/replace` path is used. */
  webhookId?: string;
  fPort: number;
  /** A config larger than this is not sent. */
  maxBytes: number;
  /** `replace` empties the device's downlink queue first (TTS `down/replace`, ChirpStack `flushQueue`). */
  queue: 'replace' | 'push';
  confirmed: boolean;
}

export interface Integration {
  id: string;
  networkServer: NetworkServer;
  deviceId: CompiledTemplate;
  payload: PayloadMode;
  subfolder?: CompiledTemplate;
  relayEvents: readonly string[];
  eventSubfolder: CompiledTemplate;
  /** Lower case. */
  secretHeader: string;
  downlink?: DownlinkSettings;
}

export const DEFAULT_SECRET_HEADER = 'x-webhook-secret';
/** The maximum application payload of EU868 at its slowest data rates (DR0 to DR2); other regions set their own. */
export const DEFAULT_MAX_DOWNLINK_BYTES = 51;
/** The largest FRMPayload any LoRaWAN data rate carries. */
export const MAX_DOWNLINK_BYTES = 242;

const ID = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const HEADER = /^[a-z0-9!#$%&'*+.^_`|~-]{1,64}$/;
/** Headers a network server or the HTTP API sets itself: a secret there would be overwritten or read by others. */
const RESERVED_HEADERS = new Set(['content-type', 'content-length', 'host', 'x-downlink-apikey', 'x-downlink-push', 'x-downlink-replace', 'user-agent']);
const SETTINGS = new Set(['id', 'networkServer', 'deviceId', 'payload', 'subfolder', 'relayEvents', 'eventSubfolder', 'secretHeader', 'downlink']);
const DOWNLINK_SETTINGS = new Set(['apiUrl', 'webhookId', 'fPort', 'maxBytes', 'queue', 'confirmed']);
const EVENTS: Record<NetworkServer, readonly string[]> = { tts: TTS_EVENTS, chirpstack: CHIRPSTACK_EVENTS.filter((e) => e !== 'up') };

const fail = (message: string): RelayError => new RelayError('ERR_CONFIG', `LORAWAN_INTEGRATIONS: ${message}`);

/** Reads the setting; empty or absent means no integration. */
export function parseIntegrations(text: string | undefined): Map<string, Integration> {
  const integrations = new Map<string, Integration>();
  if (text === undefined || text.trim() === '') return integrations;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw fail(`not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(doc)) throw fail('must be a JSON array of integrations');
  doc.forEach((entry, i) => {
    const integration = parseIntegration(entry, `[${i}]`);
    if (integrations.has(integration.id)) throw fail(`[${i}].id ${integration.id} is used twice`);
    integrations.set(integration.id, integration);
  });
  return integrations;
}

function parseIntegration(entry: unknown, at: string): Integration {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw fail(`${at} must be an object`);
  const o = entry as Record<string, unknown>;
  for (const key of Object.keys(o)) if (!SETTINGS.has(key)) throw fail(`${at}.${key.slice(0, 40)} is not a setting of an integration`);
  if (typeof o.id !== 'string' || !ID.test(o.id)) throw fail(`${at}.id must be 1 to 63 of [a-z0-9-], not starting or ending with "-"`);
  const where = (setting: string): string => `LORAWAN_INTEGRATIONS ${o.id as string}.${setting}`;
  if (o.networkServer !== 'tts' && o.networkServer !== 'chirpstack') throw fail(`${o.id}.networkServer must be "tts" or "chirpstack"`);
  const networkServer: NetworkServer = o.networkServer;

  const deviceId = compileTemplate(o.deviceId, DEVICE_PLACEHOLDERS, where('deviceId'));
  if (!hasPlaceholder(deviceId)) throw fail(`${o.id}.deviceId must use a placeholder, or every device would be one IoT Core device`);
  if (deviceId.parts.some((part) => 'literal' in part && part.literal.includes('+'))) {
    throw fail(`${o.id}.deviceId puts a "+" into every device ID: IoT Core allows it, but + is an MQTT wildcard, which no topic name may contain`);
  }
  const subfolder = o.subfolder === undefined ? undefined : compileTemplate(o.subfolder, SUBFOLDER_PLACEHOLDERS, where('subfolder'));
  const eventSubfolder = compileTemplate(o.eventSubfolder ?? 'lorawan/{event}', EVENT_PLACEHOLDERS, where('eventSubfolder'));
  if (networkServer === 'tts') {
    for (const [name, t] of [['deviceId', deviceId], ['subfolder', subfolder], ['eventSubfolder', eventSubfolder]] as const) {
      if (t !== undefined && usesTags(t)) throw fail(`${o.id}.${name}: {tag.<key>} is for ChirpStack; The Things Stack's webhooks carry no tags`);
    }
  }

  const payload = o.payload ?? 'raw';
  if (payload !== 'raw' && payload !== 'decoded' && payload !== 'envelope') throw fail(`${o.id}.payload must be "raw", "decoded" or "envelope"`);

  const relayEvents = o.relayEvents ?? [];
  if (!Array.isArray(relayEvents)) throw fail(`${o.id}.relayEvents must be an array`);
  for (const event of relayEvents) {
    if (typeof event !== 'string' || !EVENTS[networkServer].includes(event)) {
      throw fail(`${o.id}.relayEvents: ${JSON.stringify(event)} is not an event of ${networkServer} (${EVENTS[networkServer].join(', ')})`);
    }
  }

  const secretHeader = o.secretHeader ?? DEFAULT_SECRET_HEADER;
  if (typeof secretHeader !== 'string' || !HEADER.test(secretHeader.toLowerCase()) || RESERVED_HEADERS.has(secretHeader.toLowerCase())) {
    throw fail(`${o.id}.secretHeader must be a header name of your own (not ${[...RESERVED_HEADERS].join(', ')})`);
  }

  const integration: Integration = {
    id: o.id,
    networkServer,
    deviceId,
    payload,
    relayEvents: [...new Set(relayEvents as string[])],
    eventSubfolder,
    secretHeader: secretHeader.toLowerCase(),
  };
  if (subfolder !== undefined) integration.subfolder = subfolder;
  if (o.downlink !== undefined) integration.downlink = parseDownlink(o.downlink, o.id, networkServer);
  return integration;
}

function parseDownlink(value: unknown, id: string, networkServer: NetworkServer): DownlinkSettings {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${id}.downlink must be an object`);
  const d = value as Record<string, unknown>;
  for (const key of Object.keys(d)) if (!DOWNLINK_SETTINGS.has(key)) throw fail(`${id}.downlink.${key.slice(0, 40)} is not a downlink setting`);
  const settings: DownlinkSettings = {
    apiUrl: apiUrlOf(d.apiUrl, `${id}.downlink.apiUrl`),
    fPort: wholeNumber(d.fPort, `${id}.downlink.fPort`, 1, 223),
    maxBytes: d.maxBytes === undefined ? DEFAULT_MAX_DOWNLINK_BYTES : wholeNumber(d.maxBytes, `${id}.downlink.maxBytes`, 1, MAX_DOWNLINK_BYTES),
    queue: 'replace',
    confirmed: false,
  };
  if (d.queue !== undefined) {
    if (d.queue !== 'replace' && d.queue !== 'push') throw fail(`${id}.downlink.queue must be "replace" or "push"`);
    settings.queue = d.queue;
  }
  if (d.confirmed !== undefined) {
    if (typeof d.confirmed !== 'boolean') throw fail(`${id}.downlink.confirmed must be true or false`);
    settings.confirmed = d.confirmed;
  }
  if (networkServer === 'tts') {
    if (typeof d.webhookId !== 'string' || !ID.test(d.webhookId)) throw fail(`${id}.downlink.webhookId must name the webhook in The Things Stack ([a-z0-9-])`);
    settings.webhookId = d.webhookId;
  } else if (d.webhookId !== undefined) {
    throw fail(`${id}.downlink.webhookId is for The Things Stack only`);
  }
  return settings;
}

/** HTTPS, or HTTP to this machine only (a local stand-in): an API key never crosses a network in clear text. */
function apiUrlOf(value: unknown, where: string): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw fail(`${where} must be a URL`);
  }
  const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) throw fail(`${where} must be https:// (http:// only to 127.0.0.1)`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') throw fail(`${where} must hold no credentials, query or fragment`);
  return url.toString().replace(/\/+$/, '');
}

function wholeNumber(value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw fail(`${where} must be a whole number from ${min} to ${max}`);
  return value;
}
