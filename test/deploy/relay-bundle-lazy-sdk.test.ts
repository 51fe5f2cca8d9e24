/**
 * The relay's cold start: importing its bundle must evaluate nothing of the AWS SDK; each client is evaluated by the
 * first invocation that needs it.
 *
 * The relay is bundled with the options `npm run package` uses (serverless.yml `custom.esbuild`), plus one plugin:
 * every JavaScript file of the SDK (`@aws-sdk/*`, `@smithy/*`) and of Powertools Parameters ends with a line that
 * records its package in a global when the file is evaluated. A fresh Node process imports the bundle and reads the
 * global, then runs two batches through the exported handler, against the emulator and local stand-ins for Secrets
 * Manager, DynamoDB and SQS, reading the global after each. The later readings prove the marks do show evaluation,
 * so an empty first reading means something.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTemplate, packagingOptions } from '../../bench/bundles.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { makeFleet, type Fleet } from '../helpers/emulator-fixtures.js';
import { startLocalDynamoDb, type LocalDynamoDb } from '../helpers/local-dynamodb.js';
import { startSqsStandIn, type SqsStandIn } from '../helpers/local-sqs.js';
import { eventBody, sqsEvent, sqsRecord } from '../helpers/relay-fixtures.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../helpers/secrets-manager-endpoint.js';
import { PROJECT_ROOT } from './serverless-cli.js';

/** The global the marks write to: package name → true. */
const MARK = '__relaySdkEvaluated';

/** The last `node_modules/<package>/` of a path, when the package is part of the SDK or Powertools Parameters. */
const SDK_PACKAGE = /.*[\\/]node_modules[\\/]((?:@aws-sdk|@smithy)[\\/][^\\/]+|@aws-lambda-powertools[\\/]parameters)[\\/]/;

/** The packages whose evaluation the relay defers, each to its own first use. */
const SECRETS = ['@aws-lambda-powertools/parameters', '@aws-sdk/client-secrets-manager'];
const DYNAMODB = ['@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb'];
const SQS = ['@aws-sdk/client-sqs'];

function markSdkEvaluation(marked: Set<string>): Plugin {
  return {
    name: 'mark-sdk-evaluation',
    setup(b) {
      b.onLoad({ filter: /[\\/]node_modules[\\/].*\.[cm]?js$/ }, async (args) => {
        const pkg = SDK_PACKAGE.exec(args.path)?.[1]?.replaceAll('\\', '/');
        if (pkg === undefined) return undefined;
        marked.add(pkg);
        const source = await readFile(args.path, 'utf8');
        // Last statement of the file: it runs only if the module body ran to its end.
        return { contents: `${source}\n;(globalThis.${MARK} ??= {})[${JSON.stringify(pkg)}] = true;\n`, loader: 'js' };
      });
    },
  };
}

/**
 * Imports the bundle, then invokes its handler with each event in turn; after the import and after each invocation
 * it notes which marked packages were evaluated so far. The handler logs to stdout, so the notes go to a file.
 */
const CHILD = `
import { readFile, writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
const [bundle, eventsFile, answerFile] = process.argv.slice(1);
const evaluated = () => Object.keys(globalThis.${MARK} ?? {}).sort();
const { handler } = await import(pathToFileURL(bundle).href);
const steps = [{ step: 'import', evaluated: evaluated() }];
for (const { name, event } of JSON.parse(await readFile(eventsFile, 'utf8'))) {
  const end = Date.now() + 15000;
  const context = { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()), awsRequestId: name };
  const response = await handler(event, context);
  steps.push({ step: name, evaluated: evaluated(), failedBack: response.batchItemFailures.length });
}
await writeFile(answerFile, JSON.stringify(steps));
`;

interface Step {
  step: string;
  evaluated: string[];
  failedBack?: number;
}

const GATEWAY = 'gw-1';
const DEVICE = 'pump-01';
const SECRET_ID = 'iotcore-relay/test/gateway-keys';

let dir: string;
let bundle: string;
const marked = new Set<string>();
let fleet: Fleet;
let emulator: Emulator;
let secrets: SecretsManagerEndpoint;
let db: LocalDynamoDb;
let sqs: SqsStandIn;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relay-lazy-sdk-'));
  bundle = join(dir, 'relay.mjs');
  const packaging = packagingOptions(PROJECT_ROOT, loadTemplate(PROJECT_ROOT));
  // Into a folder, as packaging builds it: the handler's own plugins split what it loads with import() into chunks.
  const building = build({
    ...packaging,
    absWorkingDir: PROJECT_ROOT,
    entryPoints: [join(PROJECT_ROOT, 'handlers/relay.ts')],
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    plugins: [...(packaging.plugins ?? []), markSdkEvaluation(marked)],
    logLevel: 'error',
  });
  [fleet, secrets, db, sqs] = await Promise.all([
    makeFleet({ gateways: [{ id: GATEWAY, bound: [DEVICE] }], devices: [{ id: DEVICE, keyless: true }] }),
    startSecretsManagerEndpoint(),
    startLocalDynamoDb(),
    startSqsStandIn((call) => {
      const body = String(call.input.MessageBody ?? '');
      // The SDK checks the MD5 of the body SQS says it received.
      return { status: 200, body: { MessageId: 'dead-letter-1', MD5OfMessageBody: createHash('md5').update(body).digest('hex') } };
    }),
    building,
  ]);
  emulator = await startEmulator({ registry: fleet.document, adminPort: null, stateRateLimit: false });
  secrets.putSecret(SECRET_ID, JSON.stringify({ [GATEWAY]: fleet.keys[GATEWAY]!.pair.privateKeyPem }));
});

afterAll(async () => {
  await emulator?.close();
  await Promise.all([secrets?.close(), db?.stop(), sqs?.stop()]);
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function runChild(eventsFile: string, answerFile: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, bundle, eventsFile, answerFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const output: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => output.push(c));
    child.stderr.on('data', (c: Buffer) => output.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: Buffer.concat(output).toString('utf8') });
    });
  });
}

describe('relay bundle as packaged', () => {
  it('marks every file of the SDK clients the relay uses', () => {
    // Without this, a path the plugin failed to match would leave nothing to observe, and the test would pass.
    for (const pkg of [...SECRETS, ...DYNAMODB, ...SQS, '@aws-sdk/core', '@smithy/core']) expect([...marked]).toContain(pkg);
  });

  it('evaluates no AWS SDK module at import, and each client at its first use', async () => {
    const events = [
      // A clean batch: the key is read from Secrets Manager, the device noted in the config table; nothing for SQS.
      { name: 'clean batch', event: sqsEvent([sqsRecord(eventBody(DEVICE), { groupId: GATEWAY })]) },
      // A malformed record is dead-lettered: the first SQS call.
      { name: 'malformed record', event: sqsEvent([sqsRecord('{"v":1,', { groupId: GATEWAY })]) },
    ];
    const eventsFile = join(dir, 'events.json');
    const answerFile = join(dir, 'steps.json');
    await writeFile(eventsFile, JSON.stringify(events));
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      ...db.env,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: secrets.url,
      AWS_ENDPOINT_URL_SQS: sqs.endpoint,
      AWS_MAX_ATTEMPTS: '1',
      IOTCORE_PROJECT: fleet.project,
      IOTCORE_LOCATION: fleet.location,
      IOTCORE_REGISTRY: fleet.registryId,
      IOTCORE_GATEWAY_IDS: GATEWAY,
      IOTCORE_MQTT_HOST: emulator.host,
      IOTCORE_MQTT_PORT: String(emulator.port),
      IOTCORE_CA_FILE: emulator.caFile!,
      GATEWAY_KEY_SECRET: SECRET_ID,
      RELAY_DEAD_LETTER_QUEUE_URL: `${sqs.endpoint}/123456789012/relay-dlq.fifo`,
      POWERTOOLS_LOG_LEVEL: 'WARN',
    };

    const run = await runChild(eventsFile, answerFile, env);
    expect(run.code, run.output).toBe(0);
    const steps = JSON.parse(await readFile(answerFile, 'utf8')) as Step[];
    const [imported, clean, malformed] = steps;

    expect(imported?.evaluated, 'SDK packages evaluated by the import of the relay bundle').toEqual([]);

    expect(clean?.failedBack, run.output).toBe(0);
    expect(secrets.calls(SECRET_ID)).toBe(1);
    const noted = await db.client.send(new GetCommand({ TableName: db.tableName, Key: { deviceId: DEVICE } }));
    expect(noted.Item?.lastRelayedAt, 'the relayed device noted in the config table').toEqual(expect.any(String));
    expect(clean?.evaluated).toEqual(expect.arrayContaining([...SECRETS, ...DYNAMODB]));
    expect(clean?.evaluated).not.toContain(SQS[0]);

    expect(malformed?.failedBack, run.output).toBe(0);
    expect(sqs.calls.map((c) => c.action)).toEqual(['SendMessage']);
    expect(malformed?.evaluated).toEqual(expect.arrayContaining(SQS));
  });
});
