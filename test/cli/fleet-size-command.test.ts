import { describe, expect, it } from 'vitest';
import { fleetSizeCommand } from '../../cli/fleet-size-command.js';
import type { CommandOutput } from '../../cli/keys-command.js';
import { SOURCES, type FleetSize } from '../../lib/fleet/capacity.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const io: CommandOutput = {
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
  };
  const code = await fleetSizeCommand(argv, io);
  return { code, stdout, stderr };
}

/** The value column of a row of the "Deploy" or "Rates" block. */
function rowValue(stdout: string, label: string): string {
  const line = stdout.split('\n').find((l) => l.startsWith(`  ${label} `));
  if (line === undefined) throw new Error(`no row ${label} in\n${stdout}`);
  return line.slice(2 + label.length).trim().split(/\s{2,}/)[0]!;
}

describe('iotcore-relay fleet size', () => {
  it('prints the pool, the cap and every ceiling with its source, and exits 0 when all fit', async () => {
    // 50,000 devices: 7 gateways put about 7,456 on the fullest (7,142.9 + 4 * sqrt(50,000 * 1/7 * 6/7)), under 8,000.
    const r = await run('--devices', '50000', '--interval', '10m');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Fleet: 50,000 devices, 1 reading every 10 min: 5,000 records a minute, 83.3 a second\./);
    expect(rowValue(r.stdout, 'gateways in the pool')).toBe('7');
    expect(r.stdout).toContain('about 7,456 devices on the fullest');
    expect(rowValue(r.stdout, 'relayMaxConcurrency')).toBe('8');
    expect(r.stdout).toContain('--param="relayMaxConcurrency=8"');
    expect(rowValue(r.stdout, 'relay queue')).toBe('batch 10');
    expect(r.stdout).toContain('visibility timeout 360 s, relay timeout 60 s, maxReceiveCount 10, high throughput on');
    expect(rowValue(r.stdout, 'publishes a minute')).toBe('5,000');
    // Every ceiling row names a source, and every source is listed with its URL.
    const rows = r.stdout.split('\n').filter((l) => / (ok|tight|EXCEEDED) +\[\d\]$/.test(l));
    expect(rows).toHaveLength(15);
    for (const url of [SOURCES.clearblade, SOURCES.googleIotCore, SOURCES.sqsQuotas, SOURCES.sqsHighThroughput, SOURCES.lambdaSqsScaling, SOURCES.lambdaScalingConfig, SOURCES.lambdaQuotas]) {
      expect(r.stdout).toMatch(new RegExp(`\\[\\d\\] ${url.replace(/[.+?]/g, '\\$&')}\\n`));
    }
    expect(r.stdout).toMatch(/devices bound to the fullest gateway +7,456 +10,000 devices +ok +\[1\]\n/);
    expect(r.stdout).toContain('(*) not in ClearBlade');
    expect(r.stdout).toMatch(/No ceiling is exceeded\.\n$/);
  });

  it('exits 1 and says what to do when a ceiling is exceeded', async () => {
    const r = await run('--devices', '100000', '--interval', '10m');
    expect(r.code).toBe(1);
    expect(rowValue(r.stdout, 'gateways in the pool')).toBe('14');
    expect(r.stdout).toMatch(/devices in the registry, gateways included +100,014 +100,000 devices +EXCEEDED/);
    expect(r.stdout).toContain("Warnings\n  - devices in the registry, gateways included: 100,014 devices against a limit of 100,000: ask ClearBlade to raise the project's device quota\n");
  });

  it('sizes 1,000,000 devices a minute with the quotas given, and prints the cap they allow', async () => {
    const r = await run('--devices', '1M', '--interval', '1m', '--publish-quota', '1,671,971', '--device-quota', '2M');
    expect(rowValue(r.stdout, 'gateways in the pool')).toBe('242');
    expect(rowValue(r.stdout, 'relayMaxConcurrency')).toBe('242');
    expect(r.stdout).toContain('high throughput on (needed at this load)');
    // Only the connection rate, a figure ClearBlade does not publish, is over.
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/MQTT connections opened, one record per session \(\*\) +1,000,000 +60,000 per minute +EXCEEDED/);
    expect(r.stdout.match(/EXCEEDED/g)).toHaveLength(1);
  });

  it('prints the whole calculation as JSON with --json, with the same exit status', async () => {
    const r = await run('--devices', '100_000', '--interval', '600s', '--json');
    expect(r.code).toBe(1);
    const plan = JSON.parse(r.stdout) as FleetSize;
    expect(plan.input).toMatchObject({ devices: 100_000, intervalSeconds: 600, readingsPerReport: 1, batchSize: 10, headroom: 0.8 });
    expect(plan.pool.minimum).toBe(14);
    expect(plan.relay.maxConcurrency).toBe(8);
    expect(plan.ceilings.find((c) => c.id === 'devicesPerProject')?.level).toBe('exceeded');
  });

  it('reads 100000, 100,000, 100_000 and 100k alike, and applies the other options', async () => {
    const plans = await Promise.all(['100000', '100,000', '100_000', '100k'].map(async (d) => (await run('--devices', d, '--interval', '10m', '--json')).stdout));
    expect(new Set(plans).size).toBe(1);
    const r = await run('--devices', '1000', '--interval', '1h', '--readings', '25', '--gateways', '3', '--headroom', '50%', '--batch-size', '5', '--session-base-ms', '200', '--session-per-record-ms', '1', '--json');
    const plan = JSON.parse(r.stdout) as FleetSize;
    expect(plan.input).toMatchObject({ devices: 1000, intervalSeconds: 3600, readingsPerReport: 25, batchSize: 5, headroom: 0.5, session: { baseMs: 200, perRecordMs: 1 } });
    expect(plan.pool.gateways).toBe(3);
    // 5 records / 201 ms = 24.88 a second; 60,000 * 0.5 / 60 = 500; 500 / 24.88 = 20.1 -> 20.
    expect(plan.relay.maxConcurrency).toBe(20);
  });

  it('prints its usage with --help and exits 0', async () => {
    const r = await run('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: iotcore-relay fleet size --devices <n> --interval <duration>/);
    expect(r.stderr).toBe('');
  });

  it('refuses bad arguments with exit status 2 and a message that names the option', async () => {
    const cases: [string[], RegExp][] = [
      [['--interval', '10m'], /--devices is required/],
      [['--devices', '100'], /--interval is required/],
      [['--devices', '0', '--interval', '10m'], /--devices must be a whole number of at least 1.*got "0"/],
      [['--devices', 'many', '--interval', '10m'], /--devices must be a whole number.*got "many"/],
      [['--devices', '1.5', '--interval', '10m'], /--devices must be a whole number/],
      [['--devices', '100', '--interval', '10'], /--interval: an interval is a number and a unit s, m, h or d, such as 10m \(got "10"\)/],
      [['--devices', '100', '--interval', '0m'], /--interval: an interval must be longer than 0/],
      [['--devices', '100', '--interval', '10m', '--headroom', '150'], /--headroom is a percentage above 0 and at most 100 \(got 150\)/],
      [['--devices', '100', '--interval', '10m', '--headroom', 'lots'], /--headroom must be a number \(got "lots"\)/],
      [['--devices', '100', '--interval', '10m', '--batch-size', '11'], /--batch-size must be 1 to 10, the most a FIFO batch holds \(got 11\)/],
      [['--devices', '100', '--interval', '10m', '--publish-quota=-5'], /--publish-quota must be a whole number.*got "-5"/],
      [['--devices', '100', '--interval', '10m', '--publish-quota', '-5'], /--publish-quota/],
      [['--devices', '100', '--interval', '10m', '--session-base-ms', '0'], /--session-base-ms must be above 0/],
      [['--devices', '100', '--interval', '10m', '--frobnicate'], /Unknown option '--frobnicate'/],
      [['--devices', '100', '--interval', '10m', 'extra'], /Unexpected argument 'extra'/],
      [['--devices'], /--devices/],
    ];
    for (const [argv, message] of cases) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stdout, argv.join(' ')).toBe('');
      expect(r.stderr, argv.join(' ')).toMatch(/^iotcore-relay fleet size: /);
      expect(r.stderr, argv.join(' ')).toMatch(message);
      expect(r.stderr, argv.join(' ')).toContain('usage: iotcore-relay fleet size');
    }
  });
});

describe('iotcore-relay fleet size, through the fleet command', () => {
  it('routes `size` to the calculation, with no registry or service account needed', async () => {
    const { fleetCommand } = await import('../../cli/fleet-command.js');
    let out = '';
    let err = '';
    const code = await fleetCommand(['size', '--devices', '50000', '--interval', '10m'], {
      stdout: { write: (t: string) => (out += t) },
      stderr: { write: (t: string) => (err += t) },
      env: {},
      stderrTty: false,
      onInterrupt: () => () => undefined,
      exitNow: () => {
        throw new Error('fleet size must not exit the process');
      },
    });
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(/gateways/i);
    expect(out).toContain('50,000');
  });
});
