import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../../lib/config-store/config-store.js';
import { deliverConfig, type DeliverConfigInput } from '../../../lib/lorawan/config-downlink.js';
import { parseIntegrations, type Integration } from '../../../lib/lorawan/integrations.js';
import { startNetworkServerStandIn, type NetworkServerStandIn } from '../../../local/network-server-stand-in.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../../helpers/local-dynamodb.js';

const KEYS = { tts: 'NNSXS.CONFIG-DOWNLINK', chirpstack: 'cs-config-downlink' };
const NOW = new Date('2025-03-14T08:00:00Z');

let db: LocalDynamoDb;
let ns: NetworkServerStandIn;
let store: ConfigStore;
let integration: Integration;
let chirpstack: Integration;

beforeAll(async () => {
  [db, ns] = await Promise.all([startLocalDynamoDb(), startNetworkServerStandIn({ apiKeys: KEYS })]);
  store = new ConfigStore({ tableName: db.tableName, client: db.client });
  const integrations = parseIntegrations(
    JSON.stringify([
      { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}', downlink: { apiUrl: ns.url, webhookId: 'iotcore-relay', fPort: 10, maxBytes: 8 } },
      { id: 'plant-cs', networkServer: 'chirpstack', deviceId: 'lora-{dev_eui}', downlink: { apiUrl: ns.url, fPort: 11, queue: 'push' } },
    ]),
  );
  integration = integrations.get('farm-ttn')!;
  chirpstack = integrations.get('plant-cs')!;
});
afterAll(async () => {
  await Promise.all([db.stop(), ns.close()]);
});
beforeEach(() => ns.refuse(undefined));

/** Delivery to The Things Stack device `deviceId`, which is also its IoT Core device ID. */
const input = (deviceId: string, changes: Partial<DeliverConfigInput> = {}): DeliverConfigInput => ({
  integration,
  deviceId,
  device: { deviceId, applicationId: 'orchard-sensors', tags: {} },
  store,
  apiKey: KEYS.tts,
  now: NOW,
  ...changes,
});
const sentTo = (deviceId: string) => ns.downlinks().filter((d) => d.deviceId === deviceId);

describe('deliverConfig', () => {
  it('has nothing to send before a config is stored', async () => {
    await expect(deliverConfig(input('probe-none'))).resolves.toEqual({ status: 'no-config' });
    expect(sentTo('probe-none')).toEqual([]);
  });

  it('sends the stored config once, marks it delivered, and sends the next version when it comes', async () => {
    await store.putConfig('probe-1', Buffer.from('{"r":5}'), NOW);
    await expect(deliverConfig(input('probe-1'))).resolves.toEqual({ status: 'sent', version: 1, bytes: 7, marked: true });
    expect(sentTo('probe-1')).toMatchObject([{ networkServer: 'tts', operation: 'replace', applicationId: 'orchard-sensors', webhookId: 'iotcore-relay', fPort: 10, data: Buffer.from('{"r":5}').toString('base64') }]);
    expect((await store.getDownlinkState('probe-1')).delivered).toEqual({ version: 1, at: NOW.toISOString(), via: 'farm-ttn' });

    await expect(deliverConfig(input('probe-1'))).resolves.toEqual({ status: 'up-to-date', version: 1 });
    expect(sentTo('probe-1')).toHaveLength(1);

    await store.putConfig('probe-1', Buffer.from('{"r":6}'), NOW);
    await expect(deliverConfig(input('probe-1'))).resolves.toMatchObject({ status: 'sent', version: 2, marked: true });
    expect(sentTo('probe-1').map((d) => Buffer.from(d.data, 'base64').toString())).toEqual(['{"r":5}', '{"r":6}']);
  });

  it("sends through ChirpStack's API with the integration's own settings", async () => {
    await store.putConfig('lora-70b3d57ed0061a2c', Buffer.from([1, 2, 3]), NOW);
    const outcome = await deliverConfig({ ...input('lora-70b3d57ed0061a2c'), integration: chirpstack, device: { devEui: '70b3d57ed0061a2c', tags: {} }, apiKey: KEYS.chirpstack });
    expect(outcome).toEqual({ status: 'sent', version: 1, bytes: 3, marked: true });
    expect(ns.downlinks().filter((d) => d.devEui === '70b3d57ed0061a2c')).toMatchObject([{ networkServer: 'chirpstack', operation: 'push', fPort: 11, data: 'AQID' }]);
  });

  it('does not send a config over maxBytes, and notes the refusal on the device once per version', async () => {
    await store.putConfig('probe-big', Buffer.alloc(9), NOW);
    await expect(deliverConfig(input('probe-big'))).resolves.toEqual({ status: 'too-large', version: 1, bytes: 9, maxBytes: 8, firstTime: true });
    expect((await store.getDownlinkState('probe-big')).refused).toEqual({
      version: 1,
      reason: 'config version 1 is 9 bytes; integration farm-ttn sends at most 8 per downlink',
      at: NOW.toISOString(),
    });
    await expect(deliverConfig(input('probe-big'))).resolves.toMatchObject({ status: 'too-large', firstTime: false });
    expect(sentTo('probe-big')).toEqual([]);
  });

  it('sends nothing without an API key, and says where to set one', async () => {
    await store.putConfig('probe-nokey', Buffer.from('x'), NOW);
    await expect(deliverConfig(input('probe-nokey', { apiKey: undefined }))).resolves.toEqual({
      status: 'error',
      reason: 'no API key for integration farm-ttn: set apiKey in the secret document',
    });
    expect(sentTo('probe-nokey')).toEqual([]);
  });

  it('leaves the mark where it was when the network server refuses, so the next uplink tries again', async () => {
    await store.putConfig('probe-refused', Buffer.from('x'), NOW);
    ns.refuse(503);
    const refused = await deliverConfig(input('probe-refused'));
    expect(refused).toMatchObject({ status: 'failed', version: 1, httpStatus: 503 });
    expect((await store.getDownlinkState('probe-refused')).delivered).toBeUndefined();

    ns.refuse(undefined);
    await expect(deliverConfig(input('probe-refused'))).resolves.toMatchObject({ status: 'sent', version: 1 });
  });

  it('reports a store it cannot read, naming only the kind of failure', async () => {
    const missing = new ConfigStore({ tableName: 'no-such-table', client: db.client });
    const outcome = await deliverConfig(input('probe-1', { store: missing }));
    expect(outcome).toEqual({ status: 'error', reason: expect.stringMatching(/^the config store could not be read \([A-Za-z_]+\)$/) });
  });

  it('is a defect when the integration has no downlink settings', async () => {
    const plain = parseIntegrations(JSON.stringify([{ id: 'plain', networkServer: 'tts', deviceId: '{device_id}' }])).get('plain')!;
    await expect(deliverConfig(input('probe-1', { integration: plain }))).rejects.toThrow('integration plain has no downlink settings');
  });
});
