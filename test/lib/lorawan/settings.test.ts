/**
 * The settings of the LoRaWAN integrations: templates, the integration list, the secret document, and the webhook
 * secret check.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isRelayError } from '../../../lib/errors.js';
import { integrationSecretsFromEnv, parseSecretDocument } from '../../../lib/lorawan/integration-secrets.js';
import { parseIntegrations } from '../../../lib/lorawan/integrations.js';
import { compileTemplate, DEVICE_PLACEHOLDERS, renderTemplate, SUBFOLDER_PLACEHOLDERS } from '../../../lib/lorawan/templates.js';
import { webhookSecretMatches } from '../../../lib/lorawan/webhook-secret.js';

const dir = mkdtempSync(join(tmpdir(), 'lorawan-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configError(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    if (isRelayError(e) && e.code === 'ERR_CONFIG') return e.message;
    throw e;
  }
  throw new Error('expected ERR_CONFIG');
}

describe('templates', () => {
  it('fill placeholders and tags', () => {
    const t = compileTemplate('lora-{dev_eui}-{tag.row}', DEVICE_PLACEHOLDERS, 'deviceId');
    expect(renderTemplate(t, { dev_eui: '70b3d57ed0061a2c', tags: { row: '7' } }, 'deviceId')).toBe('lora-70b3d57ed0061a2c-7');
    const s = compileTemplate('lorawan/{f_port}', SUBFOLDER_PLACEHOLDERS, 'subfolder');
    expect(renderTemplate(s, { f_port: 2 }, 'subfolder')).toBe('lorawan/2');
  });

  it('refuse unknown placeholders and unbalanced braces when read', () => {
    expect(configError(() => compileTemplate('{f_port}', DEVICE_PLACEHOLDERS, 'deviceId'))).toMatch(/unknown placeholder \{f_port\}/);
    expect(configError(() => compileTemplate('{device_id', DEVICE_PLACEHOLDERS, 'deviceId'))).toMatch(/"\{" without "\}"/);
    expect(configError(() => compileTemplate('a}{device_id}', DEVICE_PLACEHOLDERS, 'deviceId'))).toMatch(/"\}" without "\{"/);
    expect(configError(() => compileTemplate('', DEVICE_PLACEHOLDERS, 'deviceId'))).toMatch(/1 to 256 characters/);
  });

  it('name the placeholder an uplink has no value for', () => {
    const t = compileTemplate('lora-{dev_eui}', DEVICE_PLACEHOLDERS, 'deviceId');
    expect(() => renderTemplate(t, {}, 'deviceId')).toThrow(/needs the DevEUI/);
    const tag = compileTemplate('{tag.iotcore_id}', DEVICE_PLACEHOLDERS, 'deviceId');
    expect(() => renderTemplate(tag, { tags: {} }, 'deviceId')).toThrow(/needs the tag "iotcore_id"/);
  });
});

describe('integrations', () => {
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

describe('the secret document', () => {
  it('reads each integration\'s secrets from a file, and names an integration it lacks', async () => {
    const file = join(dir, 'secrets.json');
    writeFileSync(file, JSON.stringify({ 'farm-ttn': { webhookSecret: 'w'.repeat(24), apiKey: 'NNSXS.KEY' } }));
    const secrets = integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: file })!;
    expect(await secrets.get('farm-ttn')).toEqual({ webhookSecret: 'w'.repeat(24), apiKey: 'NNSXS.KEY' });
    await expect(secrets.get('plant-cs')).rejects.toThrow(/has no entry for integration plant-cs/);
    expect(integrationSecretsFromEnv({})).toBeUndefined();
    expect(configError(() => integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: file, LORAWAN_SECRETS_SECRET: 'x' }))).toMatch(/not both/);
  });

  it('never quotes the document in its refusals', () => {
    const secret = 'super-secret-value-that-must-not-leak';
    for (const text of [`{"a": {"webhookSecret": "${secret}"`, `{"a": {"webhookSecret": "${secret}", "apiKey": 5}}`, `{"a": {"webhookSecret": "short"}, "${secret}": 1}`]) {
      const message = configError(() => parseSecretDocument(text, 'file s.json'));
      expect(message).not.toContain(secret);
    }
    expect(configError(() => parseSecretDocument('{"a": {"webhookSecret": "short"}}', 'file s.json'))).toMatch(/webhookSecret must be a string of 16/);
  });
});

describe('the webhook secret', () => {
  const expected = 'a-webhook-secret-of-some-length';

  it('matches only the exact value', () => {
    expect(webhookSecretMatches(expected, expected)).toBe(true);
    expect(webhookSecretMatches(`${expected} `, expected)).toBe(false);
    expect(webhookSecretMatches(expected.toUpperCase(), expected)).toBe(false);
    // Same length, one character off; and lengths that differ (timingSafeEqual alone would throw on those).
    expect(webhookSecretMatches(`${expected.slice(0, -1)}X`, expected)).toBe(false);
    expect(webhookSecretMatches('a', expected)).toBe(false);
    expect(webhookSecretMatches('x'.repeat(10_000), expected)).toBe(false);
  });

  it('never matches a missing header, nor an empty expected secret', () => {
    expect(webhookSecretMatches(undefined, expected)).toBe(false);
    expect(webhookSecretMatches('', '')).toBe(false);
    expect(webhookSecretMatches(undefined, '')).toBe(false);
  });
});
