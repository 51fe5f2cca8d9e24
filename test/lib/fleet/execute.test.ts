import { describe, expect, it } from 'vitest';
import { countSteps, runTasks, type Step, type StepKind } from '../../../lib/fleet/execute.js';
import { sleep } from '../../../lib/clearblade/rate-limit.js';

function step(kind: StepKind, label: string, run: () => Promise<'done' | 'already'>): Step {
  return { kind, label, run };
}

describe('runTasks', () => {
  it('runs every chain, counts done and already, and never has more workers busy than asked', async () => {
    let busy = 0;
    let most = 0;
    const order: string[] = [];
    const work = (label: string, outcome: 'done' | 'already') => async (): Promise<'done' | 'already'> => {
      busy += 1;
      most = Math.max(most, busy);
      await sleep(5);
      order.push(label);
      busy -= 1;
      return outcome;
    };
    const tasks = Array.from({ length: 20 }, (_, i) => [
      step('create-device', `create d-${i}`, work(`create d-${i}`, i % 4 === 0 ? 'already' : 'done')),
      step('bind', `bind d-${i}`, work(`bind d-${i}`, 'done')),
    ]);
    const result = await runTasks(tasks, { workers: 4 });
    expect(result.done).toEqual({ 'create-gateway': 0, 'create-device': 15, bind: 20, unbind: 0 });
    expect(result.already['create-device']).toBe(5);
    expect(most).toBe(4);
    for (let i = 0; i < 20; i++) expect(order.indexOf(`create d-${i}`)).toBeLessThan(order.indexOf(`bind d-${i}`));
    expect(countSteps(tasks)).toEqual({ 'create-gateway': 0, 'create-device': 20, bind: 20, unbind: 0 });
  });

  it('skips the rest of a failed chain and nothing else', async () => {
    const outcomes: string[] = [];
    const tasks = ['a', 'b', 'c'].map((d) => [
      step('create-device', `create ${d}`, async () => {
        if (d === 'b') throw new Error('HTTP 400 INVALID_ARGUMENT');
        return 'done';
      }),
      step('bind', `bind ${d}`, async () => 'done'),
    ]);
    const result = await runTasks(tasks, { workers: 2, onStep: (o, s) => outcomes.push(`${o} ${s.label}`) });
    expect(result.failed).toEqual([{ kind: 'create-device', label: 'create b', error: 'HTTP 400 INVALID_ARGUMENT' }]);
    expect(result.skipped).toBe(1);
    expect(result.done.bind).toBe(2);
    expect(outcomes).toContain('skipped bind b');
  });

  it('starts nothing once stopped, lets the steps in flight finish, and counts what was not started', async () => {
    const stop = new AbortController();
    let finished = 0;
    const tasks = Array.from({ length: 50 }, (_, i) => [
      step('bind', `bind ${i}`, async () => {
        if (i === 3) stop.abort(new Error('interrupted'));
        await sleep(20);
        finished += 1;
        return 'done';
      }),
    ]);
    const result = await runTasks(tasks, { workers: 4, stop: stop.signal });
    expect(result.interrupted).toBe(true);
    expect(result.done.bind).toBe(finished);
    expect(finished).toBe(4);
    expect(result.notStarted).toBe(46);
    expect(result.failed).toEqual([]);
  });
});
