import { rootCertificates } from 'node:tls';
import { ErrorWithReasonCode } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { classifyConnectError, gatewayConnectOptions, secureContextFor, trustedRoots } from '../../../lib/gateway/connect-options.js';
import { generateTlsMaterial } from '../../../emulator/tls.js';

const params = {
  registry: { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' },
  gatewayId: 'gw-1',
  host: 'us-central1-mqtt.clearblade.com',
  port: 8883,
  jwt: 'header.claims.signature',
  connectTimeoutMs: 5000,
};

describe('gatewayConnectOptions', () => {
  it('is an MQTT 3.1.1, clean, never-reconnecting, verified TLS 1.2+ connection with the gateway client ID', () => {
    const o = gatewayConnectOptions(params);
    expect(o).toMatchObject({
      protocol: 'mqtts',
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      keepalive: 60,
      connectTimeout: 5000,
      username: 'unused',
      password: params.jwt,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
      clientId: 'projects/demo-project/locations/us-central1/registries/demo-registry/devices/gw-1',
    });
    // Without an extra CA, Node's default roots apply.
    expect(o.ca).toBeUndefined();
    expect(o.secureContext).toBeUndefined();
  });

  it("silences mqtt.js's per-packet debug logger unless DEBUG asks for it", () => {
    const saved = process.env.DEBUG;
    try {
      delete process.env.DEBUG;
      const quiet = gatewayConnectOptions(params).log;
      expect(typeof quiet).toBe('function');
      expect(quiet!('anything')).toBeUndefined();
      process.env.DEBUG = 'mqttjs*';
      // mqtt.js then uses its own `debug` logger, which prints what DEBUG selects.
      expect(gatewayConnectOptions(params).log).toBeUndefined();
    } finally {
      if (saved === undefined) delete process.env.DEBUG;
      else process.env.DEBUG = saved;
    }
  });

  it('adds an extra CA to the system roots instead of replacing them', () => {
    const extra = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const ca = trustedRoots(extra)!;
    expect(ca).toHaveLength(rootCertificates.length + 1);
    expect(ca.slice(0, -1)).toEqual([...rootCertificates]);
    expect(ca.at(-1)).toBe(extra);
    expect(trustedRoots(undefined)).toBeUndefined();
  });

  it('builds the TLS context with the extra CA once, and never a bare `ca` that would replace the roots', async () => {
    const { caPem } = await generateTlsMaterial();
    const first = gatewayConnectOptions({ ...params, extraCaPem: caPem });
    const second = gatewayConnectOptions({ ...params, gatewayId: 'gw-2', extraCaPem: caPem });
    expect(first.secureContext).toBeDefined();
    expect(second.secureContext).toBe(first.secureContext);
    expect(first.ca).toBeUndefined();
    expect(secureContextFor(caPem!)).toBe(first.secureContext);
  });
});

describe('classifyConnectError', () => {
  it.each([
    [1, 'ERR_CONNECT_REFUSED'],
    [2, 'ERR_TAKEOVER'],
    [3, 'ERR_CONNECT_REFUSED'],
    [4, 'ERR_CONNECT_REFUSED_AUTH'],
    [5, 'ERR_CONNECT_REFUSED_AUTH'],
  ])('CONNACK %i is %s', (rc, code) => {
    const e = classifyConnectError(new ErrorWithReasonCode(`Connection refused: whatever`, rc), 'host:8883');
    expect(e.code).toBe(code);
    expect(e.message).toContain(`CONNACK ${rc}`);
  });

  it.each([
    ['SELF_SIGNED_CERT_IN_CHAIN', 'ERR_TLS'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'ERR_TLS'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_TLS'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_TLS'],
    ['CERT_HAS_EXPIRED', 'ERR_TLS'],
    ['ECONNREFUSED', 'ERR_CONNECT_REFUSED'],
    ['ENOTFOUND', 'ERR_CONNECT_REFUSED'],
    ['ECONNRESET', 'ERR_CONNECTION_LOST'],
  ])('socket error %s is %s', (errno, code) => {
    const err = Object.assign(new Error('boom'), { code: errno });
    expect(classifyConnectError(err, 'host:8883').code).toBe(code);
  });

  it('a CONNACK timeout is ERR_CONNECT_TIMEOUT', () => {
    expect(classifyConnectError(new Error('connack timeout'), 'host:8883').code).toBe('ERR_CONNECT_TIMEOUT');
  });
});
