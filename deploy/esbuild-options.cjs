/**
 * serverless-esbuild's options (serverless.yml: custom.esbuild.config). A function rather than YAML because one
 * option depends on the command: the bundle's file extension.
 *
 * - Lambda runs the bundles as ES modules only when they end in `.mjs`: the zip carries no package.json to say
 *   `"type": "module"` (serverless-esbuild leaves it out), so `.js` would be read as CommonJS.
 * - `serverless invoke local` loads the handler with require() on the path without extension, which never finds a
 *   `.mjs` file. For that command the bundle is written as `.js`; the project's package.json (`"type": "module"`)
 *   makes Node read it as the same ES module.
 *
 * CommonJS (.cjs) because serverless-esbuild loads this file with require().
 */
'use strict';

const path = require('node:path');
const handlerChunks = require('./handler-chunks-plugin.cjs');

module.exports = (serverless) => {
  const commands = serverless?.processedInput?.commands ?? [];
  const invokingLocally = commands[0] === 'invoke' && commands[1] === 'local';
  return {
    // Each command bundles in a folder of its own: `invoke local` leaves its build behind, and a package run that
    // found it would zip the stray `.js` bundle next to the `.mjs` one.
    outputWorkFolder: workFolder(serverless, invokingLocally),
    bundle: true,
    minify: true,
    // Linked maps, read at run time thanks to NODE_OPTIONS=--enable-source-maps. Without the sources' text a map is
    // well under half the size and still turns every stack frame into file:line of the TypeScript source.
    sourcemap: true,
    sourcesContent: false,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    outputFileExtension: invokingLocally ? '.js' : '.mjs',
    // CommonJS dependencies inside an ES module bundle (mqtt, the AWS SDK, Powertools) still call require() for
    // Node's built-in modules; an ES module has no require of its own, so the bundle makes one.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
    // Everything is bundled, the AWS SDK included: docs/deploy.md has the measurements behind that choice.
    external: [],
    // What a handler loads with import() (the relay's AWS SDK clients) goes to <handler>.chunks/, read only when needed.
    plugins: [handlerChunks()],
    exclude: [],
    // Two bundles at a time: the build machines have two cores.
    concurrency: 2,
    zipConcurrency: 2,
  };
};

/**
 * The working folder, relative to the service (serverless-esbuild joins it to the service's path). With
 * `serverless package --package <dir>`, the build happens next to the artifacts, so a packaging run with its own
 * output folder (a test, a CI job) never shares a folder with another run in the same checkout.
 */
function workFolder(serverless, invokingLocally) {
  if (invokingLocally) return path.join('.esbuild', 'invoke-local');
  const serviceDir = serverless?.serviceDir ?? serverless?.config?.serviceDir ?? process.cwd();
  const packageDir = serverless?.processedInput?.options?.package;
  if (typeof packageDir === 'string' && packageDir !== '') {
    return path.relative(serviceDir, path.join(path.resolve(serviceDir, packageDir), '.esbuild'));
  }
  return path.join('.esbuild', 'package');
}
