import { describe, expect, it } from 'vitest';
import { GATEWAY_PLACEHOLDER, keyLocation } from '../../../lib/keys/key-location.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

describe('keyLocation', () => {
  it('names one location per gateway when the template holds the placeholder, every time it does', () => {
    const location = keyLocation(`keys/${GATEWAY_PLACEHOLDER}/${GATEWAY_PLACEHOLDER}.pem`, 'GATEWAY_KEY_FILE');
    expect(location).toMatchObject({ template: 'keys/{gateway}/{gateway}.pem', perGateway: true });
    expect(location.for('gw-007')).toBe('keys/gw-007/gw-007.pem');
    expect(location.for('gw-008')).toBe('keys/gw-008/gw-008.pem');
  });

  it('names the same location for every gateway without it', () => {
    const location = keyLocation('iotcore-relay/gateway-keys', 'GATEWAY_KEY_SECRET');
    expect(location.perGateway).toBe(false);
    expect([location.for('gw-1'), location.for('gw-2')]).toEqual(['iotcore-relay/gateway-keys', 'iotcore-relay/gateway-keys']);
  });

  it('refuses any other use of braces, naming the setting', () => {
    for (const template of ['keys/{gw}.pem', 'keys/{gateway', 'keys/gateway}', '{gateway}{}', '{{gateway}}']) {
      const e = thrownRelayError(() => keyLocation(template, 'GATEWAY_KEY_FILE'), 'ERR_CONFIG');
      expect(e.field).toBe('GATEWAY_KEY_FILE');
      expect(e.message).toBe(`GATEWAY_KEY_FILE may hold only the placeholder {gateway} between braces (got ${JSON.stringify(template)})`);
    }
  });
});
