/**
 * The whole relay on one machine, on 127.0.0.1, with nothing from AWS or ClearBlade: the bridge emulator (TLS,
 * demo registry), an SQS-compatible server and a DynamoDB-compatible server with the resources serverless.yml
 * declares, the HTTP API routes served by the real handlers, Lambda's SQS integration for the relay, a timer for
 * the poller, and the dashboard. `npm start` runs it; end-to-end tests and benchmarks start it too.
 *
 * What runs where is read from serverless.yml: the queues and the table from `resources`, the routes from the
 * `httpApi` events, the relay's event source from its `sqs` event, the poller from its `schedule` event, each
 * function's environment from `provider.environment` and its own. Only what cannot exist locally is replaced:
 * Secrets Manager secret IDs by local files, the bridge's host by the emulator's, AWS endpoints by the local
 * servers'.
 *
 * The handlers share this process, so they share `process.env`: the stack sets the variables of every function
 * before it loads them, and puts the previous values back on close.
 *
 * @example
 * const stack = await startStack({ ports: 'free' });
 * await fetch(`${stack.urls.ingest}/devices/pump-0001/events`, { method: 'POST', body: '21.5',
 *   headers: { authorization: `Device-Key ${stack.deviceKey('pump-0001')}` } });
 * await stack.close();
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { APIGatewayProxyEventV2, APIGatewayProxyResultV2, Context } from 'aws-lambda';
import { writeServiceAccountFile } from '../emulator/clearblade-credentials.js';
import { DEMO, loadDemoRegistry } from '../emulator/demo.js';
import { startEmulator, type Emulator } from '../emulator/index.js';
import type { RegistryDocument } from '../emulator/registry.js';
import { ConfigStore } from '../lib/config-store/config-store.js';
import { RelayError } from '../lib/errors.js';
import { gatewayFor, parseGatewayIds } from '../lib/gateway-pool.js';
import { registryName } from '../lib/iotcore/topics.js';
import { serveHttpApi, type ServedHttpApi } from '../lib/local/http-adapter.js';
import { readyBanner } from './banner.js';
import { describeBatch, RelayOutcomeLog, summarizeBatch } from './batch-outcomes.js';
import { DashboardFeed } from './dashboard-feed.js';
import { startDashboardServer, type DashboardServer } from './dashboard-server.js';
import { DeadLetterWatch } from './dead-letter-watch.js';
import { prepareDeviceCredentials, type DeviceCredentials } from './device-credentials.js';
import { DeviceSimulator } from './device-simulator.js';
import { startDynamoDbServer, type DynamoDbServer } from './dynamodb-server.js';
import { httpApiRoutes, matchRoute, withRoute } from './http-api-routes.js';
import { invokeLocally, type LocalFunction } from './lambda-invocation.js';
import { LorawanDashboardSource } from './lorawan-dashboard.js';
import { startLorawanDemo, type LorawanDemo } from './lorawan-demo.js';
import { ScheduleTimer } from './schedule-timer.js';
import { loadServerlessTemplate, isObject, type ServerlessTemplate, type TemplateValue } from './serverless-template.js';
import { SqsEventSource, type BatchReport, type SqsBatchHandler } from './sqs-event-source.js';
import { LOCAL_CREDENTIALS, startSqsServer, type LocalQueue, type SqsServer } from './sqs-server.js';
import { functionEnvironment, queueSpec, tableSpec, type LocalReferences } from './template-resources.js';

export interface StackPorts {
  /** The HTTP API (ingest and config delivery). */
  http: number;
  dashboard: number;
  /** The bridge emulator's MQTT (TLS) port. */
  mqtt: number;
  /** The bridge emulator's admin REST API. */
  admin: number;
  sqs: number;
  dynamodb: number;
  /** The stand-in for the LoRaWAN network servers' downlink APIs. */
  networkServer: number;
}

/** Fixed, so the banner and a user's curl line stay the same from one run to the next. */
export const DEFAULT_PORTS: Readonly<StackPorts> = { http: 3000, dashboard: 3001, mqtt: 8883, admin: 8080, sqs: 9324, dynamodb: 8000, networkServer: 3002 };

export interface StackOptions {
  /** Where serverless.yml is; default the project root. */
  root?: string;
  /** Keys, secrets and the emulator's CA; default `<root>/.local`. */
  dataDir?: string;
  /** `${sls:stage}` of the template; default `local`. */
  stage?: string;
  /** `${param:...}` values, as the framework's `--param="name=value"` gives them. */
  params?: Readonly<Record<string, string>>;
  /** Ports to use; `'free'` picks free ones for all (tests). Unlisted ports take DEFAULT_PORTS. */
  ports?: Partial<StackPorts> | 'free';
  /** Seconds between two runs of each scheduled function; 0 runs them only on demand. Default 60. */
  scheduleEverySeconds?: number;
  /**
   * The gateway pool (`IOTCORE_GATEWAY_IDS`); default the demo gateway alone. Gateways the demo registry lacks are
   * added association-only with the demo gateway's public key (one key pair for the whole pool), and each demo
   * device is also bound to its gateway in the pool.
   */
  gatewayIds?: readonly string[];
  /** Simulated devices posting readings. Default 0. */
  simulate?: number;
  /** Mean time between two posts of a simulated device. Default 3000. */
  simulateIntervalMs?: number;
  /** Powertools log level of the handlers; default WARN (ERROR when simulating), so the terminal shows the stack's own lines. */
  handlerLogLevel?: string;
  /** The stack's own lines (batches, polls, failures). Default: nothing. */
  log?: (line: string) => void;
}

export interface StackUrls {
  ingest: string;
  dashboard: string;
  mqtt: string;
  admin: string;
  sqs: string;
  dynamodb: string;
  networkServer: string;
}

export interface Stack {
  urls: StackUrls;
  ports: StackPorts;
  /** The emulator's CA certificate file, which MQTT clients must trust. */
  caFile: string;
  /** The emulator's ClearBlade service-account JSON (mode 0600), for clients of ClearBlade's REST form. */
  serviceAccountFile: string;
  stage: string;
  emulator: Emulator;
  sqs: SqsServer;
  dynamodb: DynamoDbServer;
  /** The queue the relay consumes, and its dead-letter queue. */
  relayQueue: LocalQueue;
  deadLetterQueue: LocalQueue;
  configTable: string;
  registry: { project: string; location: string; registry: string; gatewayIds: string[] };
  /** The LoRaWAN integrations, their demo devices, and the network-server stand-in (lorawan-demo.ts). */
  lorawan: LorawanDemo;
  /** The device key of a device (`Authorization: Device-Key <key>`). */
  deviceKey(deviceId: string): string;
  /** Runs the scheduled functions (the config poller) now, and waits for them. */
  runSchedules(): Promise<void>;
  /** Event source statistics of the relay. */
  relayStats(): ReturnType<SqsEventSource['stats']>;
  /** The ready banner: URLs, and a curl line to try. */
  banner(): string;
  /** Stops everything it started: servers, timers, sockets. Safe to call twice. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const REGION = 'us-east-1';
/** Deployment secret IDs and the local files that replace them (docs/design.md, runtime configuration). */
const SECRET_FILES = {
  GATEWAY_KEY_SECRET: 'GATEWAY_KEY_FILE',
  DEVICE_KEYS_SECRET: 'DEVICE_KEYS_FILE',
  DEVICE_KEY_MASTER_SECRET: 'DEVICE_KEY_MASTER_FILE',
  LORAWAN_SECRETS_SECRET: 'LORAWAN_SECRETS_FILE',
} as const;

type AnyHandler = (event: unknown, context: Context) => Promise<unknown>;

export function projectRoot(): string {
  return fileURLToPath(new URL('../', import.meta.url));
}

/**
 * Starts the parts one step after the other, each registering how it stops; `close` (or a failed start) stops
 * them in reverse order and then puts `process.env` back.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const settings = stackSettings(options);
  const life = new Lifecycle(settings.log);
  // The AWS SDK warns, on Node below 22, that its releases from January 2027 on will need Node 22: nothing a user
  // of the local stack can act on at start-up (docs/local-stack.md says it once). Its documented switch, set before
  // the first client is made; a value of the user's own is kept.
  life.setEnv({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ?? 'true' });
  try {
    const demo = await prepareDemo(settings);
    const bridge = await startBridgeEmulator(life, settings, demo);
    const lorawan = await startNetworkServers(life, settings, demo, bridge.emulator);
    const aws = await startAwsStandIns(life, settings);
    setFunctionsEnvironment(life, settings, { demo, emulator: bridge.emulator, lorawan, aws });
    const functions = await loadFunctions(settings);
    // The dashboard feed comes last, but batches and HTTP requests are noted on it once it exists.
    const dashboardFeed: { feed?: DashboardFeed } = {};
    const relay = wireRelayEventSources(life, settings, aws.sqs, functions, dashboardFeed);
    const deadLetters = watchDeadLetters(life, settings, aws.sqs, relay, demo.gatewayIds);
    const api = await startHttpApi(life, settings, functions, dashboardFeed);
    const schedules = wireSchedules(life, settings, functions);
    const dashboard = await startDashboard(life, settings, { demo, emulator: bridge.emulator, lorawan, aws, relay, deadLetters, schedules });
    dashboardFeed.feed = dashboard.feed;
    // Everything is wired: start the moving parts.
    dashboard.feed.start();
    deadLetters.watch.start();
    for (const s of relay.sources) s.source.start();
    for (const t of schedules.timers) t.start();
    const simulated = startSimulator(life, settings, { demo, emulator: bridge.emulator, api, feed: dashboard.feed });
    return stackHandle(settings, life, { demo, bridge, lorawan, aws, relay, deadLetters, api, schedules, dashboard, simulated });
  } catch (e) {
    await life.close().catch(() => undefined);
    throw e;
  }
}

// --- the steps --------------------------------------------------------------------------------------------------

interface StackSettings {
  root: string;
  dataDir: string;
  stage: string;
  log: (line: string) => void;
  ports: StackPorts;
  template: ServerlessTemplate;
  options: StackOptions;
}

function stackSettings(options: StackOptions): StackSettings {
  const root = options.root ?? projectRoot();
  const stage = options.stage ?? 'local';
  return {
    root,
    dataDir: options.dataDir ?? join(root, '.local'),
    stage,
    log: options.log ?? (() => {}),
    ports: options.ports === 'free' ? { http: 0, dashboard: 0, mqtt: 0, admin: 0, sqs: 0, dynamodb: 0, networkServer: 0 } : { ...DEFAULT_PORTS, ...options.ports },
    template: loadServerlessTemplate(join(root, 'serverless.yml'), { stage, region: REGION, ...(options.params ? { params: options.params } : {}) }),
    options,
  };
}

/**
 * What the stack started, to be stopped in reverse order, and the variables it set in `process.env`, put back last.
 * `close` runs every stop even when one fails, then throws the first failure; it is safe to call twice.
 */
class Lifecycle {
  readonly #closers: { what: string; close: () => Promise<void> }[] = [];
  readonly #restoreEnv: Record<string, string | undefined> = {};
  #closing: Promise<void> | undefined;

  constructor(private readonly log: (line: string) => void) {
    this.onClose('environment', async () => {
      for (const [name, value] of Object.entries(this.#restoreEnv)) setVariable(name, value);
    });
  }

  onClose(what: string, close: () => Promise<void>): void {
    this.#closers.push({ what, close });
  }

  /** Sets (or, for undefined, removes) variables; the first value seen of each is the one put back. */
  setEnv(vars: Record<string, string | undefined>): void {
    for (const [name, value] of Object.entries(vars)) {
      if (!(name in this.#restoreEnv)) this.#restoreEnv[name] = process.env[name];
      setVariable(name, value);
    }
  }

  close(): Promise<void> {
    return (this.#closing ??= (async () => {
      let first: unknown;
      for (const c of this.#closers.reverse()) {
        try {
          await c.close();
        } catch (e) {
          this.log(`stopping ${c.what} failed: ${(e as Error).message}`);
          first ??= e;
        }
      }
      if (first !== undefined) throw first;
    })());
  }
}

function setVariable(name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
}

interface Demo {
  registryDemo: Awaited<ReturnType<typeof loadDemoRegistry>>;
  credentials: DeviceCredentials;
  gatewayIds: string[];
  registry: Stack['registry'];
}

/** Keys and secrets: the demo registry with the gateway pool, and the devices' keys. */
async function prepareDemo({ dataDir, options }: StackSettings): Promise<Demo> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const registryDemo = await loadDemoRegistry(join(dataDir, 'keys'));
  const credentials = await prepareDeviceCredentials(dataDir, registryDemo);
  const gatewayIds = parseGatewayIds((options.gatewayIds ?? [DEMO.gateway]).join(','));
  withGatewayPool(registryDemo.document, gatewayIds);
  return { registryDemo, credentials, gatewayIds, registry: { project: DEMO.project, location: DEMO.location, registry: DEMO.registry, gatewayIds } };
}

/** The bridge, and the ClearBlade service account that opens its REST form. */
async function startBridgeEmulator(life: Lifecycle, { dataDir, ports }: StackSettings, demo: Demo): Promise<{ emulator: Emulator; serviceAccountFile: string }> {
  const emulator = await startEmulator({ registry: demo.registryDemo.document, port: ports.mqtt, adminPort: ports.admin, dataDir: join(dataDir, 'emulator') });
  life.onClose('the bridge emulator', () => emulator.close());
  const serviceAccountFile = join(dataDir, 'clearblade-service-account.json');
  await writeServiceAccountFile(serviceAccountFile, emulator.serviceAccount());
  return { emulator, serviceAccountFile };
}

/** The LoRaWAN demo devices and the stand-in for their network servers' downlink APIs. */
async function startNetworkServers(life: Lifecycle, { dataDir, ports }: StackSettings, demo: Demo, emulator: Emulator): Promise<LorawanDemo> {
  const lorawan = await startLorawanDemo({ dataDir, emulator, registryId: demo.registry.registry, gatewayIds: demo.gatewayIds, port: ports.networkServer, host: HOST });
  life.onClose('the network-server stand-in', () => lorawan.close());
  return lorawan;
}

interface AwsStandIns {
  sqs: SqsServer;
  dynamodb: DynamoDbServer;
  /** The template's DynamoDB tables, by logical ID. */
  tableIds: string[];
}

/** The SQS and DynamoDB servers, with the queues and tables of the template. */
async function startAwsStandIns(life: Lifecycle, { template, ports }: StackSettings): Promise<AwsStandIns> {
  const queueIds = resourcesOfType(template, 'AWS::SQS::Queue');
  const tableIds = resourcesOfType(template, 'AWS::DynamoDB::Table');
  const sqs = await startSqsServer({ queues: queueIds.map((id) => queueSpec(template, id)), port: ports.sqs, host: HOST, region: REGION });
  life.onClose('the SQS server', () => sqs.close());
  const dynamodb = await startDynamoDbServer({ tables: tableIds.map((id) => tableSpec(template, id)), port: ports.dynamodb, host: HOST, region: REGION });
  life.onClose('the DynamoDB server', () => dynamodb.close());
  return { sqs, dynamodb, tableIds };
}

/** The functions' environment, set before the handlers load (they read it when they load and on first use). */
function setFunctionsEnvironment(
  life: Lifecycle,
  { template, options }: StackSettings,
  { demo, emulator, lorawan, aws }: { demo: Demo; emulator: Emulator; lorawan: LorawanDemo; aws: AwsStandIns },
): void {
  life.setEnv({
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    // A profile or session token from the user's shell must not reach the local servers, nor real AWS.
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
    AWS_ENDPOINT_URL: undefined,
    AWS_ENDPOINT_URL_SQS: aws.sqs.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: aws.dynamodb.endpoint,
    ...functionsEnvironment(template, localReferences(aws.sqs, aws.dynamodb), {
      registry: demo.registry,
      emulator,
      gatewayKeyFile: demo.registryDemo.keyFiles[DEMO.gateway]!.privateKey,
      credentials: demo.credentials,
      lorawan: lorawan.env,
    }),
    // The handlers log JSON lines for CloudWatch; in a terminal, the stack's own one line per batch reads better.
    // Simulated devices are refused on purpose, so their refusals are not worth a warning each.
    POWERTOOLS_LOG_LEVEL: options.handlerLogLevel ?? ((options.simulate ?? 0) > 0 ? 'ERROR' : 'WARN'),
    // Each invocation would print its metrics as an EMF JSON document; there is no CloudWatch to read them.
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
}

interface LoadedFunction {
  fn: LocalFunction;
  handler: AnyHandler;
}

/** Every function of the template, with its handler loaded. */
async function loadFunctions({ root, template }: StackSettings): Promise<ReadonlyMap<string, LoadedFunction>> {
  const functions = new Map<string, LoadedFunction>();
  for (const name of template.functionNames()) {
    const spec = template.function(name);
    if (typeof spec.handler !== 'string') throw new RelayError('ERR_CONFIG', `functions.${name}.handler must be a string`);
    functions.set(name, {
      fn: { functionName: name, timeoutSeconds: template.functionTimeoutSeconds(name), region: REGION, memoryLimitInMB: memoryOf(template, name) },
      handler: await loadHandler(root, spec.handler, name),
    });
  }
  return functions;
}

interface EventSource {
  functionName: string;
  queue: LocalQueue;
  source: SqsEventSource;
}

/** Lambda's SQS integration for every `sqs` event; the first is the relay's. Not started yet. */
function wireRelayEventSources(
  life: Lifecycle,
  { template, log }: StackSettings,
  sqs: SqsServer,
  functions: ReadonlyMap<string, LoadedFunction>,
  dashboard: { feed?: DashboardFeed },
): { sources: EventSource[]; relay: EventSource } {
  // What became of each record (confirmed, retried, dead-lettered), which the SQS response alone does not say.
  const outcomes = new RelayOutcomeLog();
  outcomes.start();
  life.onClose('the relay outcome log', async () => outcomes.stop());
  const onBatch = (functionName: string) => (report: BatchReport) => {
    const summary = summarizeBatch(report, outcomes.take(report.messageIds));
    dashboard.feed?.noteBatch(report, summary);
    log(describeBatch(functionName, report, summary));
  };
  const sources: EventSource[] = [];
  for (const name of template.functionNames()) {
    for (const event of template.functionEvents(name, 'sqs')) {
      const settings = sqsEventSettings(event, sqs, name);
      if (settings === undefined) continue;
      const { fn, handler } = functions.get(name)!;
      const source = new SqsEventSource({
        client: sqs.client,
        queue: settings.queue,
        handler: handler as SqsBatchHandler,
        fn,
        visibilityTimeoutSeconds: settings.queue.spec.visibilityTimeoutSeconds,
        batchSize: settings.batchSize,
        reportBatchItemFailures: settings.reportBatchItemFailures,
        onBatch: onBatch(name),
        onError: (e, during) => log(`${name}: SQS ${during} failed: ${(e as Error).message}`),
      });
      const unsubscribe = sqs.onVisibilityChange((c) => {
        if (c.queueUrl === settings.queue.url) source.noteVisibilityChange(c.receiptHandle, c.seconds);
      });
      sources.push({ functionName: name, queue: settings.queue, source });
      life.onClose(`the SQS event source of ${name}`, async () => {
        await source.stop();
        unsubscribe();
      });
    }
  }
  const relay = sources[0];
  if (relay === undefined) throw new RelayError('ERR_CONFIG', `${template.path}: no function consumes an SQS queue`);
  return { sources, relay };
}

/** The relay queue's dead-letter queue, and the dashboard's panel of what is in it. Not started yet. */
function watchDeadLetters(life: Lifecycle, { template }: StackSettings, sqs: SqsServer, { relay }: { relay: EventSource }, gatewayIds: string[]): { queue: LocalQueue; watch: DeadLetterWatch } {
  const deadLetterId = relay.queue.spec.redrive?.targetLogicalId;
  if (deadLetterId === undefined) throw new RelayError('ERR_CONFIG', `${template.path}: ${relay.queue.spec.logicalId} has no dead-letter queue`);
  const queue = sqs.queue(deadLetterId);
  const watch = new DeadLetterWatch({ client: sqs.client, deadLetterQueueUrl: queue.url, relayQueueUrl: relay.queue.url, gatewayIds });
  life.onClose('the dead-letter panel', () => watch.stop());
  return { queue, watch };
}

/** The HTTP API: API Gateway's routes of the template, each invoking its function as Lambda would. */
async function startHttpApi(life: Lifecycle, { template, ports }: StackSettings, functions: ReadonlyMap<string, LoadedFunction>, dashboard: { feed?: DashboardFeed }): Promise<ServedHttpApi> {
  const routes = httpApiRoutes(template);
  const api = await serveHttpApi(
    async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> => {
      const started = Date.now();
      const method = event.requestContext.http.method;
      const note = (status: number): void => dashboard.feed?.noteHttp({ at: new Date(started).toISOString(), method, path: event.rawPath, status, durationMs: Date.now() - started });
      const match = matchRoute(routes, method, event.rawPath);
      let result: APIGatewayProxyResultV2;
      if (match === undefined) {
        result = { statusCode: 404, headers: { 'content-type': 'application/json' }, body: '{"message":"Not Found"}' };
      } else {
        const { fn, handler } = functions.get(match.route.functionName)!;
        const outcome = await invokeLocally(handler, withRoute(event, match), fn).outcome;
        // A function error or timeout is API Gateway's 500; the adapter answers it when the handler throws.
        if (outcome.kind !== 'returned') {
          note(500);
          throw outcome.kind === 'threw' ? outcome.error : new Error(`${fn.functionName} timed out`);
        }
        result = outcome.value as APIGatewayProxyResultV2;
      }
      note(typeof result === 'object' && result !== null ? (result.statusCode ?? 200) : 200);
      return result;
    },
    { host: HOST, port: ports.http },
  );
  life.onClose('the HTTP API', () => api.close());
  return api;
}

interface Schedules {
  timers: ScheduleTimer<unknown>[];
  /** The functions with a `schedule` event. */
  scheduled: string[];
  everySeconds: number;
  /** Runs them all now, and waits for them. */
  fireNow(): Promise<void>;
}

/** A timer for each function with a `schedule` event (the poller). Not started yet. */
function wireSchedules(life: Lifecycle, { template, options, log }: StackSettings, functions: ReadonlyMap<string, LoadedFunction>): Schedules {
  const everySeconds = options.scheduleEverySeconds ?? 60;
  const scheduled = template.functionNames().filter((n) => template.functionEvents(n, 'schedule').length > 0);
  const timers = scheduled.map((name) => {
    const { fn, handler } = functions.get(name)!;
    const timer = new ScheduleTimer({
      everySeconds,
      fn,
      handler,
      onResult: (outcome) => {
        if (outcome.kind === 'returned') log(`${name}: ${JSON.stringify(outcome.value)}`);
        else log(`${name}: ${outcome.kind === 'threw' ? `failed: ${(outcome.error as Error).message}` : 'timed out'}`);
      },
    });
    life.onClose(`the schedule of ${name}`, () => timer.stop());
    return timer;
  });
  return {
    timers,
    scheduled,
    everySeconds,
    fireNow: async () => {
      await Promise.all(timers.map((t) => t.fireNow()));
    },
  };
}

interface DashboardParts {
  demo: Demo;
  emulator: Emulator;
  lorawan: LorawanDemo;
  aws: AwsStandIns;
  relay: { relay: EventSource };
  deadLetters: { queue: LocalQueue; watch: DeadLetterWatch };
  schedules: Schedules;
}

/** The dashboard's feed (not started yet) and its server. */
async function startDashboard(
  life: Lifecycle,
  { ports }: StackSettings,
  { demo, emulator, lorawan, aws, relay: { relay }, deadLetters, schedules }: DashboardParts,
): Promise<{ feed: DashboardFeed; server: DashboardServer; configTable: string }> {
  const configTableId = aws.tableIds[0];
  const configTable = configTableId === undefined ? '' : (aws.dynamodb.tableName(configTableId) ?? '');
  const feed = new DashboardFeed({
    emulator,
    registryId: demo.registry.registry,
    gatewayIds: demo.gatewayIds,
    sqs: aws.sqs.client,
    queues: { relay: { name: relay.queue.spec.name, url: relay.queue.url }, deadLetter: { name: deadLetters.queue.spec.name, url: deadLetters.queue.url } },
    configs: new ConfigStore({ tableName: configTable, client: aws.dynamodb.client }),
    lorawan: new LorawanDashboardSource({
      standIn: lorawan.standIn,
      store: new ConfigStore({ tableName: configTable, client: aws.dynamodb.client }),
      devices: Object.values(lorawan.devices),
    }),
    deadLetters: deadLetters.watch,
  });
  life.onClose('the dashboard feed', () => feed.stop());
  const server = await startDashboardServer({
    feed,
    host: HOST,
    port: ports.dashboard,
    pollNow: () => void schedules.fireNow(),
    deadLetters: deadLetters.watch,
  });
  life.onClose('the dashboard', () => server.close());
  return { feed, server, configTable };
}

/** `simulate` devices (sim-0001...), added to the registry and bound to their gateways, posting readings. */
function startSimulator(
  life: Lifecycle,
  { options }: StackSettings,
  { demo, emulator, api, feed }: { demo: Demo; emulator: Emulator; api: ServedHttpApi; feed: DashboardFeed },
): number {
  const count = options.simulate ?? 0;
  if (count <= 0) return 0;
  const ids = Array.from({ length: count }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`);
  for (const id of ids) {
    emulator.registry.createDevice(demo.registry.registry, { id });
    emulator.registry.bind(demo.registry.registry, gatewayFor(id, demo.gatewayIds), id);
  }
  const sim = new DeviceSimulator({
    ingestUrl: api.url,
    devices: ids,
    deviceKey: (id) => demo.credentials.deviceKey(id),
    ...(options.simulateIntervalMs !== undefined ? { intervalMs: options.simulateIntervalMs } : {}),
    onPost: () => feed.noteSimulator(sim.stats()),
  });
  sim.start();
  life.onClose('the device simulator', () => sim.stop());
  return count;
}

interface Started {
  demo: Demo;
  bridge: { emulator: Emulator; serviceAccountFile: string };
  lorawan: LorawanDemo;
  aws: AwsStandIns;
  relay: { relay: EventSource };
  deadLetters: { queue: LocalQueue };
  api: ServedHttpApi;
  schedules: Schedules;
  dashboard: { server: DashboardServer; configTable: string };
  /** How many simulated devices post readings. */
  simulated: number;
}

/** The running stack as its users see it: where everything is, and how to drive and stop it. */
function stackHandle({ stage, template }: StackSettings, life: Lifecycle, s: Started): Stack {
  const { emulator, serviceAccountFile } = s.bridge;
  const { sqs, dynamodb } = s.aws;
  const { relay } = s.relay;
  const ports: StackPorts = {
    http: Number(new URL(s.api.url).port),
    dashboard: s.dashboard.server.port,
    mqtt: emulator.port,
    admin: emulator.adminUrl === undefined ? 0 : Number(new URL(emulator.adminUrl).port),
    sqs: sqs.port,
    dynamodb: dynamodb.port,
    networkServer: s.lorawan.standIn.port,
  };
  const urls: StackUrls = {
    ingest: s.api.url,
    dashboard: s.dashboard.server.url,
    mqtt: emulator.mqttUrl,
    admin: emulator.adminUrl ?? '',
    sqs: sqs.endpoint,
    dynamodb: dynamodb.endpoint,
    networkServer: s.lorawan.standIn.url,
  };
  const caFile = emulator.caFile ?? '';
  const { credentials } = s.demo;
  return {
    urls,
    ports,
    caFile,
    serviceAccountFile,
    stage,
    emulator,
    sqs,
    dynamodb,
    relayQueue: relay.queue,
    deadLetterQueue: s.deadLetters.queue,
    configTable: s.dashboard.configTable,
    registry: s.demo.registry,
    lorawan: s.lorawan,
    deviceKey: (id) => credentials.deviceKey(id),
    runSchedules: () => s.schedules.fireNow(),
    relayStats: () => relay.source.stats(),
    banner: () =>
      readyBanner({
        urls,
        caFile,
        serviceAccountFile,
        relayQueue: relay.queue.spec.name,
        deadLetterQueue: s.deadLetters.queue.spec.name,
        configTable: s.dashboard.configTable,
        relayFunction: relay.functionName,
        batchSize: relay.source.batchSize,
        scheduled: s.schedules.scheduled,
        everySeconds: s.schedules.everySeconds,
        deployedRates: s.schedules.scheduled.map((n) => scheduleRate(template, n)),
        simulated: s.simulated,
        deviceId: DEMO.devices[0],
        deviceKey: credentials.deviceKey(DEMO.devices[0]),
        registryName: registryName(s.demo.registry),
        gatewayId: DEMO.gateway,
        gatewayKeyFile: s.demo.registryDemo.keyFiles[DEMO.gateway]!.privateKey,
        devices: DEMO.devices,
        lorawan: { secretsFile: s.lorawan.secretsFile, devices: s.lorawan.devices },
      }),
    close: () => life.close(),
  };
}

// --- template and environment -----------------------------------------------------------------------------------

/** Adds the pool's gateways the demo registry lacks, sharing the demo gateway's key, and binds each demo device to its gateway. */
function withGatewayPool(document: RegistryDocument, gatewayIds: readonly string[]): void {
  const registry = document.registries[0]!;
  const devices = (registry.devices ??= []);
  const demoGateway = devices.find((d) => d.id === DEMO.gateway)!;
  for (const id of gatewayIds) {
    if (!devices.some((d) => d.id === id)) devices.push({ id, credentials: demoGateway.credentials ?? [], gatewayConfig: { ...demoGateway.gatewayConfig } });
  }
  const bindings = (registry.bindings ??= []);
  for (const deviceId of DEMO.devices) {
    const gatewayId = gatewayFor(deviceId, gatewayIds);
    if (!bindings.some((b) => b.gatewayId === gatewayId && b.deviceId === deviceId)) bindings.push({ gatewayId, deviceId });
  }
}

function resourcesOfType(template: ServerlessTemplate, type: string): string[] {
  const resources = template.get(['resources', 'Resources']);
  if (!isObject(resources)) return [];
  return Object.entries(resources)
    .filter(([, r]) => isObject(r) && r.Type === type)
    .map(([id]) => id);
}

/** `!Ref` and `!GetAtt` of the resources that exist locally, and the pseudo parameters. */
function localReferences(sqs: SqsServer, dynamodb: DynamoDbServer): LocalReferences {
  const queue = (id: string): LocalQueue | undefined => sqs.queues().find((q) => q.spec.logicalId === id);
  return {
    ref(id) {
      if (id === 'AWS::Region') return REGION;
      if (id === 'AWS::AccountId') return '123456789012';
      if (id === 'AWS::Partition') return 'aws';
      return queue(id)?.url ?? dynamodb.tableName(id);
    },
    getAtt(id, attribute) {
      const q = queue(id);
      if (q !== undefined) return attribute === 'Arn' ? q.arn : attribute === 'QueueName' ? q.spec.name : attribute === 'QueueUrl' ? q.url : undefined;
      const table = dynamodb.tableName(id);
      if (table !== undefined && attribute === 'Arn') return `arn:aws:dynamodb:${REGION}:123456789012:table/${table}`;
      return undefined;
    },
  };
}

interface LocalSubstitutes {
  registry: { project: string; location: string; registry: string; gatewayIds: string[] };
  emulator: Emulator;
  gatewayKeyFile: string;
  credentials: DeviceCredentials;
  /** The LoRaWAN function's integrations and secret file, in place of the deployment's. */
  lorawan: LorawanDemo['env'];
}

/**
 * Every function's environment, merged (they share this process), with the deployment-only values replaced.
 * Two functions that want different values for one variable cannot share a process, and are refused.
 */
function functionsEnvironment(template: ServerlessTemplate, refs: LocalReferences, local: LocalSubstitutes): Record<string, string | undefined> {
  const files: Record<(typeof SECRET_FILES)[keyof typeof SECRET_FILES], string> = {
    GATEWAY_KEY_FILE: local.gatewayKeyFile,
    DEVICE_KEYS_FILE: local.credentials.publicKeysFile,
    DEVICE_KEY_MASTER_FILE: local.credentials.masterFile,
    LORAWAN_SECRETS_FILE: local.lorawan.LORAWAN_SECRETS_FILE,
  };
  const merged: Record<string, string | undefined> = {};
  const owner: Record<string, string> = {};
  for (const name of template.functionNames()) {
    const env: Record<string, string | undefined> = functionEnvironment(template, name, refs);
    for (const [secretVar, fileVar] of Object.entries(SECRET_FILES)) {
      if (secretVar in env) {
        // Exactly one of the two may be set (lib/keys/key-source-from-env.ts, lib/auth/index.ts).
        env[secretVar] = undefined;
        env[fileVar] = files[fileVar];
      }
    }
    // The integrations' downlinks go to the network-server stand-in, whose port is known only now.
    if ('LORAWAN_INTEGRATIONS' in env) env.LORAWAN_INTEGRATIONS = local.lorawan.LORAWAN_INTEGRATIONS;
    // Lambda's runtime flags; this process has its own.
    env.NODE_OPTIONS = undefined;
    Object.assign(env, {
      IOTCORE_PROJECT: local.registry.project,
      IOTCORE_LOCATION: local.registry.location,
      IOTCORE_REGISTRY: local.registry.registry,
      IOTCORE_GATEWAY_IDS: local.registry.gatewayIds.join(','),
      IOTCORE_MQTT_HOST: local.emulator.host,
      IOTCORE_MQTT_PORT: String(local.emulator.port),
      IOTCORE_CA_FILE: local.emulator.caFile,
    });
    for (const [variable, value] of Object.entries(env)) {
      if (variable in merged && merged[variable] !== value) {
        throw new RelayError('ERR_CONFIG', `functions ${owner[variable]} and ${name} set ${variable} differently; the local stack runs them in one process`);
      }
      merged[variable] = value;
      owner[variable] = name;
    }
  }
  return merged;
}

async function loadHandler(root: string, handler: string, functionName: string): Promise<AnyHandler> {
  const dot = handler.lastIndexOf('.');
  if (dot <= 0) throw new RelayError('ERR_CONFIG', `functions.${functionName}.handler must be "<file>.<export>" (got ${handler})`);
  const [file, exportName] = [handler.slice(0, dot), handler.slice(dot + 1)];
  const path = ['.ts', '.js', '.mjs'].map((ext) => join(root, `${file}${ext}`)).find((p) => existsSync(p));
  if (path === undefined) throw new RelayError('ERR_CONFIG', `functions.${functionName}.handler: ${file} not found under ${root}`);
  const module = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  const fn = module[exportName];
  if (typeof fn !== 'function') throw new RelayError('ERR_CONFIG', `functions.${functionName}.handler: ${file} exports no function ${exportName}`);
  return fn as AnyHandler;
}

function memoryOf(template: ServerlessTemplate, name: string): number | undefined {
  const value = template.function(name).memorySize ?? template.get(['provider', 'memorySize']);
  const mb = Number(value);
  return Number.isFinite(mb) && mb > 0 ? mb : undefined;
}

interface SqsEventSettings {
  queue: LocalQueue;
  batchSize: number;
  reportBatchItemFailures: boolean;
}

/** An `sqs` event of a function: its queue (by `!GetAtt <id>.Arn` or by ARN), batch size and response type. */
function sqsEventSettings(event: TemplateValue, sqs: SqsServer, functionName: string): SqsEventSettings | undefined {
  const spec = typeof event === 'string' ? { arn: event } : isObject(event) ? event : undefined;
  if (spec === undefined) throw new RelayError('ERR_CONFIG', `functions.${functionName}: an sqs event needs an arn`);
  if (spec.enabled === false) return undefined;
  const arn = spec.arn;
  const getAtt = isObject(arn) ? arn['Fn::GetAtt'] : undefined;
  const queue = sqs
    .queues()
    .find((q) => (Array.isArray(getAtt) ? q.spec.logicalId === getAtt[0] : typeof arn === 'string' && arn.endsWith(`:${q.spec.name}`)));
  if (queue === undefined) throw new RelayError('ERR_CONFIG', `functions.${functionName}: the sqs event's queue is not a queue of this template`);
  const responseTypes = Array.isArray(spec.functionResponseType) ? spec.functionResponseType : [spec.functionResponseType];
  return {
    queue,
    // The framework's default, as Lambda's.
    batchSize: spec.batchSize === undefined ? 10 : Number(spec.batchSize),
    reportBatchItemFailures: responseTypes.includes('ReportBatchItemFailures'),
  };
}

/** The deployed schedule of a function, as written: `rate(15 minutes)`, `cron(...)`. */
function scheduleRate(template: ServerlessTemplate, name: string): string {
  const [event] = template.functionEvents(name, 'schedule');
  const rate = isObject(event) ? event.rate : event;
  return Array.isArray(rate) ? rate.join(', ') : String(rate);
}

