/**
 * Ctrl-C on `npm start` leaves nothing running: the entry point runs in a child process, busy (simulated devices
 * posting, a dashboard stream open, a keep-alive HTTP connection), gets SIGINT, and must end by itself, with
 * status 0, every port free again.
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
}

const children: ChildProcessWithoutNullStreams[] = [];
const dirs: string[] = [];

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

describe('npm start', () => {
  it('stops everything on SIGINT and exits by itself, freeing every port', async () => {
    // Prepare: the same entry point as `npm start`, on free ports and a scratch data folder.
    const dataDir = await mkdtemp(join(tmpdir(), 'iotcore-start-'));
    dirs.push(dataDir);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'scripts/start.ts', '--free-ports', '--json', '--quiet', '--data-dir', dataDir, '--simulate', '2', '--simulate-interval', '200', '--log-level', 'ERROR'],
      { cwd: projectRoot(), stdio: 'pipe' },
    );
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    const ready = await new Promise<Ready>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready in time; stderr: ${stderr}`)), 20_000);
      child.stdout.on('data', () => {
        const line = stdout.split('\n').find((l) => l.startsWith('{'));
        if (line === undefined) return;
        clearTimeout(timer);
        resolve(JSON.parse(line) as Ready);
      });
      child.once('exit', () => reject(new Error(`exited before ready; stderr: ${stderr}`)));
    });
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
    expect(stdout).toContain('stopped');
    expect(stderr).not.toContain('still running');
    expect(await streamEnded).toBe('ended');
    expect(Object.keys(ready.ports).sort()).toEqual(['admin', 'dashboard', 'dynamodb', 'http', 'mqtt', 'networkServer', 'sqs']);
    for (const [name, port] of Object.entries(ready.ports)) expect({ name, free: await canListen(port) }).toEqual({ name, free: true });
  });
});
