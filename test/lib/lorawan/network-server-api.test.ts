/**
 * Enqueueing downlinks through the network servers' APIs, against the local stand-in over a real socket: the
 * request each server documents, acceptance only on a 2xx, and a reason for everything else that never carries
 * the API key.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DownlinkSettings } from '../../../lib/lorawan/integrations.js';
import { downlinkHttpRequest, enqueueDownlink } from '../../../lib/lorawan/network-server-api.js';
import { startNetworkServerStandIn, type NetworkServerStandIn } from '../../../local/network-server-stand-in.js';
import { closedPort } from '../../helpers/local-sqs.js';

const KEYS = { tts: 'NNSXS.UNITTESTKEY', chirpstack: 'chirpstack-unit-test-key' };
const CONFIG = Buffer.from('{"rate":5}');
const TTS_DEVICE = { deviceId: 'soil-probe-07', applicationId: 'orchard-sensors', devEui: '70b3d57ed0061a2c', tags: {} };
const CS_DEVICE = { devEui: '70b3d57ed0061a2c', deviceId: 'soil-probe-07', tags: {} };

let ns: NetworkServerStandIn;
let settings: DownlinkSettings;

beforeAll(async () => {
  ns = await startNetworkServerStandIn({ apiKeys: KEYS });
  settings = { apiUrl: ns.url, webhookId: 'iotcore-relay', fPort: 10, maxBytes: 51, queue: 'replace', confirmed: false };
});
afterAll(() => ns.close());

describe('the requests', () => {
  it('follow The Things Stack\'s webhook downlink path and body', () => {
    const r = downlinkHttpRequest({ networkServer: 'tts', settings: { ...settings, apiUrl: 'https://eu1.cloud.thethings.network', queue: 'push', confirmed: true }, device: TTS_DEVICE, bytes: CONFIG, apiKey: 'K' });
    expect(r.url).toBe('https://eu1.cloud.thethings.network/api/v3/as/applications/orchard-sensors/webhooks/iotcore-relay/devices/soil-probe-07/down/push');
    expect(r.headers.authorization).toBe('Bearer K');
    expect(r.body).toEqual({ downlinks: [{ frm_payload: CONFIG.toString('base64'), f_port: 10, priority: 'NORMAL', confirmed: true }] });
  });

  it('follow ChirpStack\'s device queue endpoint, with flushQueue for replace', () => {
    const r = downlinkHttpRequest({ networkServer: 'chirpstack', settings: { ...settings, apiUrl: 'https://cs.example.com:8090' }, device: CS_DEVICE, bytes: CONFIG, apiKey: 'K' });
    expect(r.url).toBe('https://cs.example.com:8090/api/devices/70b3d57ed0061a2c/queue');
    expect(r.headers['grpc-metadata-authorization']).toBe('Bearer K');
    expect(r.headers.authorization).toBeUndefined();
    expect(r.body).toEqual({ queueItem: { devEui: '70b3d57ed0061a2c', confirmed: false, fPort: 10, data: CONFIG.toString('base64') }, flushQueue: true });
  });
});

describe('against the stand-in', () => {
  it('is accepted by both, and recorded with its port and bytes', async () => {
    const before = ns.downlinks().length;
    const tts = await enqueueDownlink({ networkServer: 'tts', settings, device: TTS_DEVICE, bytes: CONFIG, apiKey: KEYS.tts });
    const cs = await enqueueDownlink({ networkServer: 'chirpstack', settings: { ...settings, queue: 'push' }, device: CS_DEVICE, bytes: CONFIG, apiKey: KEYS.chirpstack });
    expect(tts).toEqual({ accepted: true, status: 200 });
    expect(cs).toEqual({ accepted: true, status: 200, id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    expect(ns.downlinks().slice(before)).toEqual([
      expect.objectContaining({ networkServer: 'tts', operation: 'replace', deviceId: 'soil-probe-07', applicationId: 'orchard-sensors', fPort: 10, data: CONFIG.toString('base64') }),
      expect.objectContaining({ networkServer: 'chirpstack', operation: 'push', devEui: '70b3d57ed0061a2c', fPort: 10, data: CONFIG.toString('base64'), id: (cs as { id: string }).id }),
    ]);
  });

  it('is not accepted with a wrong key, and the reason carries the server\'s message, not the key', async () => {
    const before = ns.downlinks().length;
    const answer = await enqueueDownlink({ networkServer: 'tts', settings, device: TTS_DEVICE, bytes: CONFIG, apiKey: 'NNSXS.WRONGKEY' });
    expect(answer).toEqual({ accepted: false, status: 401, reason: 'HTTP 401: error:pkg/auth:unauthenticated (invalid API key)' });
    expect(JSON.stringify(answer)).not.toContain('WRONGKEY');
    // A ChirpStack key sent as The Things Stack's does not pass either: each API checks its own header.
    expect((await enqueueDownlink({ networkServer: 'chirpstack', settings, device: CS_DEVICE, bytes: CONFIG, apiKey: KEYS.tts })).accepted).toBe(false);
    expect(ns.downlinks()).toHaveLength(before);
  });

  it('is not accepted while the server refuses, and is again after', async () => {
    ns.refuse(503);
    const refused = await enqueueDownlink({ networkServer: 'chirpstack', settings, device: CS_DEVICE, bytes: CONFIG, apiKey: KEYS.chirpstack });
    ns.refuse(undefined);
    expect(refused).toMatchObject({ accepted: false, status: 503 });
    expect((await enqueueDownlink({ networkServer: 'chirpstack', settings, device: CS_DEVICE, bytes: CONFIG, apiKey: KEYS.chirpstack })).accepted).toBe(true);
  });

  it('refuses a body the servers would refuse', async () => {
    const res = await fetch(`${ns.url}/api/devices/70b3d57ed0061a2c/queue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'grpc-metadata-authorization': `Bearer ${KEYS.chirpstack}` },
      body: JSON.stringify({ queueItem: { fPort: 0, data: 'AQ==' } }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 3, message: 'queueItem.fPort must be an integer from 1 to 223' });
  });
});

describe('when the server cannot answer', () => {
  let hanging: Server;
  beforeAll(async () => {
    // Takes the request and never answers.
    hanging = createServer(() => {});
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    hanging.closeAllConnections();
    await new Promise<void>((resolve) => hanging.close(() => resolve()));
  });

  it('gives up after the timeout', async () => {
    const url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`;
    const started = Date.now();
    const answer = await enqueueDownlink({ networkServer: 'tts', settings: { ...settings, apiUrl: url }, device: TTS_DEVICE, bytes: CONFIG, apiKey: KEYS.tts }, { timeoutMs: 300 });
    expect(answer).toEqual({ accepted: false, reason: 'no answer within 300 ms' });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reports a refused connection', async () => {
    const url = `http://127.0.0.1:${await closedPort()}`;
    const answer = await enqueueDownlink({ networkServer: 'chirpstack', settings: { ...settings, apiUrl: url }, device: CS_DEVICE, bytes: CONFIG, apiKey: KEYS.chirpstack });
    expect(answer).toEqual({ accepted: false, reason: 'request failed (ECONNREFUSED)' });
  });
});
