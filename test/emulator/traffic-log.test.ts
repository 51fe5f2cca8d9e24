/** The traffic log: message IDs, the record limit, and the filters the admin API's /emulator routes use. */
import { describe, expect, it } from 'vitest';
import { TrafficLog } from '../../emulator/traffic-log.js';
import type { ErrorRecord, PubsubMessage } from '../../emulator/traffic-log.js';

const event = (deviceId: string, extra: Partial<PubsubMessage['attributes']> = {}): Omit<PubsubMessage, 'messageId'> => ({
  publishTime: '2026-01-01T00:00:00.000Z',
  topic: 'projects/p/topics/t',
  data: Buffer.from(deviceId).toString('base64'),
  attributes: { deviceId, deviceNumId: '1', deviceRegistryId: 'reg-a', deviceRegistryLocation: 'l', projectId: 'p', subFolder: '', ...extra },
});
const error = (gatewayId: string): ErrorRecord => ({ time: '2026-01-01T00:00:00.000Z', gatewayId, delivered: true, payload: { error_type: 'X' } });

describe('events', () => {
  it('get increasing message IDs from 1, as decimal strings, and are kept oldest first', () => {
    const log = new TrafficLog();
    const first = log.addEvent(event('d-1'));
    const second = log.addEvent(event('d-2'));
    expect([first.messageId, second.messageId]).toEqual(['1', '2']);
    expect(log.events).toEqual([first, second]);
    expect(Object.keys(first)).toEqual(['messageId', 'publishTime', 'topic', 'data', 'attributes']);
  });

  it('drop the oldest past the limit, and never reuse an ID', () => {
    const log = new TrafficLog({ maxRecords: 2 });
    for (const d of ['d-1', 'd-2', 'd-3']) log.addEvent(event(d));
    expect(log.events.map((m) => [m.messageId, m.attributes.deviceId])).toEqual([
      ['2', 'd-2'],
      ['3', 'd-3'],
    ]);
    log.events.length = 0;
    expect(log.addEvent(event('d-4')).messageId).toBe('4');
  });

  it('are filtered by a later messageId, registry, device and gateway together', () => {
    const log = new TrafficLog();
    log.addEvent(event('d-1', { gatewayId: 'gw-1' }));
    log.addEvent(event('d-2', { gatewayId: 'gw-1' }));
    log.addEvent(event('d-1'));
    log.addEvent(event('d-1', { deviceRegistryId: 'reg-b', gatewayId: 'gw-1' }));
    const ids = (f: Parameters<TrafficLog['eventsMatching']>[0]) => log.eventsMatching(f).map((m) => m.messageId);
    expect(ids({})).toEqual(['1', '2', '3', '4']);
    expect(ids({ since: '2' })).toEqual(['3', '4']);
    expect(ids({ deviceId: 'd-1' })).toEqual(['1', '3', '4']);
    expect(ids({ gatewayId: 'gw-1', registryId: 'reg-a' })).toEqual(['1', '2']);
    expect(ids({ since: '1', deviceId: 'd-1', gatewayId: 'gw-1' })).toEqual(['4']);
    // IDs compare as numbers, not as strings ('10' > '9').
    for (let i = 0; i < 6; i++) log.addEvent(event('d-9'));
    expect(ids({ since: '9' })).toEqual(['10']);
  });
});

describe('errors', () => {
  it('are kept oldest first, within the limit, and listed for one gateway or all', () => {
    const log = new TrafficLog({ maxRecords: 3 });
    for (const gw of ['gw-0', 'gw-1', 'gw-2', 'gw-1']) log.addError(error(gw));
    expect(log.errors.map((e) => e.gatewayId)).toEqual(['gw-1', 'gw-2', 'gw-1']);
    expect(log.errorsOf('gw-1')).toEqual([error('gw-1'), error('gw-1')]);
    expect(log.errorsOf(undefined)).toHaveLength(3);
    expect(log.errorsOf('gw-0')).toEqual([]);
  });
});
