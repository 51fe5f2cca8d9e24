import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileTextSource } from '../../../lib/auth/secret-text-source.js';
import { integrationSecrets, integrationSecretsFromEnv, parseSecretDocument } from '../../../lib/lorawan/integration-secrets.js';
import { rejectedRelayError, thrownRelayError } from '../../helpers/relay-error.js';
import { startSecretsManagerEndpoint, type SecretsManagerEndpoint } from '../../helpers/secrets-manager-endpoint.js';

const WEBHOOK = 'w'.repeat(24);
const configError = (run: () => unknown): string => thrownRelayError(run, 'ERR_CONFIG').message;

let dir: string;
let sm: SecretsManagerEndpoint;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'integration-secrets-'));
  sm = await startSecretsManagerEndpoint();
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await sm.close();
});

describe('parseSecretDocument', () => {
  it('reads each integration\'s webhook secret and optional API key', () => {
    const secrets = parseSecretDocument(JSON.stringify({ 'farm-ttn': { webhookSecret: WEBHOOK, apiKey: 'NNSXS.KEY' }, 'plant-cs': { webhookSecret: 'x'.repeat(16) } }), 'o');
    expect(Object.fromEntries(secrets)).toEqual({ 'farm-ttn': { webhookSecret: WEBHOOK, apiKey: 'NNSXS.KEY' }, 'plant-cs': { webhookSecret: 'x'.repeat(16) } });
  });

  it.each([
    ['not JSON', '{', 'file s.json is not a JSON document'],
    ['a list', '[]', 'file s.json must be a JSON object keyed by integration ID'],
    ['an entry that is not an object', '{"a": "secret"}', 'file s.json: a must be an object'],
    ['a short webhook secret', '{"a": {"webhookSecret": "short"}}', 'file s.json: a.webhookSecret must be a string of 16 to 4096 characters'],
    ['a long webhook secret', JSON.stringify({ a: { webhookSecret: 'x'.repeat(4097) } }), 'file s.json: a.webhookSecret must be a string of 16 to 4096 characters'],
    ['an empty API key', JSON.stringify({ a: { webhookSecret: WEBHOOK, apiKey: '' } }), 'file s.json: a.apiKey must be a non-empty string on one line'],
    ['an API key over two lines', JSON.stringify({ a: { webhookSecret: WEBHOOK, apiKey: 'NNSXS.\nKEY' } }), 'file s.json: a.apiKey must be a non-empty string on one line'],
  ])('refuses %s', (_what, text, message) => {
    expect(configError(() => parseSecretDocument(text, 'file s.json'))).toBe(message);
  });

  it('never quotes the document in its refusals', () => {
    const secret = 'super-secret-value-that-must-not-leak';
    for (const text of [`{"a": {"webhookSecret": "${secret}"`, `{"a": {"webhookSecret": "${secret}", "apiKey": 5}}`, `{"a": {"webhookSecret": "short"}, "${secret}": 1}`]) {
      const message = configError(() => parseSecretDocument(text, 'file s.json'));
      expect(message).not.toContain(secret);
    }
  });
});

describe('integrationSecrets', () => {
  it('reads the document again only when its text changed', async () => {
    const file = join(dir, 'changing.json');
    writeFileSync(file, JSON.stringify({ 'farm-ttn': { webhookSecret: WEBHOOK } }));
    const secrets = integrationSecrets(fileTextSource(file, { maxAgeSeconds: 0 }));
    const first = await secrets.get('farm-ttn');
    expect(await secrets.get('farm-ttn')).toBe(first);
    writeFileSync(file, JSON.stringify({ 'farm-ttn': { webhookSecret: 'v'.repeat(16) } }));
    expect(await secrets.get('farm-ttn')).toEqual({ webhookSecret: 'v'.repeat(16) });
  });
});

describe('integrationSecretsFromEnv', () => {
  it('reads each integration\'s secrets from a file, and names an integration it lacks', async () => {
    const file = join(dir, 'secrets.json');
    writeFileSync(file, JSON.stringify({ 'farm-ttn': { webhookSecret: WEBHOOK, apiKey: 'NNSXS.KEY' } }));
    const secrets = integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: file })!;
    expect(secrets.origin).toBe(`file ${file}`);
    expect(await secrets.get('farm-ttn')).toEqual({ webhookSecret: WEBHOOK, apiKey: 'NNSXS.KEY' });
    expect((await rejectedRelayError(secrets.get('plant-cs'), 'ERR_CONFIG')).message).toBe(`file ${file} has no entry for integration plant-cs`);
  });

  it('reads them from Secrets Manager through the given provider, once per cache period', async () => {
    sm.putSecret('lorawan-secrets', JSON.stringify({ 'farm-ttn': { webhookSecret: WEBHOOK } }));
    const secrets = integrationSecretsFromEnv({ LORAWAN_SECRETS_SECRET: 'lorawan-secrets' }, { secretsProvider: new SecretsProvider({ awsSdkV3Client: sm.client() }) })!;
    expect(secrets.origin).toBe('secret lorawan-secrets');
    for (let i = 0; i < 3; i++) expect(await secrets.get('farm-ttn')).toEqual({ webhookSecret: WEBHOOK });
    expect(sm.calls('lorawan-secrets')).toBe(1);

    sm.putSecret('lorawan-secrets-0', JSON.stringify({ 'farm-ttn': { webhookSecret: WEBHOOK } }));
    const uncached = integrationSecretsFromEnv(
      { LORAWAN_SECRETS_SECRET: 'lorawan-secrets-0', LORAWAN_SECRETS_CACHE_SECONDS: '0' },
      { secretsProvider: new SecretsProvider({ awsSdkV3Client: sm.client() }) },
    )!;
    for (let i = 0; i < 2; i++) await uncached.get('farm-ttn');
    expect(sm.calls('lorawan-secrets-0')).toBe(2);
  });

  it('is undefined without either variable, and refuses both or a bad cache period', () => {
    expect(integrationSecretsFromEnv({})).toBeUndefined();
    expect(integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: ' ', LORAWAN_SECRETS_SECRET: '' })).toBeUndefined();
    expect(configError(() => integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: 'f', LORAWAN_SECRETS_SECRET: 'x' }))).toBe('set LORAWAN_SECRETS_SECRET or LORAWAN_SECRETS_FILE, not both');
    expect(configError(() => integrationSecretsFromEnv({ LORAWAN_SECRETS_FILE: 'f', LORAWAN_SECRETS_CACHE_SECONDS: '5 minutes' }))).toBe(
      'LORAWAN_SECRETS_CACHE_SECONDS must be a whole number of seconds >= 0 (got "5 minutes")',
    );
  });
});
