/**
 * The relay's SQS event source `maximumConcurrency`, from the `relayMaxConcurrency` parameter. The framework has
 * no way to leave a property out when a parameter is empty, so serverless.yml reads the value from here
 * (`${file(./deploy/relay-scaling.cjs):maximumConcurrency, null}`): a whole number from 2 to 1000 caps the event
 * source (CloudFormation's `ScalingConfig.MaximumConcurrency`); `none` (the framework refuses an empty
 * `--param="name="`) or an empty value in serverless.yml answers null and leaves it uncapped; anything else stops
 * the deployment with a message that names the parameter.
 *
 * Why cap: a FIFO event source runs up to one invocation per active message group (gateway), and each invocation
 * publishes at its own pace; the cap keeps a burst under the project's telemetry publish quota. `iotcore-relay
 * fleet size` computes it (lib/fleet/capacity.ts, docs/deploy.md "Sizing a fleet").
 *
 * CommonJS (.cjs) because the framework loads variable files with require(). A reader without the framework's
 * variable resolver (the local stack's, which has no event-source concurrency to cap) gets null.
 */
'use strict';

const MIN = 2;
const MAX = 1000;

/** The parameter's text -> the property's value: a number, or null for "no cap". Throws for anything else. */
function maximumConcurrencyOf(raw) {
  const text = raw === undefined || raw === null ? '' : String(raw).trim();
  if (text === '' || text === 'none') return null;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < MIN || n > MAX) {
    throw new Error(`relayMaxConcurrency must be a whole number from ${MIN} to ${MAX}, or none for no cap (got ${JSON.stringify(text)})`);
  }
  return n;
}

function maximumConcurrency({ resolveVariable } = {}) {
  if (typeof resolveVariable !== 'function') return null;
  return Promise.resolve(resolveVariable('param:relayMaxConcurrency')).then(maximumConcurrencyOf);
}

module.exports = { maximumConcurrency, maximumConcurrencyOf };
