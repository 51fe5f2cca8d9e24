/**
 * Enqueues one downlink through a network server's HTTP API, and says whether the server accepted it.
 *
 * - The Things Stack: `POST {apiUrl}/api/v3/as/applications/{application_id}/webhooks/{webhook_id}/devices/{device_id}/down/replace`
 *   (or `down/push`), `Authorization: Bearer <API key>`, body `{"downlinks": [{"frm_payload", "f_port", "priority", "confirmed"}]}`
 *   (https://www.thethingsindustries.com/docs/integrations/webhooks/scheduling-downlinks/).
 * - ChirpStack v4, through its REST API proxy (chirpstack-rest-api): `POST {apiUrl}/api/devices/{devEui}/queue`,
 *   `Grpc-Metadata-Authorization: Bearer <API key>` (the header its API definition declares), body
 *   `{"queueItem": {"devEui", "confirmed", "fPort", "data"}, "flushQueue"}` (`DeviceService.Enqueue` in
 *   chirpstack's api/proto/api/device.proto); `flushQueue` empties the queue first, as `replace` does.
 *
 * Accepted means a 2xx answer. Anything else (a refusal, a timeout, a connection that fails) is not accepted, with a
 * reason for the log: the HTTP status and the server's own message, never a header, so never the key. TLS
 * certificates are verified (Node's fetch does, and nothing here turns it off).
 *
 * @example
 * const answer = await enqueueDownlink({ networkServer: 'chirpstack', settings, device, bytes, apiKey });
 * if (answer.accepted) markDelivered();
 */
import type { DownlinkSettings, NetworkServer } from './integrations.js';
import type { LoraDevice } from './uplink.js';

export type DownlinkAnswer = { accepted: true; status: number; id?: string } | { accepted: false; status?: number; reason: string };

export interface DownlinkRequest {
  networkServer: NetworkServer;
  settings: DownlinkSettings;
  device: LoraDevice;
  bytes: Buffer;
  apiKey: string;
}

export interface EnqueueOptions {
  /** Default 2500: the network server waits for the webhook's answer (ChirpStack 5 s, The Things Stack 10 s). */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export type EnqueueDownlink = (request: DownlinkRequest, options?: EnqueueOptions) => Promise<DownlinkAnswer>;

export const DEFAULT_DOWNLINK_TIMEOUT_MS = 2500;
const MAX_REASON = 200;

/** The request a network server is sent, without sending it (for tests and the docs). */
export function downlinkHttpRequest(request: DownlinkRequest): { url: string; headers: Record<string, string>; body: unknown } {
  const { settings, device, bytes, apiKey } = request;
  const enc = encodeURIComponent;
  const common = { 'content-type': 'application/json', accept: 'application/json', 'user-agent': 'iotcore-relay' };
  if (request.networkServer === 'tts') {
    if (device.applicationId === undefined || device.deviceId === undefined || settings.webhookId === undefined) {
      throw new Error('a downlink of The Things Stack needs the application ID, the device ID and the webhook ID');
    }
    const downlink: Record<string, unknown> = { frm_payload: bytes.toString('base64'), f_port: settings.fPort, priority: 'NORMAL' };
    if (settings.confirmed) downlink.confirmed = true;
    return {
      url: `${settings.apiUrl}/api/v3/as/applications/${enc(device.applicationId)}/webhooks/${enc(settings.webhookId)}/devices/${enc(device.deviceId)}/down/${settings.queue}`,
      headers: { ...common, authorization: `Bearer ${apiKey}` },
      body: { downlinks: [downlink] },
    };
  }
  if (device.devEui === undefined) throw new Error('a downlink of ChirpStack needs the DevEUI');
  return {
    url: `${settings.apiUrl}/api/devices/${enc(device.devEui)}/queue`,
    headers: { ...common, 'grpc-metadata-authorization': `Bearer ${apiKey}` },
    body: {
      queueItem: { devEui: device.devEui, confirmed: settings.confirmed, fPort: settings.fPort, data: bytes.toString('base64') },
      flushQueue: settings.queue === 'replace',
    },
  };
}

export const enqueueDownlink: EnqueueDownlink = async (request, options = {}) => {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DOWNLINK_TIMEOUT_MS;
  const doFetch = options.fetch ?? fetch;
  let http: ReturnType<typeof downlinkHttpRequest>;
  try {
    http = downlinkHttpRequest(request);
  } catch (e) {
    return { accepted: false, reason: (e as Error).message };
  }
  let response: Response;
  try {
    response = await doFetch(http.url, { method: 'POST', headers: http.headers, body: JSON.stringify(http.body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    const reason = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `request failed (${err.cause?.code ?? err.name})`;
    return { accepted: false, reason };
  }
  const text = await response.text().catch(() => '');
  if (response.status < 200 || response.status > 299) {
    return { accepted: false, status: response.status, reason: `HTTP ${response.status}${messageOf(text)}` };
  }
  const id = idOf(text);
  return id === undefined ? { accepted: true, status: response.status } : { accepted: true, status: response.status, id };
};

/** The `message` of both servers' error bodies (`{"code", "message", "details"}`), shortened. */
function messageOf(text: string): string {
  try {
    const message = (JSON.parse(text) as { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return `: ${message.slice(0, MAX_REASON)}`;
  } catch {
    // Not JSON: the status says enough.
  }
  return '';
}

/** ChirpStack answers `{"id": "<queue item UUID>"}`; The Things Stack `{}`. */
function idOf(text: string): string | undefined {
  try {
    const id = (JSON.parse(text) as { id?: unknown }).id;
    return typeof id === 'string' && id.length <= 64 ? id : undefined;
  } catch {
    return undefined;
  }
}
