/**
 * An independent client against the emulator: Debian's mosquitto_pub and mosquitto_sub, over TLS verified against
 * the emulator's CA file, with a device JWT as the password.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { makeFleet } from '../helpers/emulator-fixtures.js';
import { describeWithTools } from '../helpers/interop-tools.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

describeWithTools('mosquitto_pub and mosquitto_sub against the emulator', ['mosquitto'], () => {
  let fleet: Fleet;
  let emulator: Emulator;

  beforeAll(async () => {
    fleet = await makeFleet({ devices: [{ id: 'dev-mosq', config: '{"rate": 5}' }] });
    emulator = await startEmulator({ registry: fleet.document, adminPort: null });
  });
  afterAll(() => emulator.close());

  interface Run {
    code: number;
    stdout: string;
    stderr: string;
  }

  function run(command: string, args: string[], timeoutMs = 10_000): Promise<Run> {
    return new Promise((resolve) => {
      execFile(command, args, { timeout: timeoutMs }, (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
        resolve({ code, stdout, stderr });
      });
    });
  }

  async function connectArgs(deviceId: string, password?: string): Promise<string[]> {
    return [
      '-h', '127.0.0.1',
      '-p', String(emulator.port),
      '--cafile', emulator.caFile!,
      '-V', 'mqttv311',
      '-i', fleet.clientId(deviceId),
      '-u', 'unused',
      '-P', password ?? (await fleet.jwt(deviceId)),
    ];
  }

  it('mosquitto_pub publishes a QoS 1 event that the bridge records', async () => {
    const result = await run('mosquitto_pub', [...(await connectArgs('dev-mosq')), '-q', '1', '-t', '/devices/dev-mosq/events/interop', '-m', 'from mosquitto']);
    expect(result).toMatchObject({ code: 0 });
    expect(emulator.registry.events.at(-1)).toMatchObject({ attributes: { deviceId: 'dev-mosq', subFolder: 'interop' } });
    expect(Buffer.from(emulator.registry.events.at(-1)!.data, 'base64').toString()).toBe('from mosquitto');
  });

  it('mosquitto_sub receives the current config on subscribe', async () => {
    const result = await run('mosquitto_sub', [...(await connectArgs('dev-mosq')), '-q', '1', '-t', '/devices/dev-mosq/config', '-C', '1', '-W', '5']);
    expect(result).toMatchObject({ code: 0, stdout: '{"rate": 5}\n' });
    expect(emulator.registry.getDevice(fleet.registryId, 'dev-mosq').config.deviceAckTime).toBeDefined();
  });

  it('mosquitto_pub is refused with a bad JWT (CONNACK 4), and with MQTT 5 or 3.1 (CONNACK 1)', async () => {
    const badToken = await run('mosquitto_pub', [...(await connectArgs('dev-mosq', await fleet.jwt('dev-mosq', { aud: 'other' }))), '-t', '/devices/dev-mosq/events', '-m', 'x']);
    expect(badToken.code).not.toBe(0);
    expect(badToken.stderr).toMatch(/bad user name or password/);
    const withVersion = async (version: string) => (await connectArgs('dev-mosq')).map((a) => (a === 'mqttv311' ? version : a));
    const mqtt5 = await run('mosquitto_pub', [...(await withVersion('mqttv5')), '-t', '/devices/dev-mosq/events', '-m', 'x']);
    expect(mqtt5.code).not.toBe(0);
    expect(mqtt5.stderr).toMatch(/Unsupported Protocol Version/);
    const mqtt31 = await run('mosquitto_pub', [...(await withVersion('mqttv31')), '-t', '/devices/dev-mosq/events', '-m', 'x']);
    expect(mqtt31.code).not.toBe(0);
    expect(mqtt31.stderr).toMatch(/unacceptable protocol version/);
  });

  it('mosquitto_pub fails the TLS handshake without the emulator CA', async () => {
    const args = (await connectArgs('dev-mosq')).filter((a, i, all) => a !== '--cafile' && all[i - 1] !== '--cafile');
    // With no --cafile mosquitto uses no TLS at all; point it at the system roots instead.
    const result = await run('mosquitto_pub', [...args, '--capath', '/etc/ssl/certs', '-t', '/devices/dev-mosq/events', '-m', 'x']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/TLS error/);
  });
});
