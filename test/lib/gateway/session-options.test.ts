import { describe, expect, it } from 'vitest';
import { noLog, SESSION_DEFAULTS, sessionOptions, type GatewaySessionOptions } from '../../../lib/gateway/session-options.js';

const base: GatewaySessionOptions = {
  registry: { project: 'p', location: 'l', registry: 'r' },
  gatewayId: 'gw-1',
  host: 'localhost',
  port: 8883,
  jwt: 'jwt',
  deadline: 123,
};

describe('sessionOptions', () => {
  it('fills every unset value with its default', () => {
    const o = sessionOptions(base);
    expect(o).toEqual({ ...base, connectTimeoutMs: 5000, attachTimeoutMs: 5000, pubackTimeoutMs: 5000, closeTimeoutMs: 2000, publishWindow: 32, subscribeBeforeConnack: true, publishRate: 0, lateErrorGraceMs: 25, protocolVersion: 4 });
    expect(SESSION_DEFAULTS.publishWindow).toBe(32);
  });

  it('keeps what is set, falsy values included', () => {
    const o = sessionOptions({ ...base, connectTimeoutMs: 0, publishWindow: 1, subscribeBeforeConnack: false, closeTimeoutMs: 10, protocolVersion: 5 });
    expect(o.connectTimeoutMs).toBe(0);
    expect(o.protocolVersion).toBe(5);
    expect(o.publishWindow).toBe(1);
    expect(o.subscribeBeforeConnack).toBe(false);
    expect(o.closeTimeoutMs).toBe(10);
    expect(o.attachTimeoutMs).toBe(5000);
  });

  it('does not let an undefined value override a default', () => {
    const o = sessionOptions({ ...base, connectTimeoutMs: undefined, publishWindow: undefined, subscribeBeforeConnack: undefined, extraCaPem: undefined });
    expect(o.connectTimeoutMs).toBe(5000);
    expect(o.publishWindow).toBe(32);
    expect(o.subscribeBeforeConnack).toBe(true);
    expect('extraCaPem' in o).toBe(false);
  });

  it('changes neither the input nor the defaults', () => {
    const input = { ...base, publishWindow: 4 };
    const o = sessionOptions(input);
    o.pubackTimeoutMs = 1;
    expect(input).toEqual({ ...base, publishWindow: 4 });
    expect(SESSION_DEFAULTS.pubackTimeoutMs).toBe(5000);
  });

  it('offers a log that says nothing', () => {
    expect(() => {
      noLog.debug('x');
      noLog.info('x', { a: 1 });
      noLog.warn('x');
    }).not.toThrow();
  });
});
