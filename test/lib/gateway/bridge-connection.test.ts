import type { IConnectPacket } from 'mqtt-packet';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../../emulator/index.js';
import { generateTlsMaterial, serverOptions, type TlsMaterial } from '../../../emulator/tls.js';
import type { RelayErrorCode } from '../../../lib/errors.js';
import { connectToBridge, lossReason, type BridgeConnection, type BridgeConnectionParams } from '../../../lib/gateway/bridge-connection.js';
import { clientId, errorsTopic } from '../../../lib/iotcore/topics.js';
import { makeFleet, type Fleet } from '../../helpers/emulator-fixtures.js';
import { startRawMqttServer, type RawMqttServer } from '../../helpers/raw-mqtt-server.js';
import { rejectedRelayError } from '../../helpers/relay-error.js';

const registry = { project: 'p', location: 'l', registry: 'r' };
/** A JWT-shaped password whose `exp` is 2,000,000,000 s; nothing here verifies its signature. */
const JWT = `e30.${Buffer.from(JSON.stringify({ exp: 2_000_000_000 })).toString('base64url')}.sig`;
const never = new Promise<never>(() => undefined);

let material: TlsMaterial;
let server: RawMqttServer;
const connections: BridgeConnection[] = [];

beforeAll(async () => {
  material = await generateTlsMaterial();
  server = await startRawMqttServer({ tls: serverOptions(material) });
});
afterEach(() => {
  for (const c of connections.splice(0)) c.link.destroy();
});
afterAll(() => server.close());

function params(o: Partial<BridgeConnectionParams> = {}): BridgeConnectionParams {
  return {
    host: server.host,
    port: server.port,
    extraCaPem: material.caPem,
    registry,
    gatewayId: 'gw-1',
    jwt: JWT,
    stopped: never,
    connectTimeoutMs: 3000,
    connackBy: Date.now() + 10_000,
    handlers: { onMessage: () => undefined, onClose: () => undefined },
    ...o,
  };
}

async function opened(p: BridgeConnectionParams): Promise<BridgeConnection> {
  const c = await connectToBridge(p);
  connections.push(c);
  return c;
}

const where = () => `${server.host}:${server.port}`;

/** A promise and the functions that settle it. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

describe('up to the CONNECT', () => {
  it('ends with the JWT promise error and closes the socket', async () => {
    const jwt = deferred<string>();
    const opening = connectToBridge(params({ jwt: jwt.promise }));
    const peer = await server.nextConnection();
    const keyMissing = new Error('the gateway key could not be read');
    jwt.reject(keyMissing);
    await expect(opening).rejects.toBe(keyMissing);
    await peer.finished;
    expect(peer.packets).toEqual([]);
  });

  it('ends at once with ERR_TLS when the certificate is not trusted, without waiting for the JWT', async () => {
    const started = Date.now();
    const error = await rejectedRelayError(connectToBridge(params({ extraCaPem: undefined, jwt: never })), 'ERR_TLS');
    expect(Date.now() - started).toBeLessThan(2000);
    expect(error.message).toMatch(new RegExp(`^TLS with ${where()} failed: [A-Z_]+; check IOTCORE_CA_FILE`));
  });

  it('ends with ERR_CONNECTION_LOST when the server closes before the JWT is there', async () => {
    const opening = connectToBridge(params({ jwt: never }));
    (await server.nextConnection()).socket.end();
    const error = await rejectedRelayError(opening, 'ERR_CONNECTION_LOST');
    expect(error.message).toBe(`${where()} closed the connection before CONNECT`);
  });

  it("ends with the session's stop while the JWT is being made, and closes the socket", async () => {
    const stop = deferred<never>();
    const opening = connectToBridge(params({ jwt: never, stopped: stop.promise }));
    const peer = await server.nextConnection();
    stop.reject(new Error('deadline'));
    await expect(opening).rejects.toThrow('deadline');
    await peer.finished;
  });
});

describe('the CONNECT and its CONNACK', () => {
  it('sends the CONNECT as soon as the JWT is there, and lets a SUBSCRIBE follow it before the CONNACK', async () => {
    const c = await opened(params());
    c.link.subscribe(errorsTopic('gw-1'), 0, () => undefined);
    const peer = await server.nextConnection();
    const connect = (await peer.packet('connect')) as IConnectPacket;
    await peer.packet('subscribe');
    expect(connect).toMatchObject({ clientId: clientId(registry, 'gw-1'), username: 'unused', keepalive: 60, clean: true, protocolVersion: 4 });
    expect(Buffer.from(connect.password!).toString()).toBe(JWT);
    expect(c.jwtExpiresAt).toBe(2_000_000_000_000);
    peer.send({ cmd: 'connack', returnCode: 0, sessionPresent: false });
    await expect(c.connacked).resolves.toBeUndefined();
  });

  it.each([
    [1, 'ERR_CONNECT_REFUSED', 'unacceptable protocol version'],
    [2, 'ERR_TAKEOVER', 'identifier rejected'],
    [3, 'ERR_CONNECT_REFUSED', 'server unavailable'],
    [4, 'ERR_CONNECT_REFUSED_AUTH', 'bad user name or password'],
    [5, 'ERR_CONNECT_REFUSED_AUTH', 'not authorized'],
  ] as const)('turns CONNACK %i into %s', async (returnCode, code: RelayErrorCode, meaning) => {
    const c = await opened(params());
    const peer = await server.nextConnection();
    await peer.packet('connect');
    peer.send({ cmd: 'connack', returnCode, sessionPresent: false });
    const error = await rejectedRelayError(c.connacked, code);
    expect(error.message).toContain(`${where()} refused the connection: CONNACK ${returnCode}, ${meaning}`);
    expect(error.message.includes("check the gateway's private key")).toBe(code === 'ERR_CONNECT_REFUSED_AUTH');
  });

  it('fails with ERR_CONNECTION_LOST when the connection closes before the CONNACK', async () => {
    const c = await opened(params());
    const peer = await server.nextConnection();
    await peer.packet('connect');
    peer.socket.end();
    const error = await rejectedRelayError(c.connacked, 'ERR_CONNECTION_LOST');
    expect(error.message).toBe(`${where()} closed the connection before CONNACK`);
  });

  it('names the protocol fault when the server sends garbage before the CONNACK', async () => {
    const c = await opened(params());
    const peer = await server.nextConnection();
    await peer.packet('connect');
    peer.sendRaw(Buffer.from([0x00, 0x00]));
    const error = await rejectedRelayError(c.connacked, 'ERR_CONNECTION_LOST');
    expect(error.message).toBe(`${where()} closed the connection before CONNACK (unreadable packet from the bridge: Not supported)`);
  });

  it('fails with ERR_CONNECT_TIMEOUT when no CONNACK comes within the connect timeout', async () => {
    const started = Date.now();
    const c = await opened(params({ connectTimeoutMs: 300 }));
    await (await server.nextConnection()).packet('connect');
    const error = await rejectedRelayError(c.connacked, 'ERR_CONNECT_TIMEOUT');
    expect(error.message).toBe(`${where()} sent no CONNACK within 300 ms; check IOTCORE_MQTT_HOST and IOTCORE_MQTT_PORT, or raise RELAY_CONNECT_TIMEOUT_MS`);
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('fails with ERR_DEADLINE when the session deadline comes before the connect timeout', async () => {
    const started = Date.now();
    const c = await opened(params({ connectTimeoutMs: 5000, connackBy: Date.now() + 400 }));
    const error = await rejectedRelayError(c.connacked, 'ERR_DEADLINE');
    expect(error.message).toBe(`the invocation deadline came while connecting to ${where()}`);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('against the emulator', () => {
  let fleet: Fleet;
  let emulator: Emulator;

  beforeAll(async () => {
    fleet = await makeFleet({ gateways: [{ id: 'gw-open' }] });
    emulator = await startEmulator({ registry: fleet.document, adminPort: null });
  });
  afterEach(() => emulator.clearFaults());
  afterAll(() => emulator.close());

  const emulatorParams = async (o: Partial<BridgeConnectionParams> = {}) =>
    params({ host: emulator.host, port: emulator.port, extraCaPem: emulator.ca, registry: { project: fleet.project, location: fleet.location, registry: fleet.registryId }, gatewayId: 'gw-open', jwt: fleet.jwt('gw-open'), ...o });

  it('connects with a JWT still being made, and knows when it expires', async () => {
    const c = await opened(await emulatorParams());
    await expect(c.connacked).resolves.toBeUndefined();
    expect(c.link.isOpen).toBe(true);
    expect(c.jwtExpiresAt).toBeGreaterThan(Date.now());
  });

  it.each([
    [2, 'ERR_TAKEOVER'],
    [3, 'ERR_CONNECT_REFUSED'],
    [5, 'ERR_CONNECT_REFUSED_AUTH'],
  ] as const)('turns the emulator CONNACK %i into %s', async (refusal, code: RelayErrorCode) => {
    emulator.setFaults({ refuseConnect: refusal });
    const c = await opened(await emulatorParams());
    await rejectedRelayError(c.connacked, code);
  });

  it('is refused with ERR_CONNECT_REFUSED_AUTH for a JWT that does not verify', async () => {
    const c = await opened(await emulatorParams({ jwt: JWT }));
    const error = await rejectedRelayError(c.connacked, 'ERR_CONNECT_REFUSED_AUTH');
    expect(error.message).toContain('IOTCORE_REGISTRY');
  });
});

describe('lossReason', () => {
  it('names the phase, the socket error code, or the protocol fault', () => {
    expect(lossReason({ by: 'peer' }, 'publishing', undefined)).toBe('the bridge closed the connection while publishing');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(lossReason({ by: 'socket-error', error: reset }, 'attaching', undefined)).toBe('the bridge closed the connection while attaching (ECONNRESET)');
    expect(lossReason({ by: 'socket-error', error: new Error('broken pipe') }, 'attaching', undefined)).toBe('the bridge closed the connection while attaching (broken pipe)');
    expect(lossReason({ by: 'protocol', reason: 'the bridge sent SUBSCRIBE' }, 'detaching', undefined)).toBe('the bridge closed the connection while detaching (the bridge sent SUBSCRIBE)');
  });

  it('says the JWT had expired only once it has', () => {
    expect(lossReason({ by: 'peer' }, 'publishing', Date.now() - 1)).toBe('the bridge closed the connection while publishing, after the gateway JWT expired');
    expect(lossReason({ by: 'peer' }, 'publishing', Date.now() + 60_000)).toBe('the bridge closed the connection while publishing');
    const reset = Object.assign(new Error('x'), { code: 'EPIPE' });
    expect(lossReason({ by: 'socket-error', error: reset }, 'publishing', 0)).toBe('the bridge closed the connection while publishing, after the gateway JWT expired (EPIPE)');
  });
});

describe('jwtExpiresAt', () => {
  it.each([
    ['no payload part', 'opaque'],
    ['a payload that is not JSON', 'e30.bm90IGpzb24.sig'],
    ['no exp claim', `e30.${Buffer.from('{"iat":1}').toString('base64url')}.sig`],
    ['an exp that is not a number', `e30.${Buffer.from('{"exp":"soon"}').toString('base64url')}.sig`],
  ])('is undefined for a JWT with %s', async (_label, jwt) => {
    const c = await opened(params({ jwt }));
    expect(c.jwtExpiresAt).toBeUndefined();
  });
});
