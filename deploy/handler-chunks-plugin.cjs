/**
 * An esbuild plugin that splits each handler's bundle: modules the handler loads with `import()` go to files of
 * their own, `<handler>.chunks/*.mjs` next to `<handler>.mjs`, which Node reads only when that `import()` runs.
 *
 * Why: the relay loads the AWS SDK at first use (handlers/relay.ts), but in a single file the SDK's code is still
 * read and parsed with the handler at every cold start, lazily evaluated or not; in chunks of its own it is not
 * even read until a batch needs it. bench/results.md has the import times.
 *
 * Why a plugin rather than two options: serverless-esbuild bundles every function into one folder and zips, for each
 * function, every file there except the other functions' bundles, which it recognises by the prefix
 * `<other handler>.`. Chunks named after their handler (`relay.chunks/...`) are kept out of the other zips by that
 * same rule; a shared chunk folder would put every function's chunks into every zip. The name is known only per
 * build, hence the plugin, which sees each build's entry point.
 *
 * Builds with `outfile` (one file asked for) are left whole: splitting needs an output folder.
 */
'use strict';

const path = require('node:path');

module.exports = function handlerChunks() {
  return {
    name: 'handler-chunks',
    setup(build) {
      const options = build.initialOptions;
      const entries = Array.isArray(options.entryPoints) ? options.entryPoints : [];
      if (options.outdir === undefined || entries.length !== 1 || typeof entries[0] !== 'string') return;
      const handler = path.basename(entries[0]).replace(/\.[^.]+$/, '');
      options.splitting = true;
      options.chunkNames = `${handler}.chunks/[name]-[hash]`;
    },
  };
};
