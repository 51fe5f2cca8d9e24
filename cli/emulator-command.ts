/**
 * `iotcore-relay emulator`: runs the emulator of the ClearBlade IoT Core MQTT bridge until SIGINT or SIGTERM.
 * When ready it prints one JSON line on stdout, `{"mqtt": ..., "admin": ..., "caFile": ...}` (admin only when the
 * admin API is served, caFile only with TLS, serviceAccountFile only with --service-account-out), so scripts can read
 * where to connect; connection events go to stderr.
 *
 * @example
 * iotcore-relay emulator --port 8883 --registry registry.json --auth-failure-code 5
 * iotcore-relay emulator --service-account-out sa.json --max-devices-per-gateway 50 --quota create=100
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { writeServiceAccountFile } from '../emulator/clearblade-credentials.js';
import { startEmulator } from '../emulator/index.js';
import type { CallQuotas, EmulatorOptions } from '../emulator/index.js';
import { CALL_KINDS } from '../emulator/rate-limit.js';
import type { CallKind } from '../emulator/rate-limit.js';
import type { RegistryDocument } from '../emulator/registry.js';

const USAGE = `usage: iotcore-relay emulator [options]

  --port <p>                          MQTT port (default 8883; 0 picks a free one)
  --host <address>                    listen address (default 127.0.0.1)
  --tls | --no-tls                    TLS 1.2+ with a CA generated at start (default), or plain TCP
  --cert <file> --key <file>          serve this certificate instead of a generated one
  --ca <file>                         the CA clients should trust for --cert
  --data-dir <dir>                    where the generated CA (ca.pem) is written (default: a temporary folder)
  --registry <file>                   registry JSON (default: the demo registry, keys in .local/keys/)
  --admin-port <p|none>               admin REST API port (default 0: a free one; none: no admin API)
  --service-account-out <file>        write the project's ClearBlade service-account JSON there (mode 0600)
  --latency-ms <n>                    delay before every packet the bridge sends

Behaviour where ClearBlade's is unconfirmed (see docs/emulator.md):
  --auth-failure-code <4|5>           CONNACK code for bad credentials (default 4, as ClearBlade documents)
  --duplicate-client-id <takeover|refuse>
                                      a second connection with a live client ID closes the first (default)
                                      or is refused with CONNACK 2
  --unclean-session <accept|refuse>   cleanSession=0: accepted and treated as clean (default), or CONNACK 2
  --ack-failed-attach                 PUBACK a failed attach too (when the gateway is subscribed to errors)
  --error-shape <nested|flat>         errors topic payload shape (default nested)
  --no-state-rate-limit               do not enforce 1 state update per second per device
  --command-subfolder-subscriptions   accept subscriptions to a specific commands subfolder
  --clock-skew-seconds <n>            JWT clock skew and grace after exp (default 600)
  --config-resend-ms <n>              resend interval of an unacknowledged QoS 1 config (default 5000)
  --idle-timeout-seconds <n>          close connections silent this long (default 1200)
  --packets-before-connack <process|drop|close>
                                      what a client sends behind CONNECT before the CONNACK: processed once
                                      the CONNECT is accepted (default, MQTT 3.1.1), dropped, or a close
  --late-errors-ms <n>                hold each errors-topic message back n ms behind the PUBACKs (default 0)
  --late-errors-jitter-ms <n>         add a random 0..n ms to each held message's delay (default 0)
  --late-errors-past-detach           held errors may also follow the detach PUBACK (default: they go first)
  --mqtt5                             accept MQTT 5.0 connections too; refused publishes get a PUBACK
                                      reason code (default: 5.0 gets CONNACK 1)
  --bind-existing <succeed|conflict>  binding a bound pair again: succeeds (default) or 409 ALREADY_EXISTS
  --delete-bound-device <unbind|refuse>
                                      deleting a bound device unbinds it (default) or is FAILED_PRECONDITION
  --delete-gateway-with-devices <refuse|unbind>
                                      deleting a gateway with bound devices: FAILED_PRECONDITION (default)
                                      or its devices are unbound
  --binding-limit-status <RESOURCE_EXHAUSTED|FAILED_PRECONDITION>
                                      what a bind over a limit answers (default RESOURCE_EXHAUSTED, 429)
  --ack-failed-publish                PUBACK a publish refused for an unattached or detached device, then
                                      send its error
  --command-resend-ms <n>             resend interval of an unacknowledged QoS 1 command (default 5000;
                                      0: sent once)
  --no-config-rate-limit              do not refuse a second config update within 1 s for a device (429)
  --connection-lifetime-seconds <n>   close every connection this long after it opened (default 86400)
  --empty-username <refuse|accept>    CONNECT without a username: refused (default) or accepted
  --will-message <refuse|accept|publish>
                                      CONNECT with a Will: CONNACK 2 (default), accepted and never
                                      published, or published as the device's telemetry when it drops
  --jwt-lifetime <strict|with-skew>   JWT exp - iat: at most 24 h (default) or 24 h plus the clock skew
  --connection-message-rate <n>       client PUBLISH packets a second per connection (default 0: no limit;
                                      Google documented 100)
  --device-byte-rate <n>              payload bytes a second per device (default 0: no limit; both providers
                                      list 512 KB/s, 524288)
  --rate-overrun <slow|drop|close>    over either rate: the connection is slowed down, PUBACKs at the rate
                                      (default), the packet is dropped unacknowledged, or the connection closed

Device-manager limits and quotas (ClearBlade's documented values by default):
  --max-devices-per-gateway <n>       devices bound to one gateway (default 10000)
  --max-gateways-per-device <n>       gateways one device is bound to (default 10)
  --rate-limits                       enforce the per-minute quotas of the ClearBlade form's calls (off by default)
  --quota <kind=n>                    a per-minute quota (kind: create, delete, bind, read); repeatable;
                                      implies --rate-limits
  --rate-limit-window-ms <n>          the quota window (default 60000)

  --quiet                             no connection log on stderr
  -h, --help
`;

/** A command line that makes no sense: answered with the usage, exit code 2. */
class UsageError extends Error {}

function integer(name: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < min) throw new UsageError(`--${name} must be an integer >= ${min} (got ${JSON.stringify(raw)})`);
  return Number(raw);
}

function choice<T extends string>(name: string, raw: string | undefined, allowed: readonly T[]): T | undefined {
  if (raw === undefined) return undefined;
  if (!allowed.includes(raw as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')} (got ${JSON.stringify(raw)})`);
  return raw as T;
}

async function readRegistryFile(file: string): Promise<RegistryDocument> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as RegistryDocument;
  } catch (e) {
    throw new Error(`--registry ${file}: ${(e as Error).message}`);
  }
}

const FLAGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  tls: { type: 'boolean' },
  'no-tls': { type: 'boolean' },
  cert: { type: 'string' },
  key: { type: 'string' },
  ca: { type: 'string' },
  'data-dir': { type: 'string' },
  registry: { type: 'string' },
  'admin-port': { type: 'string' },
  'service-account-out': { type: 'string' },
  'latency-ms': { type: 'string' },
  'auth-failure-code': { type: 'string' },
  'duplicate-client-id': { type: 'string' },
  'unclean-session': { type: 'string' },
  'ack-failed-attach': { type: 'boolean' },
  'error-shape': { type: 'string' },
  'no-state-rate-limit': { type: 'boolean' },
  'command-subfolder-subscriptions': { type: 'boolean' },
  'clock-skew-seconds': { type: 'string' },
  'config-resend-ms': { type: 'string' },
  'idle-timeout-seconds': { type: 'string' },
  'packets-before-connack': { type: 'string' },
  'late-errors-ms': { type: 'string' },
  'late-errors-jitter-ms': { type: 'string' },
  'late-errors-past-detach': { type: 'boolean' },
  mqtt5: { type: 'boolean' },
  'bind-existing': { type: 'string' },
  'delete-bound-device': { type: 'string' },
  'delete-gateway-with-devices': { type: 'string' },
  'binding-limit-status': { type: 'string' },
  'ack-failed-publish': { type: 'boolean' },
  'command-resend-ms': { type: 'string' },
  'no-config-rate-limit': { type: 'boolean' },
  'connection-lifetime-seconds': { type: 'string' },
  'empty-username': { type: 'string' },
  'will-message': { type: 'string' },
  'jwt-lifetime': { type: 'string' },
  'max-devices-per-gateway': { type: 'string' },
  'max-gateways-per-device': { type: 'string' },
  'rate-limits': { type: 'boolean' },
  quota: { type: 'string', multiple: true },
  'rate-limit-window-ms': { type: 'string' },
  'connection-message-rate': { type: 'string' },
  'device-byte-rate': { type: 'string' },
  'rate-overrun': { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

function parseFlags(argv: string[]) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options: FLAGS }).values;
  } catch (e) {
    // Unknown flag, missing value: a usage problem, not a failure of the emulator.
    throw new UsageError((e as Error).message);
  }
}

/** `--quota create=100 --quota read=5000` -> `{ create: 100, read: 5000 }`. */
function quotas(raw: string[] | undefined): Partial<CallQuotas> | undefined {
  if (raw === undefined || raw.length === 0) return undefined;
  const out: Partial<CallQuotas> = {};
  for (const item of raw) {
    const m = /^([a-z]+)=(\d+)$/.exec(item);
    if (!m || !CALL_KINDS.includes(m[1] as CallKind)) {
      throw new UsageError(`--quota takes <kind>=<calls per window>, kind one of ${CALL_KINDS.join(', ')} (got ${JSON.stringify(item)})`);
    }
    out[m[1] as CallKind] = Number(m[2]);
  }
  return out;
}

/** What the command does besides starting the emulator. */
export interface CommandExtras {
  /** Where to write the service-account JSON, when asked. */
  serviceAccountOut?: string;
}

/** Turns the command line into emulator options; throws UsageError naming the bad flag. */
export async function emulatorOptionsFromArgs(argv: string[]): Promise<EmulatorOptions | 'help'> {
  const parsed = await commandFromArgs(argv);
  return parsed === 'help' ? 'help' : parsed.options;
}

async function commandFromArgs(argv: string[]): Promise<{ options: EmulatorOptions; extras: CommandExtras } | 'help'> {
  const values = parseFlags(argv);
  if (values.help) return 'help';
  if (values.tls && values['no-tls']) throw new UsageError('--tls and --no-tls contradict each other');
  if ((values.cert === undefined) !== (values.key === undefined)) throw new UsageError('--cert and --key go together');
  if (values['no-tls'] && values.cert !== undefined) throw new UsageError('--cert makes no sense with --no-tls');

  const options: EmulatorOptions = {
    host: values.host ?? '127.0.0.1',
    port: integer('port', values.port, 0) ?? 8883,
    tls: !values['no-tls'],
  };
  if (values.cert !== undefined && values.key !== undefined) {
    options.tlsFiles = { cert: values.cert, key: values.key, ...(values.ca !== undefined ? { ca: values.ca } : {}) };
  }
  if (values['data-dir'] !== undefined) options.dataDir = values['data-dir'];
  if (values.registry !== undefined) {
    options.registry = await readRegistryFile(values.registry);
  }
  const admin = values['admin-port'];
  options.adminPort = admin === 'none' ? null : (integer('admin-port', admin, 0) ?? 0);
  const extras: CommandExtras = {};
  if (values['service-account-out'] !== undefined) {
    if (options.adminPort === null) throw new UsageError('--service-account-out needs the admin API (not --admin-port none)');
    extras.serviceAccountOut = values['service-account-out'];
  }
  const latency = integer('latency-ms', values['latency-ms'], 0);
  if (latency !== undefined) options.latencyMs = latency;
  const code = choice('auth-failure-code', values['auth-failure-code'], ['4', '5'] as const);
  if (code !== undefined) options.authFailureCode = code === '5' ? 5 : 4;
  const duplicate = choice('duplicate-client-id', values['duplicate-client-id'], ['takeover', 'refuse'] as const);
  if (duplicate !== undefined) options.duplicateClientId = duplicate;
  const unclean = choice('unclean-session', values['unclean-session'], ['accept', 'refuse'] as const);
  if (unclean !== undefined) options.uncleanSession = unclean;
  if (values['ack-failed-attach']) options.ackFailedAttach = true;
  const shape = choice('error-shape', values['error-shape'], ['nested', 'flat'] as const);
  if (shape !== undefined) options.errorShape = shape;
  if (values['no-state-rate-limit']) options.stateRateLimit = false;
  if (values['command-subfolder-subscriptions']) options.commandSubfolderSubscriptions = true;
  const skew = integer('clock-skew-seconds', values['clock-skew-seconds'], 0);
  if (skew !== undefined) options.clockSkewSeconds = skew;
  const resend = integer('config-resend-ms', values['config-resend-ms'], 1);
  if (resend !== undefined) options.configResendMs = resend;
  const idle = integer('idle-timeout-seconds', values['idle-timeout-seconds'], 1);
  if (idle !== undefined) options.idleTimeoutSeconds = idle;
  const early = choice('packets-before-connack', values['packets-before-connack'], ['process', 'drop', 'close'] as const);
  if (early !== undefined) options.packetsBeforeConnack = early;
  const lateMs = integer('late-errors-ms', values['late-errors-ms'], 0);
  if (lateMs !== undefined) options.lateErrorsMs = lateMs;
  const lateJitter = integer('late-errors-jitter-ms', values['late-errors-jitter-ms'], 0);
  if (lateJitter !== undefined) options.lateErrorsJitterMs = lateJitter;
  if (values['late-errors-past-detach']) options.lateErrorsPastDetach = true;
  if (values.mqtt5) options.mqtt5 = true;
  const bindExisting = choice('bind-existing', values['bind-existing'], ['succeed', 'conflict'] as const);
  if (bindExisting !== undefined) options.bindExisting = bindExisting;
  const deleteBound = choice('delete-bound-device', values['delete-bound-device'], ['unbind', 'refuse'] as const);
  if (deleteBound !== undefined) options.deleteBoundDevice = deleteBound;
  const deleteGateway = choice('delete-gateway-with-devices', values['delete-gateway-with-devices'], ['refuse', 'unbind'] as const);
  if (deleteGateway !== undefined) options.deleteGatewayWithDevices = deleteGateway;
  const limitStatus = choice('binding-limit-status', values['binding-limit-status'], ['RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION'] as const);
  if (limitStatus !== undefined) options.bindingLimitStatus = limitStatus;
  if (values['ack-failed-publish']) options.ackFailedPublish = true;
  const commandResend = integer('command-resend-ms', values['command-resend-ms'], 0);
  if (commandResend !== undefined) options.commandResendMs = commandResend;
  if (values['no-config-rate-limit']) options.configRateLimit = false;
  const lifetime = integer('connection-lifetime-seconds', values['connection-lifetime-seconds'], 1);
  if (lifetime !== undefined) options.connectionLifetimeSeconds = lifetime;
  const emptyUsername = choice('empty-username', values['empty-username'], ['refuse', 'accept'] as const);
  if (emptyUsername !== undefined) options.emptyUsername = emptyUsername;
  const will = choice('will-message', values['will-message'], ['refuse', 'accept', 'publish'] as const);
  if (will !== undefined) options.willMessage = will;
  const jwtLifetime = choice('jwt-lifetime', values['jwt-lifetime'], ['strict', 'with-skew'] as const);
  if (jwtLifetime !== undefined) options.jwtLifetime = jwtLifetime;
  const perGateway = integer('max-devices-per-gateway', values['max-devices-per-gateway'], 1);
  if (perGateway !== undefined) options.maxDevicesPerGateway = perGateway;
  const perDevice = integer('max-gateways-per-device', values['max-gateways-per-device'], 1);
  if (perDevice !== undefined) options.maxGatewaysPerDevice = perDevice;
  const quota = quotas(values.quota);
  if (quota !== undefined) options.rateLimits = quota;
  else if (values['rate-limits']) options.rateLimits = true;
  const window = integer('rate-limit-window-ms', values['rate-limit-window-ms'], 1);
  if (window !== undefined) options.rateLimitWindowMs = window;
  const messageRate = integer('connection-message-rate', values['connection-message-rate'], 0);
  if (messageRate !== undefined) options.connectionMessageRate = messageRate;
  const byteRate = integer('device-byte-rate', values['device-byte-rate'], 0);
  if (byteRate !== undefined) options.deviceByteRate = byteRate;
  const overrun = choice('rate-overrun', values['rate-overrun'], ['slow', 'drop', 'close'] as const);
  if (overrun !== undefined) options.rateOverrun = overrun;
  if (!values.quiet) options.log = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  return { options, extras };
}

export async function emulatorCommand(argv: string[]): Promise<number> {
  let parsed: Awaited<ReturnType<typeof commandFromArgs>>;
  try {
    parsed = await commandFromArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`iotcore-relay emulator: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  const { options, extras } = parsed;
  // Listening before anything is printed: whoever reads the ready line may signal at once.
  let stop: (s: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  const stopListening = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let emulator;
  try {
    emulator = await startEmulator(options);
  } catch (e) {
    stopListening();
    throw e;
  }
  const ready: Record<string, string> = { mqtt: emulator.mqttUrl };
  if (emulator.adminUrl !== undefined) ready['admin'] = emulator.adminUrl;
  if (emulator.caFile !== undefined) ready['caFile'] = emulator.caFile;
  if (extras.serviceAccountOut !== undefined) {
    try {
      await writeServiceAccountFile(extras.serviceAccountOut, emulator.serviceAccount());
    } catch (e) {
      stopListening();
      await emulator.close();
      throw new Error(`--service-account-out ${extras.serviceAccountOut}: ${(e as Error).message}`);
    }
    ready['serviceAccountFile'] = extras.serviceAccountOut;
  }
  process.stdout.write(`${JSON.stringify(ready)}\n`);

  const signal = await stopped;
  // A second signal while closing gets Node's default: the process ends at once.
  stopListening();
  options.log?.(`${signal}: shutting down`);
  await emulator.close();
  return 0;
}
