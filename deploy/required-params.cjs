/**
 * A local plugin of the framework (serverless.yml `plugins:`): stops every command of a stage that leaves a
 * parameter it cannot do without empty, naming all of them in one line, e.g.
 *
 *   Stage prod needs --param="project=..." --param="location=..." ... (docs/deploy.md#parameters)
 *
 * Without it the framework would refuse to resolve `${param:project}` with one line per place the parameter is
 * used (15 for the registry alone). So every such parameter has an empty default in `params.default`, the stage or
 * `--param` gives the real value, and `custom.requiredParams` lists them with their resolved values: this checks
 * that list at `initialize`, before any command (package, deploy, invoke local, ...) does its work.
 *
 * CommonJS (.cjs) because the framework loads plugins with require().
 *
 * @example
 * // serverless.yml
 * plugins: [./deploy/required-params.cjs]
 * custom:
 *   requiredParams:
 *     project: ${param:project}   # params.default.project: ''
 */
'use strict';

class RequiredParams {
  constructor(serverless, options) {
    this.serverless = serverless;
    this.options = options ?? {};
    this.hooks = { initialize: () => this.check() };
  }

  check() {
    const required = (this.serverless.service.custom ?? {}).requiredParams ?? {};
    const missing = missingParams(required);
    if (missing.length === 0) return;
    const stage = this.options.stage ?? this.serverless.service.provider.stage ?? 'dev';
    throw new this.serverless.classes.Error(requiredParamsMessage(stage, missing));
  }
}

/** The names whose value is empty (an unset parameter keeps its empty default). */
function missingParams(required) {
  return Object.entries(required)
    .filter(([, value]) => value === undefined || value === null || String(value).trim() === '')
    .map(([name]) => name);
}

function requiredParamsMessage(stage, missing) {
  return `Stage ${stage} needs ${missing.map((name) => `--param="${name}=..."`).join(' ')} (docs/deploy.md#parameters)`;
}

module.exports = RequiredParams;
module.exports.missingParams = missingParams;
module.exports.requiredParamsMessage = requiredParamsMessage;
