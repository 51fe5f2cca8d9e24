/**
 * `npm run bench -- --quick` end to end: every scenario runs once at tiny sizes (real sockets, real TLS, the delay
 * proxy, child processes, esbuild bundles, the local stack) and the results come out as a markdown table and a
 * chart. Nothing here judges speed: the quick mode measures nothing worth comparing, it proves the benchmark works.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface BenchRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runQuickBench(outDir: string): Promise<BenchRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', '--quick', '--out', outDir], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The rows of the markdown table that follows `header` (a line starting with it), without the separator. */
function tableAfter(markdown: string, header: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, -1).split('|').map((c) => c.trim()));
  }
  return rows;
}

describe('npm run bench -- --quick', () => {
  let outDir: string;
  let run: BenchRun;

  beforeAll(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'iotcore-bench-smoke-'));
    run = await runQuickBench(outDir);
  }, 240_000);

  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('runs every scenario without a problem', () => {
    // On failure, the benchmark's own progress lines say which scenario broke and why.
    expect(run.stderr).not.toMatch(/FAILED/);
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('## Problems');
    for (const section of ['## Targets', '## Round trips', '## Session throughput', '## Memory', '## Cold start', '## HTTP path', '## Relay scaling', '## Fleet provisioning']) {
      expect(run.stdout).toContain(section);
    }
  });

  it('prints the machine, the Node version and the mode', () => {
    expect(run.stdout).toMatch(/^# iotcore-relay benchmark\n\n\d{4}-\d\d-\d\dT[^·]+· .+, \d+ cores · Node v\d+/);
    expect(run.stdout).toContain('**quick mode**');
  });

  it('measures every batch shape on both network paths, relay and baseline side by side', () => {
    const rows = tableAfter(run.stdout, '| network | batch |');
    const paths = rows.map((r) => r[0]);
    expect(paths.filter((p) => p === 'emulator latency')).toHaveLength(4);
    expect(paths.filter((p) => p === 'delay proxy')).toHaveLength(4);
    for (const row of rows) {
      // relay ms, relay RT, baseline ms, baseline RT, ratio: all numbers.
      for (const cell of row.slice(2)) expect(Number(cell)).toBeGreaterThan(0);
    }
  });

  it('judges every target on a figure of this run', () => {
    const targets = tableAfter(run.stdout, '| claim | target |');
    expect(targets.length).toBeGreaterThanOrEqual(7);
    for (const [claim, , , verdict] of targets) {
      expect(verdict, claim).toMatch(/^(met|\*\*missed\*\*)$/);
    }
  });

  it('times each function from a fresh process: import, first invocation and their sum, against the relay', () => {
    const rows = tableAfter(run.stdout, '| function | import ms |');
    expect(rows.map((r) => r[0])).toEqual(['ingest, a valid reading', 'ingest, a bad request', 'config', 'poll', 'relay as packaged']);
    for (const row of rows) {
      const [importMs, firstMs, sumMs, warmMs] = row.slice(1, 5).map(Number);
      for (const value of [importMs, firstMs, sumMs, warmMs]) expect(value, row[0]).toBeGreaterThan(0);
      // One process in quick mode: the sum is that process's import + first invocation (each rounded for the table).
      expect(Math.abs(sumMs! - (importMs! + firstMs!)), row[0]).toBeLessThanOrEqual(1);
    }
    const targets = tableAfter(run.stdout, '| claim | target |');
    const cold = targets.find(([claim]) => claim!.startsWith('cold ingest request'));
    expect(cold?.[1]).toBe('≤ relay import + first invocation');
    const [ingestMs, relayMs] = [...cold![2]!.matchAll(/[\d.]+(?= )/g)].map((m) => Number(m[0]));
    expect(ingestMs).toBe(Number(rows[0]![3]));
    expect(relayMs).toBe(Number(rows[4]![3]));
  });

  it('accounts for every reading the ingest accepted', () => {
    const runs = tableAfter(run.stdout, '| run | requests | accepted (202) |');
    expect(runs.length).toBeGreaterThanOrEqual(2);
    for (const row of runs) {
      const accepted = Number(row[2]?.replace(/,/g, ''));
      const atBridge = Number(row[6]?.replace(/,/g, ''));
      const deadLettered = Number(row[7]?.replace(/,/g, ''));
      expect(accepted).toBeGreaterThan(0);
      expect(atBridge + deadLettered).toBe(accepted);
      expect(row[10]).toBe('yes');
    }
  });

  it('relays through pools of 1, 4 and 16 gateways, counting sessions and CPU per reading', () => {
    const rows = tableAfter(run.stdout, '| gateways | gateways carrying readings');
    expect(rows.map((r) => r[0])).toEqual(['1', '4', '16']);
    for (const row of rows) {
      const pool = Number(row[0]);
      const carrying = Number(row[1]);
      const number = (cell: string | undefined): number => Number(cell?.replace(/[*,]/g, ''));
      // Readings only go through gateways of the pool, and only one gateway when there is one.
      expect(carrying).toBeGreaterThanOrEqual(1);
      expect(carrying).toBeLessThanOrEqual(pool);
      // accepted/s, delivered/s, p50, p99, sessions, stack and generator CPU per reading: measured, not blank.
      for (const i of [2, 3, 5, 6, 8, 11, 12]) expect(number(row[i]), `${row[0]} gateways, column ${i}`).toBeGreaterThan(0);
    }
    // One gateway: every relay batch is one session.
    expect(rows[0]![10]).toBe('1.00');
  });

  it('accounts for every reading accepted in the scaling runs', () => {
    const runs = tableAfter(run.stdout, '| gateways | run | accepted (202) |');
    expect(runs.map((r) => r[0])).toEqual(['1', '4', '16']);
    for (const row of runs) {
      const [accepted, atBridge, deadLettered] = [row[2], row[3], row[4]].map((c) => Number(c?.replace(/,/g, '')));
      expect(accepted).toBeGreaterThan(0);
      expect(atBridge! + deadLettered!).toBe(accepted);
      expect(row[7]).toBe('yes');
    }
    expect(run.stdout).toMatch(/Warm-ups: [\d,]+ readings accepted, all accounted for/);
  });

  it('provisions a fleet with the fleet command, and resizes it make-before-break', () => {
    const steps = tableAfter(run.stdout, '| step | wall time |');
    expect(steps.map((r) => r[0])).toEqual(['apply from empty: 2,000 devices, 20 gateways', 'resize to 21 gateways: apply', 'resize to 21 gateways: apply --finish']);
    expect(steps[0]![5]).toBe('20 gateways created, 2,000 devices created, 2,000 bindings added');
    const added = Number(/, (\d+) bindings added$/.exec(steps[1]![5]!)?.[1]);
    expect(steps[2]![5]).toBe(`${added} bindings removed`);
    expect(run.stdout).toMatch(/after the apply from empty 2,000 of 2,000 .*after the resize to 21 gateways and its --finish 2,000 of 2,000/);
  });

  it('writes the same table to results.md, and the chart as SVG', async () => {
    const markdown = await readFile(join(outDir, 'results.md'), 'utf8');
    const svg = await readFile(join(outDir, 'round-trips.svg'), 'utf8');

    expect(markdown).toBe(run.stdout);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    const lines = [...svg.matchAll(/<polyline data-client="(relay|baseline)" data-path="([^"]+)" points="([^"]+)"/g)];
    expect(lines.map((m) => `${m[1]} / ${m[2]}`).sort()).toEqual([
      'baseline / delay proxy',
      'baseline / emulator latency',
      'relay / delay proxy',
      'relay / emulator latency',
    ]);
    for (const m of lines) {
      const points = m[3]!.split(' ').map((p) => p.split(',').map(Number));
      expect(points.length).toBe(3);
      for (const [x, y] of points) {
        expect(Number.isFinite(x) && Number.isFinite(y)).toBe(true);
      }
    }
  });
});
