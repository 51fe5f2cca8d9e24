/**
 * Where one gateway's key lives when the pool's keys are spread over several secrets or files: the name may hold
 * the placeholder `{gateway}`, replaced by the gateway ID, so each gateway has a secret of its own and the relay
 * reads only the secret of the gateway it is about to use. Without the placeholder the name is one secret or file
 * for the whole pool (one shared key, or a map from gateway ID to key; `key-document.ts`).
 *
 * A Secrets Manager secret holds at most 64 KB, about 200 PEM keys in one map; a pool of hundreds of gateways with
 * a key each therefore needs the placeholder, or one key pair shared by the pool (docs/relay.md, gateway keys).
 *
 * @example
 * keyLocation('iotcore-relay/prod/gateway-keys/{gateway}', 'GATEWAY_KEY_SECRET').for('gw-007');
 * // 'iotcore-relay/prod/gateway-keys/gw-007'
 */
import { RelayError } from '../errors.js';

export const GATEWAY_PLACEHOLDER = '{gateway}';

export interface KeyLocation {
  /** The name as configured. */
  readonly template: string;
  /** Whether each gateway has a name of its own. */
  readonly perGateway: boolean;
  for(gatewayId: string): string;
}

export function keyLocation(template: string, setting: string): KeyLocation {
  const other = template.replaceAll(GATEWAY_PLACEHOLDER, '').match(/[{}]/);
  if (other !== null) {
    throw new RelayError(
      'ERR_CONFIG',
      `${setting} may hold only the placeholder ${GATEWAY_PLACEHOLDER} between braces (got ${JSON.stringify(template)})`,
      { field: setting },
    );
  }
  const perGateway = template.includes(GATEWAY_PLACEHOLDER);
  return {
    template,
    perGateway,
    for: (gatewayId) => (perGateway ? template.replaceAll(GATEWAY_PLACEHOLDER, gatewayId) : template),
  };
}
