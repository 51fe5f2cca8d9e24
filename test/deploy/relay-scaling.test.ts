/**
 * The relayMaxConcurrency parameter as the framework resolves it (`serverless print`, offline): a number caps the
 * relay's SQS event source, `none` leaves `maximumConcurrency` null (the framework then writes no ScalingConfig),
 * and anything else stops the deployment with a message naming the parameter. The default's ScalingConfig in the
 * generated CloudFormation is checked in template.test.ts.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerlessTemplate } from '../../local/serverless-template.js';
import { PROJECT_ROOT, runServerless, type CliRun } from './serverless-cli.js';

const scaling = createRequire(import.meta.url)('../../deploy/relay-scaling.cjs') as {
  maximumConcurrency(arg?: { resolveVariable?: (address: string) => Promise<unknown> }): Promise<number | null> | null;
  maximumConcurrencyOf(raw: unknown): number | null;
};

describe('deploy/relay-scaling.cjs', () => {
  it('turns the parameter into a number, or null for none and empty', () => {
    expect(scaling.maximumConcurrencyOf('8')).toBe(8);
    expect(scaling.maximumConcurrencyOf(' 1000 ')).toBe(1000);
    expect(scaling.maximumConcurrencyOf(2)).toBe(2);
    expect(scaling.maximumConcurrencyOf('none')).toBeNull();
    expect(scaling.maximumConcurrencyOf('')).toBeNull();
    expect(scaling.maximumConcurrencyOf(undefined)).toBeNull();
  });

  it('refuses what CloudFormation would, by name', () => {
    for (const bad of ['1', '0', '1001', '-3', '2.5', 'eight', 'None']) {
      expect(() => scaling.maximumConcurrencyOf(bad), bad).toThrow(
        `relayMaxConcurrency must be a whole number from 2 to 1000, or none for no cap (got ${JSON.stringify(bad)})`,
      );
    }
  });

  it('asks the framework for the parameter, and answers null to a reader that cannot resolve variables', async () => {
    const asked: string[] = [];
    const value = await scaling.maximumConcurrency({ resolveVariable: async (address) => (asked.push(address), '12') });
    expect(value).toBe(12);
    expect(asked).toEqual(['param:relayMaxConcurrency']);
    expect(scaling.maximumConcurrency({})).toBeNull();
    // The local stack reads serverless.yml without the framework; the event source still loads.
    const template = loadServerlessTemplate(join(PROJECT_ROOT, 'serverless.yml'), { stage: 'local' });
    expect(template.functionEvents('relay', 'sqs')).toEqual([expect.objectContaining({ batchSize: 10, maximumConcurrency: null })]);
  });
});

describe('relayMaxConcurrency through the framework', () => {
  let scratch: string;
  const runs = new Map<string, CliRun>();

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'iotcore-relay-scaling-'));
    await Promise.all(
      ['40', 'none', '1001'].map(async (value) => {
        const args = ['print', '--stage', 'dev', '--format', 'json', '--path', 'functions.relay.events', `--param=relayMaxConcurrency=${value}`];
        runs.set(value, await runServerless(args, { scratchDir: scratch, timeoutMs: 60_000 }));
      }),
    );
  }, 90_000);

  afterAll(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  const sqsEvent = (run: CliRun): Record<string, unknown> => {
    expect(run.code, run.output).toBe(0);
    const events = JSON.parse(run.stdout.slice(run.stdout.indexOf('['))) as { sqs?: Record<string, unknown> }[];
    return events.find((e) => e.sqs !== undefined)!.sqs!;
  };

  it('caps the event source at the number given', () => {
    expect(sqsEvent(runs.get('40')!).maximumConcurrency).toBe(40);
  });

  it('leaves it uncapped for none', () => {
    expect(sqsEvent(runs.get('none')!).maximumConcurrency).toBeNull();
  });

  it('stops on a value outside 2 to 1000, naming the parameter', () => {
    const run = runs.get('1001')!;
    expect(run.code, run.output).not.toBe(0);
    expect(run.output).toContain('relayMaxConcurrency must be a whole number from 2 to 1000, or none for no cap (got "1001")');
  });
});
