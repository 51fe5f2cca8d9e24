import { describe, expect, it } from 'vitest';
import { sendWindowed } from '../../../lib/gateway/publish-window.js';

/** Items answered later, in the order they were sent, one per macrotask. */
function laterAnswers() {
  const waiting: (() => void)[] = [];
  const sent: number[] = [];
  let inFlight = 0;
  let max = 0;
  const send = (item: number, onEnd: () => void): boolean => {
    sent.push(item);
    inFlight++;
    max = Math.max(max, inFlight);
    waiting.push(() => {
      inFlight--;
      onEnd();
    });
    return true;
  };
  const answerer = setInterval(() => waiting.shift()?.(), 1);
  return { send, sent, max: () => max, stop: () => clearInterval(answerer) };
}

describe('sendWindowed', () => {
  it('never has more than the window in flight, sends in order, and resolves after the last answer', async () => {
    const items = Array.from({ length: 40 }, (_, i) => i);
    const a = laterAnswers();
    let ended = 0;
    const { maxInFlight } = await sendWindowed(items, 4, (item, onEnd) => a.send(item, () => (ended++, onEnd()))).finally(a.stop);
    expect(ended).toBe(40);
    expect(a.max()).toBe(4);
    expect(maxInFlight).toBe(4);
    expect(a.sent).toEqual(items);
  });

  it('reports fewer in flight when there are fewer items than the window', async () => {
    const a = laterAnswers();
    const { maxInFlight } = await sendWindowed([1, 2, 3], 32, a.send).finally(a.stop);
    expect(maxInFlight).toBe(3);
    expect(a.sent).toEqual([1, 2, 3]);
  });

  it('gives skipped items no place in the window', async () => {
    const items = Array.from({ length: 20 }, (_, i) => i);
    const a = laterAnswers();
    const tried: number[] = [];
    const { maxInFlight } = await sendWindowed(items, 3, (item, onEnd) => {
      tried.push(item);
      return item % 2 === 0 ? a.send(item, onEnd) : false;
    }).finally(a.stop);
    expect(tried).toEqual(items);
    expect(a.sent).toEqual(items.filter((i) => i % 2 === 0));
    // With a window of 3, the first fill sends 0, 2 and 4 at once: the odd ones between them took no place.
    expect(maxInFlight).toBe(3);
    expect(a.max()).toBe(3);
  });

  it('resolves at once with no items, or with every item skipped', async () => {
    await expect(sendWindowed([], 8, () => true)).resolves.toEqual({ maxInFlight: 0 });
    await expect(sendWindowed([1, 2], 8, () => false)).resolves.toEqual({ maxInFlight: 0 });
  });

  it('goes through 10,000 items that end inside send() without deepening the stack', async () => {
    const items = Array.from({ length: 10_000 }, (_, i) => i);
    const depths: number[] = [];
    let sent = 0;
    const { maxInFlight } = await sendWindowed(items, 32, (_item, onEnd) => {
      sent++;
      depths.push(new Error().stack!.split('\n').length);
      onEnd();
      return true;
    });
    expect(sent).toBe(10_000);
    // An item answered before send() returned never waited.
    expect(maxInFlight).toBe(0);
    expect(Math.max(...depths)).toBe(Math.min(...depths));
  });

  it('keeps the window when items end synchronously after others were sent', async () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = laterAnswers();
    const { maxInFlight } = await sendWindowed(items, 5, (item, onEnd) => {
      if (item % 3 === 0) {
        onEnd();
        return true;
      }
      return a.send(item, onEnd);
    }).finally(a.stop);
    expect(a.max()).toBeLessThanOrEqual(5);
    expect(maxInFlight).toBeLessThanOrEqual(5);
    expect(a.sent).toEqual(items.filter((i) => i % 3 !== 0));
  });
});
