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
import { join, relative } from 'node:path';
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

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const root = options.root ?? projectRoot();
  const dataDir = options.dataDir ?? join(root, '.local');
  const stage = options.stage ?? 'local';
  const log = options.log ?? (() => {});
  const ports: StackPorts =
    options.ports === 'free' ? { http: 0, dashboard: 0, mqtt: 0, admin: 0, sqs: 0, dynamodb: 0, networkServer: 0 } : { ...DEFAULT_PORTS, ...options.ports };
  const template = loadServerlessTemplate(join(root, 'serverless.yml'), { stage, region: REGION, ...(options.params ? { params: options.params } : {}) });

  const closers: { what: string; close: () => Promise<void> }[] = [];
  const restoreEnv: Record<string, string | undefined> = {};
  const setEnv = (vars: Record<string, string | undefined>): void => {
    for (const [name, value] of Object.entries(vars)) {
      if (!(name in restoreEnv)) restoreEnv[name] = process.env[name];
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  closers.push({
    what: 'environment',
    close: async () => {
      for (const [name, value] of Object.entries(restoreEnv)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    },
  });
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      let first: unknown;
      for (const c of closers.reverse()) {
        try {
          await c.close();
        } catch (e) {
          log(`stopping ${c.what} failed: ${(e as Error).message}`);
          first ??= e;
        }
      }
      if (first !== undefined) throw first;
    })());

  // The AWS SDK warns, on Node below 22, that its releases from January 2027 on will need Node 22: nothing a user
  // of the local stack can act on at start-up (docs/local-stack.md says it once). Its documented switch, set before
  // the first client is made; a value of the user's own is kept.
  setEnv({ AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ?? 'true' });

  try {
    // Keys and secrets
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const demo = await loadDemoRegistry(join(dataDir, 'keys'));
    const credentials = await prepareDeviceCredentials(dataDir, demo);
    const gatewayIds = parseGatewayIds((options.gatewayIds ?? [DEMO.gateway]).join(','));
    withGatewayPool(demo.document, gatewayIds);
    const registry = { project: DEMO.project as string, location: DEMO.location as string, registry: DEMO.registry as string, gatewayIds };

    // The bridge
    const emulator = await startEmulator({ registry: demo.document, port: ports.mqtt, adminPort: ports.admin, dataDir: join(dataDir, 'emulator') });
    closers.push({ what: 'the bridge emulator', close: () => emulator.close() });
    const serviceAccountFile = join(dataDir, 'clearblade-service-account.json');
    await writeServiceAccountFile(serviceAccountFile, emulator.serviceAccount());
    const lorawan = await startLorawanDemo({ dataDir, emulator, registryId: registry.registry, gatewayIds, port: ports.networkServer, host: HOST });
    closers.push({ what: 'the network-server stand-in', close: () => lorawan.close() });

    // AWS stand-ins
    const queueIds = resourcesOfType(template, 'AWS::SQS::Queue');
    const tableIds = resourcesOfType(template, 'AWS::DynamoDB::Table');
    const sqs = await startSqsServer({ queues: queueIds.map((id) => queueSpec(template, id)), port: ports.sqs, host: HOST, region: REGION });
    closers.push({ what: 'the SQS server', close: () => sqs.close() });
    const dynamodb = await startDynamoDbServer({ tables: tableIds.map((id) => tableSpec(template, id)), port: ports.dynamodb, host: HOST, region: REGION });
    closers.push({ what: 'the DynamoDB server', close: () => dynamodb.close() });

    // The functions' environment, then the handlers (they read it when they load and on first use)
    const refs = localReferences(sqs, dynamodb);
    setEnv({
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      // A profile or session token from the user's shell must not reach the local servers, nor real AWS.
      AWS_SESSION_TOKEN: undefined,
      AWS_PROFILE: undefined,
      AWS_ENDPOINT_URL: undefined,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
      ...functionsEnvironment(template, refs, {
        registry,
        emulator,
        gatewayKeyFile: demo.keyFiles[DEMO.gateway]!.privateKey,
        credentials,
        lorawan: lorawan.env,
      }),
      // The handlers log JSON lines for CloudWatch; in a terminal, the stack's own one line per batch reads better.
      // Simulated devices are refused on purpose, so their refusals are not worth a warning each.
      POWERTOOLS_LOG_LEVEL: options.handlerLogLevel ?? ((options.simulate ?? 0) > 0 ? 'ERROR' : 'WARN'),
      // Each invocation would print its metrics as an EMF JSON document; there is no CloudWatch to read them.
      POWERTOOLS_METRICS_DISABLED: 'true',
    });

    const functions = new Map<string, { fn: LocalFunction; handler: AnyHandler }>();
    for (const name of template.functionNames()) {
      const spec = template.function(name);
      if (typeof spec.handler !== 'string') throw new RelayError('ERR_CONFIG', `functions.${name}.handler must be a string`);
      functions.set(name, {
        fn: { functionName: name, timeoutSeconds: template.functionTimeoutSeconds(name), region: REGION, memoryLimitInMB: memoryOf(template, name) },
        handler: await loadHandler(root, spec.handler, name),
      });
    }
    const fnOf = (name: string): { fn: LocalFunction; handler: AnyHandler } => functions.get(name)!;

    // Relay: Lambda's SQS integration
    const sources: { functionName: string; queue: LocalQueue; source: SqsEventSource }[] = [];
    let feed: DashboardFeed | undefined;
    // What became of each record (confirmed, retried, dead-lettered), which the SQS response alone does not say.
    const outcomes = new RelayOutcomeLog();
    outcomes.start();
    closers.push({ what: 'the relay outcome log', close: async () => outcomes.stop() });
    const onBatch = (functionName: string) => (report: BatchReport) => {
      const summary = summarizeBatch(report, outcomes.take(report.messageIds));
      feed?.noteBatch(report, summary);
      log(describeBatch(functionName, report, summary));
    };
    for (const name of template.functionNames()) {
      for (const event of template.functionEvents(name, 'sqs')) {
        const settings = sqsEventSettings(event, sqs, name);
        if (settings === undefined) continue;
        const { fn, handler } = fnOf(name);
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
        closers.push({
          what: `the SQS event source of ${name}`,
          close: async () => {
            await source.stop();
            unsubscribe();
          },
        });
      }
    }
    const relay = sources[0];
    if (relay === undefined) throw new RelayError('ERR_CONFIG', `${template.path}: no function consumes an SQS queue`);
    const deadLetterId = relay.queue.spec.redrive?.targetLogicalId;
    if (deadLetterId === undefined) throw new RelayError('ERR_CONFIG', `${template.path}: ${relay.queue.spec.logicalId} has no dead-letter queue`);
    const deadLetterQueue = sqs.queue(deadLetterId);
    const deadLetters = new DeadLetterWatch({ client: sqs.client, deadLetterQueueUrl: deadLetterQueue.url, relayQueueUrl: relay.queue.url, gatewayIds });
    closers.push({ what: 'the dead-letter panel', close: () => deadLetters.stop() });

    // The HTTP API
    const routes = httpApiRoutes(template);
    const api: ServedHttpApi = await serveHttpApi(
      async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyResultV2> => {
        const started = Date.now();
        const method = event.requestContext.http.method;
        const match = matchRoute(routes, method, event.rawPath);
        let result: APIGatewayProxyResultV2;
        if (match === undefined) {
          result = { statusCode: 404, headers: { 'content-type': 'application/json' }, body: '{"message":"Not Found"}' };
        } else {
          const { fn, handler } = fnOf(match.route.functionName);
          const outcome = await invokeLocally(handler, withRoute(event, match), fn).outcome;
          // A function error or timeout is API Gateway's 500; the adapter answers it when the handler throws.
          if (outcome.kind !== 'returned') {
            feed?.noteHttp({ at: new Date(started).toISOString(), method, path: event.rawPath, status: 500, durationMs: Date.now() - started });
            throw outcome.kind === 'threw' ? outcome.error : new Error(`${fn.functionName} timed out`);
          }
          result = outcome.value as APIGatewayProxyResultV2;
        }
        const status = typeof result === 'object' && result !== null ? (result.statusCode ?? 200) : 200;
        feed?.noteHttp({ at: new Date(started).toISOString(), method, path: event.rawPath, status, durationMs: Date.now() - started });
        return result;
      },
      { host: HOST, port: ports.http },
    );
    closers.push({ what: 'the HTTP API', close: () => api.close() });

    // Schedules
    const timers: ScheduleTimer<unknown>[] = [];
    const everySeconds = options.scheduleEverySeconds ?? 60;
    for (const name of template.functionNames()) {
      if (template.functionEvents(name, 'schedule').length === 0) continue;
      const { fn, handler } = fnOf(name);
      const timer = new ScheduleTimer({
        everySeconds,
        fn,
        handler,
        onResult: (outcome) => {
          if (outcome.kind === 'returned') log(`${name}: ${JSON.stringify(outcome.value)}`);
          else log(`${name}: ${outcome.kind === 'threw' ? `failed: ${(outcome.error as Error).message}` : 'timed out'}`);
        },
      });
      timers.push(timer);
      closers.push({ what: `the schedule of ${name}`, close: () => timer.stop() });
    }

    // The dashboard
    const configTableId = tableIds[0];
    const configTable = configTableId === undefined ? '' : (dynamodb.tableName(configTableId) ?? '');
    feed = new DashboardFeed({
      emulator,
      registryId: registry.registry,
      gatewayIds,
      sqs: sqs.client,
      queues: { relay: { name: relay.queue.spec.name, url: relay.queue.url }, deadLetter: { name: deadLetterQueue.spec.name, url: deadLetterQueue.url } },
      configs: new ConfigStore({ tableName: configTable, client: dynamodb.client }),
      lorawan: new LorawanDashboardSource({
        standIn: lorawan.standIn,
        store: new ConfigStore({ tableName: configTable, client: dynamodb.client }),
        devices: Object.values(lorawan.devices),
      }),
      deadLetters,
    });
    const dashboardFeed = feed;
    closers.push({ what: 'the dashboard feed', close: () => dashboardFeed.stop() });
    const dashboard: DashboardServer = await startDashboardServer({
      feed,
      host: HOST,
      port: ports.dashboard,
      pollNow: () => void Promise.all(timers.map((t) => t.fireNow())),
      deadLetters,
    });
    closers.push({ what: 'the dashboard', close: () => dashboard.close() });

    // Everything is wired: start the moving parts.
    feed.start();
    deadLetters.start();
    for (const s of sources) s.source.start();
    for (const t of timers) t.start();

    let simulator: DeviceSimulator | undefined;
    if ((options.simulate ?? 0) > 0) {
      const ids = Array.from({ length: options.simulate! }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`);
      for (const id of ids) {
        emulator.registry.createDevice(registry.registry, { id });
        emulator.registry.bind(registry.registry, gatewayFor(id, gatewayIds), id);
      }
      const sim = new DeviceSimulator({
        ingestUrl: api.url,
        devices: ids,
        deviceKey: (id) => credentials.deviceKey(id),
        ...(options.simulateIntervalMs !== undefined ? { intervalMs: options.simulateIntervalMs } : {}),
        onPost: () => dashboardFeed.noteSimulator(sim.stats()),
      });
      simulator = sim;
      sim.start();
      closers.push({ what: 'the device simulator', close: () => sim.stop() });
    }

    const actualPorts: StackPorts = {
      http: Number(new URL(api.url).port),
      dashboard: dashboard.port,
      mqtt: emulator.port,
      admin: emulator.adminUrl === undefined ? 0 : Number(new URL(emulator.adminUrl).port),
      sqs: sqs.port,
      dynamodb: dynamodb.port,
      networkServer: lorawan.standIn.port,
    };
    const urls: StackUrls = {
      ingest: api.url,
      dashboard: dashboard.url,
      mqtt: emulator.mqttUrl,
      admin: emulator.adminUrl ?? '',
      sqs: sqs.endpoint,
      dynamodb: dynamodb.endpoint,
      networkServer: lorawan.standIn.url,
    };
    const caFile = emulator.caFile ?? '';
    const scheduled = template.functionNames().filter((n) => template.functionEvents(n, 'schedule').length > 0);
    const stack: Stack = {
      urls,
      ports: actualPorts,
      caFile,
      serviceAccountFile,
      stage,
      emulator,
      sqs,
      dynamodb,
      relayQueue: relay.queue,
      deadLetterQueue,
      configTable,
      registry,
      lorawan,
      deviceKey: (id) => credentials.deviceKey(id),
      runSchedules: async () => {
        await Promise.all(timers.map((t) => t.fireNow()));
      },
      relayStats: () => relay.source.stats(),
      banner: () =>
        readyBanner({
          urls,
          caFile: shortPath(caFile),
          serviceAccountFile: shortPath(serviceAccountFile),
          relayQueue: relay.queue.spec.name,
          deadLetterQueue: deadLetterQueue.spec.name,
          configTable,
          relayFunction: relay.functionName,
          batchSize: relay.source.batchSize,
          scheduled,
          everySeconds,
          deployedRates: scheduled.map((n) => scheduleRate(template, n)),
          simulated: simulator === undefined ? 0 : options.simulate!,
          deviceId: DEMO.devices[0],
          deviceKey: credentials.deviceKey(DEMO.devices[0]),
          registryName: registryName(registry),
          gatewayId: DEMO.gateway,
          gatewayKeyFile: shortPath(demo.keyFiles[DEMO.gateway]!.privateKey),
          devices: DEMO.devices,
          lorawan: { secretsFile: shortPath(lorawan.secretsFile), devices: lorawan.devices },
        }),
      close,
    };
    return stack;
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}

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

/** Relative to the working directory when inside it, for a banner that fits the terminal. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === '' || rel.startsWith('..') ? path : rel;
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

interface BannerFacts {
  urls: StackUrls;
  caFile: string;
  serviceAccountFile: string;
  relayQueue: string;
  deadLetterQueue: string;
  configTable: string;
  relayFunction: string;
  batchSize: number;
  scheduled: string[];
  everySeconds: number;
  deployedRates: string[];
  simulated: number;
  deviceId: string;
  deviceKey: string;
  registryName: string;
  gatewayId: string;
  gatewayKeyFile: string;
  devices: readonly string[];
  lorawan: { secretsFile: string; devices: LorawanDemo['devices'] };
}

export function readyBanner(f: BannerFacts): string {
  const row = (name: string, url: string, note = ''): string => `  ${name.padEnd(20)}${url.padEnd(32)}${note}`;
  const schedules =
    f.scheduled.length === 0
      ? []
      : [
          `  ${f.scheduled.join(', ')} every ${f.everySeconds > 0 ? `${f.everySeconds} s` : '(on demand only)'} here` +
            ` (deployed: ${f.deployedRates.join(', ')}); --schedule-every <seconds> changes it`,
        ];
  return [
    '',
    'iotcore-relay: the local stack is up (127.0.0.1 only; nothing from AWS or ClearBlade)',
    '',
    row('ingest (HTTP API)', f.urls.ingest),
    row('dashboard', f.urls.dashboard),
    row('bridge (MQTT, TLS)', f.urls.mqtt, `CA: ${f.caFile}`),
    row('bridge admin API', f.urls.admin, `ClearBlade service account: ${f.serviceAccountFile}`),
    row('SQS', f.urls.sqs, `${f.relayQueue}, ${f.deadLetterQueue}`),
    row('DynamoDB', f.urls.dynamodb, f.configTable),
    row('network servers', f.urls.networkServer, 'stand-in for The Things Stack and ChirpStack downlink APIs (GET /downlinks)'),
    '',
    `  registry ${f.registryName}`,
    `  gateway ${f.gatewayId} (key ${f.gatewayKeyFile}); devices ${f.devices.join(', ')} bound to it`,
    '',
    `  ${f.relayFunction} takes batches of up to ${f.batchSize} from ${f.relayQueue}, one session per gateway`,
    ...schedules,
    ...(f.simulated > 0 ? [`  ${f.simulated} simulated device${f.simulated === 1 ? '' : 's'} posting readings (a few wrong on purpose)`] : []),
    '',
    `Post a reading as ${f.deviceId}, then watch it on the dashboard:`,
    '',
    `  curl -i -X POST ${f.urls.ingest}/devices/${f.deviceId}/events \\`,
    `       -H 'Authorization: Device-Key ${f.deviceKey}' \\`,
    `       -H 'Content-Type: application/json' --data '{"temperature": 21.5}'`,
    '',
    `LoRaWAN: ${f.lorawan.devices.tts} behind The Things Stack, ${f.lorawan.devices.chirpstack} behind ChirpStack (docs/lorawan.md):`,
    '',
    `  npx iotcore-relay send --lorawan ttn --url ${f.urls.ingest} --secrets-file ${f.lorawan.secretsFile}`,
    `  npx iotcore-relay send --lorawan chirpstack --url ${f.urls.ingest} --secrets-file ${f.lorawan.secretsFile}`,
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}
