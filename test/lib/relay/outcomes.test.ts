import { describe, expect, it } from 'vitest';
import { GATEWAY_ERROR_CODES } from '../../../lib/gateway/error-correlation.js';
import { backoffSeconds, confirmed, DISPOSITIONS, dispositionOf, failed, logSafeReason, MAX_REASON_LENGTH } from '../../../lib/relay/outcomes.js';

describe('the outcome table', () => {
  it('dead-letters every input error and nothing that a retry could fix', () => {
    for (const code of ['ERR_INVALID_MESSAGE', 'ERR_INVALID_FIELD', 'ERR_INVALID_DEVICE_ID', 'ERR_DEVICE_ID_MQTT_WILDCARD', 'ERR_INVALID_SUBFOLDER', 'ERR_INVALID_BASE64', 'ERR_PAYLOAD_TOO_LARGE', 'ERR_UNSUPPORTED_VERSION', 'ERR_UNKNOWN_TYPE'] as const) {
      expect(dispositionOf(code)).toBe('dead-letter');
    }
    for (const code of ['ERR_CONNECTION_LOST', 'ERR_PUBACK_TIMEOUT', 'ERR_DEADLINE', 'ERR_DEVICE_NOT_FOUND'] as const) {
      expect(dispositionOf(code)).toBe('retry');
    }
    for (const code of ['ERR_CONNECT_REFUSED_AUTH', 'ERR_CONNECT_REFUSED', 'ERR_TLS', 'ERR_TAKEOVER', 'ERR_KEY_UNAVAILABLE', 'ERR_KEY_INVALID', 'ERR_ATTACH_TIMEOUT', 'ERR_CONFIG'] as const) {
      expect(dispositionOf(code)).toBe('retry-backoff');
    }
  });

  it('decides for every code an errors-topic message can become', () => {
    for (const code of Object.values(GATEWAY_ERROR_CODES)) expect(DISPOSITIONS[code]).toBeDefined();
    expect(dispositionOf(GATEWAY_ERROR_CODES.GATEWAY_ATTACHMENT_ERROR)).toBe('dead-letter');
    expect(dispositionOf(GATEWAY_ERROR_CODES.UNKNOWN)).toBe('retry-backoff');
  });

  it('explains every disposition', () => {
    for (const [code, rule] of Object.entries(DISPOSITIONS)) expect(rule.why.length, code).toBeGreaterThan(10);
  });

  it('builds outcomes with code and reason only when not confirmed', () => {
    expect(confirmed('m-1', { gatewayId: 'gw-1' })).toEqual({ messageId: 'm-1', outcome: 'confirmed', gatewayId: 'gw-1' });
    expect(failed('m-2', 'ERR_INVALID_BASE64', 'payload is not base64', { field: 'payload' })).toEqual({
      messageId: 'm-2',
      outcome: 'dead-letter',
      code: 'ERR_INVALID_BASE64',
      reason: 'payload is not base64',
      field: 'payload',
    });
  });
});

describe('logSafeReason', () => {
  it('never lets a JWT through', () => {
    const jwt = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJwIn0.c2lnbmF0dXJl';
    const reason = logSafeReason(`Unexpected token in "${jwt}"`);
    expect(reason).not.toContain(jwt);
    expect(reason).not.toContain('c2lnbmF0dXJl');
    expect(reason).toContain('[redacted JWT]');
    expect(failed('m', 'ERR_INVALID_MESSAGE', `bad ${jwt}`).reason).not.toContain(jwt);
  });

  it('bounds the length', () => {
    expect(logSafeReason('x'.repeat(5000)).length).toBe(MAX_REASON_LENGTH);
  });
});

describe('backoffSeconds', () => {
  const policy = { baseSeconds: 30, maxSeconds: 900 };

  it('doubles per receive, between half and all of the step', () => {
    expect(backoffSeconds(1, policy, () => 0)).toBe(15);
    expect(backoffSeconds(1, policy, () => 1)).toBe(30);
    expect(backoffSeconds(2, policy, () => 0)).toBe(30);
    expect(backoffSeconds(3, policy, () => 0.999)).toBe(120);
  });

  it('is capped', () => {
    expect(backoffSeconds(10, policy, () => 1)).toBe(900);
    expect(backoffSeconds(1000, policy, () => 0)).toBe(450);
    expect(backoffSeconds(Number.MAX_SAFE_INTEGER, policy, () => 1)).toBe(900);
  });

  it('jitters: the same receive count does not always give the same delay', () => {
    const values = new Set(Array.from({ length: 50 }, () => backoffSeconds(5, policy)));
    expect(values.size).toBeGreaterThan(5);
    for (const v of values) expect(v).toBeGreaterThanOrEqual(240);
  });

  it('treats a missing or nonsensical receive count as the first', () => {
    expect(backoffSeconds(0, policy, () => 1)).toBe(30);
    expect(backoffSeconds(Number.NaN, policy, () => 1)).toBe(30);
  });
});
