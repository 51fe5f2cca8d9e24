import { describe, expect, it } from 'vitest';
import { matchRoute } from '../../../lib/ingest/routes.js';

const registry = { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' };
const bridge = (tail: string): string => `/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/${tail}`;

describe('matchRoute', () => {
  it('matches the IoT Core HTTP bridge verbs, with the colon plain or still encoded', () => {
    expect(matchRoute('POST', bridge('pump-0042:publishEvent'), registry)).toEqual({ route: { kind: 'event', form: 'bridge', deviceId: 'pump-0042' } });
    expect(matchRoute('POST', bridge('pump-0042%3AsetState'), registry)).toEqual({ route: { kind: 'state', form: 'bridge', deviceId: 'pump-0042' } });
    expect(matchRoute('POST', bridge('pump-0042%3apublishEvent'), registry)).toMatchObject({ route: { kind: 'event' } });
  });

  it('keeps a % of the device ID (API Gateway has already decoded the path)', () => {
    expect(matchRoute('POST', bridge('dev%41x:publishEvent'), registry)).toMatchObject({ route: { deviceId: 'dev%41x' } });
    expect(matchRoute('POST', '/devices/dev%41x/state', registry)).toMatchObject({ route: { deviceId: 'dev%41x' } });
  });

  it('answers 404 for another project, location or registry, and for unknown verbs', () => {
    const paths = [
      '/v1/projects/other/locations/us-central1/registries/demo-registry/devices/pump-0042:publishEvent',
      '/v1/projects/demo-project/locations/europe-west1/registries/demo-registry/devices/pump-0042:publishEvent',
      '/v1/projects/demo-project/locations/us-central1/registries/other-registry/devices/pump-0042:publishEvent',
      bridge('pump-0042:sendCommand'),
      bridge('pump-0042'),
      bridge('pump-0042/config'),
    ];
    for (const path of paths) expect(matchRoute('POST', path, registry)).toHaveProperty('notFound');
  });

  it('matches the simple form, subfolders of any depth included', () => {
    expect(matchRoute('POST', '/devices/pump-0042/events', registry)).toEqual({ route: { kind: 'event', form: 'simple', deviceId: 'pump-0042' } });
    expect(matchRoute('POST', '/devices/pump-0042/events/alarms/high', registry)).toEqual({
      route: { kind: 'event', form: 'simple', deviceId: 'pump-0042', subfolder: 'alarms/high' },
    });
    expect(matchRoute('POST', '/devices/pump-0042/state', registry)).toEqual({ route: { kind: 'state', form: 'simple', deviceId: 'pump-0042' } });
    expect(matchRoute('POST', '/devices/pump-0042/batch', registry)).toEqual({ route: { kind: 'batch', deviceId: 'pump-0042' } });
  });

  it('hands an empty subfolder level on for the subfolder check to refuse, rather than dropping it', () => {
    expect(matchRoute('POST', '/devices/pump-0042/events/', registry)).toMatchObject({ route: { subfolder: '' } });
    expect(matchRoute('POST', '/devices/pump-0042/events/a//b', registry)).toMatchObject({ route: { subfolder: 'a//b' } });
  });

  it('answers 404 for unknown paths and sub-paths of state and batch', () => {
    for (const path of ['/', '/devices/pump-0042', '/devices/pump-0042/config', '/devices/pump-0042/state/x', '/devices/pump-0042/batch/1', '/devices//events']) {
      expect(matchRoute('POST', path, registry)).toHaveProperty('notFound');
    }
  });

  it('answers 405 for another method on a route, 404 before 405 elsewhere', () => {
    expect(matchRoute('GET', '/devices/pump-0042/events', registry)).toEqual({ methodNotAllowed: 'GET is not allowed on /devices/pump-0042/events; use POST' });
    expect(matchRoute('put', bridge('pump-0042:setState'), registry)).toHaveProperty('methodNotAllowed');
    expect(matchRoute('GET', '/nothing', registry)).toHaveProperty('notFound');
  });
});
