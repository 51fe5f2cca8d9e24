/**
 * How a gateway reaches the MQTT bridge: the TLS connection (`openGatewaySocket`), the CONNECT the session's link
 * sends on it (`gatewayConnectFields`), and what a failed connection attempt means. Every setting here is dictated by
 * the bridge (docs/protocol.md §1, docs/design.md rules 5 and 8).
 *
 * @example
 * const socket = openGatewaySocket({ host, port: 8883 });
 * const link = new MqttLink(socket, handlers);
 * const connack = await link.connect(gatewayConnectFields({ registry, gatewayId: 'gw-1', jwt }));
 * if (connack.returnCode !== 0) throw connackRefusal(connack.returnCode, `${host}:8883`);
 */
import { isIP } from 'node:net';
import { connect as tlsConnect, createSecureContext, rootCertificates, type SecureContext, type TLSSocket } from 'node:tls';
import { RelayError } from '../errors.js';
import { clientId, type RegistryPath } from '../iotcore/topics.js';
import type { ConnectFields } from './mqtt-link.js';

/** Where the bridge listens, and what to trust besides the system roots. */
export interface BridgeAddress {
  host: string;
  port: number;
  /** PEM of extra trusted roots (IOTCORE_CA_FILE), added to the system roots. */
  extraCaPem?: string | undefined;
}

export interface GatewayConnectParams {
  registry: RegistryPath;
  gatewayId: string;
  /** The gateway's JWT, sent as the MQTT password. */
  jwt: string;
}

/**
 * The system roots plus `extraCaPem`. Node's `ca` option replaces the default roots rather than adding to them,
 * so the defaults are listed explicitly: trusting a local emulator's CA must never stop the real bridge's
 * DigiCert chain from verifying.
 */
export function trustedRoots(extraCaPem: string | undefined): string[] | undefined {
  return extraCaPem === undefined ? undefined : [...rootCertificates, extraCaPem];
}

const MIN_TLS_VERSION = 'TLSv1.2';
const contexts = new Map<string, SecureContext>();

/**
 * The TLS context trusting the system roots plus `extraCaPem`, built once per process: parsing the ~150 system
 * roots costs about 20 ms, which every session (and every gateway of a batch) would otherwise pay again.
 */
export function secureContextFor(extraCaPem: string): SecureContext {
  let context = contexts.get(extraCaPem);
  if (context === undefined) {
    context = createSecureContext({ ca: trustedRoots(extraCaPem), minVersion: MIN_TLS_VERSION });
    contexts.set(extraCaPem, context);
  }
  return context;
}

/** The gateway's CONNECT (MQTT 3.1.1, the only version the bridge documents, docs/protocol.md §1.1). */
export function gatewayConnectFields(p: GatewayConnectParams): ConnectFields {
  return {
    clientId: clientId(p.registry, p.gatewayId),
    // The bridge ignores the user name, but some stacks drop a password sent without one (§1.2).
    username: 'unused',
    password: Buffer.from(p.jwt),
    // Persistent sessions are not supported (§1.1): attachments and subscriptions live and die with the connection.
    clean: true,
    // The bridge supplies no keep-alive and drops idle connections after 20 minutes; 60 s is its recommendation.
    keepalive: 60,
  };
}

/**
 * Opens the TLS connection to the bridge, before there is a CONNECT to send: the session's link sends it on this
 * socket once the JWT is made. The host name is sent as SNI (never an IP address, RFC 6066 §3) and is the name the
 * certificate must carry; certificates are verified, TLS 1.2 or higher is mandatory (§1.1), and the system roots
 * are trusted, plus `extraCaPem` when one is given.
 */
export function openGatewaySocket(p: BridgeAddress): TLSSocket {
  const resumeKey = `${p.host}\n${p.port}\n${p.extraCaPem ?? ''}`;
  const session = tlsSessions.get(resumeKey);
  const socket = tlsConnect({
    host: p.host,
    port: p.port,
    ...(isIP(p.host) === 0 ? { servername: p.host } : {}),
    rejectUnauthorized: true,
    minVersion: MIN_TLS_VERSION,
    ...(p.extraCaPem === undefined ? {} : { secureContext: secureContextFor(p.extraCaPem) }),
    ...(session === undefined ? {} : { session }),
  });
  // The bridge's session ticket, for the next session of this container to resume with: an abbreviated handshake
  // skips the certificate exchange and its signatures on both sides (and a round trip where TLS 1.2 is spoken).
  // Tickets are kept per address and trust store, so a session is only resumed with the server it was verified with.
  socket.on('session', (ticket: Buffer) => tlsSessions.set(resumeKey, ticket));
  disableNagle(socket);
  return socket;
}

/** The newest TLS session ticket per bridge address and trust store (a few hundred bytes each). */
const tlsSessions = new Map<string, Buffer>();

/**
 * Turns Nagle's algorithm off on the client's socket. Attaches and publishes leave as bursts of small packets;
 * with Nagle on, every packet after the first of a burst waits for the bridge's ACK of the first, which a
 * delayed-ACK peer holds up to 40 ms (Linux). `tls.connect` ignores a `noDelay` option, hence the call.
 */
export function disableNagle(stream: unknown): void {
  (stream as { setNoDelay?: (noDelay: boolean) => unknown } | undefined)?.setNoDelay?.(true);
}

/** CONNACK return codes of MQTT 3.1.1 (§3.2.2.3), as the bridge uses them (docs/protocol.md §1.4). */
const CONNACK_MEANING: Record<number, string> = {
  1: 'unacceptable protocol version',
  2: 'identifier rejected (the bridge may refuse a client ID that another connection holds)',
  3: 'server unavailable',
  4: 'bad user name or password',
  5: 'not authorized',
};

/** Node's certificate and TLS error codes (OpenSSL verify errors and ERR_TLS_* / ERR_SSL_*). */
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|SELF_SIGNED_|DEPTH_ZERO_|HOSTNAME_|INVALID_CA|INVALID_PURPOSE|UNABLE_TO_GET_)/;
const NETWORK_CODE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL']);

/**
 * The settings to check after a failed connection, by what failed: an operator reads the reason in the relay's log
 * line or in a dead letter's `relay.reason`, and should not have to know OpenSSL's codes to act on it.
 */
export const CHECK_HOST_AND_PORT = 'check IOTCORE_MQTT_HOST and IOTCORE_MQTT_PORT';
const CHECK_TRUST = 'check IOTCORE_CA_FILE (a PEM of the root the bridge chains to, added to the system roots) and IOTCORE_MQTT_HOST';
const CHECK_NAME = "check IOTCORE_MQTT_HOST: the bridge's certificate does not carry that name";
const CHECK_TLS_PORT = 'check IOTCORE_MQTT_PORT: the bridge speaks TLS 1.2 or higher on 8883 and 443';
export const CHECK_CREDENTIALS =
  "check the gateway's private key (GATEWAY_KEY_SECRET or GATEWAY_KEY_FILE) against its public key in the registry, " +
  'and IOTCORE_PROJECT, IOTCORE_LOCATION, IOTCORE_REGISTRY';

function tlsHint(code: string): string {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code.startsWith('HOSTNAME_')) return CHECK_NAME;
  if (code.startsWith('ERR_SSL_')) return CHECK_TLS_PORT;
  return CHECK_TRUST;
}

/**
 * What a CONNACK with a non-zero return code means. 4 and 5 are both credential failures: ClearBlade documents 4
 * while Google's bridge answered 5 (docs/protocol.md §1.4).
 */
export function connackRefusal(returnCode: number, where: string): RelayError {
  const meaning = CONNACK_MEANING[returnCode] ?? `return code ${returnCode}`;
  // The gateway's client ID is always well formed (clientId() checks it), so identifier rejected means the one
  // case ClearBlade documents for it: another live connection holds the ID, and the bridge refuses the newer one
  // instead of dropping the older (docs/protocol.md §1.5). That is a takeover seen from the other side.
  const code = returnCode === 4 || returnCode === 5 ? 'ERR_CONNECT_REFUSED_AUTH' : returnCode === 2 ? 'ERR_TAKEOVER' : 'ERR_CONNECT_REFUSED';
  const hint = code === 'ERR_CONNECT_REFUSED_AUTH' ? `; ${CHECK_CREDENTIALS}` : '';
  return new RelayError(code, `${where} refused the connection: CONNACK ${returnCode}, ${meaning}${hint}`);
}

/** What a socket error before the CONNACK means: TLS, an unreachable host, or a connection that broke. */
export function classifyConnectError(err: unknown, where: string): RelayError {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof e?.code === 'string') {
    if (TLS_CODE.test(e.code)) return new RelayError('ERR_TLS', `TLS with ${where} failed: ${e.code}; ${tlsHint(e.code)}`, { cause: err });
    // OpenSSL reports a handshake refused for its protocol version (a server offering only TLS 1.1, say) as EPROTO
    // with the alert in the message: a TLS failure to back off from, not a lost connection to retry at once.
    if (e.code === 'EPROTO') return new RelayError('ERR_TLS', `TLS with ${where} failed: ${message.slice(0, 200)}; ${CHECK_TLS_PORT}`, { cause: err });
    if (NETWORK_CODE.has(e.code)) return new RelayError('ERR_CONNECT_REFUSED', `cannot reach ${where}: ${e.code}; ${CHECK_HOST_AND_PORT}`, { cause: err });
    return new RelayError('ERR_CONNECTION_LOST', `the connection to ${where} failed before CONNACK: ${e.code}`, { cause: err });
  }
  return new RelayError('ERR_CONNECTION_LOST', `the connection to ${where} failed before CONNACK: ${message}`, { cause: err });
}
