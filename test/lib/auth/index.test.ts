import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deriveDeviceKey, deviceAuthenticatorFromEnv, masterKeyFromText } from '../../../lib/auth/index.js';
import { thrownRelayError } from '../../helpers/relay-error.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';
import { deviceJwt, ecDevice, keyDocument, PROJECT } from './device-credentials.js';

const MASTER = 'a-master-secret-for-device-keys-of-40-bytes';
const masterKey = masterKeyFromText(MASTER, 'test');
const pump = ecDevice('pump-0042');

let dir: string;
let sm: SecretsManagerEndpoint;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'auth-from-env-'));
  writeFileSync(join(dir, 'keys.json'), keyDocument([pump]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  sm = await startSecretsManagerEndpoint();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await sm.close();
});

/** The ERR_CONFIG message the settings are refused with. */
const refusal = (env: NodeJS.ProcessEnv): string => thrownRelayError(() => deviceAuthenticatorFromEnv(env), 'ERR_CONFIG').message;

describe('deviceAuthenticatorFromEnv', () => {
  it('builds from files', async () => {
    const auth = deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: join(dir, 'keys.json'), DEVICE_KEY_MASTER_FILE: join(dir, 'master') });

    expect(auth.schemes).toEqual(['Bearer', 'Device-Key']);
    await expect(auth.authenticate(`Bearer ${await deviceJwt(pump)}`, 'pump-0042')).resolves.toMatchObject({ method: 'jwt' });
  });

  it('offers only the scheme it has a secret for', () => {
    expect(deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: join(dir, 'keys.json') }).schemes).toEqual(['Bearer']);
    expect(deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: PROJECT, DEVICE_KEY_MASTER_FILE: ` ${join(dir, 'master')} ` }).schemes).toEqual(['Device-Key']);
  });

  it('builds from Secrets Manager secrets through the given provider', async () => {
    sm.putSecret('env-master', MASTER);
    const auth = deviceAuthenticatorFromEnv(
      { IOTCORE_PROJECT: PROJECT, DEVICE_KEY_MASTER_SECRET: 'env-master' },
      { secretsProvider: new SecretsProvider({ awsSdkV3Client: sm.client() }) },
    );

    await expect(auth.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'valve-0007')}`, 'valve-0007')).resolves.toMatchObject({ method: 'device-key' });
    expect(sm.calls('env-master')).toBe(1);
  });

  it('keeps a read secret for DEVICE_AUTH_CACHE_SECONDS: 0 reads it at every request', async () => {
    sm.putSecret('uncached-master', MASTER);
    const auth = deviceAuthenticatorFromEnv(
      { IOTCORE_PROJECT: PROJECT, DEVICE_KEY_MASTER_SECRET: 'uncached-master', DEVICE_AUTH_CACHE_SECONDS: '0' },
      { secretsProvider: new SecretsProvider({ awsSdkV3Client: sm.client() }) },
    );
    for (let i = 0; i < 2; i++) await auth.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'valve-0007')}`, 'valve-0007');
    expect(sm.calls('uncached-master')).toBe(2);
  });

  it('refuses incomplete or contradictory settings, each with its reason', () => {
    expect(refusal({ DEVICE_KEYS_FILE: 'k.json' })).toBe('IOTCORE_PROJECT must name the IoT Core project (the device JWT audience)');
    expect(refusal({ IOTCORE_PROJECT: PROJECT })).toBe(
      'no device authentication configured: set DEVICE_KEYS_SECRET or DEVICE_KEYS_FILE, and/or DEVICE_KEY_MASTER_SECRET or DEVICE_KEY_MASTER_FILE',
    );
    expect(refusal({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: 'k.json', DEVICE_KEYS_SECRET: 'k' })).toBe('set DEVICE_KEYS_SECRET or DEVICE_KEYS_FILE, not both');
    expect(refusal({ IOTCORE_PROJECT: PROJECT, DEVICE_KEY_MASTER_FILE: 'm', DEVICE_KEY_MASTER_SECRET: 'm' })).toBe('set DEVICE_KEY_MASTER_SECRET or DEVICE_KEY_MASTER_FILE, not both');
    for (const seconds of ['1.5', '-1', 'soon', '1e3']) {
      expect(refusal({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: 'k.json', DEVICE_AUTH_CACHE_SECONDS: seconds })).toBe(
        `DEVICE_AUTH_CACHE_SECONDS must be a whole number of seconds >= 0 (got ${JSON.stringify(seconds)})`,
      );
    }
  });

  it('takes blank variables as unset', () => {
    expect(refusal({ IOTCORE_PROJECT: ' ', DEVICE_KEYS_FILE: ' ', DEVICE_KEY_MASTER_SECRET: '' })).toMatch(/IOTCORE_PROJECT must name/);
    expect(deviceAuthenticatorFromEnv({ IOTCORE_PROJECT: PROJECT, DEVICE_KEYS_FILE: join(dir, 'keys.json'), DEVICE_KEYS_SECRET: '  ', DEVICE_AUTH_CACHE_SECONDS: ' ' }).schemes).toEqual(['Bearer']);
  });
});
