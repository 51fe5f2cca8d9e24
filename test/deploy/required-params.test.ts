/**
 * A stage without its required parameters stops at once, with one line naming every missing one
 * (deploy/required-params.cjs), for `package` as for `deploy`, offline, before anything is built or any AWS call.
 * The required list is read from serverless.yml itself, so a parameter added to it is checked here too.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerlessTemplate } from '../../local/serverless-template.js';
import { PROJECT_ROOT, runServerless } from './serverless-cli.js';

const plugin = createRequire(import.meta.url)('../../deploy/required-params.cjs') as {
  missingParams: (required: Record<string, unknown>) => string[];
  requiredParamsMessage: (stage: string, missing: string[]) => string;
};

/** The names serverless.yml lists under custom.requiredParams. */
const REQUIRED = Object.keys(loadServerlessTemplate(join(PROJECT_ROOT, 'serverless.yml'), { stage: 'local' }).get(['custom', 'requiredParams']) as object);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'iotcore-relay-params-'));
});
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** The lines of the framework's error block, after its `Error:` line. */
const errorLines = (output: string): string[] => {
  const lines = output.split('\n');
  const at = lines.findIndex((l) => l.trim() === 'Error:');
  return at < 0 ? [] : lines.slice(at + 1).filter((l) => l.trim() !== '');
};

describe('a stage without its required parameters', () => {
  it('lists the registry, the gateways and the bridge host as required', () => {
    expect([...REQUIRED].sort()).toEqual(['gatewayIds', 'location', 'mqttHost', 'project', 'registry']);
  });

  it('fails `package` with one line naming every one of them, and builds nothing', async () => {
    const artifacts = join(scratch, 'prod');
    const run = await runServerless(['package', '--stage', 'prod', '--package', artifacts], { scratchDir: scratch, timeoutMs: 60_000 });
    expect(run.code, run.output).not.toBe(0);
    expect(errorLines(run.stderr + run.stdout)).toEqual([plugin.requiredParamsMessage('prod', REQUIRED)]);
    await expect(readdir(artifacts)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('fails `deploy` the same way, before asking AWS for anything, and names only what is still missing', async () => {
    const run = await runServerless(['deploy', '--stage', 'prod', '--param', 'project=my-project', '--param', 'mqttHost=bridge.example.com'], {
      scratchDir: scratch,
      timeoutMs: 60_000,
    });
    expect(run.code, run.output).not.toBe(0);
    expect(errorLines(run.stderr + run.stdout)).toEqual([plugin.requiredParamsMessage('prod', REQUIRED.filter((n) => n !== 'project' && n !== 'mqttHost'))]);
    expect(run.output).not.toMatch(/credentials/i);
  });

  it('treats an empty or blank value as missing', () => {
    expect(plugin.missingParams({ a: '', b: ' ', c: null, d: 'x', e: 0 })).toEqual(['a', 'b', 'c']);
  });
});
