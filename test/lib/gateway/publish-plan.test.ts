import { describe, expect, it } from 'vitest';
import { planPublishes, type PublishRequest } from '../../../lib/gateway/publish-plan.js';

const p = (key: string, deviceId: string, kind: 'event' | 'state', subfolder?: string): PublishRequest => ({
  key,
  deviceId,
  kind,
  payload: Buffer.from(key),
  ...(subfolder === undefined ? {} : { subfolder }),
});

describe('planPublishes', () => {
  it('keeps queue order and builds each topic', () => {
    const plan = planPublishes([p('1', 'pump-1', 'event'), p('2', 'pump-2', 'event', 'a/b'), p('3', 'pump-1', 'state')]);
    expect(plan.map((u) => [u.keys, u.topic])).toEqual([
      [['1'], '/devices/pump-1/events'],
      [['2'], '/devices/pump-2/events/a/b'],
      [['3'], '/devices/pump-1/state'],
    ]);
  });

  it('coalesces the states of a device into the newest, at the newest one\'s place', () => {
    const plan = planPublishes([
      p('s1', 'pump-1', 'state'),
      p('e1', 'pump-1', 'event'),
      p('s2', 'pump-1', 'state'),
      p('o1', 'pump-2', 'state'),
      p('s3', 'pump-1', 'state'),
      p('e2', 'pump-1', 'event'),
    ]);
    expect(plan.map((u) => u.keys)).toEqual([['e1'], ['o1'], ['s3', 's2', 's1'], ['e2']]);
    expect(plan[2]!.payload.toString()).toBe('s3');
  });

  it('refuses a record handed over twice', () => {
    expect(() => planPublishes([p('1', 'pump-1', 'event'), p('1', 'pump-1', 'event')])).toThrow(expect.objectContaining({ code: 'ERR_INTERNAL' }));
  });

  it('refuses a device ID or subfolder that would change the topic', () => {
    expect(() => planPublishes([p('1', 'pump/1', 'event')])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_DEVICE_ID' }));
    expect(() => planPublishes([p('1', 'pump-1', 'event', 'a/#')])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_SUBFOLDER' }));
  });
});
