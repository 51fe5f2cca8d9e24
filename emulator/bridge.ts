/**
 * The emulated MQTT bridge: an aedes broker whose hooks apply IoT Core's rules, one `BridgeConnection` per client
 * socket, and what spans connections (one live connection per client ID, config pushes, commands, the state rate).
 *
 * The transport (TLS or plain TCP server) is not here: `accept(socket)` takes any connected socket.
 *
 * @example
 * const bridge = await Bridge.create(registry, { authFailureCode: 5 });
 * tls.createServer(serverOptions(material), (socket) => bridge.accept(socket)).listen(8883);
 */
import type { Socket } from 'node:net';
import { Aedes } from 'aedes';
import type { AuthenticateError, Client } from 'aedes';
import { authenticateConnect } from './auth.js';
import { deliverCommand } from './commands.js';
import { BridgeConnection } from './connection.js';
import type { BridgeContext } from './connection.js';
import { checkFaults, noFaults } from './faults.js';
import { detachForDeviceError } from './gateway.js';
import type { Faults } from './faults.js';
import { resolveBridgeOptions } from './options.js';
import type { BridgeOptions } from './options.js';
import type { DeviceConfig, Registry } from './registry.js';
import { RPC } from '../lib/iotcore/rpc-status.js';

export interface ConnectionInfo {
  clientId: string;
  registryId: string;
  deviceId: string;
  gateway: boolean;
  /** Devices this gateway has attached on the connection. */
  attached: string[];
  /** Granted subscriptions (topic filters). */
  subscriptions: string[];
}

export class Bridge {
  readonly registry: Registry;
  readonly options: BridgeOptions;
  /** Live fault settings; change them at any time (see faults.ts). */
  readonly faults: Faults;
  private takeoverCount = 0;
  private acceptedCount = 0;
  private readonly broker: Aedes;
  private readonly open = new Set<BridgeConnection>();
  private readonly byClient = new WeakMap<Client, BridgeConnection>();
  /** The connection holding each client ID once its CONNECT was accepted. */
  private readonly live = new Map<string, BridgeConnection>();
  private readonly context: BridgeContext;
  private readonly registryListeners: [string, Parameters<Registry['on']>[1]][];

  private constructor(registry: Registry, options: BridgeOptions, faults: Faults) {
    this.registry = registry;
    this.options = options;
    this.faults = faults;
    this.context = {
      registry,
      options,
      faults,
      lastStateAt: new Map(),
      deviceByteWindows: new Map(),
      connectionClosed: (c) => this.forget(c),
    };
    this.broker = new Aedes({
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (error) => done(error, error === null),
          (e: unknown) => done(Object.assign(new Error(`internal error: ${(e as Error).message}`), { returnCode: 3 }) as AuthenticateError, false),
        );
      },
      authorizeSubscribe: (client, sub, done) => {
        const conn = this.byClient.get(client);
        if (conn === undefined) return done(new Error('unknown connection'));
        const verdict = conn.authorizeSubscription(sub.topic);
        if (verdict.outcome === 'grant') return done(null, sub);
        if (verdict.outcome === 'reject') {
          conn.log(`SUBSCRIBE ${sub.topic} refused (0x80): ${verdict.reason}`);
          return done(null, null);
        }
        conn.close({ message: verdict.reason, status: { code: RPC.INVALID_ARGUMENT, message: verdict.reason } });
        return done(new Error(verdict.reason));
      },
      // Client PUBLISH packets never reach aedes: each connection handles them (connection.ts). Refusing here
      // keeps it so: nothing a client publishes can be routed to another client.
      authorizePublish: (_client, _packet, done) => done(new Error('client publishes are handled by the bridge connection')),
    });
    this.broker.on('subscribe', (subs, client) => this.byClient.get(client)?.subscribed(subs));
    this.broker.on('unsubscribe', (topics, client) => this.byClient.get(client)?.unsubscribed(topics));

    const onConfig = (registryId: string, deviceId: string, config: DeviceConfig): void => {
      for (const c of this.open) c.configChanged(registryId, deviceId, config);
    };
    const onDeviceGone = (why: string) => (registryId: string, deviceId: string) => this.deviceGone(registryId, deviceId, why);
    this.registryListeners = [
      ['config', onConfig],
      ['device-blocked', onDeviceGone('the device was blocked')],
      ['device-deleted', onDeviceGone('the device was deleted')],
    ];
    for (const [event, listener] of this.registryListeners) registry.on(event, listener);
  }

  static async create(registry: Registry, options: Partial<BridgeOptions> = {}, faults: Partial<Faults> = {}): Promise<Bridge> {
    const bridge = new Bridge(registry, resolveBridgeOptions(options), { ...noFaults(), ...checkFaults(faults) });
    await bridge.broker.listen();
    return bridge;
  }

  /** Client IDs that replaced a live connection with the same ID. A relay that never double-connects keeps it 0. */
  get takeovers(): number {
    return this.takeoverCount;
  }

  /** CONNECTs accepted since start: the sessions clients opened (a benchmark counts a relay's sessions with it). */
  get connectionsAccepted(): number {
    return this.acceptedCount;
  }

  /** Serves one client socket (already through TLS, if any). */
  accept(socket: Socket): void {
    // Acknowledgements go out one small packet at a time; with Nagle on, every one after the first waits for the
    // client's delayed ACK (up to 40 ms on Linux), which a real broker does not add. The bridge answers at once.
    socket.setNoDelay(true);
    const conn = new BridgeConnection(this.context, socket);
    this.open.add(conn);
    const client = this.broker.handle(conn.tap);
    conn.brokerClient = client;
    this.byClient.set(client, conn);
  }

  setFaults(faults: Partial<Faults>): void {
    Object.assign(this.faults, checkFaults(faults));
  }

  clearFaults(): void {
    for (const key of Object.keys(this.faults) as (keyof Faults)[]) delete this.faults[key];
    Object.assign(this.faults, noFaults());
  }

  /** For the admin API's sendCommandToDevice: true when a connected, subscribed client got the command. */
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean {
    return deliverCommand(this.open, registryId, deviceId, subfolder, payload);
  }

  /**
   * Closes a client's connection as a takeover by another connection would (no DISCONNECT in MQTT 3.1.1, the
   * socket just closes). Takes a client ID or a device ID; false if no such connection. Not counted in `takeovers`.
   */
  kick(clientIdOrDeviceId: string): boolean {
    const targets = [...this.live.values()].filter((c) => c.clientId === clientIdOrDeviceId || c.deviceId === clientIdOrDeviceId);
    const why = 'another connection with the same client ID replaced this one (kicked)';
    for (const c of targets) c.close({ message: why, status: { code: RPC.ALREADY_EXISTS, message: why } });
    return targets.length > 0;
  }

  connections(): ConnectionInfo[] {
    return [...this.live.values()].map((c) => ({
      clientId: c.clientId ?? '',
      registryId: c.registryId,
      deviceId: c.deviceId,
      gateway: c.isGateway(),
      attached: [...c.attached],
      subscriptions: [...c.subscriptions.keys()],
    }));
  }

  async close(): Promise<void> {
    for (const [event, listener] of this.registryListeners) this.registry.off(event, listener);
    for (const c of [...this.open]) c.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
  }

  /** The authenticate hook's body: null to accept, or the refusal aedes turns into a CONNACK. */
  private async authenticate(client: Client, username: string | undefined, password: Buffer | undefined): Promise<AuthenticateError | null> {
    const conn = this.byClient.get(client);
    if (conn === undefined || conn.closed) return refusal(3, 'connection already closed');
    const clientId = client.id;
    const verdict = await authenticateConnect(
      this.registry,
      { clientId, username, password },
      {
        authFailureCode: this.options.authFailureCode,
        skewSeconds: this.options.clockSkewSeconds,
        lifetimeWithSkew: this.options.jwtLifetime === 'with-skew',
        acceptEmptyUsername: this.options.emptyUsername === 'accept',
      },
    );
    if (!verdict.ok) {
      conn.log(`CONNECT from ${JSON.stringify(clientId)} refused with CONNACK ${verdict.returnCode}: ${verdict.reason}`);
      return refusal(verdict.returnCode, verdict.reason);
    }
    const previous = this.live.get(clientId);
    if (previous !== undefined && previous !== conn && !previous.closed) {
      if (this.options.duplicateClientId === 'refuse') {
        conn.log('CONNECT refused with CONNACK 2: another connection with this client ID is live');
        return refusal(2, 'identifier rejected: a connection with this client ID is live');
      }
      // [MQTT-3.1.4-2] and Google's bridge: the newer connection wins, the older is closed (ALREADY_EXISTS,
      // google-cloud-iot-arduino#211).
      this.takeoverCount++;
      const why = 'another connection with the same client ID replaced this one';
      previous.close({ message: why, status: { code: RPC.ALREADY_EXISTS, message: why } });
    }
    conn.authenticated(clientId, verdict.registryId, verdict.deviceId, verdict.exp);
    this.live.set(clientId, conn);
    this.acceptedCount++;
    return null;
  }

  private forget(conn: BridgeConnection): void {
    this.open.delete(conn);
    if (conn.clientId !== undefined && this.live.get(conn.clientId) === conn) this.live.delete(conn.clientId);
  }

  /** A blocked or deleted device loses its own connection, and every gateway that attached it detaches it. */
  private deviceGone(registryId: string, deviceId: string, why: string): void {
    for (const c of [...this.open]) {
      if (c.registryId !== registryId) continue;
      if (c.deviceId === deviceId) c.close({ message: why });
      else if (c.attached.has(deviceId)) detachForDeviceError(c, deviceId, why);
    }
  }
}

function refusal(returnCode: 2 | 3 | 4 | 5, message: string): AuthenticateError {
  // aedes reads returnCode to pick the CONNACK code (2 to 5).
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}
