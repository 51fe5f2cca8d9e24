/**
 * Runs a plan's calls with a fixed number of workers. A task is a short chain of steps for one device (create it,
 * then bind it): a step that fails skips the rest of its chain, never its neighbours. When `stop` aborts (Ctrl-C),
 * no new step starts; the steps already sent finish, and the result says how far the run got.
 *
 * Every step must be idempotent on its own (an ALREADY_EXISTS on create, a NOT_FOUND on unbind count as done), so
 * a run cut short and started again from a fresh plan repeats nothing the registry does not show as missing.
 *
 * @example
 * const result = await runTasks(tasks, { workers: 16, stop: controller.signal, onStep: (ok) => bar.tick(ok) });
 * if (result.failed.length > 0) return 1;
 */

export type StepKind = 'create-gateway' | 'create-device' | 'bind' | 'unbind';
export const STEP_KINDS: readonly StepKind[] = ['create-gateway', 'create-device', 'bind', 'unbind'];

export interface Step {
  kind: StepKind;
  /** What the step does, for messages: `bind pump-0001 -> gw-042`. */
  label: string;
  /** `done` when it changed the registry, `already` when the registry already was that way. */
  run(): Promise<'done' | 'already'>;
}

export type Task = readonly Step[];

export interface StepFailure {
  kind: StepKind;
  label: string;
  error: string;
}

export interface RunResult {
  done: Record<StepKind, number>;
  already: Record<StepKind, number>;
  failed: StepFailure[];
  /** Steps not run because an earlier step of their chain failed. */
  skipped: number;
  /** Steps not started because the run was stopped. */
  notStarted: number;
  interrupted: boolean;
}

export interface RunOptions {
  workers: number;
  /** Aborted: start nothing new. */
  stop?: AbortSignal;
  /** After each step that ran (ok = done or already), or was skipped. */
  onStep?: (outcome: 'ok' | 'failed' | 'skipped', step: Step) => void;
}

const zero = (): Record<StepKind, number> => ({ 'create-gateway': 0, 'create-device': 0, bind: 0, unbind: 0 });

export async function runTasks(tasks: Iterable<Task>, options: RunOptions): Promise<RunResult> {
  const result: RunResult = { done: zero(), already: zero(), failed: [], skipped: 0, notStarted: 0, interrupted: false };
  const iterator = tasks[Symbol.iterator]();
  let exhausted = false;
  const next = (): Task | undefined => {
    if (exhausted) return undefined;
    const r = iterator.next();
    if (r.done === true) {
      exhausted = true;
      return undefined;
    }
    return r.value;
  };
  const stopped = (): boolean => options.stop?.aborted === true;

  const worker = async (): Promise<void> => {
    for (let task = stopped() ? undefined : next(); task !== undefined; task = stopped() ? undefined : next()) {
      for (const [i, step] of task.entries()) {
        if (stopped()) {
          result.notStarted += task.length - i;
          break;
        }
        let outcome: 'done' | 'already';
        try {
          outcome = await step.run();
        } catch (e) {
          if (stopped() && isStopReason(e, options.stop)) {
            // Stopped while waiting for its turn (a token, a slot, a backoff): the call did not complete.
            result.notStarted += task.length - i;
            break;
          }
          result.failed.push({ kind: step.kind, label: step.label, error: (e as Error).message });
          options.onStep?.('failed', step);
          for (const rest of task.slice(i + 1)) {
            result.skipped += 1;
            options.onStep?.('skipped', rest);
          }
          break;
        }
        result[outcome][step.kind] += 1;
        options.onStep?.('ok', step);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.workers) }, worker));
  if (stopped()) {
    result.interrupted = true;
    for (let task = next(); task !== undefined; task = next()) result.notStarted += task.length;
  }
  return result;
}

function isStopReason(e: unknown, stop: AbortSignal | undefined): boolean {
  return stop !== undefined && (e === stop.reason || (e as Error | undefined)?.name === 'AbortError');
}

export function countSteps(tasks: Iterable<Task>): Record<StepKind, number> {
  const counts = zero();
  for (const task of tasks) for (const step of task) counts[step.kind] += 1;
  return counts;
}
