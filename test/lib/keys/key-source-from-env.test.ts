import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayError } from '../../../lib/errors.js';
import { FileKeySource } from '../../../lib/keys/file-key-source.js';
import { keyCacheSecondsFromEnv, keySourceFromEnv } from '../../../lib/keys/key-source-from-env.js';
import { SecretsManagerKeySource } from '../../../lib/keys/secrets-manager-key-source.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';
import { ecPems, type EcPems } from './pem-factory.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

let sm: SecretsManagerEndpoint;
let ec: EcPems;
let dir: string;

beforeAll(async () => {
  [sm, ec, dir] = await Promise.all([
    startSecretsManagerEndpoint(),
    ecPems(),
    mkdtemp(join(tmpdir(), 'iotcore-relay-keyenv-')),
  ]);
});
afterAll(async () => {
  await sm.close();
  await rm(dir, { recursive: true, force: true });
});

const configError = (fn: () => unknown): RelayError => thrownRelayError(fn, 'ERR_CONFIG');

describe('keySourceFromEnv', () => {
  it('refuses to guess when neither variable is set (empty counts as unset)', () => {
    for (const env of [{}, { GATEWAY_KEY_SECRET: '', GATEWAY_KEY_FILE: '  ' }]) {
      const e = configError(() => keySourceFromEnv(env));
      expect(e.message).toContain('GATEWAY_KEY_SECRET');
      expect(e.message).toContain('GATEWAY_KEY_FILE');
    }
  });

  it('refuses both at once', () => {
    const e = configError(() => keySourceFromEnv({ GATEWAY_KEY_SECRET: 's', GATEWAY_KEY_FILE: '/k.pem' }));
    expect(e.message).toContain('only one');
  });

  it('uses the file, and returns the same source for the same settings so its cache survives', async () => {
    const path = join(dir, 'gw.pem');
    await writeFile(path, ec.pkcs8);
    const source = keySourceFromEnv({ GATEWAY_KEY_FILE: path });
    expect(source).toBeInstanceOf(FileKeySource);
    expect((await source.signingKey('gw-1')).alg).toBe('ES256');
    expect(keySourceFromEnv({ GATEWAY_KEY_FILE: path })).toBe(source);
  });

  it('uses Secrets Manager with the default TTL of 300 s', async () => {
    sm.putSecret('env/default-ttl', ec.pkcs8);
    const source = keySourceFromEnv({ GATEWAY_KEY_SECRET: 'env/default-ttl' }, { secretsManagerClient: sm.client() });
    expect(source).toBeInstanceOf(SecretsManagerKeySource);
    expect((source as SecretsManagerKeySource).cacheSeconds).toBe(300);
    for (let i = 0; i < 3; i++) await source.signingKey('gw-1');
    expect(sm.calls('env/default-ttl')).toBe(1);
  });

  it('honours GATEWAY_KEY_CACHE_SECONDS', async () => {
    sm.putSecret('env/no-cache', ec.pkcs8);
    const source = keySourceFromEnv(
      { GATEWAY_KEY_SECRET: 'env/no-cache', GATEWAY_KEY_CACHE_SECONDS: '0' },
      { secretsManagerClient: sm.client() },
    );
    for (let i = 0; i < 3; i++) await source.signingKey('gw-1');
    expect(sm.calls('env/no-cache')).toBe(3);
  });

  it('refuses a GATEWAY_KEY_CACHE_SECONDS that is not whole seconds', () => {
    expect(keyCacheSecondsFromEnv({ GATEWAY_KEY_CACHE_SECONDS: ' 45 ' })).toBe(45);
    for (const value of ['-1', '1.5', '5m', 'abc']) {
      const e = configError(() => keySourceFromEnv({ GATEWAY_KEY_SECRET: 's', GATEWAY_KEY_CACHE_SECONDS: value }));
      expect(e.field).toBe('GATEWAY_KEY_CACHE_SECONDS');
    }
  });
});
