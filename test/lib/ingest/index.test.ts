import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey, masterKeyFromText } from '../../../lib/auth/index.js';
import { isRelayError } from '../../../lib/errors.js';
import { ingestServiceFromEnv } from '../../../lib/ingest/index.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';
import { startLocalSqs, type LocalSqs } from '../../helpers/local-sqs.js';
import { ecDevice, keyDocument, PROJECT } from '../auth/device-credentials.js';

const MASTER = 'ingest-from-env-master-secret-0123456789abcdef';
let sqs: LocalSqs;
let dir: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  sqs = await startLocalSqs();
  dir = mkdtempSync(join(tmpdir(), 'ingest-env-'));
  writeFileSync(join(dir, 'device-keys.json'), keyDocument([ecDevice('pump-0042')]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  env = {
    IOTCORE_PROJECT: PROJECT,
    IOTCORE_LOCATION: 'us-central1',
    IOTCORE_REGISTRY: 'demo-registry',
    IOTCORE_GATEWAY_IDS: 'gw-1,gw-2',
    RELAY_QUEUE_URL: sqs.queueUrl,
    DEVICE_KEYS_FILE: join(dir, 'device-keys.json'),
    DEVICE_KEY_MASTER_FILE: join(dir, 'master'),
  };
});
afterAll(async () => {
  await sqs.stop();
  rmSync(dir, { recursive: true, force: true });
});

function configError(e: NodeJS.ProcessEnv): string {
  try {
    ingestServiceFromEnv(e);
  } catch (err) {
    if (isRelayError(err) && err.code === 'ERR_CONFIG') return err.message;
    throw err;
  }
  throw new Error('no ERR_CONFIG');
}

describe('ingestServiceFromEnv', () => {
  it('names every missing or wrong variable in one ERR_CONFIG', () => {
    const message = configError({ IOTCORE_REGISTRY: 'bad/registry', IOTCORE_GATEWAY_IDS: '', DEVICE_KEYS_FILE: join(dir, 'device-keys.json') });
    for (const name of ['IOTCORE_PROJECT', 'IOTCORE_LOCATION', 'IOTCORE_REGISTRY', 'IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL']) expect(message).toContain(name);
  });

  it('treats a variable of blanks as missing', () => {
    expect(configError({ ...env, RELAY_QUEUE_URL: '   ' })).toContain('RELAY_QUEUE_URL must be set');
  });

  it('serves the configured registry and queues an accepted reading on the configured queue, in its gateway group', async () => {
    await sqs.purge();
    const ingest = ingestServiceFromEnv(env, { sqsClient: sqs.client });
    const key = deriveDeviceKey(masterKeyFromText(MASTER, 'test'), 'pump-0042');
    const answer = await ingest.handle({
      method: 'POST',
      path: '/devices/pump-0042/events',
      headers: { authorization: `Device-Key ${key}`, 'content-type': 'application/octet-stream' },
      body: Buffer.from('21.5'),
      requestId: randomUUID(),
    });
    expect(answer.statusCode).toBe(202);
    const queued = await sqs.receiveAll();
    expect(queued).toHaveLength(1);
    expect(parseQueueMessage(queued[0]!.body)).toMatchObject({ type: 'event', deviceId: 'pump-0042', payload: Buffer.from('21.5') });
    const other = await ingest.handle({ method: 'POST', path: `/v1/projects/${PROJECT}/locations/us-central1/registries/other/devices/pump-0042:publishEvent`, headers: {}, body: Buffer.from('{}'), requestId: randomUUID() });
    expect(other.statusCode).toBe(404);
  });
});
