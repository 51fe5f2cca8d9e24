import type { AddressInfo } from 'node:net';
import { createServer, rootCertificates, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { classifyConnectError, connackRefusal, gatewayConnectFields, openGatewaySocket, secureContextFor, trustedRoots } from '../../../lib/gateway/connect-options.js';
import { generateTlsMaterial, serverOptions, type TlsMaterial } from '../../../emulator/tls.js';

const params = {
  registry: { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' },
  gatewayId: 'gw-1',
  host: 'us-central1-mqtt.clearblade.com',
  port: 8883,
  jwt: 'header.claims.signature',
};

describe('gatewayConnectFields', () => {
  it('is a clean CONNECT with the gateway client ID, the JWT as password and a 60 s keep-alive', () => {
    expect(gatewayConnectFields(params)).toEqual({
      clean: true,
      keepalive: 60,
      username: 'unused',
      password: Buffer.from(params.jwt),
      clientId: 'projects/demo-project/locations/us-central1/registries/demo-registry/devices/gw-1',
    });
  });

  it('adds an extra CA to the system roots instead of replacing them', () => {
    const extra = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const ca = trustedRoots(extra)!;
    expect(ca).toHaveLength(rootCertificates.length + 1);
    expect(ca.slice(0, -1)).toEqual([...rootCertificates]);
    expect(ca.at(-1)).toBe(extra);
    expect(trustedRoots(undefined)).toBeUndefined();
  });

});

describe('openGatewaySocket', () => {
  let material: TlsMaterial;
  let server: Server;
  let port: number;
  const serverNames: (string | false | null)[] = [];

  beforeAll(async () => {
    material = await generateTlsMaterial();
    server = createServer(serverOptions(material), (socket) => {
      serverNames.push(socket.servername);
      socket.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Resolves with the socket once the handshake is done; rejects with the handshake's error. */
  function handshake(host: string, extraCaPem: string | undefined): Promise<TLSSocket> {
    const socket = openGatewaySocket({ host, port, extraCaPem });
    return new Promise((resolve, reject) => {
      socket.once('secureConnect', () => resolve(socket));
      socket.once('error', reject);
    });
  }

  it('verifies the bridge against the system roots plus the extra CA, over TLS 1.2 or higher, with SNI for a host name only', async () => {
    const byName = await handshake('localhost', material.caPem);
    expect(byName.authorized).toBe(true);
    expect(['TLSv1.2', 'TLSv1.3']).toContain(byName.getProtocol());
    // The server ends each connection once its side of the handshake is done, having noted the SNI it got.
    await new Promise((resolve) => byName.once('close', resolve));
    const byAddress = await handshake('127.0.0.1', material.caPem);
    expect(byAddress.authorized).toBe(true);
    await new Promise((resolve) => byAddress.once('close', resolve));
    expect(serverNames).toEqual(['localhost', false]);
  });

  it("resumes the bridge's TLS session on the next connection with the same address and trust store, and only then", async () => {
    // A server that keeps the connection open, so that its session ticket reaches the client.
    const keeper = createServer(serverOptions(material), () => undefined);
    await new Promise<void>((resolve) => keeper.listen(0, '127.0.0.1', resolve));
    const keeperPort = (keeper.address() as AddressInfo).port;
    const connect = async (host: string, extraCaPem: string): Promise<{ authorized: boolean; reused: boolean }> => {
      const socket = openGatewaySocket({ host, port: keeperPort, extraCaPem });
      const ticket = new Promise((resolve) => socket.once('session', resolve));
      await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
      const seen = { authorized: socket.authorized, reused: socket.isSessionReused() };
      if (!seen.reused) await ticket;
      socket.destroy();
      return seen;
    };
    try {
      expect(await connect('localhost', material.caPem!)).toEqual({ authorized: true, reused: false });
      expect(await connect('localhost', material.caPem!)).toEqual({ authorized: true, reused: true });
      // Another trust store (the same CA plus another root) never resumes a session verified against the first,
      // nor does another name for the same server.
      expect(await connect('localhost', `${material.caPem!}\n${rootCertificates[0]!}`)).toEqual({ authorized: true, reused: false });
      expect(await connect('127.0.0.1', material.caPem!)).toEqual({ authorized: true, reused: false });
    } finally {
      keeper.close();
    }
  });

  it('refuses a certificate the system roots do not vouch for when no extra CA is given', async () => {
    await expect(handshake('localhost', undefined)).rejects.toMatchObject({ code: expect.stringMatching(/CERT|SIGNATURE|ISSUER/) });
  });

  it('builds the trust store with the extra CA once per process, never a bare `ca` that would replace the roots', () => {
    expect(secureContextFor(material.caPem!)).toBe(secureContextFor(material.caPem!));
  });
});

describe('connackRefusal', () => {
  it.each([
    [1, 'ERR_CONNECT_REFUSED'],
    [2, 'ERR_TAKEOVER'],
    [3, 'ERR_CONNECT_REFUSED'],
    [4, 'ERR_CONNECT_REFUSED_AUTH'],
    [5, 'ERR_CONNECT_REFUSED_AUTH'],
  ])('CONNACK %i is %s', (rc, code) => {
    const e = connackRefusal(rc, 'host:8883');
    expect(e.code).toBe(code);
    expect(e.message).toContain(`CONNACK ${rc}`);
  });

  it('a refused JWT names the gateway key and registry settings; server unavailable names nothing to check', () => {
    expect(connackRefusal(4, 'host:8883').message).toMatch(
      /CONNACK 4, bad user name or password; check the gateway's private key \(GATEWAY_KEY_SECRET or GATEWAY_KEY_FILE\).*IOTCORE_PROJECT, IOTCORE_LOCATION, IOTCORE_REGISTRY$/,
    );
    expect(connackRefusal(3, 'host:8883').message).not.toContain('check');
  });
});

describe('classifyConnectError', () => {
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

  it.each([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', /failed: UNABLE_TO_VERIFY_LEAF_SIGNATURE; check IOTCORE_CA_FILE .* and IOTCORE_MQTT_HOST$/],
    ['SELF_SIGNED_CERT_IN_CHAIN', /; check IOTCORE_CA_FILE /],
    ['ERR_TLS_CERT_ALTNAME_INVALID', /; check IOTCORE_MQTT_HOST: the bridge's certificate does not carry that name$/],
    ['ERR_SSL_WRONG_VERSION_NUMBER', /; check IOTCORE_MQTT_PORT: the bridge speaks TLS/],
    ['ECONNREFUSED', /^cannot reach host:8883: ECONNREFUSED; check IOTCORE_MQTT_HOST and IOTCORE_MQTT_PORT$/],
    ['ENOTFOUND', /: ENOTFOUND; check IOTCORE_MQTT_HOST and IOTCORE_MQTT_PORT$/],
  ])('socket error %s names the setting to check', (errno, message) => {
    const err = Object.assign(new Error('boom'), { code: errno });
    expect(classifyConnectError(err, 'host:8883').message).toMatch(message);
  });
});
