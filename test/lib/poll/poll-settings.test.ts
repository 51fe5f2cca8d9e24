import { describe, expect, it } from 'vitest';
import { pollSettingsFromEnv } from '../../../lib/poll/poll-settings.js';

const base = { IOTCORE_GATEWAY_IDS: 'gw-1, gw-2', RELAY_QUEUE_URL: 'http://127.0.0.1:1/000000000000/relay.fifo' };

describe('pollSettingsFromEnv', () => {
  it('applies the defaults', () => {
    expect(pollSettingsFromEnv(base)).toEqual({
      gatewayIds: ['gw-1', 'gw-2'],
      queueUrl: base.RELAY_QUEUE_URL,
      deviceIds: [],
      recentHours: 24,
      chunkSize: 100,
    });
  });

  it('reads the device list, the window and the chunk size', () => {
    const s = pollSettingsFromEnv({ ...base, POLL_DEVICE_IDS: ' pump-1,pump-2,,pump-1 ', POLL_RECENT_HOURS: '0', POLL_CHUNK_SIZE: '1000' });
    expect(s).toMatchObject({ deviceIds: ['pump-1', 'pump-2'], recentHours: 0, chunkSize: 1000 });
  });

  it.each([
    [{ IOTCORE_GATEWAY_IDS: '' }, 'IOTCORE_GATEWAY_IDS'],
    [{ RELAY_QUEUE_URL: ' ' }, 'RELAY_QUEUE_URL'],
    [{ POLL_DEVICE_IDS: 'ok-1,no/slash' }, 'POLL_DEVICE_IDS[1]'],
    [{ POLL_DEVICE_IDS: 'ok-1,pump+x' }, "POLL_DEVICE_IDS[1] is a valid IoT Core device ID, but its '+' is an MQTT wildcard"],
    [{ POLL_CHUNK_SIZE: '1001' }, 'POLL_CHUNK_SIZE'],
    [{ POLL_CHUNK_SIZE: '0' }, 'POLL_CHUNK_SIZE'],
    [{ POLL_RECENT_HOURS: 'soon' }, 'POLL_RECENT_HOURS'],
    [{ POLL_RECENT_HOURS: '-1' }, 'POLL_RECENT_HOURS'],
    [{ IOTCORE_GATEWAY_IDS: `g${'w'.repeat(128)}` }, 'message group'],
  ])('refuses %j, naming the problem', (override, named) => {
    expect(() => pollSettingsFromEnv({ ...base, ...override })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining(named) }));
  });
});
