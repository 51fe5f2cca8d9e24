import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { sendCommand } from '../../cli/send-command.js';
import { generateTlsMaterial } from '../../emulator/tls.js';
import { createIngestHandler } from '../../handlers/ingest.js';
import { deriveDeviceKey, masterKeyFromText } from '../../lib/auth/index.js';
import { deviceDeduplicationId, ingestServiceFromEnv } from '../../lib/ingest/index.js';
import { serveHttpApi, type ServedHttpApi } from '../../lib/local/http-adapter.js';
import { parseQueueMessage, type TelemetryMessage } from '../../lib/queue/message.js';
import { withCapturedOutput } from '../helpers/captured-output.js';
import { closedPort, startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { ecDevice, keyDocument, PROJECT } from '../lib/auth/device-credentials.js';

const MASTER = 'send-command-test-master-secret-0123456789';
const pump = ecDevice('pump-0042');

let sqs: LocalSqs;
let api: ServedHttpApi;
let dir: string;
let masterFile: string;
let keyFile: string;

interface Run {
  code: number;
  out: string[];
  err: string;
}

/** Runs the command with its output captured; stdout split into lines. */
async function run(...argv: string[]): Promise<Run> {
  const { result: code, output } = await withCapturedOutput(() => sendCommand(argv));
  return { code, out: output.lines('stdout'), err: output.text('stderr') };
}

const telemetry = (body: string): TelemetryMessage => parseQueueMessage(body) as TelemetryMessage;

beforeAll(async () => {
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'send-command-'));
  masterFile = join(dir, 'master');
  keyFile = join(dir, 'pump.pem');
  writeFileSync(masterFile, `${MASTER}\n`);
  writeFileSync(keyFile, pump.privateKeyPem);
  writeFileSync(join(dir, 'device-keys.json'), keyDocument([pump]));
  const env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: 'us-central1',
    IOTCORE_REGISTRY: 'demo-registry',
    IOTCORE_GATEWAY_IDS: 'gw-1',
    RELAY_QUEUE_URL: sqs.queueUrl,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: masterFile,
  };
  // The stand-in ingest's EMF documents would mix with the command's own stdout, which these tests read.
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'true');
  const metrics = new Metrics({ namespace: 'SendCommandTest', serviceName: 'iotcore-relay' });
  vi.unstubAllEnvs();
  const handler = createIngestHandler({ service: ingestServiceFromEnv(env, { sqsClient: sqs.client }), logger: new Logger({ logLevel: 'SILENT' }), metrics });
  api = await serveHttpApi([{ method: 'POST', path: /^\/(v1|devices)\//, handler }]);
});
afterAll(async () => {
  await api.close();
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => sqs.purge());

describe('iotcore-relay send', () => {
  it('prints its options with --help', async () => {
    const { code, out } = await run('--help');

    expect(code).toBe(0);
    expect(out[0]).toBe('usage: iotcore-relay send --url <ingest URL> --device <id> <credential> [options]');
    expect(out.join('\n')).toContain('--print-device-key <id>');
  });

  it("prints a device's key from the master secret", async () => {
    const { code, out } = await run('--print-device-key', 'valve-0007', '--master-file', masterFile);

    expect(code).toBe(0);
    expect(out).toEqual([deriveDeviceKey(masterKeyFromText(MASTER, 'test'), 'valve-0007')]);
  });

  it('posts readings with a device key derived from the master file, and prints each answer', async () => {
    const { code, out } = await run('--url', api.url, '--device', 'pump-0042', '--master-file', masterFile, '--subfolder', 'sensors/flow', '--count', '3');

    expect(code).toBe(0);
    const received = await sqs.receiveAll();
    expect(out).toEqual(received.map((m) => `202 {"messageIds":["${m.messageId}"]}`));
    expect(received.map((m) => telemetry(m.body))).toMatchObject([1, 2, 3].map(() => ({ type: 'event', deviceId: 'pump-0042', subfolder: 'sensors/flow' })));
    expect(received.map((m) => (JSON.parse(telemetry(m.body).payload.toString()) as { reading: number }).reading)).toEqual([1, 2, 3]);
    expect(telemetry(received[0]!.body).deviceToken).toBeUndefined();
  });

  it('signs a device JWT with --key and --project; the token travels on the queue message', async () => {
    const { code, out } = await run('--url', api.url, '--device', 'pump-0042', '--key', keyFile, '--project', PROJECT, '--state', '--data', 'running', '--jwt-minutes', '30');

    expect(code).toBe(0);
    expect(out).toHaveLength(1);
    const message = telemetry((await sqs.receiveAll())[0]!.body);
    expect(message).toMatchObject({ type: 'state', deviceId: 'pump-0042', payload: Buffer.from('running') });
    const claims = decodeJwt(message.deviceToken!);
    expect(claims).toMatchObject({ aud: PROJECT });
    expect(claims.exp! - claims.iat!).toBe(30 * 60);
  });

  it('sends --message-id as X-Message-Id, numbered when there are several readings', async () => {
    await run('--url', api.url, '--device', 'pump-0042', '--master-file', masterFile, '--message-id', 'boot-7', '--count', '2');

    expect((await sqs.receiveAll()).map((m) => m.deduplicationId)).toEqual([
      deviceDeduplicationId('pump-0042', 'event', 'boot-7-1'),
      deviceDeduplicationId('pump-0042', 'event', 'boot-7-2'),
    ]);
  });

  it('prints a refusal and exits 1: a token for the wrong project', async () => {
    const { code, out } = await run('--url', api.url, '--device', 'pump-0042', '--key', keyFile, '--project', 'other-project');

    expect(code).toBe(1);
    expect(out[0]).toMatch(/^401 \{"error":\{"code":401,"message":"aud must be the project ID demo-project/);
    expect(await sqs.receiveAll()).toEqual([]);
  });

  it('posts over HTTPS to a server whose CA it is told to trust', async () => {
    const tls = await generateTlsMaterial();
    writeFileSync(join(dir, 'ca.pem'), tls.caPem!);
    const secure = await serveHttpApi(async () => ({ statusCode: 202, body: '{"messageIds":["tls"]}' }), { tls: { key: tls.keyPem, cert: tls.certPem } });
    try {
      const trusted = await run('--url', secure.url, '--device', 'pump-0042', '--device-key', 'k', '--ca-file', join(dir, 'ca.pem'));
      const untrusted = await run('--url', secure.url, '--device', 'pump-0042', '--device-key', 'k');

      expect([trusted.code, trusted.out]).toEqual([0, ['202 {"messageIds":["tls"]}']]);
      expect(untrusted.code).toBe(1);
      expect(untrusted.out).toEqual([]);
      expect(untrusted.err).toMatch(/^iotcore-relay send: TLS with https:\/\/.* failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|DEPTH_ZERO_SELF_SIGNED_CERT)\) .*--ca-file/);
    } finally {
      await secure.close();
    }
  });

  it('with no local stack running, asks whether `npm start` runs, names the URL tried, says it once and exits 1', async () => {
    const port = await closedPort();

    const { code, out, err } = await run('--url', `http://127.0.0.1:${port}`, '--device', 'pump-0042', '--device-key', 'k', '--count', '3');

    expect(code).toBe(1);
    expect(out).toEqual([]);
    expect(err).toBe(
      `iotcore-relay send: nothing answers at http://127.0.0.1:${port}/devices/pump-0042/events (ECONNREFUSED): is \`npm start\` running? ` +
        'It serves the ingest on http://127.0.0.1:3000 unless told otherwise; --url names another\n',
    );
  });

  it('for a remote URL that cannot be reached, names it and says to check --url', async () => {
    const { code, err } = await run('--url', 'http://ingest.invalid', '--device', 'pump-0042', '--device-key', 'k');

    expect(code).toBe(1);
    expect(err).toMatch(/^iotcore-relay send: cannot reach http:\/\/ingest\.invalid\/devices\/pump-0042\/events \((ENOTFOUND|EAI_AGAIN)\): check --url\n$/);
  });

  it('exits 2 on a usage error, saying what is wrong', async () => {
    const cases: [string[], string][] = [
      [['--bogus'], "Unknown option '--bogus'"],
      [['--url', api.url, '--device', 'pump-0042'], 'give exactly one credential'],
      [['--url', api.url, '--device', 'pump-0042', '--device-key', 'k', '--master-file', masterFile], 'give exactly one credential'],
      [['--url', api.url, '--device', 'pump-0042', '--device-key', 'k', '--state', '--subfolder', 'a'], '--subfolder is for events'],
      [['--url', api.url, '--device', 'pump-0042', '--device-key', 'k', '--count', '0'], '--count must be a whole number'],
      [['--url', api.url, '--device', 'pump-0042', '--key', keyFile], '--project is required'],
      [['--device', 'pump-0042', '--device-key', 'k'], '--url is required'],
      [['--print-device-key', 'pump-0042'], '--master-file is required'],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(...argv);
      expect([code, err]).toEqual([2, expect.stringContaining(message)]);
    }
  });

  it('exits 1 for a bad device ID or an unreadable key, naming the flag and never the key', async () => {
    const badDevice = await run('--url', api.url, '--device', 'a/b', '--device-key', 'k');
    const missingKey = await run('--url', api.url, '--device', 'pump-0042', '--key', join(dir, 'nope.pem'), '--project', PROJECT);

    expect([badDevice.code, badDevice.err]).toEqual([1, expect.stringContaining('--device must start with a letter')]);
    expect([missingKey.code, missingKey.err]).toEqual([1, expect.stringContaining('ENOENT')]);
  });
});
