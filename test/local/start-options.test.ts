/**
 * The command line of `npm start`.
 */
import { describe, expect, it } from 'vitest';
import { parseStartArgs } from '../../local/start-options.js';

describe('parseStartArgs', () => {
  it('reads every option into stack options', () => {
    expect(
      parseStartArgs(['--simulate', '5', '--simulate-interval', '500', '--schedule-every', '0', '--free-ports', '--http-port', '3100', '--param', 'pollDeviceIds=a,b', '--param', 'x=y=z', '--log-level', 'info', '--json', '--quiet']),
    ).toEqual({
      options: {
        simulate: 5,
        simulateIntervalMs: 500,
        scheduleEverySeconds: 0,
        ports: { http: 3100, dashboard: 0, mqtt: 0, admin: 0, sqs: 0, dynamodb: 0 },
        params: { pollDeviceIds: 'a,b', x: 'y=z' },
        handlerLogLevel: 'INFO',
      },
      json: true,
      quiet: true,
    });
    expect(parseStartArgs([])).toEqual({ options: {}, json: false, quiet: false });
    expect(parseStartArgs(['-h'])).toEqual({ help: true });
  });

  it('refuses what it cannot use, naming the flag', () => {
    expect(parseStartArgs(['--simulate', 'many'])).toEqual({ error: '--simulate must be a whole number from 0 to 1000 (got many)' });
    expect(parseStartArgs(['--mqtt-port', '70000'])).toMatchObject({ error: expect.stringContaining('--mqtt-port') });
    expect(parseStartArgs(['--param', 'novalue'])).toEqual({ error: '--param must be name=value (got novalue)' });
    expect(parseStartArgs(['--log-level', 'loud'])).toMatchObject({ error: expect.stringContaining('--log-level') });
    expect(parseStartArgs(['--bogus'])).toMatchObject({ error: expect.stringContaining('--bogus') });
    expect(parseStartArgs(['--pool', 'gw-{9..1}'])).toMatchObject({ error: expect.stringMatching(/^--pool .*low to high/) });
  });

  it('expands a compact gateway pool', () => {
    const parsed = parseStartArgs(['--pool', 'gw-{000..099}']);
    expect(parsed).toMatchObject({ options: { gatewayIds: expect.arrayContaining(['gw-000', 'gw-099']) } });
    expect('options' in parsed && parsed.options.gatewayIds).toHaveLength(100);
  });
});
