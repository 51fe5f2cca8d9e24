/**
 * A local stand-in for an EventBridge schedule: invokes a function every `everySeconds` with a scheduled event
 * (`time` is the scheduled time, as EventBridge sends it), never two invocations at once (a tick that finds the
 * previous one still running is skipped), and once more on demand (`fireNow`).
 *
 * @example
 * const timer = new ScheduleTimer({ everySeconds: 60, fn, handler: pollHandler, onResult: (r) => log(r) });
 * timer.start();
 * await timer.stop();
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';
import { invokeLocally, type InvocationOutcome, type LocalFunction } from './lambda-invocation.js';

export interface ScheduledEventLike {
  version: '0';
  id: string;
  'detail-type': 'Scheduled Event';
  source: 'aws.events';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Record<string, never>;
}

export interface ScheduleTimerOptions<R> {
  everySeconds: number;
  fn: LocalFunction;
  handler: (event: ScheduledEventLike, context: Context) => Promise<R>;
  onResult?: (outcome: InvocationOutcome<R>, scheduledAt: Date) => void;
}

export class ScheduleTimer<R> {
  readonly #o: ScheduleTimerOptions<R>;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ScheduleTimerOptions<R>) {
    this.#o = options;
  }

  start(): void {
    if (this.#timer !== undefined || this.#o.everySeconds <= 0) return;
    this.#timer = setInterval(() => this.fireNow(), this.#o.everySeconds * 1000);
  }

  /** Invokes now unless an invocation is running; returns when it ends. */
  fireNow(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    this.#running ??= this.#invoke().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async #invoke(): Promise<void> {
    const scheduledAt = new Date();
    const event: ScheduledEventLike = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '123456789012',
      time: scheduledAt.toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: this.#o.fn.region,
      resources: [`arn:aws:events:${this.#o.fn.region}:123456789012:rule/${this.#o.fn.functionName}-schedule`],
      detail: {},
    };
    const run = invokeLocally(this.#o.handler, event, this.#o.fn);
    this.#o.onResult?.(await run.outcome, scheduledAt);
    await run.settled;
  }
}
