/**
 * Runs the framework's CLI (osls, the project's `serverless` dev dependency) in a child process, the way a user
 * runs `npx serverless ...`, with no AWS credentials reachable: the commands under test must work offline.
 *
 * @example
 * const run = await runServerless(['package', '--stage', 'dev', '--package', dir], { scratchDir: dir });
 * expect(run.code, run.output).toBe(0);
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(PROJECT_ROOT, 'node_modules', 'serverless', 'bin', 'serverless.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Both streams, for assertion messages. */
  output: string;
}

export interface CliOptions {
  /** A folder the test owns: AWS's shared config and credentials files are pointed inside it, at nothing. */
  scratchDir: string;
  /** Extra variables for the child; the rest is this process's environment without any AWS credential. */
  env?: Record<string, string>;
  timeoutMs?: number;
}

export function runServerless(args: string[], options: CliOptions): Promise<CliRun> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    // No credential, profile or region may leak in from the machine running the tests.
    if (value !== undefined && !name.startsWith('AWS_')) env[name] = value;
  }
  Object.assign(env, {
    AWS_SHARED_CREDENTIALS_FILE: join(options.scratchDir, 'no-aws-credentials'),
    AWS_CONFIG_FILE: join(options.scratchDir, 'no-aws-config'),
    // The SDK's instance-metadata lookup would wait for a timeout on a machine outside EC2.
    AWS_EC2_METADATA_DISABLED: 'true',
    ...options.env,
  });
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 90_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, output: `--- stdout\n${stdout}\n--- stderr\n${stderr}` });
    });
  });
}

/**
 * The handler's result as `invoke local` prints it: the last top-level JSON value on stdout, after the
 * function's own log lines (one JSON object per line).
 */
export function invocationResult(stdout: string): unknown {
  const lines = stdout.split('\n');
  for (let start = lines.length - 1; start >= 0; start--) {
    if (lines[start] !== '{') continue;
    return JSON.parse(lines.slice(start).join('\n'));
  }
  throw new Error('no result printed');
}
