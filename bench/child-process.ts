/**
 * Starts the benchmark's child processes and collects what they measured (see child-jobs.ts for why clients run
 * apart from the servers they are measured against).
 *
 * @example
 * const answer = await runClientChild(bundles.clientChild, workDir, { kind: 'session', ... });
 * const { wallMs, stdout } = await runNode(['-e', '0']);
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AnswerOf, ChildFailure, ChildJob } from './child-jobs.js';

export interface NodeRun {
  /** From spawn to exit, as seen by the parent. */
  wallMs: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface NodeRunOptions {
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  cwd?: string;
}

/** Runs `node <args>` to completion. The environment is the parent's unless one is given. */
export function runNode(args: readonly string[], options: NodeRunOptions = {}): Promise<NodeRun> {
  return new Promise<NodeRun>((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ wallMs: performance.now() - started, code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** Writes `content` to a new file only this user can read (job files name the key file). */
export async function privateFile(dir: string, prefix: string, content: string): Promise<string> {
  const file = join(dir, `${prefix}-${randomUUID()}.json`);
  await writeFile(file, content, { mode: 0o600 });
  return file;
}

/** Runs one job in a fresh client process and returns its answer; throws with the child's reason when it failed. */
export async function runClientChild<J extends ChildJob>(bundle: string, workDir: string, job: J, options: NodeRunOptions = {}): Promise<AnswerOf<J>> {
  const jobFile = await privateFile(workDir, 'job', JSON.stringify(job));
  const answerFile = join(workDir, `answer-${randomUUID()}.json`);
  try {
    const run = await runNode([bundle, jobFile, answerFile], options);
    let answer: AnswerOf<J> | ChildFailure | undefined;
    try {
      answer = JSON.parse(await readFile(answerFile, 'utf8')) as AnswerOf<J> | ChildFailure;
    } catch {
      answer = undefined;
    }
    if (answer === undefined || answer.kind === 'failure') {
      const reason = answer?.kind === 'failure' ? answer.message : `exit code ${String(run.code)}: ${lastLines(run.stderr)}`;
      throw new Error(`${job.kind} child failed: ${reason}`);
    }
    return answer;
  } finally {
    await rm(jobFile, { force: true });
    await rm(answerFile, { force: true });
  }
}

export function lastLines(text: string, count = 5): string {
  return text.trim().split('\n').slice(-count).join('\n');
}
