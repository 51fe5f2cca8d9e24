/**
 * The local emulator of the ClearBlade IoT Core MQTT bridge, as a library: every test of the relay starts one.
 * It listens on 127.0.0.1 (TLS by default, with a CA generated at start whose PEM is written to `caFile`), serves
 * the admin REST API on another port, and exposes the registry, the live fault settings and the connections.
 *
 * @example
 * const emulator = await startEmulator({ registry: document, adminPort: null });
 * const client = mqtt.connect(emulator.mqttUrl, { ca: emulator.ca, protocolVersion: 4, clientId, username: 'unused', password: jwt });
 * // ... emulator.registry.events holds what the device published
 * await emulator.close();
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import type { Server as HttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { createAdminHandler } from './admin-api.js';
import { Bridge } from './bridge.js';
import { createClearBladeHandler, isClearBladePath } from './clearblade-api.js';
import { ClearBladeCredentials } from './clearblade-credentials.js';
import type { ServiceAccount } from './clearblade-credentials.js';
import type { ConnectionInfo } from './bridge.js';
import { loadDemoRegistry } from './demo.js';
import type { Faults } from './faults.js';
import type { BridgeOptions } from './options.js';
import { CallQuota, ConfigUpdateRate } from './rate-limit.js';
import type { CallQuotas } from './rate-limit.js';
import { Registry } from './registry.js';
import type { RegistryDocument } from './registry.js';
import { REGISTRY_POLICY_KEYS, resolveRegistryPolicy } from './registry-policy.js';
import type { RegistryPolicy } from './registry-policy.js';
import { generateTlsMaterial, readTlsMaterial, serverOptions } from './tls.js';

export type { ConnectionInfo } from './bridge.js';
export type { Faults, Phase, ConnackRefusal } from './faults.js';
export type { BridgeOptions } from './options.js';
export type { ServiceAccount, RegistryCredentials } from './clearblade-credentials.js';
export type { RegistryPolicy } from './registry-policy.js';
export type { CallKind, CallQuotas } from './rate-limit.js';

export interface EmulatorOptions extends Partial<Omit<BridgeOptions, 'log'>>, Partial<RegistryPolicy> {
  /** Interface to listen on. Default 127.0.0.1. */
  host?: string;
  /** MQTT port; 0 (default) picks a free one. */
  port?: number;
  /** TLS (default) or plain TCP. */
  tls?: boolean;
  /** Serve this certificate instead of generating one; `ca` is what clients should trust. */
  tlsFiles?: { cert: string; key: string; ca?: string };
  /** The registry to serve (a live Registry is used as is); the demo registry if absent. */
  registry?: Registry | RegistryDocument;
  /** Admin REST port: 0 (default) picks a free one, null serves none. */
  adminPort?: number | null;
  /** Shorthand for `faults.latencyMs`. */
  latencyMs?: number;
  /** Faults in force from the start. */
  faults?: Partial<Faults>;
  /** Where the generated CA PEM is written; a fresh temporary folder (removed on close) if absent. */
  dataDir?: string;
  /** Connection events (connects, refusals and their reasons, closes); silent if absent. */
  log?: (line: string) => void;
  /**
   * Per-minute quotas of the device-manager calls in ClearBlade's REST form, answered 429 RESOURCE_EXHAUSTED when
   * used up: `true` for the documented quotas, or some quotas by kind (the others documented). Off by default.
   */
  rateLimits?: boolean | Partial<CallQuotas>;
  /** The quotas' window; 60,000 ms. Tests shorten it to see a window end. */
  rateLimitWindowMs?: number;
}

export interface Emulator {
  /** `mqtts://127.0.0.1:PORT`, or `mqtt://` without TLS. */
  readonly mqttUrl: string;
  readonly host: string;
  readonly port: number;
  /** `http://127.0.0.1:PORT`, when the admin API is served. */
  readonly adminUrl: string | undefined;
  /** The CA PEM clients must trust (TLS only). */
  readonly ca: string | undefined;
  readonly caFile: string | undefined;
  readonly registry: Registry;
  /** Live fault settings: assign to them, or use setFaults, at any time. */
  readonly faults: Faults;
  /** Connections closed because a newer one used the same client ID. */
  readonly takeovers: number;
  /** CONNECTs accepted since start, whatever became of the connections after. */
  readonly connectionsAccepted: number;
  setFaults(faults: Partial<Faults>): void;
  clearFaults(): void;
  /** Live, authenticated connections. */
  connections(): ConnectionInfo[];
  /** Delivers a command (what the admin API's sendCommandToDevice calls); false when nobody is subscribed. */
  sendCommand(registryId: string, deviceId: string, subfolder: string | undefined, payload: Buffer): boolean;
  /** Closes a client's connection as a takeover would; by client ID or device ID. */
  kick(clientIdOrDeviceId: string): boolean;
  /**
   * The project's ClearBlade service account (`systemKey`, `token`, `url` = the admin URL, `project`), as the
   * console's JSON file holds it: what getRegistryCredentials takes. Throws when no admin API is served.
   */
  serviceAccount(): ServiceAccount;
  close(): Promise<void>;
}

function listen(server: Server | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** URLs put IPv6 literals in brackets. */
const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const host = options.host ?? '127.0.0.1';
  const useTls = options.tls !== false;
  // Checked before anything starts, so a bad value fails the start and leaves nothing running.
  const policy: Partial<RegistryPolicy> = Object.fromEntries(REGISTRY_POLICY_KEYS.filter((k) => options[k] !== undefined).map((k) => [k, options[k]]));
  resolveRegistryPolicy(policy);
  const quota =
    options.rateLimits === undefined || options.rateLimits === false
      ? undefined
      : new CallQuota(options.rateLimits === true ? {} : options.rateLimits, options.rateLimitWindowMs);
  let registry: Registry;
  if (options.registry instanceof Registry) {
    registry = options.registry;
    registry.configure(policy);
  } else {
    registry = Registry.fromDocument(options.registry ?? (await loadDemoRegistry()).document, policy);
  }
  const clearBlade = new ClearBladeCredentials(registry.project);
  // TLS material first: it can fail (unreadable files) before anything needs undoing.
  const material = !useTls ? undefined : options.tlsFiles ? await readTlsMaterial(options.tlsFiles) : await generateTlsMaterial();

  const bridge = await Bridge.create(
    registry,
    { ...options, log: options.log ?? (() => {}) },
    { ...options.faults, ...(options.latencyMs !== undefined ? { latencyMs: options.latencyMs } : {}) },
  );
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    bridge.accept(socket);
  };
  let server: Server;
  if (material !== undefined) {
    server = createTlsServer(serverOptions(material), onSocket);
    // A client that does not trust the CA, or offers TLS 1.1, fails the handshake; nothing to do on this side.
    server.on('tlsClientError', (e) => options.log?.(`TLS handshake failed: ${e.message}`));
  } else {
    server = createTcpServer(onSocket);
  }
  let admin: HttpServer | undefined;
  let ownedDataDir: string | undefined;

  const shutdown = async (): Promise<void> => {
    const stopped = server.listening ? closeServer(server) : Promise.resolve();
    await bridge.close();
    for (const s of sockets) s.destroy();
    await stopped;
    if (admin?.listening) {
      admin.closeAllConnections();
      await closeServer(admin);
    }
    if (ownedDataDir !== undefined) await rm(ownedDataDir, { recursive: true, force: true });
  };

  try {
    let caFile: string | undefined;
    if (options.tlsFiles?.ca !== undefined) {
      caFile = options.tlsFiles.ca;
    } else if (material?.caPem !== undefined) {
      const dir = options.dataDir ?? (ownedDataDir = await mkdtemp(join(tmpdir(), 'iotcore-emulator-')));
      await mkdir(dir, { recursive: true });
      caFile = join(dir, 'ca.pem');
      await writeFile(caFile, material.caPem);
    }
    const port = await listen(server, options.port ?? 0, host);
    let adminUrl: string | undefined;
    if (options.adminPort !== null) {
      // One limit for both forms: an update through either counts against the device's second.
      const configRate = bridge.options.configRateLimit ? { configRate: new ConfigUpdateRate() } : {};
      const v1 = createAdminHandler(registry, bridge, bridge, configRate);
      const clearBladeForm = createClearBladeHandler(registry, clearBlade, { ...(quota === undefined ? {} : { quota }), ...configRate });
      admin = createHttpServer((req, res) => (isClearBladePath(req.url) ? clearBladeForm(req, res) : v1(req, res)));
      adminUrl = `http://${urlHost(host)}:${await listen(admin, options.adminPort ?? 0, host)}`;
      clearBlade.url = adminUrl;
    }

    let closing: Promise<void> | undefined;
    return {
      mqttUrl: `${useTls ? 'mqtts' : 'mqtt'}://${urlHost(host)}:${port}`,
      host,
      port,
      adminUrl,
      ca: material?.caPem,
      caFile,
      registry,
      faults: bridge.faults,
      get takeovers() {
        return bridge.takeovers;
      },
      get connectionsAccepted() {
        return bridge.connectionsAccepted;
      },
      setFaults: (f) => bridge.setFaults(f),
      clearFaults: () => bridge.clearFaults(),
      connections: () => bridge.connections(),
      sendCommand: (r, d, s, p) => bridge.sendCommand(r, d, s, p),
      kick: (id) => bridge.kick(id),
      serviceAccount: () => {
        if (adminUrl === undefined) throw new Error('no service account: the admin API is not served (adminPort: null)');
        return clearBlade.serviceAccount();
      },
      close: () => (closing ??= shutdown()),
    };
  } catch (e) {
    // A port in use, an unwritable dataDir: release what was started, so a failed start leaves nothing running.
    await shutdown();
    throw e;
  }
}
