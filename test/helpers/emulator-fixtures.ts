/**
 * Factories for tests that run against the bridge emulator: device keys in every credential format, a registry
 * document with gateways, devices and bindings, device JWTs (valid, or broken in one chosen way), and MQTT
 * clients connected over real TLS with the emulator's CA trusted explicitly.
 *
 * Key generation is the slow part (RSA especially): make a fleet once per file, in `beforeAll`.
 *
 * @example
 * const fleet = await makeFleet({ gateways: [{ id: 'gw-1', bound: ['pump-1'] }], devices: ['pump-1'] });
 * const emulator = await startEmulator({ registry: fleet.document, adminPort: null });
 * const gw = await connectDevice(emulator, fleet, 'gw-1');
 * expect(await publishOutcome(gw, '/devices/pump-1/attach', '{}')).toBe('acked');
 */
import { connect as tlsConnect } from 'node:tls';
import { connect as tcpConnect } from 'node:net';
import type { Socket } from 'node:net';
import { SignJWT } from 'jose';
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import { clientId as buildClientId } from '../../lib/iotcore/topics.js';
import { generateGatewayKeyPair } from '../../lib/keys/key-pair.js';
import type { GatewayKeyPair } from '../../lib/keys/key-pair.js';
import { selfSignedCertificate } from '../../lib/keys/self-signed-certificate.js';
import type { Emulator } from '../../emulator/index.js';
import type { DeviceCredential, DeviceInput, GatewayAuthMethod, KeyFormat, RegistryDocument } from '../../emulator/registry.js';

export type DeviceAlg = 'ES256' | 'RS256';

export interface DeviceKey {
  alg: DeviceAlg;
  /** The credential format registered for this key. */
  format: KeyFormat;
  pair: GatewayKeyPair;
  /** What goes into the credential: the SPKI public key, or a self-signed certificate for the X509 formats. */
  credentialPem: string;
}

/** A key pair and its credential; `x509` registers a self-signed certificate (RSA_X509_PEM / ES256_X509_PEM). */
export async function makeDeviceKey(alg: DeviceAlg = 'ES256', options: { x509?: boolean; commonName?: string } = {}): Promise<DeviceKey> {
  const pair = await generateGatewayKeyPair(alg);
  if (options.x509) {
    const credentialPem = await selfSignedCertificate(pair, { commonName: options.commonName ?? 'test-device' });
    return { alg, format: alg === 'RS256' ? 'RSA_X509_PEM' : 'ES256_X509_PEM', pair, credentialPem };
  }
  return { alg, format: alg === 'RS256' ? 'RSA_PEM' : 'ES256_PEM', pair, credentialPem: pair.publicKeyPem };
}

export function credentialOf(key: DeviceKey, expirationTime?: string): DeviceCredential {
  return { publicKey: { format: key.format, key: key.credentialPem }, ...(expirationTime ? { expirationTime } : {}) };
}

export interface JwtOverrides {
  /** Header alg; anything but the key's own alg makes a token the bridge must refuse. */
  alg?: string;
  /** Header typ; null leaves it out. */
  typ?: string | null;
  /** Claim aud; undefined in the overrides object (`{ aud: undefined }`) leaves it out. */
  aud?: unknown;
  /** Seconds since epoch; default now. */
  iat?: number;
  /** Seconds since epoch; default iat + lifetimeSeconds. */
  exp?: number;
  /** Default 3600. */
  lifetimeSeconds?: number;
  claims?: Record<string, unknown>;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** A device JWT as the bridge expects it ({alg, typ: JWT}, iat, exp, aud = project), with any part overridden. */
export async function signDeviceJwt(key: DeviceKey, project: string, overrides: JwtOverrides = {}): Promise<string> {
  const iat = overrides.iat ?? nowSeconds();
  const exp = overrides.exp ?? iat + (overrides.lifetimeSeconds ?? 3600);
  const claims: Record<string, unknown> = { iat, exp, ...overrides.claims };
  if (!('aud' in overrides)) claims['aud'] = project;
  else if (overrides.aud !== undefined) claims['aud'] = overrides.aud;
  const header: { alg: string; typ?: string } = { alg: overrides.alg ?? key.alg };
  if (overrides.typ !== null) header.typ = overrides.typ ?? 'JWT';
  if (header.alg !== key.alg) {
    // jose will not sign with a mismatched alg; a token claiming another alg is assembled by hand, its signature
    // made with the real key so only the header is wrong.
    const body = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const real = await new SignJWT(claims).setProtectedHeader({ alg: key.alg }).sign(key.pair.keys.privateKey);
    return `${body}.${real.split('.')[2]}`;
  }
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.pair.keys.privateKey);
}

const b64url = (s: string): string => Buffer.from(s).toString('base64url');

export interface GatewaySpec {
  id: string;
  /** Default ASSOCIATION_ONLY. */
  authMethod?: GatewayAuthMethod;
  /** Devices bound to this gateway. */
  bound?: string[];
}

export interface DeviceSpec {
  id: string;
  /** Key algorithm; default the fleet's. */
  alg?: DeviceAlg;
  /** Register the key as a self-signed certificate. */
  x509?: boolean;
  /** No credentials at all (a device only ever reached through an association-only gateway). */
  keyless?: boolean;
  blocked?: boolean;
  /** Initial config, as text. */
  config?: string;
}

export interface FleetSpec {
  project?: string;
  location?: string;
  registryId?: string;
  /** Default ES256 (fast); RS256 keys take a while to generate. */
  alg?: DeviceAlg;
  gateways?: GatewaySpec[];
  devices?: (string | DeviceSpec)[];
  /** Registry fields (eventNotificationConfigs, mqttConfig, ...). */
  registry?: Omit<RegistryDocument['registries'][number], 'id' | 'devices' | 'bindings'>;
}

export interface Fleet {
  project: string;
  location: string;
  registryId: string;
  document: RegistryDocument;
  /** Keys by device ID (keyless devices have none). */
  keys: Record<string, DeviceKey>;
  /** The MQTT client ID of a device. */
  clientId(deviceId: string): string;
  /** A JWT for a device, signed with its key. */
  jwt(deviceId: string, overrides?: JwtOverrides): Promise<string>;
}

export const TEST_PROJECT = 'test-project';
export const TEST_LOCATION = 'us-central1';
export const TEST_REGISTRY = 'test-registry';

export async function makeFleet(spec: FleetSpec): Promise<Fleet> {
  const project = spec.project ?? TEST_PROJECT;
  const location = spec.location ?? TEST_LOCATION;
  const registryId = spec.registryId ?? TEST_REGISTRY;
  const keys: Record<string, DeviceKey> = {};
  const devices: DeviceInput[] = [];
  for (const g of spec.gateways ?? []) {
    const key = await makeDeviceKey(spec.alg ?? 'ES256', { commonName: g.id });
    keys[g.id] = key;
    devices.push({
      id: g.id,
      credentials: [credentialOf(key)],
      gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: g.authMethod ?? 'ASSOCIATION_ONLY' },
    });
  }
  for (const entry of spec.devices ?? []) {
    const d: DeviceSpec = typeof entry === 'string' ? { id: entry } : entry;
    const input: DeviceInput = { id: d.id, credentials: [] };
    if (!d.keyless) {
      const key = await makeDeviceKey(d.alg ?? spec.alg ?? 'ES256', { x509: d.x509 ?? false, commonName: d.id });
      keys[d.id] = key;
      input.credentials = [credentialOf(key)];
    }
    if (d.blocked) input.blocked = true;
    if (d.config !== undefined) input.config = { binaryData: Buffer.from(d.config).toString('base64') };
    devices.push(input);
  }
  const bindings = (spec.gateways ?? []).flatMap((g) => (g.bound ?? []).map((deviceId) => ({ gatewayId: g.id, deviceId })));
  const document: RegistryDocument = {
    project,
    location,
    registries: [{ ...spec.registry, id: registryId, devices, bindings }],
  };
  const path = { project, location, registry: registryId };
  return {
    project,
    location,
    registryId,
    document,
    keys,
    clientId: (deviceId) => buildClientId(path, deviceId),
    jwt: (deviceId, overrides) => {
      const key = keys[deviceId];
      if (key === undefined) throw new Error(`fixture: ${deviceId} has no key`);
      return signDeviceJwt(key, project, overrides);
    },
  };
}

// --- MQTT clients ---------------------------------------------------------------------------------------------

/** What connecting as a device takes: its client ID and a JWT for it (a Fleet has both). */
export type DeviceIdentity = Pick<Fleet, 'clientId' | 'jwt'>;

/** Where the bridge listens and which CA to trust: an Emulator, or what the CLI printed. */
export type BridgeEndpoint = Pick<Emulator, 'mqttUrl' | 'host' | 'port' | 'ca'>;

/** Client options for a device of the fleet: MQTT 3.1.1, TLS verified against the emulator's CA, no reconnect. */
export async function deviceClientOptions(emulator: BridgeEndpoint, fleet: DeviceIdentity, deviceId: string, overrides: IClientOptions = {}): Promise<IClientOptions> {
  return {
    protocolVersion: 4,
    clientId: fleet.clientId(deviceId),
    username: 'unused',
    password: overrides.password === undefined ? await fleet.jwt(deviceId) : overrides.password,
    clean: true,
    keepalive: 60,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...(emulator.ca !== undefined ? { ca: emulator.ca } : {}),
    ...overrides,
  };
}

/** A connected client, or a rejection whose `code` is the CONNACK return code. */
export async function connectDevice(emulator: BridgeEndpoint, fleet: DeviceIdentity, deviceId: string, overrides: IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(emulator.mqttUrl, await deviceClientOptions(emulator, fleet, deviceId, overrides));
  // The emulator closes connections on purpose; a test that expects it listens for 'close'.
  client.on('error', () => {});
  return client;
}

/** The CONNACK return code a CONNECT gets (0 = accepted; the client is then ended). */
export async function connackCode(emulator: BridgeEndpoint, fleet: DeviceIdentity, deviceId: string, overrides: IClientOptions = {}): Promise<number> {
  try {
    const client = await connectDevice(emulator, fleet, deviceId, overrides);
    await client.endAsync();
    return 0;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw e;
  }
}

/** Resolves when a connected client's connection closes (at once if it already has); rejects after `timeoutMs`. */
export function closed(client: MqttClient, timeoutMs = 5_000): Promise<void> {
  if (!client.connected) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => client.once('close', () => resolve())), timeoutMs, 'connection did not close');
}

export type PublishOutcome = 'acked' | 'unacked' | 'closed' | 'timeout';

/**
 * An UNSUBSCRIBE of a filter nobody uses: the bridge answers it (UNSUBACK) in order with everything before it, so
 * once its answer is in, a PUBACK that has not come for an earlier publish never will.
 */
export const BARRIER_FILTER = '/devices/probe-barrier/none';

/**
 * Publishes (QoS 1 by default) and reports what came back: the PUBACK (`acked`), the bridge's answer to a later
 * packet with no PUBACK before it (`unacked`: it will not come), the connection closing, or nothing at all within
 * `timeoutMs`. The check costs one extra UNSUBSCRIBE, which counts toward `closeAfterPackets`; pass
 * `barrier: false` to wait for the timeout instead.
 */
export function publishOutcome(
  client: MqttClient,
  topic: string,
  payload: string | Buffer,
  options: { qos?: 0 | 1 | 2; retain?: boolean; timeoutMs?: number; barrier?: boolean } = {},
): Promise<PublishOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs ?? 3_000);
    const onClose = (): void => finish('closed');
    function finish(outcome: PublishOutcome): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      client.off('close', onClose);
      resolve(outcome);
    }
    // Tests await many outcomes on one client at once, each with its own close listener, removed when it settles.
    client.setMaxListeners(Math.max(client.getMaxListeners(), client.listenerCount('close') + 2));
    client.once('close', onClose);
    client.publish(topic, payload, { qos: options.qos ?? 1, retain: options.retain ?? false }, (err) => {
      if (err === undefined || err === null) finish('acked');
    });
    if (options.barrier !== false) {
      client.unsubscribe(BARRIER_FILTER, (err) => {
        if (!err) finish('unacked');
      });
    }
  });
}

/** The next message on a topic matching the filter (exact topic or `#`-suffix prefix); rejects after `timeoutMs`. */
export function nextMessage(client: MqttClient, topicFilter: string, timeoutMs = 3_000): Promise<{ topic: string; payload: Buffer; qos: number; dup: boolean }> {
  const matches = (t: string): boolean => (topicFilter.endsWith('/#') ? t === topicFilter.slice(0, -2) || t.startsWith(topicFilter.slice(0, -1)) : t === topicFilter);
  return withTimeout(
    new Promise((resolve) => {
      const onMessage = (topic: string, payload: Buffer, packet: { qos: number; dup: boolean }): void => {
        if (!matches(topic)) return;
        client.off('message', onMessage);
        resolve({ topic, payload, qos: packet.qos, dup: packet.dup });
      };
      client.on('message', onMessage);
    }),
    timeoutMs,
    `no message on ${topicFilter}`,
  );
}

/** Every message received from now on (a live array). */
export function collectMessages(client: MqttClient): { topic: string; payload: Buffer; qos: number }[] {
  const seen: { topic: string; payload: Buffer; qos: number }[] = [];
  client.on('message', (topic, payload, packet) => seen.push({ topic, payload, qos: packet.qos }));
  return seen;
}

/** Gateway error messages received (parsed JSON), for a client subscribed to its errors topic. */
export function collectErrors(client: MqttClient, gatewayId: string): Record<string, unknown>[] {
  const errors: Record<string, unknown>[] = [];
  client.on('message', (topic, payload) => {
    if (topic === `/devices/${gatewayId}/errors`) errors.push(JSON.parse(payload.toString('utf8')) as Record<string, unknown>);
  });
  return errors;
}

/** The granted QoS list of a SUBSCRIBE, in request order (128 = refused). */
export async function subscribeGranted(client: MqttClient, topics: Record<string, { qos: 0 | 1 | 2 }>): Promise<number[]> {
  try {
    const granted = await client.subscribeAsync(topics);
    return granted.map((g) => g.qos);
  } catch (e) {
    // mqtt.js rejects when any topic was refused; the SUBACK rides on the error.
    const granted = (e as { packet?: { granted?: unknown } }).packet?.granted;
    if (Array.isArray(granted)) return granted.map((g) => (typeof g === 'number' ? g : (g as { qos: number }).qos));
    throw e;
  }
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls until `check` returns true; rejects after `timeoutMs`. */
export async function eventually(check: () => boolean, timeoutMs = 3_000, message = 'condition not met'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(message);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// --- a raw MQTT session, for what a well-behaved client library will not do -----------------------------------

export interface RawSession {
  /** Sends any packet, including ones a library refuses to produce (protocol level 3 or 5, no PUBACK). */
  send(packet: Packet): void;
  /** Sends packets in one write, so that they reach the bridge together (a CONNECT and what follows it, say). */
  sendTogether(...packets: Packet[]): void;
  /** The next packet from the bridge; rejects after `timeoutMs` or when the connection closes first. */
  next(timeoutMs?: number): Promise<Packet>;
  /** Resolves when the bridge closes the connection. */
  readonly closed: Promise<void>;
  end(): void;
}

/**
 * A bare TLS (or TCP) connection speaking MQTT through mqtt-packet, for tests of what client libraries never send:
 * a protocol level the bridge refuses, or a subscriber that withholds its PUBACKs.
 */
export async function rawSession(emulator: BridgeEndpoint, protocolVersion: 3 | 4 | 5 = 4): Promise<RawSession> {
  const socket: Socket = await new Promise((resolve, reject) => {
    const s =
      emulator.ca !== undefined
        ? tlsConnect({ host: emulator.host, port: emulator.port, ca: emulator.ca }, () => resolve(s))
        : tcpConnect({ host: emulator.host, port: emulator.port }, () => resolve(s));
    s.once('error', reject);
  });
  const parser = mqttPacket.parser({ protocolVersion });
  const inbox: Packet[] = [];
  const waiting: ((p: Packet | undefined) => void)[] = [];
  let isClosed = false;
  parser.on('packet', (p: Packet) => {
    const w = waiting.shift();
    if (w) w(p);
    else inbox.push(p);
  });
  socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  socket.on('error', () => {});
  const closedPromise = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      for (const w of waiting.splice(0)) w(undefined);
      resolve();
    }),
  );
  return {
    send: (packet) => socket.write(mqttPacket.generate(packet, { protocolVersion })),
    sendTogether: (...packets) => socket.write(Buffer.concat(packets.map((p) => mqttPacket.generate(p, { protocolVersion })))),
    next: (timeoutMs = 3_000) => {
      const queued = inbox.shift();
      if (queued) return Promise.resolve(queued);
      if (isClosed) return Promise.reject(new Error('connection closed'));
      const waiter = (p: Packet | undefined): void => settle(p);
      let settle: (p: Packet | undefined) => void = () => {};
      const answer = new Promise<Packet>((resolve, reject) => {
        settle = (p) => (p ? resolve(p) : reject(new Error('connection closed')));
      });
      waiting.push(waiter);
      // A wait that timed out must not take the next packet: it would be lost to the caller's next wait.
      return withTimeout(answer, timeoutMs, 'no packet from the bridge').finally(() => {
        const i = waiting.indexOf(waiter);
        if (i >= 0) waiting.splice(i, 1);
      });
    },
    closed: closedPromise,
    end: () => socket.destroy(),
  };
}

/** A raw CONNECT for a fleet device. */
export async function rawConnectPacket(fleet: DeviceIdentity, deviceId: string, overrides: Partial<mqttPacket.IConnectPacket> = {}): Promise<mqttPacket.IConnectPacket> {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clientId: fleet.clientId(deviceId),
    clean: true,
    keepalive: 60,
    username: 'unused',
    password: Buffer.from(await fleet.jwt(deviceId)),
    ...overrides,
  };
}
