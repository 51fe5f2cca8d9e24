/**
 * The programs the interop and browser tests drive (Debian's mosquitto clients, Python with paho-mqtt, PyJWT and
 * cryptography, Chromium), found or not, and what a test file does about it:
 *
 * - all there: its tests run;
 * - some missing, on a developer's machine: they are skipped, and the run says which programs are missing, from
 *   which Debian packages, and the one apt-get line that installs them all;
 * - some missing under `CI=true`: one test fails with that same message, so CI can never pass without them.
 *
 * @example
 * describeWithTools('mosquitto clients against the emulator', ['mosquitto'], () => {
 *   it('publishes', async () => { ... });
 * });
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

/** The one line that installs every program these tests use (README.md, "Tests and benchmarks", shows it too). */
export const APT_INSTALL_LINE = 'sudo apt-get install mosquitto-clients python3-paho-mqtt python3-jwt python3-cryptography chromium';

/** Debian's interpreter, the one that sees python3-paho-mqtt and python3-jwt; and Debian's Chromium. */
export const DEBIAN_PYTHON = '/usr/bin/python3';
export const DEBIAN_CHROMIUM = '/usr/bin/chromium';

export type Need = 'mosquitto' | 'paho' | 'chromium';

export interface MissingTool {
  /** The program or Python module that was not found. */
  what: string;
  /** The Debian package that provides it. */
  debianPackage: string;
}

/** Where to look; the defaults are this process's PATH and Debian's paths. */
export interface ToolPlaces {
  path?: string;
  python?: string;
  chromium?: string;
}

/** The modules the Python gateway imports, by full name: `paho` alone can be found as an empty namespace package. */
const PYTHON_MODULES: Record<string, string> = { 'paho.mqtt.client': 'python3-paho-mqtt', jwt: 'python3-jwt', cryptography: 'python3-cryptography' };

export function missingTools(needs: readonly Need[], places: ToolPlaces = {}): MissingTool[] {
  const missing: MissingTool[] = [];
  if (needs.includes('mosquitto')) {
    for (const program of ['mosquitto_pub', 'mosquitto_sub']) {
      if (!onPath(program, places.path ?? process.env.PATH ?? '')) missing.push({ what: program, debianPackage: 'mosquitto-clients' });
    }
  }
  if (needs.includes('paho')) {
    for (const module of missingPythonModules(places.python ?? DEBIAN_PYTHON, Object.keys(PYTHON_MODULES))) {
      missing.push({ what: `Python module ${module}`, debianPackage: PYTHON_MODULES[module]! });
    }
  }
  if (needs.includes('chromium')) {
    const chromium = places.chromium ?? DEBIAN_CHROMIUM;
    if (!executable(chromium)) missing.push({ what: chromium, debianPackage: 'chromium' });
  }
  return missing;
}

/** One line: what is missing, from which packages, and the apt-get line. */
export function missingToolsMessage(missing: readonly MissingTool[]): string {
  const packages = [...new Set(missing.map((m) => m.debianPackage))];
  return `missing ${missing.map((m) => m.what).join(', ')} (Debian ${packages.length === 1 ? 'package' : 'packages'} ${packages.join(', ')}); install with: ${APT_INSTALL_LINE}`;
}

/** What a test file does: run its tests, skip them (saying why), or fail (CI=true: missing tools are a failure). */
export function gate(missing: readonly MissingTool[], env: NodeJS.ProcessEnv = process.env): 'run' | 'skip' | 'fail' {
  if (missing.length === 0) return 'run';
  return env.CI === 'true' || env.CI === '1' ? 'fail' : 'skip';
}

/** A describe block whose tests need `needs`: run, skipped with a message, or one failing test under CI=true. */
export function describeWithTools(title: string, needs: readonly Need[], body: () => void): void {
  const missing = missingTools(needs);
  const message = missing.length === 0 ? '' : missingToolsMessage(missing);
  switch (gate(missing)) {
    case 'run':
      describe(title, body);
      return;
    case 'fail':
      describe(title, () => {
        it('finds the programs it drives (CI=true: a missing one fails the run)', () => {
          throw new Error(`${title}: ${message}`);
        });
      });
      return;
    case 'skip':
      // Printed with the file's output, so the run itself says what was skipped and how to install it.
      console.warn(`skipped "${title}": ${message}`);
      describe.skip(`${title} (skipped: ${missing.map((m) => m.what).join(', ')} not installed)`, body);
  }
}

function onPath(program: string, path: string): boolean {
  return path.split(delimiter).some((dir) => dir !== '' && executable(join(dir, program)));
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The modules `python` cannot import; all of them when `python` itself cannot run. */
function missingPythonModules(python: string, modules: string[]): string[] {
  // find_spec of a submodule imports its parent, and raises when the parent is missing: each module is tried alone.
  const script = [
    'import importlib.util, sys',
    'def missing(m):',
    '    try:',
    '        return importlib.util.find_spec(m) is None',
    '    except ImportError:',
    '        return True',
    'print(" ".join(m for m in sys.argv[1:] if missing(m)))',
  ].join('\n');
  try {
    const out = execFileSync(python, ['-c', script, ...modules], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim().split(/\s+/).filter((m) => m !== '');
  } catch {
    return modules;
  }
}
