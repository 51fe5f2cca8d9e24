/**
 * Settings errors come whole: every loader of a handler's environment (lib/relay-settings.ts for the relay, the ingest's,
 * the poller's, device authentication, the config route's) reports every missing or wrong variable in one
 * ERR_CONFIG, so an operator fixes a deployment in one round. lib/settings-check.ts is what they share.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { describe, expect, it, vi } from 'vitest';
import { createConfigHandler } from '../../handlers/config.js';
import { deviceAuthenticatorFromEnv } from '../../lib/auth/index.js';
import { RelayError } from '../../lib/errors.js';
import { ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { pollSettingsFromEnv } from '../../lib/poll/poll-settings.js';
import { combinedConfigError, SettingsCheck } from '../../lib/settings-check.js';
import { thrownRelayError } from '../helpers/relay-error.js';

const config = (field: string, why = 'must be set'): RelayError => new RelayError('ERR_CONFIG', `${field} ${why}`, { field });

describe('SettingsCheck', () => {
  it('keeps reading after a wrong setting and throws them all at the end', () => {
    const check = new SettingsCheck();
    const a = check.read(() => {
      throw config('A');
    });
    const b = check.read(() => 42);
    check.add(config('C', 'must be a number'));
    expect({ a, b, ok: check.ok }).toEqual({ a: undefined, b: 42, ok: false });
    const e = thrownRelayError(() => check.throwIfAny(), 'ERR_CONFIG');
    expect(e.message).toBe('2 settings are wrong: A must be set; C must be a number');
    expect(e.field).toBe('A,C');
  });

  it('throws a single problem as it is, and nothing when there is none', () => {
    const one = config('ONLY');
    const check = new SettingsCheck();
    check.add(one);
    expect(() => check.throwIfAny()).toThrow(one);
    expect(() => new SettingsCheck().throwIfAny()).not.toThrow();
    expect(combinedConfigError([])).toBeUndefined();
  });

  it('names a variable once, even when two loaders both check it', () => {
    const check = new SettingsCheck();
    check.add(config('IOTCORE_PROJECT'));
    check.add(config('IOTCORE_PROJECT', 'must name the IoT Core project'));
    check.add(config('RELAY_QUEUE_URL'));
    expect(thrownRelayError(() => check.throwIfAny()).message).toBe('2 settings are wrong: IOTCORE_PROJECT must be set; RELAY_QUEUE_URL must be set');
  });

  it('lets an error that is not ERR_CONFIG through at once: a defect is not a setting', () => {
    const check = new SettingsCheck();
    expect(() => check.read(() => JSON.parse('{'))).toThrow(SyntaxError);
    expect(() => check.read(() => { throw new RelayError('ERR_INTERNAL', 'broken'); })).toThrow(/broken/);
    expect(check.ok).toBe(true);
  });
});

/** The one ERR_CONFIG `fn` throws, with every variable of `names` in its message and field. */
function expectAllNamed(fn: () => unknown, names: string[]): void {
  const e = thrownRelayError(fn, 'ERR_CONFIG');
  expect(e.message).toMatch(new RegExp(`^${names.length} settings are wrong: `));
  for (const name of names) expect(e.message).toContain(name);
  expect(e.field?.split(',').sort()).toEqual([...names].sort());
}

describe('every settings loader lists all its problems at once', () => {
  it('the poller', () => {
    expectAllNamed(
      () => pollSettingsFromEnv({ IOTCORE_GATEWAY_IDS: '', POLL_DEVICE_IDS: 'ok-1,no/slash', POLL_RECENT_HOURS: 'soon', POLL_CHUNK_SIZE: '0' }),
      ['IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL', 'POLL_DEVICE_IDS[1]', 'POLL_RECENT_HOURS', 'POLL_CHUNK_SIZE'],
    );
  });

  it('device authentication', () => {
    expectAllNamed(
      () => deviceAuthenticatorFromEnv({ DEVICE_KEYS_FILE: 'k.json', DEVICE_KEYS_SECRET: 'k', DEVICE_AUTH_CACHE_SECONDS: 'soon' }),
      ['IOTCORE_PROJECT', 'DEVICE_KEYS_SECRET', 'DEVICE_AUTH_CACHE_SECONDS'],
    );
    // Nothing configured at all is one problem of its own.
    expect(thrownRelayError(() => deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: 'demo-project' }), 'ERR_CONFIG').message).toMatch(/^no device authentication configured/);
  });

  it('the ingest', () => {
    expectAllNamed(
      () =>
        ingestServiceFromEnv({
          IOTCORE_PROJECT: '',
          IOTCORE_REGISTRY: 'goog-registry',
          IOTCORE_GATEWAY_IDS: 'gw/1',
          CONFIG_TABLE: 'configs',
          CONFIG_RETENTION_DAYS: '-1',
        }),
      ['IOTCORE_PROJECT', 'IOTCORE_LOCATION', 'IOTCORE_REGISTRY', 'IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL', 'DEVICE_KEYS_SECRET', 'CONFIG_RETENTION_DAYS'],
    );
  });

  it('the config route: answers 500, and logs one line naming every variable', async () => {
    const logger = new Logger({ serviceName: 'iotcore-relay', logLevel: 'ERROR' });
    const errors: unknown[] = [];
    vi.spyOn(logger, 'error').mockImplementation((_message, ...extra) => void errors.push(...extra));
    try {
      const handle = createConfigHandler({ env: { IOTCORE_PROJECT: 'demo-project', CONFIG_RETENTION_DAYS: 'never' }, logger });
      const answer = await handle({ rawPath: '/devices/pump-0001/config', headers: {}, requestContext: { http: { method: 'GET' } } as never });
      expect(answer.statusCode).toBe(500);
      // Nothing about the deployment reaches the device.
      expect(String(answer.body)).not.toMatch(/CONFIG_TABLE|DEVICE_KEYS/);
      const logged = (errors[0] as { error: RelayError }).error;
      expect(logged).toMatchObject({ code: 'ERR_CONFIG' });
      expect(logged.message).toMatch(/^2 settings are wrong: /);
      expect(logged.message).toContain('no device authentication configured');
      expect(logged.message).toContain('CONFIG_TABLE must name the config table');
    } finally {
      vi.restoreAllMocks();
    }
  });
});
