/**
 * Cold start: what a new Lambda container of each function pays before and during its first invocation.
 *
 * - Bundle sizes: every handler of serverless.yml, bundled as `npm run package` does (bundles.ts).
 * - Import time: each bundle imported in a fresh Node process, with the NODE_OPTIONS serverless.yml gives the
 *   functions, next to `node -e 0` (the process alone) and to `mqtt` alone (bundled the same way, and straight from
 *   node_modules). Targets take turns run after run, so that a busy moment of the machine falls on all of them.
 *   Two figures per target: the import measured inside the process, and the whole process from spawn to exit.
 * - First invocation against warm ones, each function in fresh processes with the environment serverless.yml gives
 *   it and local stand-ins for what it reaches (the real SDK clients over HTTP: Secrets Manager, SQS, DynamoDB; the
 *   emulator for the relay): the relay on a 10-record batch (gateway key, TLS trust store, first session, config
 *   table), the ingest on a valid reading (device key master secret, SendMessage) and on a bad request (answered
 *   before any secret or queue), the config route on a device's stored config, the poller on its schedule. Then
 *   three more invocations in the same process.
 * - The same, side by side, for a reference build of the relay that evaluates Powertools Parameters and the Secrets
 *   Manager and DynamoDB clients at import. The packaged relay loads them at first use, so its import is shorter and
 *   its first invocation longer: "import + first invocation", the container's whole cold start, shows how much of
 *   the SDK's cost moved rather than vanished.
 *
 * Every kind of process takes its turn, process after process, so that a busy moment falls on all of them.
 *
 * @example
 * const result = await measureColdStart(context, bundles);
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { startEmulator } from '../emulator/index.js';
import { startDynamoDbServer } from '../local/dynamodb-server.js';
import type { ServerlessTemplate } from '../local/serverless-template.js';
import { startSqsServer } from '../local/sqs-server.js';
import { functionEnvironment, queueSpec, tableSpec } from '../local/template-resources.js';
import { deriveDeviceKey, masterKeyFromText } from '../lib/auth/device-key.js';
import { ConfigStore } from '../lib/config-store/config-store.js';
import { httpApiEvent, httpApiPost } from '../test/helpers/apigw-events.js';
import { sqsEvent, sqsRecord } from '../test/helpers/relay-fixtures.js';
import { LOCAL_REGION, startSecretsManagerEndpoint } from '../test/helpers/secrets-manager-endpoint.js';
import type { BenchContext } from './bench-context.js';
import { BENCH_GATEWAY, BENCH_REGISTRY, benchMessages, queueRecords } from './bench-fleet.js';
import { loadTemplate, packagingOptions, type BuiltBundle } from './bundles.js';
import { lastLines, privateFile, runNode } from './child-process.js';
import type { InvocationAnswer } from './invocation-child.js';
import { median } from './statistics.js';

export interface ImportTiming {
  target: string;
  /** Time of the `import()` inside the process; empty for `node -e 0`. */
  importMs: number[];
  /** Spawn to exit. */
  processMs: number[];
}

export interface ColdStartResults {
  /** NODE_OPTIONS the functions run with (serverless.yml provider.environment). */
  nodeOptions: string;
  bundles: BuiltBundle[];
  mqttAlone: BuiltBundle;
  runs: number;
  imports: ImportTiming[];
  invocation: {
    records: number;
    warmPerProcess: number;
    /** The AWS services the functions reached, each through a local stand-in. */
    localServices: string[];
    /** The packaged relay first, then the reference that evaluates the SDK at import. */
    variants: ProcessTimings[];
    /** The other functions as packaged, each on its own first request: ingest (a valid reading, then a bad request), config, poll. */
    functions: ProcessTimings[];
  };
}

/** One function, or one build of the relay, run in fresh processes: one entry per process in each array. */
export interface ProcessTimings {
  name: string;
  /** The function of serverless.yml it is. */
  functionName: string;
  importMs: number[];
  firstMs: number[];
  /** The median warm invocation of each process. */
  warmMs: number[];
  /** GetSecretValue calls made by each process (secrets are cached: one per secret its invocations read). */
  secretCalls: number[];
}

export interface ColdStartBundles {
  handlers: BuiltBundle[];
  mqttAlone: BuiltBundle;
  invocationChild: string;
}

const BARE = 'node -e 0';
const MQTT_MODULES = 'mqtt from node_modules';
export const PACKAGED_RELAY = 'relay as packaged';
const SDK_AT_IMPORT_RELAY = 'relay, SDK evaluated at import';
export const INGEST_READING = 'ingest, a valid reading';
export const INGEST_BAD_REQUEST = 'ingest, a bad request';

/**
 * The reference build: the relay's handler, plus static imports of every SDK module it loads at first use on a
 * batch like the benchmark's (Powertools' SecretsProvider with its Secrets Manager client, the DynamoDB client and
 * document client). A static import evaluates its module with the bundle, so this is the relay as it would be if
 * those modules were imported the ordinary way. SQS is left out: the relay loads it only to dead-letter or back off
 * a record, and the benchmark's batches need neither. Namespace re-exports, because esbuild drops a bare
 * `import 'x'` of a package that declares itself free of side effects, as the SDK clients do.
 */
const SDK_AT_IMPORT_ENTRY = [
  "export * as secretsProvider from '@aws-lambda-powertools/parameters/secrets';",
  "export * as secretsManager from '@aws-sdk/client-secrets-manager';",
  "export * as dynamodb from '@aws-sdk/client-dynamodb';",
  "export * as dynamodbDocument from '@aws-sdk/lib-dynamodb';",
  "export { handler } from './handlers/relay.js';",
].join('\n');

async function buildSdkAtImportRelay(root: string, outDir: string): Promise<string> {
  const file = join(outDir, 'relay-sdk-at-import.mjs');
  await build({
    ...packagingOptions(root, loadTemplate(root)),
    absWorkingDir: root,
    stdin: { contents: SDK_AT_IMPORT_ENTRY, resolveDir: root, sourcefile: 'relay-sdk-at-import.ts', loader: 'ts' },
    outfile: file,
    logLevel: 'error',
  });
  return file;
}

/** A process that imports one module and says how long the import took. */
function importSnippet(specifier: string): string {
  return `const t = performance.now(); await import(${JSON.stringify(specifier)}); process.stdout.write(JSON.stringify({ importMs: performance.now() - t }));`;
}

export async function measureColdStart(context: BenchContext, bundles: ColdStartBundles): Promise<ColdStartResults> {
  const template = loadTemplate(context.root);
  const providerEnv = template.get(['provider', 'environment']);
  const functionEnv: Record<string, string> = {};
  if (providerEnv !== undefined && providerEnv !== null && typeof providerEnv === 'object' && !Array.isArray(providerEnv)) {
    for (const [k, v] of Object.entries(providerEnv)) if (typeof v === 'string') functionEnv[k] = v;
  }
  const nodeOptions = functionEnv.NODE_OPTIONS ?? '';
  // A clean environment, as Lambda's: nothing from the user's shell reaches the handlers.
  const baseEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', AWS_REGION: LOCAL_REGION, ...functionEnv };

  const runs = context.quick ? 1 : 7;
  const targets: { name: string; args: string[] }[] = [
    { name: BARE, args: ['-e', '0'] },
    { name: MQTT_MODULES, args: ['--input-type=module', '-e', importSnippet('mqtt')] },
    { name: bundles.mqttAlone.name, args: ['--input-type=module', '-e', importSnippet(pathToFileURL(bundles.mqttAlone.file).href)] },
    ...bundles.handlers.map((b) => ({ name: b.name, args: ['--input-type=module', '-e', importSnippet(pathToFileURL(b.file).href)] })),
  ];
  context.progress(`cold start: import of ${targets.length - 1} modules against node -e 0, ${runs} run(s) each, NODE_OPTIONS=${nodeOptions || '(none)'}`);
  const imports: ImportTiming[] = targets.map((t) => ({ target: t.name, importMs: [], processMs: [] }));
  for (let run = 0; run < runs; run++) {
    for (const [i, t] of targets.entries()) {
      const result = await runNode(t.args, { env: baseEnv, cwd: context.root, timeoutMs: 30_000 });
      if (result.code !== 0) throw new Error(`cold start: importing ${t.name} failed: ${lastLines(result.stderr)}`);
      imports[i]!.processMs.push(result.wallMs);
      if (t.name !== BARE) imports[i]!.importMs.push((JSON.parse(result.stdout) as { importMs: number }).importMs);
    }
  }

  const relay = bundles.handlers.find((b) => b.name === 'relay');
  if (relay === undefined) throw new Error('serverless.yml declares no relay function');
  const reference = await buildSdkAtImportRelay(context.root, dirname(relay.file));
  const bundleOf = (name: string): string => {
    const bundle = bundles.handlers.find((b) => b.name === name);
    if (bundle === undefined) throw new Error(`serverless.yml declares no ${name} function`);
    return bundle.file;
  };
  const containers: Container[] = [
    { name: PACKAGED_RELAY, functionName: 'relay', file: relay.file, request: 'relay' },
    { name: SDK_AT_IMPORT_RELAY, functionName: 'relay', file: reference, request: 'relay' },
    { name: INGEST_READING, functionName: 'ingest', file: bundleOf('ingest'), request: 'reading' },
    { name: INGEST_BAD_REQUEST, functionName: 'ingest', file: bundleOf('ingest'), request: 'bad request' },
    { name: 'config', functionName: 'config', file: bundleOf('config'), request: 'config' },
    { name: 'poll', functionName: 'poll', file: bundleOf('poll'), request: 'schedule' },
  ];
  const invocation = await measureInvocations(context, template, containers, bundles.invocationChild, baseEnv);
  return { nodeOptions, bundles: bundles.handlers, mqttAlone: bundles.mqttAlone, runs, imports, invocation };
}

/** A kind of fresh process: a bundle, the function whose environment it gets, and what its invocations are. */
interface Container {
  name: string;
  functionName: string;
  file: string;
  request: 'relay' | 'reading' | 'bad request' | 'config' | 'schedule';
}

/** The device the HTTP requests come from, with a stored config and noted as relayed for (so the poller polls it). */
const BENCH_DEVICE = 'sensor-0001';

function resourceIds(template: ServerlessTemplate, type: string): string[] {
  const resources = template.get(['resources', 'Resources']);
  if (resources === undefined || resources === null || typeof resources !== 'object' || Array.isArray(resources)) return [];
  return Object.entries(resources)
    .filter(([, r]) => r !== null && typeof r === 'object' && !Array.isArray(r) && r.Type === type)
    .map(([id]) => id);
}

/** The events of one process, the first one cold: each request its own (fresh request IDs, schedule times). */
function eventsOf(container: Container, count: number, deviceKey: string, process: number): unknown[] {
  const authorization = `Device-Key ${deviceKey}`;
  return Array.from({ length: count }, (_, i) => {
    switch (container.request) {
      case 'relay':
        return sqsEvent(
          queueRecords(benchMessages({ records: 10, devices: 10 }), { fifoGroup: BENCH_GATEWAY }).map((r) => sqsRecord(r.body, { groupId: BENCH_GATEWAY, messageId: r.messageId })),
        );
      case 'reading':
        return httpApiPost(`/devices/${BENCH_DEVICE}/events`, Buffer.from(JSON.stringify({ reading: i, at: Date.now() })), { authorization });
      case 'bad request':
        // Refused on its path (a device ID may not start with a digit) before any credential, secret or queue.
        return httpApiPost('/devices/1-not-a-device/events', Buffer.from('{}'), { authorization });
      case 'config':
        return httpApiEvent({ method: 'GET', path: `/devices/${BENCH_DEVICE}/config`, headers: { authorization } });
      case 'schedule':
        // A minute of its own per invocation, as the schedule fires; the poller's deduplication IDs follow it.
        return { id: `bench-${process}-${i}`, time: new Date(Date.UTC(2026, 0, 1, 0, process * 10 + i)).toISOString() };
    }
  });
}

/** What makes an answer right, per kind of invocation; a wrong one stops the scenario. */
function problemWith(container: Container, response: unknown): string | undefined {
  const r = (response ?? {}) as { batchItemFailures?: unknown[]; statusCode?: number; jobs?: number; body?: unknown };
  const expectStatus = (status: number): string | undefined => (r.statusCode === status ? undefined : `answered ${r.statusCode} (${String(r.body)}), not ${status}`);
  switch (container.request) {
    case 'relay':
      return r.batchItemFailures?.length === 0 ? undefined : `${r.batchItemFailures?.length ?? 'no'} record(s) failed back`;
    case 'reading':
      return expectStatus(202);
    case 'bad request':
      return expectStatus(400);
    case 'config':
      return expectStatus(200);
    case 'schedule':
      return (r.jobs ?? 0) >= 1 ? undefined : 'enqueued no config-poll job';
  }
}

async function measureInvocations(
  context: BenchContext,
  template: ServerlessTemplate,
  containers: readonly Container[],
  child: string,
  baseEnv: NodeJS.ProcessEnv,
): Promise<ColdStartResults['invocation']> {
  const processes = context.quick ? 1 : 5;
  const warm = 3;
  context.progress(
    `cold start: first invocation against ${warm} warm ones, ${processes} fresh process(es) for each of: ${containers.map((c) => c.name).join(', ')}`,
  );
  const timings = containers.map((c): ProcessTimings => ({ name: c.name, functionName: c.functionName, importMs: [], firstMs: [], warmMs: [], secretCalls: [] }));
  const closers: (() => Promise<void>)[] = [];
  try {
    const emulator = await startEmulator({ registry: context.fleet.document, adminPort: null, latencyMs: 0, stateRateLimit: false });
    closers.push(() => emulator.close());
    if (emulator.caFile === undefined) throw new Error('the emulator wrote no CA file');
    const secrets = await startSecretsManagerEndpoint();
    closers.push(() => secrets.close());
    const sqs = await startSqsServer({ queues: resourceIds(template, 'AWS::SQS::Queue').map((id) => queueSpec(template, id)), region: LOCAL_REGION });
    closers.push(() => sqs.close());
    const dynamodb = await startDynamoDbServer({ tables: resourceIds(template, 'AWS::DynamoDB::Table').map((id) => tableSpec(template, id)), region: LOCAL_REGION });
    closers.push(() => dynamodb.close());
    const refs = {
      ref: (id: string) => sqs.queues().find((q) => q.spec.logicalId === id)?.url ?? dynamodb.tableName(id),
      getAtt: (id: string, attribute: string) => (attribute === 'Arn' ? sqs.queues().find((q) => q.spec.logicalId === id)?.arn : undefined),
    };

    // The secrets every function reads, under the names serverless.yml gives them.
    const master = randomBytes(32).toString('base64url');
    const secretValues: Record<string, string> = {
      GATEWAY_KEY_SECRET: await readFile(context.keyFile, 'utf8'),
      DEVICE_KEY_MASTER_SECRET: master,
      DEVICE_KEYS_SECRET: '{}',
    };
    const deviceKey = deriveDeviceKey(masterKeyFromText(master, 'bench'), BENCH_DEVICE);
    const envOf = (functionName: string): NodeJS.ProcessEnv => {
      const deployed = functionEnvironment(template, functionName, refs);
      for (const [variable, value] of Object.entries(secretValues)) {
        if (!(variable in deployed)) continue;
        deployed[variable] ||= `iotcore-relay/bench/${variable.toLowerCase()}`;
        secrets.putSecret(deployed[variable]!, value);
      }
      return {
        ...baseEnv,
        ...deployed,
        AWS_ACCESS_KEY_ID: 'AKIDLOCALBENCH',
        AWS_SECRET_ACCESS_KEY: 'local-bench-secret',
        AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
        AWS_ENDPOINT_URL_SQS: sqs.endpoint,
        AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
        AWS_LAMBDA_FUNCTION_NAME: functionName,
        IOTCORE_PROJECT: BENCH_REGISTRY.project,
        IOTCORE_LOCATION: BENCH_REGISTRY.location,
        IOTCORE_REGISTRY: BENCH_REGISTRY.registry,
        IOTCORE_GATEWAY_IDS: BENCH_GATEWAY,
        IOTCORE_MQTT_HOST: emulator.host,
        IOTCORE_MQTT_PORT: String(emulator.port),
        IOTCORE_CA_FILE: emulator.caFile,
        BENCH_FUNCTION_TIMEOUT_MS: String(template.functionTimeoutSeconds(functionName) * 1000),
      };
    };
    const envs = new Map(containers.map((c) => [c.functionName, envOf(c.functionName)]));

    // The device has a config to be served, and was relayed for lately, so the poller has a job to enqueue.
    const tableName = envs.get('config')?.CONFIG_TABLE ?? envs.get('poll')?.CONFIG_TABLE;
    if (tableName !== undefined && tableName !== '') {
      const store = new ConfigStore({ tableName, client: dynamodb.client });
      await store.putConfig(BENCH_DEVICE, Buffer.from('{"rate":5}'), new Date());
      await store.noteRelayed([BENCH_DEVICE], new Date());
    }

    // Turns, not blocks: a busy moment of the shared machine falls on every kind of process.
    for (let p = 0; p < processes; p++) {
      for (const [c, container] of containers.entries()) {
        const eventsFile = await privateFile(context.workDir, 'events', JSON.stringify(eventsOf(container, 1 + warm, deviceKey, p)));
        const answerFile = join(context.workDir, `invocations-${p}-${c}.json`);
        const callsBefore = secrets.totalCalls();
        const run = await runNode([child, container.file, eventsFile, answerFile], { env: envs.get(container.functionName)!, timeoutMs: 120_000 });
        if (run.code !== 0) throw new Error(`cold start: the process of ${container.name} failed: ${lastLines(run.stderr)}`);
        const answer = JSON.parse(await readFile(answerFile, 'utf8')) as InvocationAnswer;
        const [first, ...rest] = answer.invocations;
        if (first === undefined) throw new Error(`cold start: ${container.name} made no invocation`);
        for (const [i, invocation] of answer.invocations.entries()) {
          const problem = problemWith(container, invocation.response);
          if (problem !== undefined) throw new Error(`cold start: ${container.name}, invocation ${i + 1}: ${problem}. ${lastLines(run.stdout)}`);
        }
        const t = timings[c]!;
        t.importMs.push(answer.importMs);
        t.firstMs.push(first.ms);
        t.warmMs.push(median(rest.map((i) => i.ms)));
        t.secretCalls.push(secrets.totalCalls() - callsBefore);
      }
    }
  } finally {
    for (const close of closers.reverse()) await close();
  }
  const relays = timings.filter((t) => t.functionName === 'relay');
  return {
    records: 10,
    warmPerProcess: warm,
    localServices: ['Secrets Manager', 'SQS', 'DynamoDB'],
    variants: relays,
    functions: timings.filter((t) => !relays.includes(t)),
  };
}
