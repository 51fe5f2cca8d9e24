/**
 * A Lambda container's life, in one fresh process (bundled, started with plain `node` and the function's
 * NODE_OPTIONS): import the handler bundle, then invoke it with each SQS event in turn, as Lambda's runtime would.
 * The first invocation is the cold one (settings read, gateway key fetched from Secrets Manager, TLS trust store
 * built, first session); the ones after it are warm.
 *
 *   node invocation-child.mjs <handler.mjs> <events.json> <answer.json>
 *
 * The environment (the relay's settings, the local Secrets Manager endpoint) comes from the parent. The handler's
 * log lines go to stdout, as they would to CloudWatch; the measurements go to the answer file.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';

interface SqsBatchResponse {
  batchItemFailures: { itemIdentifier: string }[];
}

type Handler = (event: unknown, context: { getRemainingTimeInMillis(): number; awsRequestId: string; functionName: string }) => Promise<SqsBatchResponse>;

export interface InvocationAnswer {
  importMs: number;
  /** One per event, in order: the first is cold. */
  invocations: { ms: number; records: number; failures: number }[];
}

async function main(): Promise<void> {
  const [bundle, eventsFile, answerFile] = process.argv.slice(2);
  if (bundle === undefined || eventsFile === undefined || answerFile === undefined) {
    throw new Error('usage: invocation-child <handler.mjs> <events.json> <answer.json>');
  }
  const timeoutMs = Number(process.env.BENCH_FUNCTION_TIMEOUT_MS ?? 60_000);

  const importStarted = performance.now();
  const module = (await import(pathToFileURL(bundle).href)) as { handler?: Handler };
  const importMs = performance.now() - importStarted;
  const handler = module.handler;
  if (typeof handler !== 'function') throw new Error(`${bundle} exports no handler`);

  const events = JSON.parse(await readFile(eventsFile, 'utf8')) as { Records: unknown[] }[];
  const invocations: InvocationAnswer['invocations'] = [];
  for (const event of events) {
    const end = Date.now() + timeoutMs;
    const context = { getRemainingTimeInMillis: () => Math.max(0, end - Date.now()), awsRequestId: randomUUID(), functionName: 'relay' };
    const started = performance.now();
    const response = await handler(event, context);
    invocations.push({ ms: performance.now() - started, records: event.Records.length, failures: response.batchItemFailures.length });
  }
  const answer: InvocationAnswer = { importMs, invocations };
  await writeFile(answerFile, JSON.stringify(answer));
}

await main();
