import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deriveDeviceKey,
  DeviceAuthenticator,
  DevicePublicKeys,
  fileTextSource,
  masterKeyFromText,
  secretsManagerTextSource,
} from '../../../lib/auth/index.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';
import { deviceJwt, ecDevice, keyDocument, PROJECT } from './device-credentials.js';

const MASTER = 'a-master-secret-for-device-keys-of-40-bytes';
const pump = ecDevice('pump-0042');
const valve = ecDevice('valve-0007');
const stranger = ecDevice('stranger-1');

let dir: string;
let sm: SecretsManagerEndpoint;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'device-auth-'));
  writeFileSync(join(dir, 'keys.json'), keyDocument([pump, valve]));
  writeFileSync(join(dir, 'master'), `${MASTER}\n`);
  sm = await startSecretsManagerEndpoint();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await sm.close();
});

const fileAuth = (): DeviceAuthenticator =>
  new DeviceAuthenticator({
    project: PROJECT,
    publicKeys: new DevicePublicKeys(fileTextSource(join(dir, 'keys.json'))),
    masterSecret: fileTextSource(join(dir, 'master')),
  });
const masterKey = masterKeyFromText(MASTER, 'test');

describe('DeviceAuthenticator with device JWTs', () => {
  it("authenticates a device by its own token and keeps the token for the queue's deviceToken", async () => {
    const token = await deviceJwt(pump);

    const device = await fileAuth().authenticate(`Bearer ${token}`, 'pump-0042');

    expect(device).toMatchObject({ deviceId: 'pump-0042', method: 'jwt', token, claims: { aud: PROJECT } });
  });

  it("refuses another device's anonymous token: it does not verify against this device's keys", async () => {
    await expect(fileAuth().authenticate(`Bearer ${await deviceJwt(valve)}`, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
  });

  it("refuses another device's token that names its device (uid or sub) as forbidden", async () => {
    const token = await deviceJwt(valve, { uid: 'valve-0007' });

    await expect(fileAuth().authenticate(`Bearer ${token}`, 'pump-0042')).rejects.toMatchObject({
      code: 'ERR_AUTH_FORBIDDEN',
      message: "the token is device valve-0007's; it may not act for device pump-0042",
    });
  });

  it('refuses a token naming a device it was not signed by', async () => {
    await expect(fileAuth().authenticate(`Bearer ${await deviceJwt(stranger, { sub: 'valve-0007' })}`, 'valve-0007')).rejects.toMatchObject({
      code: 'ERR_AUTH_INVALID',
    });
  });

  it('refuses a device that has no keys', async () => {
    await expect(fileAuth().authenticate(`Bearer ${await deviceJwt(stranger)}`, 'stranger-1')).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
  });

  it('refuses a missing header and an invalid path device before reading any key', async () => {
    const auth = fileAuth();

    await expect(auth.authenticate(undefined, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_AUTH_MISSING' });
    await expect(auth.authenticate('Bearer x.y.z', 'goog-device')).rejects.toMatchObject({ code: 'ERR_INVALID_DEVICE_ID' });
  });
});

describe('DeviceAuthenticator with device keys', () => {
  it("authenticates a device by its HMAC key, and refuses another device's key", async () => {
    const auth = fileAuth();

    await expect(auth.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'pump-0042')}`, 'pump-0042')).resolves.toEqual({
      deviceId: 'pump-0042',
      method: 'device-key',
    });
    await expect(auth.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'valve-0007')}`, 'pump-0042')).rejects.toMatchObject({
      code: 'ERR_AUTH_INVALID',
    });
  });

  it('refuses a scheme that is not configured, and names the ones that are', async () => {
    const jwtOnly = new DeviceAuthenticator({ project: PROJECT, publicKeys: new DevicePublicKeys(fileTextSource(join(dir, 'keys.json'))) });
    const keyOnly = new DeviceAuthenticator({ project: PROJECT, masterSecret: fileTextSource(join(dir, 'master')) });

    await expect(jwtOnly.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'pump-0042')}`, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
    await expect(keyOnly.authenticate(`Bearer ${await deviceJwt(pump)}`, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });
    expect([jwtOnly.schemes, keyOnly.schemes, fileAuth().schemes]).toEqual([['Bearer'], ['Device-Key'], ['Bearer', 'Device-Key']]);
  });

  it('needs at least one of the two', () => {
    expect(() => new DeviceAuthenticator({ project: PROJECT })).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});

describe('key sources', () => {
  it('reads the key document and the master from Secrets Manager, once per cache period', async () => {
    sm.putSecret('device-keys', keyDocument([pump]));
    sm.putSecret('device-master', MASTER);
    const provider = new SecretsProvider({ awsSdkV3Client: sm.client() });
    const auth = new DeviceAuthenticator({
      project: PROJECT,
      publicKeys: new DevicePublicKeys(secretsManagerTextSource('device-keys', { provider })),
      masterSecret: secretsManagerTextSource('device-master', { provider }),
    });

    for (let i = 0; i < 3; i++) {
      await auth.authenticate(`Bearer ${await deviceJwt(pump)}`, 'pump-0042');
      await auth.authenticate(`Device-Key ${deriveDeviceKey(masterKey, 'pump-0042')}`, 'pump-0042');
    }

    expect([sm.calls('device-keys'), sm.calls('device-master')]).toEqual([1, 1]);
  });

  it('sees a newly registered key once the cache period is over', async () => {
    sm.putSecret('rotating-keys', keyDocument([pump]));
    const auth = new DeviceAuthenticator({
      project: PROJECT,
      publicKeys: new DevicePublicKeys(secretsManagerTextSource('rotating-keys', { provider: new SecretsProvider({ awsSdkV3Client: sm.client() }), maxAgeSeconds: 0 })),
    });
    const token = await deviceJwt(valve);
    await expect(auth.authenticate(`Bearer ${token}`, 'valve-0007')).rejects.toMatchObject({ code: 'ERR_AUTH_INVALID' });

    sm.putSecret('rotating-keys', keyDocument([pump, valve]));

    await expect(auth.authenticate(`Bearer ${token}`, 'valve-0007')).resolves.toMatchObject({ deviceId: 'valve-0007' });
  });

  it('reports Secrets Manager trouble as ERR_KEY_UNAVAILABLE, a missing file as ERR_CONFIG', async () => {
    const provider = new SecretsProvider({ awsSdkV3Client: sm.client() });
    const down = new DeviceAuthenticator({ project: PROJECT, masterSecret: secretsManagerTextSource('device-master-missing', { provider }) });
    const noFile = new DeviceAuthenticator({ project: PROJECT, masterSecret: fileTextSource(join(dir, 'nope')) });
    const key = `Device-Key ${deriveDeviceKey(masterKey, 'pump-0042')}`;

    await expect(down.authenticate(key, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_KEY_UNAVAILABLE' });
    await expect(noFile.authenticate(key, 'pump-0042')).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringContaining('ENOENT') });
  });
});
