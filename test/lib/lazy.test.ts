import { describe, expect, it } from 'vitest';
import { lazy } from '../../lib/lazy.js';

describe('lazy', () => {
  it('loads nothing until called, then loads once and keeps the value', async () => {
    let loads = 0;
    const value = lazy(async () => ({ n: ++loads }));
    expect(loads).toBe(0);

    const first = await value();
    const second = await value();

    expect(loads).toBe(1);
    expect(second).toBe(first);
  });

  it('shares one load between concurrent first calls', async () => {
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const value = lazy(async () => {
      loads++;
      await gate;
      return 'sdk';
    });

    const calls = [value(), value(), value()];
    release();

    expect(await Promise.all(calls)).toEqual(['sdk', 'sdk', 'sdk']);
    expect(loads).toBe(1);
  });

  it('loads again after a failure, and keeps the first success', async () => {
    let loads = 0;
    const value = lazy(async () => {
      loads++;
      if (loads === 1) throw new Error('module not found');
      return `loaded on try ${loads}`;
    });

    await expect(value()).rejects.toThrow('module not found');
    await expect(value()).resolves.toBe('loaded on try 2');
    await expect(value()).resolves.toBe('loaded on try 2');
    expect(loads).toBe(2);
  });

  it('gives every caller of a failed load that failure, then loads again once', async () => {
    let loads = 0;
    let fail!: (e: Error) => void;
    const value = lazy(() => {
      loads++;
      return loads === 1 ? new Promise<string>((_, reject) => (fail = reject)) : Promise.resolve('ok');
    });

    const waiting = [value(), value()];
    await Promise.resolve();
    fail(new Error('network'));

    expect(await Promise.allSettled(waiting)).toEqual([
      { status: 'rejected', reason: new Error('network') },
      { status: 'rejected', reason: new Error('network') },
    ]);
    await expect(value()).resolves.toBe('ok');
    expect(loads).toBe(2);
  });

  it('turns a loader that throws synchronously into a failed load that is tried again', async () => {
    let loads = 0;
    const value = lazy((): Promise<number> => {
      loads++;
      if (loads === 1) throw new Error('sync');
      return Promise.resolve(loads);
    });

    await expect(value()).rejects.toThrow('sync');
    await expect(value()).resolves.toBe(2);
  });

  it('loads a real module on demand, the way the handlers load the SDK', async () => {
    const sdk = lazy(() => import('../../lib/queue/message.js'));

    const mod = await sdk();

    expect(mod.encodeConfigPollMessage(['valve-01'])).toBe('{"v":1,"type":"config-poll","deviceIds":["valve-01"]}');
    expect(await sdk()).toBe(mod);
  });
});
