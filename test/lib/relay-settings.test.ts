import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRelaySettings } from '../../lib/relay-settings.js';
import { generateTlsMaterial } from '../../emulator/tls.js';
import { thrownRelayError } from '../helpers/relay-error.js';

let dir: string;
let caFile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-settings-'));
  caFile = join(dir, 'ca.pem');
  await writeFile(caFile, (await generateTlsMaterial()).caPem!);
  await writeFile(join(dir, 'not-a-cert.pem'), 'hello');
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const minimal = {
  IOTCORE_PROJECT: 'demo-project',
  IOTCORE_LOCATION: 'us-central1',
  IOTCORE_REGISTRY: 'demo-registry',
  IOTCORE_GATEWAY_IDS: 'gw-1, gw-2',
  IOTCORE_MQTT_HOST: 'bridge.example.com',
  GATEWAY_KEY_SECRET: 'iotcore-relay/gateway-keys',
};

describe('loadRelaySettings', () => {
  it('fills every default from a minimal environment', () => {
    const s = loadRelaySettings(minimal);
    expect(s).toMatchObject({
      registry: { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' },
      gatewayIds: ['gw-1', 'gw-2'],
      mqttHost: 'bridge.example.com',
      mqttPort: 8883,
      extraCaPem: undefined,
      publishWindow: 32,
      subscribeBeforeConnack: true,
      publishRate: 0,
      lateErrorGraceMs: 25,
      mqttVersion: 4,
      jwtLifetimeSeconds: 3600,
      deadLetterQueueUrl: undefined,
      sourceQueueUrl: undefined,
    });
    expect(s.deadlineMarginMs).toBeGreaterThan(0);
    expect(s.backoffMaxSeconds).toBeGreaterThanOrEqual(s.backoffBaseSeconds);
  });

  it('reads every relay setting', () => {
    const s = loadRelaySettings({
      ...minimal,
      IOTCORE_MQTT_HOST: '127.0.0.1',
      IOTCORE_MQTT_PORT: '8443',
      IOTCORE_CA_FILE: caFile,
      IOTCORE_JWT_LIFETIME_MINUTES: '30',
      RELAY_PUBLISH_WINDOW: '8',
      RELAY_CONNECT_TIMEOUT_MS: '3000',
      RELAY_ATTACH_TIMEOUT_MS: '2000',
      RELAY_PUBACK_TIMEOUT_MS: '2500',
      RELAY_CONFIG_TIMEOUT_MS: '4000',
      RELAY_CLOSE_TIMEOUT_MS: '1500',
      RELAY_DEADLINE_MARGIN_MS: '5000',
      RELAY_DEAD_LETTER_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/relay-dlq.fifo',
      RELAY_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/123456789012/relay.fifo',
      RELAY_BACKOFF_BASE_SECONDS: '10',
      RELAY_BACKOFF_MAX_SECONDS: '600',
      RELAY_RETRY_SECONDS: '0',
      RELAY_SUBSCRIBE_BEFORE_CONNACK: 'false',
      RELAY_PUBLISH_RATE: '90',
      RELAY_LATE_ERROR_GRACE_MS: '0',
      RELAY_MQTT_VERSION: '5',
    });
    expect(s).toMatchObject({
      mqttHost: '127.0.0.1',
      mqttPort: 8443,
      caFile,
      jwtLifetimeSeconds: 1800,
      publishWindow: 8,
      connectTimeoutMs: 3000,
      attachTimeoutMs: 2000,
      pubackTimeoutMs: 2500,
      configTimeoutMs: 4000,
      closeTimeoutMs: 1500,
      deadlineMarginMs: 5000,
      deadLetterQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/relay-dlq.fifo',
      sourceQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/relay.fifo',
      backoffBaseSeconds: 10,
      backoffMaxSeconds: 600,
      retrySeconds: 0,
      subscribeBeforeConnack: false,
      publishRate: 90,
      lateErrorGraceMs: 0,
      mqttVersion: 5,
    });
    expect(s.extraCaPem).toContain('-----BEGIN CERTIFICATE-----');
  });

  it.each([
    [{ IOTCORE_PROJECT: undefined }, 'IOTCORE_PROJECT'],
    [{ IOTCORE_PROJECT: 'Demo/Project' }, 'IOTCORE_PROJECT'],
    [{ IOTCORE_LOCATION: '' }, 'IOTCORE_LOCATION'],
    [{ IOTCORE_REGISTRY: 'goog-registry' }, 'IOTCORE_REGISTRY'],
    [{ IOTCORE_GATEWAY_IDS: ' , ' }, 'IOTCORE_GATEWAY_IDS'],
    [{ IOTCORE_GATEWAY_IDS: 'gw-1,gw/2' }, 'IOTCORE_GATEWAY_IDS'],
    [{ IOTCORE_GATEWAY_IDS: 'gw-1,gw-1' }, 'IOTCORE_GATEWAY_IDS'],
    [{ IOTCORE_MQTT_HOST: 'host name' }, 'IOTCORE_MQTT_HOST'],
    [{ IOTCORE_MQTT_HOST: undefined }, 'IOTCORE_MQTT_HOST'],
    [{ IOTCORE_MQTT_PORT: '0' }, 'IOTCORE_MQTT_PORT'],
    [{ IOTCORE_MQTT_PORT: '8883.5' }, 'IOTCORE_MQTT_PORT'],
    [{ IOTCORE_CA_FILE: '/nonexistent/ca.pem' }, 'IOTCORE_CA_FILE'],
    [{ GATEWAY_KEY_SECRET: undefined }, 'GATEWAY_KEY_SECRET'],
    [{ IOTCORE_JWT_LIFETIME_MINUTES: '1441' }, 'IOTCORE_JWT_LIFETIME_MINUTES'],
    [{ RELAY_PUBLISH_WINDOW: '0' }, 'RELAY_PUBLISH_WINDOW'],
    [{ RELAY_RETRY_SECONDS: '-1' }, 'RELAY_RETRY_SECONDS'],
    [{ RELAY_PUBLISH_WINDOW: 'lots' }, 'RELAY_PUBLISH_WINDOW'],
    [{ RELAY_DEAD_LETTER_QUEUE_URL: 'relay-dlq' }, 'RELAY_DEAD_LETTER_QUEUE_URL'],
    [{ RELAY_BACKOFF_BASE_SECONDS: '100', RELAY_BACKOFF_MAX_SECONDS: '50' }, 'RELAY_BACKOFF_MAX_SECONDS'],
    [{ RELAY_BACKOFF_MAX_SECONDS: '43201' }, 'RELAY_BACKOFF_MAX_SECONDS'],
    [{ RELAY_SUBSCRIBE_BEFORE_CONNACK: 'no' }, 'RELAY_SUBSCRIBE_BEFORE_CONNACK'],
    [{ RELAY_PUBLISH_RATE: '-1' }, 'RELAY_PUBLISH_RATE'],
    [{ RELAY_PUBLISH_RATE: '2.5' }, 'RELAY_PUBLISH_RATE'],
    [{ RELAY_PUBLISH_RATE: '10001' }, 'RELAY_PUBLISH_RATE'],
    [{ RELAY_LATE_ERROR_GRACE_MS: '10001' }, 'RELAY_LATE_ERROR_GRACE_MS'],
    [{ RELAY_LATE_ERROR_GRACE_MS: '-1' }, 'RELAY_LATE_ERROR_GRACE_MS'],
    [{ RELAY_MQTT_VERSION: '3' }, 'RELAY_MQTT_VERSION'],
    [{ RELAY_MQTT_VERSION: '5.0' }, 'RELAY_MQTT_VERSION'],
  ])('refuses %j with ERR_CONFIG naming %s', (change, name) => {
    const env = { ...minimal, ...change };
    expect(() => loadRelaySettings(env)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', field: name, message: expect.stringContaining(name) }));
  });

  it('assumes no bridge host: a missing IOTCORE_MQTT_HOST says where to find the G5 host of the region', () => {
    const e = thrownRelayError(() => loadRelaySettings({ ...minimal, IOTCORE_MQTT_HOST: undefined }), 'ERR_CONFIG');
    expect(e.field).toBe('IOTCORE_MQTT_HOST');
    expect(e.message).toMatch(/^IOTCORE_MQTT_HOST must be set: .*G5 host.*Targeting devices.*docs\/deploy\.md/);
  });

  it('lists every missing or wrong variable in one ERR_CONFIG', () => {
    const e = thrownRelayError(
      () =>
        loadRelaySettings({
          IOTCORE_LOCATION: 'US Central',
          IOTCORE_GATEWAY_IDS: 'gw-1,gw-1',
          IOTCORE_MQTT_PORT: '0',
          RELAY_PUBLISH_WINDOW: 'lots',
          RELAY_BACKOFF_BASE_SECONDS: '100',
          RELAY_BACKOFF_MAX_SECONDS: '50',
        }),
      'ERR_CONFIG',
    );
    const named = [
      'IOTCORE_PROJECT',
      'IOTCORE_LOCATION',
      'IOTCORE_REGISTRY',
      'IOTCORE_GATEWAY_IDS',
      'IOTCORE_MQTT_HOST',
      'IOTCORE_MQTT_PORT',
      'GATEWAY_KEY_SECRET',
      'RELAY_BACKOFF_MAX_SECONDS',
      'RELAY_PUBLISH_WINDOW',
    ];
    expect(e.message).toMatch(new RegExp(`^${named.length} settings are wrong: `));
    for (const name of named) expect(e.message).toContain(name);
    expect(e.field!.split(',').sort()).toEqual([...named].sort());
    // Each problem keeps its own reason.
    expect(e.message).toContain('IOTCORE_PROJECT must be set');
    expect(e.message).toContain('IOTCORE_LOCATION must be a region such as us-central1');
    expect(e.message).toContain('IOTCORE_GATEWAY_IDS lists gateway gw-1 twice');
    expect(e.message).toContain('RELAY_BACKOFF_MAX_SECONDS must not be below RELAY_BACKOFF_BASE_SECONDS');
  });

  it('refuses a CA file that holds no certificate', () => {
    expect(() => loadRelaySettings({ ...minimal, IOTCORE_CA_FILE: join(dir, 'not-a-cert.pem') })).toThrow(/holds no PEM certificate/);
  });
});
