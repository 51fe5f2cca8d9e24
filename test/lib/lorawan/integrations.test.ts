import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_DOWNLINK_BYTES, parseIntegrations } from '../../../lib/lorawan/integrations.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

const configError = (run: () => unknown): string => thrownRelayError(run, 'ERR_CONFIG').message;

describe('parseIntegrations', () => {
  const tts = { id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}' };

  it('read defaults and downlink settings', () => {
    const map = parseIntegrations(
      JSON.stringify([
        tts,
        {
          id: 'plant-cs',
          networkServer: 'chirpstack',
          deviceId: 'lora-{dev_eui}',
          payload: 'envelope',
          relayEvents: ['status'],
          secretHeader: 'X-Relay-Token',
          downlink: { apiUrl: 'https://chirpstack.example.com:8090/', fPort: 10, maxBytes: 11, queue: 'push', confirmed: true },
        },
      ]),
    );
    expect(map.get('farm-ttn')).toMatchObject({ payload: 'raw', relayEvents: [], secretHeader: 'x-webhook-secret' });
    expect(map.get('farm-ttn')!.downlink).toBeUndefined();
    expect(map.get('plant-cs')).toMatchObject({
      secretHeader: 'x-relay-token',
      relayEvents: ['status'],
      downlink: { apiUrl: 'https://chirpstack.example.com:8090', fPort: 10, maxBytes: 11, queue: 'push', confirmed: true },
    });
    expect(parseIntegrations('').size).toBe(0);
    expect(parseIntegrations(undefined).size).toBe(0);
  });

  it.each([
    ['not JSON', '[', /not JSON/],
    ['not a list', '{}', /JSON array/],
    ['a bad ID', JSON.stringify([{ ...tts, id: 'Farm TTN' }]), /\.id must be/],
    ['a duplicate ID', JSON.stringify([tts, tts]), /used twice/],
    ['an unknown network server', JSON.stringify([{ ...tts, networkServer: 'loriot' }]), /"tts" or "chirpstack"/],
    ['an unknown setting', JSON.stringify([{ ...tts, payloadMode: 'raw' }]), /payloadMode is not a setting/],
    ['a device ID without placeholder', JSON.stringify([{ ...tts, deviceId: 'one-device' }]), /must use a placeholder/],
    ['a device ID template with a literal +', JSON.stringify([{ ...tts, deviceId: 'lora+{device_id}' }]), /deviceId puts a "\+" into every device ID: IoT Core allows it, but \+ is an MQTT wildcard/],
    ['tags with The Things Stack', JSON.stringify([{ ...tts, deviceId: '{tag.id}' }]), /\{tag.<key>\} is for ChirpStack/],
    ['an unknown payload mode', JSON.stringify([{ ...tts, payload: 'hex' }]), /"raw", "decoded" or "envelope"/],
    ['another stack\'s event', JSON.stringify([{ ...tts, relayEvents: ['status'] }]), /"status" is not an event of tts/],
    ['a reserved secret header', JSON.stringify([{ ...tts, secretHeader: 'X-Downlink-Apikey' }]), /header name of your own/],
    ['an http API URL off this machine', JSON.stringify([{ ...tts, downlink: { apiUrl: 'http://tts.example.com', webhookId: 'w', fPort: 1 } }]), /must be https/],
    ['an API URL with credentials', JSON.stringify([{ ...tts, downlink: { apiUrl: 'https://u:p@tts.example.com', webhookId: 'w', fPort: 1 } }]), /no credentials/],
    ['fPort 0', JSON.stringify([{ ...tts, downlink: { apiUrl: 'https://tts.example.com', webhookId: 'w', fPort: 0 } }]), /fPort must be a whole number from 1 to 223/],
    ['maxBytes over 242', JSON.stringify([{ ...tts, downlink: { apiUrl: 'https://tts.example.com', webhookId: 'w', fPort: 1, maxBytes: 243 } }]), /maxBytes/],
    ['no webhook ID for The Things Stack', JSON.stringify([{ ...tts, downlink: { apiUrl: 'https://tts.example.com', fPort: 1 } }]), /webhookId must name the webhook/],
  ])('refuse %s', (_what, text, message) => {
    expect(configError(() => parseIntegrations(text))).toMatch(message);
  });
});


describe('parseIntegrations, more settings', () => {
  const cs = { id: 'plant-cs', networkServer: 'chirpstack', deviceId: 'lora-{dev_eui}' };
  const one = (entry: Record<string, unknown>) => parseIntegrations(JSON.stringify([entry])).get(entry.id as string)!;

  it('compiles the templates, with lorawan/{event} for relayed events by default', () => {
    const integration = one({ ...cs, subfolder: 'lorawan/{f_port}', relayEvents: ['status', 'join', 'status'] });
    expect(integration.deviceId.source).toBe('lora-{dev_eui}');
    expect(integration.subfolder?.source).toBe('lorawan/{f_port}');
    expect(integration.eventSubfolder.source).toBe('lorawan/{event}');
    expect(integration.relayEvents).toEqual(['status', 'join']);
    expect(one({ ...cs, eventSubfolder: 'events/{event}/{tag.site}' }).eventSubfolder.source).toBe('events/{event}/{tag.site}');
  });

  it('gives a downlink its defaults, and takes http:// only to this machine', () => {
    expect(one({ ...cs, downlink: { apiUrl: 'http://127.0.0.1:8090//', fPort: 223 } }).downlink).toEqual({
      apiUrl: 'http://127.0.0.1:8090',
      fPort: 223,
      maxBytes: DEFAULT_MAX_DOWNLINK_BYTES,
      queue: 'replace',
      confirmed: false,
    });
    expect(one({ ...cs, downlink: { apiUrl: 'http://localhost:8090', fPort: 1, maxBytes: 242 } }).downlink).toMatchObject({ apiUrl: 'http://localhost:8090', maxBytes: 242 });
    expect(one({ id: 'farm-ttn', networkServer: 'tts', deviceId: '{device_id}', downlink: { apiUrl: 'https://eu1.cloud.thethings.network', webhookId: 'iotcore-relay', fPort: 10 } }).downlink).toMatchObject({
      webhookId: 'iotcore-relay',
    });
  });

  it.each([
    ['an entry that is not an object', [5], 'LORAWAN_INTEGRATIONS: [0] must be an object'],
    ['an ID ending in "-"', [{ ...cs, id: 'plant-' }], 'LORAWAN_INTEGRATIONS: [0].id must be 1 to 63 of [a-z0-9-], not starting or ending with "-"'],
    ['a second entry with the same ID', [cs, cs], 'LORAWAN_INTEGRATIONS: [1].id plant-cs is used twice'],
    ['a subfolder with {event}', [{ ...cs, subfolder: 'x/{event}' }], /plant-cs\.subfolder: unknown placeholder \{event\}/],
    ['relayEvents not a list', [{ ...cs, relayEvents: 'status' }], 'LORAWAN_INTEGRATIONS: plant-cs.relayEvents must be an array'],
    ['up as a relayed event', [{ ...cs, relayEvents: ['up'] }], 'LORAWAN_INTEGRATIONS: plant-cs.relayEvents: "up" is not an event of chirpstack (join, ack, txack, status, log, location, integration)'],
    ['a secret header that is no header name', [{ ...cs, secretHeader: 'x secret' }], /plant-cs\.secretHeader must be a header name of your own/],
    ['a downlink that is not an object', [{ ...cs, downlink: [] }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink must be an object'],
    ['an unknown downlink setting', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com', fPort: 1, port: 2 } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.port is not a downlink setting'],
    ['an API URL that is no URL', [{ ...cs, downlink: { apiUrl: 'cs.example.com', fPort: 1 } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.apiUrl must be a URL'],
    ['an API URL with a query', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com/?k=1', fPort: 1 } }], /apiUrl must hold no credentials, query or fragment/],
    ['a queue mode of its own', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com', fPort: 1, queue: 'append' } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.queue must be "replace" or "push"'],
    ['confirmed as text', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com', fPort: 1, confirmed: 'yes' } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.confirmed must be true or false'],
    ['fPort as text', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com', fPort: '1' } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.fPort must be a whole number from 1 to 223'],
    ['a webhook ID for ChirpStack', [{ ...cs, downlink: { apiUrl: 'https://cs.example.com', fPort: 1, webhookId: 'w' } }], 'LORAWAN_INTEGRATIONS: plant-cs.downlink.webhookId is for The Things Stack only'],
  ])('refuse %s', (_what, doc, message) => {
    expect(configError(() => parseIntegrations(JSON.stringify(doc)))).toMatch(message);
  });

  it('cut a long unknown setting name short', () => {
    expect(configError(() => parseIntegrations(JSON.stringify([{ ...cs, ['s'.repeat(100)]: 1 }])))).toBe(`LORAWAN_INTEGRATIONS: [0].${'s'.repeat(40)} is not a setting of an integration`);
  });
});
