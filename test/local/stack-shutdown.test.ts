/**
 * Stopping `npm start` leaves nothing running: the stack's process gets SIGINT or SIGTERM, sent to it or to the npm
 * process that started it (`npm start & kill -INT $!`), and must end by itself, every port free again. Start-up
 * prints no warning on the way (the AWS SDK's Node-version notice is switched off by the stack).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../local/stack.js';

interface Ready {
  ingest: string;
  dashboard: string;
  ports: Record<string, number>;
  /** The stack's own process: npm's child, once npm's shell has exec'd it. */
  pid: number;
}

interface Started {
  child: ChildProcessWithoutNullStreams;
  ready: Ready;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  output: () => { stdout: string; stderr: string };
}

const children: ChildProcessWithoutNullStreams[] = [];
/** The stacks' own processes, which a failed test could leave behind its npm. */
const stackPids: number[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of stackPids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `npm` as the user runs it: the npm running these tests when there is one, else the one on PATH. */
function npmCommand(): [string, string[]] {
  const execPath = process.env.npm_execpath;
  return execPath !== undefined && execPath.endsWith('.js') ? [process.execPath, [execPath]] : ['npm', []];
}

/** Starts `command`, on free ports and a scratch data folder, and waits for its JSON ready line. */
async function start(command: string, args: string[]): Promise<Started> {
  const dataDir = await mkdtemp(join(tmpdir(), 'iotcore-start-'));
  dirs.push(dataDir);
  const options = ['--free-ports', '--json', '--quiet', '--data-dir', dataDir, '--log-level', 'ERROR'];
  // No inherited switch: the stack must silence the SDK's notice by itself.
  const env = { ...process.env };
  delete env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  const child = spawn(command, [...args, ...options], { cwd: projectRoot(), stdio: 'pipe', env });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in time; stderr: ${stderr}`)), 25_000);
    child.stdout.on('data', () => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as Ready);
    });
    child.once('exit', () => reject(new Error(`exited before ready; stderr: ${stderr}`)));
  });
  stackPids.push(ready.pid);
  return { child, ready, exited, output: () => ({ stdout, stderr }) };
}

async function expectAllPortsFree(ready: Ready): Promise<void> {
  expect(Object.keys(ready.ports).sort()).toEqual(['admin', 'dashboard', 'dynamodb', 'http', 'mqtt', 'networkServer', 'sqs']);
  for (const [name, port] of Object.entries(ready.ports)) expect({ name, free: await canListen(port) }).toEqual({ name, free: true });
}

describe('npm start', () => {
  it('stops everything on SIGINT while busy and exits by itself, freeing every port', async () => {
    // Prepare: the same entry point as `npm start`, busy with simulated devices.
    const { child, ready, exited, output } = await start(process.execPath, ['--import', 'tsx', 'scripts/start.ts', '--simulate', '2', '--simulate-interval', '200']);
    // Busy: a dashboard stream held open and a reading through the HTTP API (keep-alive connection).
    const stream = await fetch(`${ready.dashboard}/api/stream`);
    const streamEnded = stream.body!.pipeTo(new WritableStream()).then(
      () => 'ended',
      () => 'ended',
    );
    const posted = await fetch(`${ready.ingest}/devices/pump-0001/events`, { method: 'POST', body: '{"t":1}' });
    await posted.arrayBuffer();
    await new Promise((r) => setTimeout(r, 700));

    // Act
    const signalledAt = Date.now();
    child.kill('SIGINT');
    const exit = await exited;

    // Assess
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect(exit.at - signalledAt).toBeLessThan(10_000);
    expect(output().stdout).toContain('stopped');
    expect(output().stderr).not.toContain('still running');
    expect(await streamEnded).toBe('ended');
    expect(ready.pid).toBe(child.pid);
    await expectAllPortsFree(ready);
  });

  it.each([
    ['SIGINT', 'npm'],
    ['SIGTERM', 'npm'],
    ['SIGTERM', 'the script'],
  ] as const)('stops on %s sent to %s, npm and the script both end, and every port is free', async (signal, target) => {
    // Prepare: `npm start` itself, as a user runs it.
    const [command, args] = npmCommand();
    const { child, ready, exited, output } = await start(command, [...args, 'start', '--']);
    expect(ready.pid).not.toBe(child.pid);

    // Act
    process.kill(target === 'npm' ? child.pid! : ready.pid, signal);
    const exit = await exited;

    // Assess
    expect(exit, output().stderr).toMatchObject({ code: 0, signal: null });
    expect(output().stdout).toContain('stopped');
    expect(alive(ready.pid)).toBe(false);
    await expectAllPortsFree(ready);
    // Start-up and stop printed nothing but npm's own banner and the stack's lines: no warning.
    expect(output().stderr).not.toMatch(/Warning|NodeVersionSupport/);
  });
});
