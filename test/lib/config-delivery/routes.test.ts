import { describe, expect, it } from 'vitest';
import { matchConfigRoute } from '../../../lib/config-delivery/routes.js';
import { HttpRefusal } from '../../../lib/http/error-envelope.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

const LONG = '/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices';

function refusal(method: string, path: string): HttpRefusal {
  try {
    matchConfigRoute(method, path);
  } catch (e) {
    if (e instanceof HttpRefusal) return e;
    throw e;
  }
  throw new Error(`${method} ${path} was matched`);
}

describe('matchConfigRoute', () => {
  it('matches the IoT Core form with the registry it names', () => {
    expect(matchConfigRoute('GET', `${LONG}/pump-0042/config`)).toEqual({
      form: 'iotcore',
      registry: { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' },
      deviceId: 'pump-0042',
    });
  });

  it('matches the raw form', () => {
    expect(matchConfigRoute('GET', '/devices/pump-0042/config')).toEqual({ form: 'raw', deviceId: 'pump-0042' });
  });

  it('takes the device ID as it is, without decoding it again', () => {
    expect(matchConfigRoute('GET', '/devices/dev%41/config')).toEqual({ form: 'raw', deviceId: 'dev%41' });
  });

  it.each(['/devices/pump-0042/configs', '/devices/pump-0042/config/', '/devices/pump-0042', `${LONG}/pump-0042`, '/devices/a/b/config', '/'])(
    'refuses %s with NOT_FOUND',
    (path) => {
      expect(refusal('GET', path)).toMatchObject({ status: 'NOT_FOUND', httpCode: 404, message: 'no such resource' });
    },
  );

  it.each(['POST', 'PUT', 'DELETE', 'get'])('refuses %s, before reading the path, with NOT_FOUND', (method) => {
    expect(refusal(method, '/devices/pump-0042/config')).toMatchObject({ status: 'NOT_FOUND', message: `${method} is not served here` });
  });

  it.each([`${LONG}/goog-pump/config`, '/devices/1pump/config', '/devices/ab/config'])('refuses a device ID that breaks the rule: %s', (path) => {
    expect(thrownRelayError(() => matchConfigRoute('GET', path), 'ERR_INVALID_DEVICE_ID').field).toBe('deviceId');
  });
});
