/**
 * A handler bundled as `npm run package` bundles it (serverless.yml `custom.esbuild`, split into chunks by its own
 * plugins), plus one plugin: every JavaScript file of the AWS SDK (`@aws-sdk/*`, `@smithy/*`) and of Powertools
 * Parameters ends with a line that records its package in a global when the file is evaluated. A fresh Node process
 * imports the bundle and reads the global, then invokes the exported handler with each event in turn, reading the
 * global after each: which SDK packages the import evaluated, and which each invocation added.
 *
 * @example
 * const marked = new Set<string>();
 * const bundle = await buildMarkedBundle('handlers/ingest.ts', dir, marked);
 * const steps = await runMarkedBundle(bundle, dir, [{ name: 'bad request', event }], env);
 * expect(steps[0].evaluated).toEqual([]); // the import
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { loadTemplate, packagingOptions } from '../../bench/bundles.js';
import { PROJECT_ROOT } from './serverless-cli.js';

/** The global the marks write to: package name → true. */
const MARK = '__relaySdkEvaluated';

/** The last `node_modules/<package>/` of a path, when the package is part of the SDK or Powertools Parameters. */
const SDK_PACKAGE = /.*[\\/]node_modules[\\/]((?:@aws-sdk|@smithy)[\\/][^\\/]+|@aws-lambda-powertools[\\/]parameters)[\\/]/;

/** The packages a handler loads to read a secret, to use the config table, and to send to a queue. */
export const SECRETS = ['@aws-lambda-powertools/parameters', '@aws-sdk/client-secrets-manager'];
export const DYNAMODB = ['@aws-sdk/client-dynamodb', '@aws-sdk/lib-dynamodb'];
export const SQS = ['@aws-sdk/client-sqs'];

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
 * Builds `handler` (a path from the project root) into `outDir` as packaging builds it, with the marks; `marked`
 * receives every SDK package the build saw, so a test can prove the marks had something to mark. Returns the bundle.
 */
export async function buildMarkedBundle(handler: string, outDir: string, marked: Set<string>): Promise<string> {
  const packaging = packagingOptions(PROJECT_ROOT, loadTemplate(PROJECT_ROOT));
  // Into a folder, as packaging builds it: the handler's own plugins split what it loads with import() into chunks.
  await build({
    ...packaging,
    absWorkingDir: PROJECT_ROOT,
    entryPoints: [join(PROJECT_ROOT, handler)],
    outdir: outDir,
    outExtension: { '.js': '.mjs' },
    plugins: [...(packaging.plugins ?? []), markSdkEvaluation(marked)],
    logLevel: 'error',
  });
  return join(outDir, `${basename(handler).replace(/\.ts$/, '')}.mjs`);
}

/**
 * Imports the bundle, then invokes its handler with each event in turn; after the import and after each invocation
 * it notes which marked packages were evaluated so far, and what the handler answered. The handler logs to stdout,
 * so the notes go to a file.
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
  steps.push({ step: name, evaluated: evaluated(), response });
}
await writeFile(answerFile, JSON.stringify(steps));
`;

export interface Step {
  step: string;
  evaluated: string[];
  /** What the handler answered; absent for the import. */
  response?: unknown;
}

/** Runs the bundle in a fresh process with exactly `env`; the steps, the import first, or the process's output on failure. */
export async function runMarkedBundle(
  bundle: string,
  dir: string,
  events: readonly { name: string; event: unknown }[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string; steps: Step[] }> {
  const eventsFile = join(dir, `${basename(bundle)}-events.json`);
  const answerFile = join(dir, `${basename(bundle)}-steps.json`);
  await writeFile(eventsFile, JSON.stringify(events));
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, bundle, eventsFile, answerFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => chunks.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (exit) => {
      clearTimeout(timer);
      resolve({ code: exit, output: Buffer.concat(chunks).toString('utf8') });
    });
  });
  const steps = code === 0 ? (JSON.parse(await readFile(answerFile, 'utf8')) as Step[]) : [];
  return { code, output, steps };
}
