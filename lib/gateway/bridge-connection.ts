/**
 * Opening a gateway's connection to the bridge, up to the CONNACK: the TCP and TLS handshakes start at once and run
 * while the JWT is made (on a cold start, while the key is fetched); the link sends CONNECT as soon as the JWT is
 * there; the CONNACK is awaited within the connect timeout and the session's deadline, and every way it can fail is
 * explained as a RelayError (lib/gateway/connect-options.ts names the setting to check).
 *
 * The caller gets the link right after CONNECT is written, so it may pipeline packets behind it before the CONNACK.
 *
 * @example
 * const { link, connacked } = await connectToBridge({ ...address, registry, gatewayId: 'gw-1', jwt, ... });
 * link.subscribe('/devices/gw-1/errors', 0, onSuback); // behind the CONNECT
 * await connacked;
 */
import type { TLSSocket } from 'node:tls';
import { RelayError } from '../errors.js';
import type { RegistryPath } from '../iotcore/topics.js';
import { CHECK_HOST_AND_PORT, classifyConnectError, gatewayConnectFields, openGatewaySocket, type BridgeAddress } from './connect-options.js';
import { LinkClosedError, MqttLink, type Connack, type LinkClose, type MqttLinkOptions } from './mqtt-link.js';
import { connackFailure } from './reason-codes.js';

export interface BridgeConnectionParams extends BridgeAddress {
  registry: RegistryPath;
  gatewayId: string;
  /** The JWT, or the promise of it; a rejection ends the opening with its error. Never logged. */
  jwt: string | Promise<string>;
  /** Rejects when the session stops (its deadline came) while opening. */
  stopped: Promise<never>;
  connectTimeoutMs: number;
  /** Absolute time by which the CONNACK must have come, whatever the connect timeout says (the session's deadline). */
  connackBy: number;
  handlers: Omit<MqttLinkOptions, 'protocolVersion'>;
  /** MQTT 3.1.1 (4, the default) or 5.0. */
  protocolVersion?: 4 | 5;
}

export interface BridgeConnection {
  link: MqttLink;
  /** Resolves on an accepting CONNACK; rejects with the RelayError that explains why not. */
  connacked: Promise<void>;
  /** The JWT's `exp` in ms, to explain a connection the bridge drops later. */
  jwtExpiresAt: number | undefined;
}

export async function connectToBridge(p: BridgeConnectionParams): Promise<BridgeConnection> {
  const where = `${p.host}:${p.port}`;
  const socket = openGatewaySocket(p);
  const socketFailure = failureOf(socket, where);
  let jwt: string;
  try {
    jwt = await Promise.race([Promise.resolve(p.jwt), socketFailure.failed, p.stopped]);
  } catch (e) {
    socketFailure.release();
    // Whatever the socket still reports is moot now; unheard, an 'error' would be thrown.
    socket.on('error', () => undefined);
    socket.destroy();
    throw e;
  }
  // The link listens to the socket from here on.
  socketFailure.release();
  const version = p.protocolVersion ?? 4;
  const link = new MqttLink(socket, { ...p.handlers, protocolVersion: version });
  const connack = link.connect(gatewayConnectFields({ registry: p.registry, gatewayId: p.gatewayId, jwt }));
  const connacked = waitForConnack(connack, where, p.connectTimeoutMs, p.connackBy, version);
  // Awaited by the caller once it has sent what it pipelines; a failure must not go unhandled meanwhile.
  connacked.catch(() => undefined);
  return { link, connacked, jwtExpiresAt: jwtExpiry(jwt) };
}

/** The CONNACK, within the connect timeout and `by`; a refusal or a closed connection is thrown explained. */
async function waitForConnack(connack: Promise<Connack>, where: string, connectTimeoutMs: number, by: number, version: 4 | 5): Promise<void> {
  const bound = Math.min(connectTimeoutMs, by - Date.now());
  const timeout =
    bound < connectTimeoutMs
      ? new RelayError('ERR_DEADLINE', `the invocation deadline came while connecting to ${where}`)
      : new RelayError('ERR_CONNECT_TIMEOUT', `${where} sent no CONNACK within ${connectTimeoutMs} ms; ${CHECK_HOST_AND_PORT}, or raise RELAY_CONNECT_TIMEOUT_MS`);
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await Promise.race([connack, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timeout), Math.max(0, bound))))]);
    if (answer.returnCode !== 0) throw connackFailure(answer, version, where);
  } catch (e) {
    if (!(e instanceof LinkClosedError)) throw e;
    if (e.why.by === 'socket-error') throw classifyConnectError(e.why.error, where);
    throw new RelayError('ERR_CONNECTION_LOST', `${where} closed the connection before CONNACK${e.why.by === 'protocol' ? ` (${e.why.reason})` : ''}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * How a socket failed before the link took it: `failed` rejects with the classified error when it emits `error`, or
 * with ERR_CONNECTION_LOST when it closes. Until `release()`, these listeners are the socket's error handlers, so an
 * early TLS failure ends the opening at once instead of after the JWT.
 */
function failureOf(socket: TLSSocket, where: string): { failed: Promise<never>; release: () => void } {
  let fail!: (e: RelayError) => void;
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  // The first of the two decides: a close after an error does not change the error.
  const onError = (err: Error): void => fail(classifyConnectError(err, where));
  const onClose = (): void => fail(new RelayError('ERR_CONNECTION_LOST', `${where} closed the connection before CONNECT`));
  socket.on('error', onError);
  socket.on('close', onClose);
  return {
    failed,
    release: () => {
      socket.off('error', onError);
      socket.off('close', onClose);
    },
  };
}

/**
 * Why the bridge closed a connection that was open. MQTT 3.1.1 gives a server no way to say why, so this uses what
 * evidence there is: the socket's error, and an expired JWT (the bridge drops the connection once `exp` plus its
 * skew has passed, docs/protocol.md §1.3).
 */
export function lossReason(why: LinkClose, phase: string, jwtExpiresAt: number | undefined): string {
  const detail = why.by === 'socket-error' ? ` (${socketErrorText(why.error)})` : why.by === 'protocol' ? ` (${why.reason})` : '';
  const expired = jwtExpiresAt !== undefined && Date.now() >= jwtExpiresAt ? ', after the gateway JWT expired' : '';
  return `the bridge closed the connection while ${phase}${expired}${detail}`;
}

function socketErrorText(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' || typeof code === 'number' ? String(code) : error.message;
}

/** `exp` of a JWT in ms, read without verifying (only used to explain a dropped connection). */
function jwtExpiry(jwt: string): number | undefined {
  const part = jwt.split('.')[1];
  if (part === undefined) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    const exp = (claims as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}
