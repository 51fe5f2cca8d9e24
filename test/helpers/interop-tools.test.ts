/**
 * The detector behind the interop and browser tests' skips (test/helpers/interop-tools.ts), pointed at places
 * that lack the programs (an empty PATH, a Python without its site packages, no Chromium) instead of a machine
 * with them uninstalled; and the decision it leads to, with and without CI=true.
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../local/stack.js';
import { APT_INSTALL_LINE, DEBIAN_PYTHON, gate, missingTools, missingToolsMessage } from './interop-tools.js';

let dir: string;
let emptyPath: string;
let halfPath: string;
let barePython: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'interop-tools-'));
  emptyPath = join(dir, 'empty');
  halfPath = join(dir, 'half');
  await Promise.all([mkdir(emptyPath), mkdir(halfPath)]);
  // A mosquitto_pub, but no mosquitto_sub.
  await writeFile(join(halfPath, 'mosquitto_pub'), '#!/bin/sh\nexit 0\n');
  await chmod(join(halfPath, 'mosquitto_pub'), 0o755);
  // A real Python that does not load site packages (-S), where Debian puts paho, jwt and cryptography.
  barePython = join(dir, 'python3');
  await writeFile(barePython, `#!/bin/sh\nexec ${DEBIAN_PYTHON} -S "$@"\n`);
  await chmod(barePython, 0o755);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('missingTools', () => {
  it('names each missing program or module with its Debian package', () => {
    expect(missingTools(['mosquitto', 'paho', 'chromium'], { path: emptyPath, python: barePython, chromium: join(dir, 'chromium') })).toEqual([
      { what: 'mosquitto_pub', debianPackage: 'mosquitto-clients' },
      { what: 'mosquitto_sub', debianPackage: 'mosquitto-clients' },
      { what: 'Python module paho.mqtt.client', debianPackage: 'python3-paho-mqtt' },
      { what: 'Python module jwt', debianPackage: 'python3-jwt' },
      { what: 'Python module cryptography', debianPackage: 'python3-cryptography' },
      { what: join(dir, 'chromium'), debianPackage: 'chromium' },
    ]);
  });

  it('finds what is there: a program on PATH, an executable file', () => {
    expect(missingTools(['mosquitto'], { path: halfPath })).toEqual([{ what: 'mosquitto_sub', debianPackage: 'mosquitto-clients' }]);
    expect(missingTools(['chromium'], { chromium: join(halfPath, 'mosquitto_pub') })).toEqual([]);
    // No Python at all: every module it would need is missing.
    expect(missingTools(['paho'], { python: join(dir, 'no-such-python') }).map((m) => m.debianPackage)).toEqual([
      'python3-paho-mqtt',
      'python3-jwt',
      'python3-cryptography',
    ]);
  });

  it('checks only what a file needs', () => {
    expect(missingTools([], { path: emptyPath, python: barePython, chromium: join(dir, 'chromium') })).toEqual([]);
  });
});

describe('the message and the decision', () => {
  const missing = [
    { what: 'mosquitto_pub', debianPackage: 'mosquitto-clients' },
    { what: 'mosquitto_sub', debianPackage: 'mosquitto-clients' },
  ];

  it('is one line: what, from which package, and the apt-get line for everything', () => {
    expect(missingToolsMessage(missing)).toBe(`missing mosquitto_pub, mosquitto_sub (Debian package mosquitto-clients); install with: ${APT_INSTALL_LINE}`);
    expect(missingToolsMessage(missing)).not.toContain('\n');
  });

  it('runs with everything there, skips without, and fails without under CI=true', () => {
    expect(gate([], { CI: 'true' })).toBe('run');
    expect(gate(missing, {})).toBe('skip');
    expect(gate(missing, { CI: 'false' })).toBe('skip');
    expect(gate(missing, { CI: 'true' })).toBe('fail');
    expect(gate(missing, { CI: '1' })).toBe('fail');
  });

  it('gives the same apt-get line as the README and the CI script', () => {
    const readme = readFileSync(join(projectRoot(), 'README.md'), 'utf8');
    expect(readme).toContain(APT_INSTALL_LINE);
    const ci = readFileSync(join(projectRoot(), '.ci', 'run'), 'utf8');
    for (const pkg of APT_INSTALL_LINE.replace('sudo apt-get install ', '').split(' ')) expect(ci).toContain(pkg);
  });
});
