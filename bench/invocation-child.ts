/**
 * A Lambda container's life, in one fresh process (bundled, started with plain `node` and the function's
 * NODE_OPTIONS): import the handler bundle, then invoke it with each event in turn, as Lambda's runtime would.
 * The first invocation is the cold one (settings read, secrets fetched, SDK clients loaded, for the relay its TLS
 * trust store and first session); the ones after it are warm.
 *
 *   node invocation-child.mjs <handler.mjs> <events.json> <answer.json>
 *
 * Any handler: an SQS batch for the relay, an API Gateway request for the HTTP functions, a schedule event for the
 * poller. The environment (the function's settings, the local endpoints) comes from the parent, which also judges
 * the answers. The handler's log lines go to stdout, as they would to CloudWatch; the measurements go to the answer
 * file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

type Handler = (event: unknown, context: { getRemainingTimeInMillis(): number; awsRequestId: string; functionName: string }) => Promise<unknown>;

export interface InvocationAnswer {
  importMs: number;
  /** One per event, in order: the first is cold. `response` is what the handler returned. */
  invocations: { ms: number; response: unknown }[];
}

async function main(): Promise<void> {
  const [bundle, eventsFile, answerFile] = process.argv.slice(2);
  if (bundle === undefined || eventsFile === undefined || answerFile === undefined) {
    throw new Error('usage: invocation-child <handler.mjs> <events.json> <answer.json>');
  }
  const timeoutMs = Number(process.env.BENCH_FUNCTION_TIMEOUT_MS ?? 60_000);
  const functionName = process.env.AWS_LAMBDA_FUNCTION_NAME ?? 'function';

  const importStarted = performance.now();
  const module = (await import(pathToFileURL(bundle).href)) as { handler?: Handler };
  const importMs = performance.now() - importStarted;
  const handler = module.handler;
  if (typeof handler !== 'function') throw new Error(`${bundle} exports no handler`);

  const events = JSON.parse(await readFile(eventsFile, 'utf8')) as unknown[];
  const invocations: InvocationAnswer['invocations'] = [];
  for (const event of events) {
    const end = Date.now() + timeoutMs;
    const context = { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()), awsRequestId: randomUUID(), functionName };
    const started = performance.now();
    const response = await handler(event, context);
    invocations.push({ ms: performance.now() - started, response });
  }
  const answer: InvocationAnswer = { importMs, invocations };
  await writeFile(answerFile, JSON.stringify(answer));
}

await main();
