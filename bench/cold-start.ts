/**
 * Cold start: what a new Lambda container of each function pays before and during its first invocation.
 *
 * - Bundle sizes: every handler of serverless.yml, bundled as `npm run package` does (bundles.ts).
 * - Import time: each bundle imported in a fresh Node process, with the NODE_OPTIONS serverless.yml gives the
 *   functions, next to `node -e 0` (the process alone) and to `mqtt` alone (bundled the same way, and straight from
 *   node_modules). Targets take turns run after run, so that a busy moment of the machine falls on all of them.
 *   Two figures per target: the import measured inside the process, and the whole process from spawn to exit.
 * - First invocation against warm ones: the relay bundle in a fresh process with the environment serverless.yml gives
 *   the relay, its gateway key in a local Secrets Manager endpoint (the real SDK client, through Powertools, over
 *   HTTP), a local DynamoDB when the relay is given a config table, a 10-record batch against the emulator; then
 *   three more batches in the same process.
 * - The same, side by side, for a reference build of the relay that evaluates Powertools Parameters and the Secrets
 *   Manager and DynamoDB clients at import. The packaged relay loads them at first use, so its import is shorter and
 *   its first invocation longer: "import + first invocation", the container's whole cold start, shows how much of
 *   the SDK's cost moved rather than vanished. The two take turns, process after process.
 *
 * @example
 * const result = await measureColdStart(context, bundles);
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { startEmulator } from '../emulator/index.js';
import { startDynamoDbServer } from '../local/dynamodb-server.js';
import type { ServerlessTemplate } from '../local/serverless-template.js';
import { tableSpec } from '../local/template-resources.js';
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
    /** The AWS services the relay reached, each through a local stand-in. */
    localServices: string[];
    /** The packaged relay first, then the reference that evaluates the SDK at import. */
    variants: RelayProcessTimings[];
  };
}

/** One build of the relay, run in fresh processes: one entry per process in each array. */
export interface RelayProcessTimings {
  name: string;
  importMs: number[];
  firstMs: number[];
  /** The median warm invocation of each process. */
  warmMs: number[];
  /** GetSecretValue calls made by each process (the key is cached, so one). */
  secretCalls: number[];
}

export interface ColdStartBundles {
  handlers: BuiltBundle[];
  mqttAlone: BuiltBundle;
  invocationChild: string;
}

const BARE = 'node -e 0';
const MQTT_MODULES = 'mqtt from node_modules';
const PACKAGED_RELAY = 'relay as packaged';
const SDK_AT_IMPORT_RELAY = 'relay, SDK evaluated at import';

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
  const variants = [
    { name: PACKAGED_RELAY, file: relay.file },
    { name: SDK_AT_IMPORT_RELAY, file: reference },
  ];
  const invocation = await measureInvocations(context, template, variants, bundles.invocationChild, baseEnv);
  return { nodeOptions, bundles: bundles.handlers, mqttAlone: bundles.mqttAlone, runs, imports, invocation };
}

/** The relay's environment as serverless.yml gives it; references to stack resources (queue URLs) are left out. */
function relayEnvironment(template: ServerlessTemplate): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(template.functionEnvironment('relay'))) {
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') env[name] = String(value);
  }
  return env;
}

function tableIds(template: ServerlessTemplate): string[] {
  const resources = template.get(['resources', 'Resources']);
  if (resources === undefined || resources === null || typeof resources !== 'object' || Array.isArray(resources)) return [];
  return Object.entries(resources)
    .filter(([, r]) => r !== null && typeof r === 'object' && !Array.isArray(r) && r.Type === 'AWS::DynamoDB::Table')
    .map(([id]) => id);
}

async function measureInvocations(
  context: BenchContext,
  template: ServerlessTemplate,
  variants: readonly { name: string; file: string }[],
  child: string,
  baseEnv: NodeJS.ProcessEnv,
): Promise<ColdStartResults['invocation']> {
  const processes = context.quick ? 1 : 5;
  const warm = 3;
  const shape = { records: 10, devices: 10 };
  context.progress(
    `cold start: first relay invocation against ${warm} warm ones, ${shape.records} records each, ` +
      `${processes} fresh process(es) for each of: ${variants.map((v) => v.name).join(', ')}`,
  );
  const timings: RelayProcessTimings[] = variants.map((v) => ({ name: v.name, importMs: [], firstMs: [], warmMs: [], secretCalls: [] }));
  const result: ColdStartResults['invocation'] = { records: shape.records, warmPerProcess: warm, localServices: ['Secrets Manager'], variants: timings };
  const deployed = relayEnvironment(template);
  const secretId = deployed.GATEWAY_KEY_SECRET || 'iotcore-relay/bench/gateway-keys';
  const closers: (() => Promise<void>)[] = [];
  try {
    const emulator = await startEmulator({ registry: context.fleet.document, adminPort: null, latencyMs: 0, stateRateLimit: false });
    closers.push(() => emulator.close());
    const secrets = await startSecretsManagerEndpoint();
    closers.push(() => secrets.close());
    secrets.putSecret(secretId, await readFile(context.keyFile, 'utf8'));
    if (emulator.caFile === undefined) throw new Error('the emulator wrote no CA file');
    // Whatever AWS service the deployed relay talks to at run time gets its local stand-in.
    const local: NodeJS.ProcessEnv = {};
    if ((deployed.CONFIG_TABLE ?? '') !== '') {
      const dynamodb = await startDynamoDbServer({ tables: tableIds(template).map((id) => tableSpec(template, id)), region: LOCAL_REGION });
      closers.push(() => dynamodb.close());
      local.AWS_ENDPOINT_URL_DYNAMODB = dynamodb.endpoint;
      result.localServices.push('DynamoDB');
    }
    const env: NodeJS.ProcessEnv = {
      ...baseEnv,
      ...deployed,
      ...local,
      AWS_ACCESS_KEY_ID: 'AKIDLOCALBENCH',
      AWS_SECRET_ACCESS_KEY: 'local-bench-secret',
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_LAMBDA_FUNCTION_NAME: 'relay',
      IOTCORE_PROJECT: BENCH_REGISTRY.project,
      IOTCORE_LOCATION: BENCH_REGISTRY.location,
      IOTCORE_REGISTRY: BENCH_REGISTRY.registry,
      IOTCORE_GATEWAY_IDS: BENCH_GATEWAY,
      IOTCORE_MQTT_HOST: emulator.host,
      IOTCORE_MQTT_PORT: String(emulator.port),
      IOTCORE_CA_FILE: emulator.caFile,
      GATEWAY_KEY_SECRET: secretId,
      BENCH_FUNCTION_TIMEOUT_MS: String(template.functionTimeoutSeconds('relay') * 1000),
    };
    // Turns, not blocks: a busy moment of the shared machine falls on both builds.
    for (let p = 0; p < processes; p++) {
      for (const [v, variant] of variants.entries()) {
        const events = Array.from({ length: 1 + warm }, () =>
          sqsEvent(queueRecords(benchMessages(shape), { fifoGroup: BENCH_GATEWAY }).map((r) => sqsRecord(r.body, { groupId: BENCH_GATEWAY, messageId: r.messageId }))),
        );
        const eventsFile = await privateFile(context.workDir, 'events', JSON.stringify(events));
        const answerFile = join(context.workDir, `invocations-${p}-${v}.json`);
        const callsBefore = secrets.totalCalls();
        const run = await runNode([child, variant.file, eventsFile, answerFile], { env, timeoutMs: 120_000 });
        if (run.code !== 0) throw new Error(`cold start: the process of the ${variant.name} failed: ${lastLines(run.stderr)}`);
        const answer = JSON.parse(await readFile(answerFile, 'utf8')) as InvocationAnswer;
        const [first, ...rest] = answer.invocations;
        const failures = answer.invocations.reduce((n, i) => n + i.failures, 0);
        if (first === undefined || failures > 0) throw new Error(`cold start: ${failures} record(s) failed back by the ${variant.name}`);
        const t = timings[v]!;
        t.importMs.push(answer.importMs);
        t.firstMs.push(first.ms);
        t.warmMs.push(median(rest.map((i) => i.ms)));
        t.secretCalls.push(secrets.totalCalls() - callsBefore);
      }
    }
  } finally {
    for (const close of closers.reverse()) await close();
  }
  return result;
}
