/**
 * The command line's entry point as a user runs it (bin/iotcore-relay.mjs in a child process): the version, the
 * usage, an unknown command.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../local/stack.js';

const BIN = join(projectRoot(), 'bin', 'iotcore-relay.mjs');

function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

describe('iotcore-relay', () => {
  it.each(['--version', '-V'])('%s prints the version of package.json and exits 0', async (flag) => {
    const { version } = JSON.parse(await readFile(join(projectRoot(), 'package.json'), 'utf8')) as { version: string };
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    expect(await cli(flag)).toEqual({ code: 0, stdout: `iotcore-relay ${version}\n`, stderr: '' });
  });

  it('lists --version in its usage, and refuses an unknown command with exit status 2', async () => {
    const usage = await cli('--help');
    expect(usage.code).toBe(0);
    expect(usage.stdout).toContain('iotcore-relay --version');
    const unknown = await cli('--verison');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^iotcore-relay: unknown command '--verison'/);
  });
});
