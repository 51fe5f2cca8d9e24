/**
 * Running a handler in this process as Lambda would run it: a Context whose `getRemainingTimeInMillis()` counts
 * down to the function's timeout, and a result that is a timeout once that time is over, whatever the handler
 * does afterwards. The handler's promise is still followed to its end (`settled`), because in this process it
 * cannot be killed the way Lambda kills a sandbox, and a relay session still running must not overlap the next
 * session of the same gateway (docs/design.md rule 1).
 *
 * @example
 * const run = invokeLocally(handler, event, { functionName: 'relay', timeoutSeconds: 60, region: 'us-east-1' });
 * const outcome = await run.outcome; // { kind: 'returned', value } | { kind: 'threw', error } | { kind: 'timed-out' }
 * await run.settled;
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'aws-lambda';

export interface LocalFunction {
  functionName: string;
  timeoutSeconds: number;
  region: string;
  /** Lambda's default is 128; the template's memorySize when known. */
  memoryLimitInMB?: number;
}

export type InvocationOutcome<R> = { kind: 'returned'; value: R } | { kind: 'threw'; error: unknown } | { kind: 'timed-out' };

export interface LocalInvocation<R> {
  requestId: string;
  outcome: Promise<InvocationOutcome<R>>;
  /** Resolves when the handler's own promise has settled, which may be after a timeout. */
  settled: Promise<void>;
}

const LOCAL_ACCOUNT = '123456789012';

export function lambdaContext(fn: LocalFunction, deadline: number, requestId: string): Context {
  const unsupported = (name: string) => (): never => {
    throw new Error(`context.${name}() is not supported: return a value or a promise instead`);
  };
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: fn.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${fn.region}:${LOCAL_ACCOUNT}:function:${fn.functionName}`,
    memoryLimitInMB: String(fn.memoryLimitInMB ?? 128),
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${fn.functionName}`,
    logStreamName: `local/${fn.functionName}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: unsupported('done'),
    fail: unsupported('fail'),
    succeed: unsupported('succeed'),
  };
}

export function invokeLocally<E, R>(handler: (event: E, context: Context) => Promise<R> | R, event: E, fn: LocalFunction): LocalInvocation<R> {
  const requestId = randomUUID();
  const timeoutMs = fn.timeoutSeconds * 1000;
  const context = lambdaContext(fn, Date.now() + timeoutMs, requestId);
  // A handler that throws synchronously is a rejected invocation, as in Lambda.
  const running = Promise.resolve().then(() => handler(event, context));
  const settled = running.then(
    () => undefined,
    () => undefined,
  );
  const outcome = new Promise<InvocationOutcome<R>>((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'timed-out' }), timeoutMs);
    running.then(
      (value) => {
        clearTimeout(timer);
        resolve({ kind: 'returned', value });
      },
      (error: unknown) => {
        clearTimeout(timer);
        resolve({ kind: 'threw', error });
      },
    );
  });
  return { requestId, outcome, settled };
}
