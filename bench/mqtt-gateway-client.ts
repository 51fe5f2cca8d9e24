/**
 * A gateway connection made with mqtt.js the way a hand-written client would make it, for the clients the relay is
 * compared with. It shares nothing with the relay's own session code (lib/gateway/): only the facts the bridge
 * imposes (MQTT 3.1.1, the client ID path, a non-empty user name, the JWT as password, clean session, TLS verified)
 * and, when asked, the relay's trust store (`secureContextFor`), so that both verify against the same certificates.
 *
 * @example
 * const client = await connectGateway({ endpoint, registry, gatewayId: 'gw-bench', jwt });
 * await within(5000, 'attach', client.publishAsync('/devices/sensor-0001/attach', '{}', { qos: 1 }));
 */
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import { secureContextFor } from '../lib/gateway/connect-options.js';
import { clientId, type RegistryPath } from '../lib/iotcore/topics.js';

/** Where the bridge (or the proxy in front of it) listens, and the CA its certificate chains to. */
export interface BridgeEndpoint {
  host: string;
  port: number;
  caPem: string;
}

export interface GatewayConnectParams {
  endpoint: BridgeEndpoint;
  registry: RegistryPath;
  gatewayId: string;
  jwt: string;
  /** Turn Nagle's algorithm off on the socket (the relay does; a sample leaves the default). */
  noDelay?: boolean;
  /**
   * What the client trusts: the endpoint's CA alone (default; what the samples do, with a roots file of their own),
   * or the system roots plus that CA, built once per process, which is what the relay trusts with IOTCORE_CA_FILE
   * set and what any client of the real bridge pays for (Node's default roots). Parsing the ~150 system roots costs
   * about 20 ms, once per process.
   */
  trust?: 'endpoint-ca' | 'system-roots-and-endpoint-ca';
  timeoutMs?: number;
}

export function connectGateway(p: GatewayConnectParams): Promise<MqttClient> {
  const client = mqtt.connect({
    protocol: 'mqtts',
    host: p.endpoint.host,
    port: p.endpoint.port,
    ...(p.trust === 'system-roots-and-endpoint-ca' ? { secureContext: secureContextFor(p.endpoint.caPem) } : { ca: [p.endpoint.caPem] }),
    rejectUnauthorized: true,
    protocolVersion: 4,
    clientId: clientId(p.registry, p.gatewayId),
    username: 'unused',
    password: p.jwt,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: p.timeoutMs ?? 10_000,
    keepalive: 60,
  });
  if (p.noDelay === true) (client.stream as { setNoDelay?: (on: boolean) => unknown } | undefined)?.setNoDelay?.(true);
  return new Promise<MqttClient>((resolve, reject) => {
    const onConnect = (): void => {
      client.off('error', onError);
      client.off('close', onClose);
      resolve(client);
    };
    const onError = (e: Error): void => {
      client.off('connect', onConnect);
      client.off('close', onClose);
      client.end(true);
      reject(e);
    };
    const onClose = (): void => {
      client.off('connect', onConnect);
      client.off('error', onError);
      reject(new Error('the bridge closed the connection before CONNACK'));
    };
    client.once('connect', onConnect);
    client.once('error', onError);
    client.once('close', onClose);
  });
}

/**
 * `work`, or a rejection after `ms`. A failed attach gets no PUBACK from the bridge (only a message on the errors
 * topic), so every wait on an acknowledgement needs a bound.
 */
export function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer from the bridge within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
