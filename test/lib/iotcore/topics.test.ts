import { describe, expect, it } from 'vitest';
import {
  attachTopic,
  clientId,
  commandsTopic,
  configTopic,
  detachTopic,
  errorsTopic,
  eventsTopic,
  parseClientId,
  parseTopic,
  stateTopic,
  subfolderProblem,
} from '../../../lib/iotcore/topics.js';

describe('topic builders', () => {
  it('build the documented topics', () => {
    expect(eventsTopic('pump-0042')).toBe('/devices/pump-0042/events');
    expect(eventsTopic('pump-0042', 'alarms/high')).toBe('/devices/pump-0042/events/alarms/high');
    expect(stateTopic('pump-0042')).toBe('/devices/pump-0042/state');
    expect(attachTopic('pump-0042')).toBe('/devices/pump-0042/attach');
    expect(errorsTopic('gw-1')).toBe('/devices/gw-1/errors');
  });

  it.each(['/lead', 'trail/', 'a//b', 'a/+', '#', 'x\u0000y', 'tab\there', '', 'x'.repeat(257)])(
    'cannot be steered by subfolder %j',
    (sub) => {
      expect(subfolderProblem(sub)).toBeDefined();
      expect(() => eventsTopic('pump-0042', sub)).toThrow(/subfolder/);
    },
  );

  it.each(['a/b', 'x+', 'a#', '', 'dev\u0000'])('cannot be steered by device ID %j', (id) => {
    expect(() => stateTopic(id)).toThrow(/deviceId/);
  });

  it('refuse a device ID IoT Core allows but whose + is an MQTT wildcard, with a code of its own', () => {
    for (const build of [(id: string) => eventsTopic(id), stateTopic, configTopic, commandsTopic, attachTopic, detachTopic, errorsTopic]) {
      expect(() => build('pump+x')).toThrow(expect.objectContaining({ code: 'ERR_DEVICE_ID_MQTT_WILDCARD', field: 'deviceId' }));
    }
    // The client ID is no topic name: IoT Core's rule is all it must follow.
    expect(clientId({ project: 'p1', location: 'us-central1', registry: 'reg' }, 'pump+x')).toBe('projects/p1/locations/us-central1/registries/reg/devices/pump+x');
  });

  it('builds and parses client IDs', () => {
    const path = { project: 'p1', location: 'us-central1', registry: 'reg' };
    const id = clientId(path, 'gw-1');
    expect(id).toBe('projects/p1/locations/us-central1/registries/reg/devices/gw-1');
    expect(parseClientId(id)).toEqual({ ...path, deviceId: 'gw-1' });
    expect(parseClientId('projects/p1/devices/gw-1')).toBeUndefined();
  });
});

describe('parseTopic', () => {
  it('parses device topics', () => {
    expect(parseTopic('/devices/d-1/events')).toEqual({ deviceId: 'd-1', kind: 'events' });
    expect(parseTopic('/devices/d-1/events/a/b')).toEqual({ deviceId: 'd-1', kind: 'events', subfolder: 'a/b' });
    expect(parseTopic('/devices/d-1/commands/#')).toEqual({ deviceId: 'd-1', kind: 'commands', subfolder: '#' });
    expect(parseTopic('/devices/d-1/config')).toEqual({ deviceId: 'd-1', kind: 'config' });
  });

  it('tells a malformed device topic from a foreign one', () => {
    expect(parseTopic('projects/p/topics/t')).toBeUndefined();
    expect(parseTopic('/devices/d-1')).toHaveProperty('malformed');
    expect(parseTopic('/devices/1x/events')).toHaveProperty('malformed');
    expect(parseTopic('/devices/d-1/state/extra')).toHaveProperty('malformed');
    expect(parseTopic('/devices/d-1/telemetry')).toHaveProperty('malformed');
    expect(parseTopic('/devices/d-1/events//x')).toHaveProperty('malformed');
  });
});
