import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileTextSource, secretsManagerTextSource } from '../../../lib/auth/secret-text-source.js';
import { rejectedRelayError } from '../../helpers/relay-error.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';

let dir: string;
let sm: SecretsManagerEndpoint;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'secret-text-source-'));
  sm = await startSecretsManagerEndpoint();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await sm.close();
});

const provider = (): SecretsProvider => new SecretsProvider({ awsSdkV3Client: sm.client() });

describe('fileTextSource', () => {
  it('reads the file, and names it as its origin', async () => {
    const file = join(dir, 'master');
    writeFileSync(file, 'a master secret\n');
    const source = fileTextSource(file);
    expect(source.origin).toBe(`file ${file}`);
    await expect(source.read()).resolves.toBe('a master secret\n');
  });

  it('re-reads the file once its cache period is over, not before', async () => {
    const file = join(dir, 'rotating');
    writeFileSync(file, 'first');
    let clock = 0;
    const source = fileTextSource(file, { maxAgeSeconds: 60, now: () => clock });
    await expect(source.read()).resolves.toBe('first');

    writeFileSync(file, 'second');
    clock = 59_999;
    const cached = await source.read();
    clock = 60_000;
    const reread = await source.read();

    expect([cached, reread]).toEqual(['first', 'second']);
  });

  it('shares one read among concurrent callers', () => {
    const file = join(dir, 'shared');
    writeFileSync(file, 'x');
    const source = fileTextSource(file);
    expect(source.read()).toBe(source.read());
  });

  it('refuses a missing or unreadable file as ERR_CONFIG with the reason, and does not keep the failure', async () => {
    const file = join(dir, 'later');
    const source = fileTextSource(file, { maxAgeSeconds: 3600 });
    expect((await rejectedRelayError(source.read(), 'ERR_CONFIG')).message).toBe(`file ${file} cannot be read (ENOENT)`);
    writeFileSync(file, 'there now');
    await expect(source.read()).resolves.toBe('there now');

    mkdirSync(join(dir, 'a-directory'));
    expect((await rejectedRelayError(fileTextSource(join(dir, 'a-directory')).read(), 'ERR_CONFIG')).message).toMatch(/cannot be read \(EISDIR\)$/);
  });
});

describe('secretsManagerTextSource', () => {
  it('reads the secret string once per cache period, and names the secret as its origin', async () => {
    sm.putSecret('cached-text', 'the text');
    const source = secretsManagerTextSource('cached-text', { provider: provider() });
    expect(source.origin).toBe('secret cached-text');
    for (let i = 0; i < 3; i++) await expect(source.read()).resolves.toBe('the text');
    expect(sm.calls('cached-text')).toBe(1);
  });

  it('sees a new version once the cache period is over', async () => {
    sm.putSecret('rotated-text', 'old');
    const source = secretsManagerTextSource('rotated-text', { provider: provider(), maxAgeSeconds: 0 });
    await expect(source.read()).resolves.toBe('old');
    sm.putSecret('rotated-text', 'new');
    await expect(source.read()).resolves.toBe('new');
    expect(sm.calls('rotated-text')).toBe(2);
  });

  it('reads a secret stored as bytes as the same text', async () => {
    sm.putSecret('binary-text', Buffer.from('bytes of text', 'utf8'));
    await expect(secretsManagerTextSource('binary-text', { provider: provider() }).read()).resolves.toBe('bytes of text');
  });

  it('reports a secret it cannot read as ERR_KEY_UNAVAILABLE, keeping the cause', async () => {
    const missing = await rejectedRelayError(secretsManagerTextSource('no-such-secret', { provider: provider() }).read(), 'ERR_KEY_UNAVAILABLE');
    expect(missing.message).toBe('secret no-such-secret could not be read');
    expect(missing.cause).toBeInstanceOf(Error);

    sm.putSecret('throttled-text', 'x');
    sm.throttle(true);
    try {
      await rejectedRelayError(secretsManagerTextSource('throttled-text', { provider: provider() }).read(), 'ERR_KEY_UNAVAILABLE');
    } finally {
      sm.throttle(false);
    }
  });
});
