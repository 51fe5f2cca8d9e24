/**
 * The IAM resource pattern of the gateway key secret(s). `gatewayKeySecret` names one secret, or one secret per
 * gateway when it holds the placeholder `{gateway}` (lib/keys/key-location.ts): then the relay's role may read
 * every secret of that shape, and `{gateway}` becomes `*` in the grant. Nothing else is widened.
 *
 * CommonJS (.cjs) because the framework loads variable files with require(); the framework calls an exported
 * function with `resolveVariable`, so the parameter is read as the stage resolves it.
 */
'use strict';

const PLACEHOLDER = '{gateway}';

/** `iotcore-relay/prod/gateway-keys/{gateway}` -> `iotcore-relay/prod/gateway-keys/*`; other names unchanged. */
function gatewayKeySecretPattern(name) {
  return String(name).split(PLACEHOLDER).join('*');
}

module.exports.gatewayKeySecretPattern = gatewayKeySecretPattern;
module.exports.gatewayKeySecretGrant = async ({ resolveVariable }) =>
  gatewayKeySecretPattern(await resolveVariable('param:gatewayKeySecret'));
