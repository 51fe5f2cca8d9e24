/**
 * The JavaScript the benchmark runs outside its own process, built with esbuild's API:
 * - each Lambda handler serverless.yml declares, bundled exactly as `npm run package` bundles it: the options come
 *   from the same file serverless-esbuild reads (serverless.yml `custom.esbuild.config`), minus the few that only
 *   the plugin understands;
 * - `mqtt` alone, with the same options: the floor a handler that speaks MQTT cannot go below;
 * - the benchmark's own child processes, so that they start with plain `node` (no TypeScript loader in their
 *   memory or start-up).
 *
 * @example
 * const built = await buildHandlerBundles(projectRoot(), outDir);
 * built.find((b) => b.name === 'relay')!.bytes;
 */
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type BuildOptions } from 'esbuild';
import { loadServerlessTemplate, type ServerlessTemplate } from '../local/serverless-template.js';
import { BENCH_GATEWAY, BENCH_REGISTRY } from './bench-fleet.js';

/** serverless-esbuild's own settings, which esbuild itself would refuse as unknown options. */
const PLUGIN_ONLY = new Set([
  'outputWorkFolder',
  'outputBuildFolder',
  'outputFileExtension',
  'exclude',
  'concurrency',
  'zipConcurrency',
  'packager',
  'packagerOptions',
  'packagePath',
  'installExtraArgs',
  'keepOutputDirectory',
  'nativeZip',
  'disableIncremental',
  'skipBuild',
  'skipRebuild',
  'skipBuildExcludeFns',
  'stripEntryResolveExtensions',
  'watch',
  'config',
]);

/** serverless.yml as the `bench` stage sees it; a stage other than dev and local must name its registry and gateways. */
export function loadTemplate(root: string): ServerlessTemplate {
  return loadServerlessTemplate(join(root, 'serverless.yml'), {
    stage: 'bench',
    region: 'us-east-1',
    params: { ...BENCH_REGISTRY, gatewayIds: BENCH_GATEWAY },
  });
}

/** The esbuild options serverless.yml packages with, as the `package` command gets them. */
export function packagingOptions(root: string, template: ServerlessTemplate): BuildOptions {
  const configPath = template.get(['custom', 'esbuild', 'config']);
  if (typeof configPath !== 'string') throw new Error('serverless.yml: custom.esbuild.config is not set; the bundles cannot be built as packaged');
  const load = createRequire(join(root, 'package.json'))(join(root, configPath)) as unknown;
  const fakeServerless = { processedInput: { commands: ['package'], options: {} }, serviceDir: root, config: { serviceDir: root } };
  const options = (typeof load === 'function' ? (load as (s: unknown) => unknown)(fakeServerless) : load) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(options).filter(([key]) => !PLUGIN_ONLY.has(key))) as BuildOptions;
}

export interface BuiltBundle {
  /** The function name in serverless.yml, or what the bundle is. */
  name: string;
  /** The `.mjs` file. */
  file: string;
  /** Its size, and gzipped (about what the zip stores). Source maps not counted. */
  bytes: number;
  gzipBytes: number;
  /** The modules it loads on demand (`<bundle>.chunks/`), read only when first imported; source maps not counted. */
  chunks?: { files: number; bytes: number; gzipBytes: number };
}

async function sizeOf(file: string): Promise<{ bytes: number; gzipBytes: number }> {
  const content = await readFile(file);
  return { bytes: content.byteLength, gzipBytes: gzipSync(content, { level: 9 }).byteLength };
}

/**
 * Every function of serverless.yml, as `<outDir>/<function>.mjs` plus the chunks it loads on demand in
 * `<outDir>/<handler>.chunks/`, built into a folder as packaging builds them; one after the other (two cores, shared).
 * Each function gets a folder of its own, so no two builds' chunks mix.
 */
export async function buildHandlerBundles(root: string, outDir: string): Promise<BuiltBundle[]> {
  const template = loadTemplate(root);
  const options = packagingOptions(root, template);
  const built: BuiltBundle[] = [];
  for (const name of template.functionNames()) {
    const handler = template.function(name).handler;
    if (typeof handler !== 'string') throw new Error(`serverless.yml: functions.${name}.handler is not a string`);
    const source = `${handler.slice(0, handler.lastIndexOf('.'))}.ts`;
    const folder = join(outDir, name);
    await build({ ...options, absWorkingDir: root, entryPoints: [join(root, source)], outdir: folder, outExtension: { '.js': '.mjs' }, logLevel: 'error' });
    const file = join(folder, `${basename(source, '.ts')}.mjs`);
    built.push({ name, file, ...(await sizeOf(file)), chunks: await chunkSizes(file) });
  }
  return built;
}

/** The chunks next to a bundle (`<bundle>.chunks/*.mjs`), all together; zero when it has none. */
async function chunkSizes(file: string): Promise<{ files: number; bytes: number; gzipBytes: number }> {
  const folder = file.replace(/\.mjs$/, '.chunks');
  const names = (await readdir(folder).catch(() => [] as string[])).filter((n) => n.endsWith('.mjs'));
  const total = { files: names.length, bytes: 0, gzipBytes: 0 };
  for (const n of names) {
    const size = await sizeOf(join(folder, n));
    total.bytes += size.bytes;
    total.gzipBytes += size.gzipBytes;
  }
  return total;
}

/** `mqtt` and nothing else, with the packaging options: what importing the MQTT client alone costs. */
export async function buildMqttAloneBundle(root: string, outDir: string): Promise<BuiltBundle> {
  const options = packagingOptions(root, loadTemplate(root));
  const file = join(outDir, 'mqtt-alone.mjs');
  await build({
    ...options,
    absWorkingDir: root,
    stdin: { contents: "import * as mqtt from 'mqtt';\nexport { mqtt };\n", resolveDir: root, sourcefile: 'mqtt-alone.js', loader: 'js' },
    outfile: file,
    logLevel: 'error',
  });
  return { name: 'mqtt alone', file, ...(await sizeOf(file)) };
}

/** One of the benchmark's child entry points (bench/*.ts), as `<outDir>/<name>.mjs`. */
export async function buildChildBundle(root: string, outDir: string, entry: string): Promise<string> {
  const options = packagingOptions(root, loadTemplate(root));
  const name = entry.replace(/^.*\//, '').replace(/\.ts$/, '');
  const file = join(outDir, `${name}.mjs`);
  // Same format and banner as the handlers (ES module, with a require() for bundled CommonJS); not minified, so a
  // failure in a child reads plainly.
  await build({ ...options, minify: false, sourcemap: false, absWorkingDir: root, entryPoints: [join(root, entry)], outfile: file, logLevel: 'error' });
  return file;
}
