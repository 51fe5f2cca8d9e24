/**
 * `iotcore-relay emulator`: flags to options, the one JSON line it prints when ready, a clean exit on SIGTERM.
 */
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emulatorOptionsFromArgs } from '../../cli/emulator-command.js';
import { connackCode, makeFleet, withTimeout } from '../helpers/emulator-fixtures.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

const BIN = fileURLToPath(new URL('../../bin/iotcore-relay.mjs', import.meta.url));
let dir: string;
let registryFile: string;
let fleet: Fleet;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'emulator-cli-'));
  fleet = await makeFleet({ devices: ['dev-1'] });
  registryFile = join(dir, 'registry.json');
  await writeFile(registryFile, JSON.stringify(fleet.document));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('flags', () => {
  it('map to emulator options', async () => {
    const options = await emulatorOptionsFromArgs([
      '--port', '0', '--registry', registryFile, '--latency-ms', '25', '--admin-port', 'none',
      '--auth-failure-code', '5', '--duplicate-client-id', 'refuse', '--unclean-session', 'refuse', '--ack-failed-attach',
      '--error-shape', 'flat', '--no-state-rate-limit', '--command-subfolder-subscriptions', '--clock-skew-seconds', '30',
      '--config-resend-ms', '100', '--idle-timeout-seconds', '60', '--quiet',
    ]);
    expect(options).toEqual({
      host: '127.0.0.1', port: 0, tls: true, registry: fleet.document, adminPort: null, latencyMs: 25, authFailureCode: 5,
      duplicateClientId: 'refuse', uncleanSession: 'refuse', ackFailedAttach: true, errorShape: 'flat', stateRateLimit: false,
      commandSubfolderSubscriptions: true, clockSkewSeconds: 30, configResendMs: 100, idleTimeoutSeconds: 60,
    });
  });

  it('map the device-manager limits, variants and quotas', async () => {
    const options = await emulatorOptionsFromArgs([
      '--max-devices-per-gateway', '5', '--max-gateways-per-device', '2', '--binding-limit-status', 'FAILED_PRECONDITION',
      '--bind-existing', 'conflict', '--delete-bound-device', 'refuse', '--delete-gateway-with-devices', 'unbind',
      '--quota', 'create=10', '--quota', 'read=20', '--rate-limit-window-ms', '1000', '--quiet',
    ]);
    expect(options).toMatchObject({
      maxDevicesPerGateway: 5, maxGatewaysPerDevice: 2, bindingLimitStatus: 'FAILED_PRECONDITION', bindExisting: 'conflict',
      deleteBoundDevice: 'refuse', deleteGatewayWithDevices: 'unbind', rateLimits: { create: 10, read: 20 }, rateLimitWindowMs: 1000,
    });
    expect(await emulatorOptionsFromArgs(['--rate-limits', '--quiet'])).toMatchObject({ rateLimits: true });
    expect(await emulatorOptionsFromArgs(['--quiet'])).not.toHaveProperty('rateLimits');
  });

  it('map the acknowledged failures, resends, lifetimes and CONNECT variants', async () => {
    const options = await emulatorOptionsFromArgs([
      '--ack-failed-publish', '--command-resend-ms', '0', '--no-config-rate-limit', '--connection-lifetime-seconds', '1',
      '--empty-username', 'accept', '--will-message', 'publish', '--jwt-lifetime', 'with-skew', '--quiet',
    ]);
    expect(options).toMatchObject({
      ackFailedPublish: true, commandResendMs: 0, configRateLimit: false, connectionLifetimeSeconds: 1,
      emptyUsername: 'accept', willMessage: 'publish', jwtLifetime: 'with-skew',
    });
    const defaults = await emulatorOptionsFromArgs(['--quiet']);
    for (const key of ['ackFailedPublish', 'commandResendMs', 'configRateLimit', 'connectionLifetimeSeconds', 'emptyUsername', 'willMessage', 'jwtLifetime']) {
      expect(defaults).not.toHaveProperty(key);
    }
    await expect(emulatorOptionsFromArgs(['--will-message', 'keep'])).rejects.toThrow(/--will-message must be one of refuse, accept, publish/);
    await expect(emulatorOptionsFromArgs(['--connection-lifetime-seconds', '0'])).rejects.toThrow(/--connection-lifetime-seconds must be an integer >= 1/);
  });

  it('map the late-errors flags', async () => {
    const options = await emulatorOptionsFromArgs(['--late-errors-ms', '200', '--late-errors-jitter-ms', '50', '--late-errors-past-detach', '--quiet']);
    expect(options).toMatchObject({ lateErrorsMs: 200, lateErrorsJitterMs: 50, lateErrorsPastDetach: true });
    expect(await emulatorOptionsFromArgs(['--quiet'])).not.toHaveProperty('lateErrorsMs');
  });

  it('default to port 8883, TLS, an admin port picked at random and a log on stderr', async () => {
    const options = await emulatorOptionsFromArgs([]);
    expect(options).toMatchObject({ port: 8883, tls: true, adminPort: 0 });
    expect(options).toHaveProperty('log');
  });

  it.each([
    [['--port', 'x']],
    [['--auth-failure-code', '3']],
    [['--error-shape', 'round']],
    [['--tls', '--no-tls']],
    [['--cert', 'a.pem']],
    [['--unknown']],
    [['--max-devices-per-gateway', '0']],
    [['--bind-existing', 'maybe']],
    [['--late-errors-ms', '-5']],
    [['--quota', 'update=5']],
    [['--quota', 'create']],
    [['--service-account-out', 'sa.json', '--admin-port', 'none']],
  ])('refuses %j', async (argv) => {
    await expect(emulatorOptionsFromArgs(argv)).rejects.toThrow();
  });
});

interface Running {
  child: ChildProcessWithoutNullStreams;
  ready: Record<string, string>;
  exited: Promise<number | null>;
}

async function run(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [BIN, 'emulator', ...args], { stdio: 'pipe' });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const lines = createInterface({ input: child.stdout });
  const first = await withTimeout(new Promise<string>((resolve) => lines.once('line', resolve)), 20_000, 'the emulator printed nothing');
  return { child, ready: JSON.parse(first) as Record<string, string>, exited };
}

describe('the command', () => {
  it('prints one JSON line when ready, serves the registry file, and exits 0 on SIGTERM', async () => {
    const { child, ready, exited } = await run(['--port', '0', '--registry', registryFile, '--auth-failure-code', '5', '--quiet']);
    try {
      expect(Object.keys(ready).sort()).toEqual(['admin', 'caFile', 'mqtt']);
      expect(ready['mqtt']).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
      const ca = await readFile(ready['caFile']!, 'utf8');
      const target = { mqttUrl: ready['mqtt']!, host: '127.0.0.1', port: Number(new URL(ready['mqtt']!).port), ca };
      expect(await connackCode(target, fleet, 'dev-1')).toBe(0);
      // The flag took effect: a bad token gets 5.
      expect(await connackCode(target, fleet, 'dev-1', { password: 'x.y.z' })).toBe(5);
      expect((await fetch(`${ready['admin']}/emulator/health`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await withTimeout(exited, 10_000, 'the emulator did not exit')).toBe(0);
  });

  it('writes the service account, readable by its owner only, and its token buys registry credentials', async () => {
    const file = join(dir, 'service-account.json');
    // An existing file readable by others is replaced, and loses its wide mode before the token is written.
    await writeFile(file, 'old', { mode: 0o644 });
    const { child, ready, exited } = await run(['--port', '0', '--registry', registryFile, '--no-tls', '--service-account-out', file, '--quiet']);
    try {
      expect(ready['serviceAccountFile']).toBe(file);
      expect((await stat(file)).mode & 0o777).toBe(0o600);
      const account = JSON.parse(await readFile(file, 'utf8')) as { systemKey: string; token: string; url: string; project: string };
      expect(account).toEqual({ systemKey: expect.stringMatching(/^[0-9a-f]{30}$/), token: expect.any(String), url: ready['admin'], project: fleet.project });
      const reply = await fetch(`${account.url}/api/v/1/code/${account.systemKey}/getRegistryCredentials`, {
        method: 'POST',
        headers: { 'ClearBlade-UserToken': account.token },
        body: JSON.stringify({ project: account.project, region: fleet.location, registry: fleet.registryId }),
      });
      expect(reply.status).toBe(200);
      expect(await reply.json()).toMatchObject({ url: ready['admin'] });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await withTimeout(exited, 10_000, 'the emulator did not exit')).toBe(0);
  });

  it('prints no caFile over plain TCP and no admin URL without an admin port', async () => {
    const { child, ready, exited } = await run(['--port', '0', '--registry', registryFile, '--no-tls', '--admin-port', 'none', '--quiet']);
    child.kill('SIGINT');
    expect(Object.keys(ready)).toEqual(['mqtt']);
    expect(ready['mqtt']).toMatch(/^mqtt:\/\//);
    expect(await withTimeout(exited, 10_000, 'the emulator did not exit')).toBe(0);
  });
});
