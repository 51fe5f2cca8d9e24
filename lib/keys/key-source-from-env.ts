/**
 * Picks the key source from the handler's environment (docs/design.md, runtime configuration):
 * - `GATEWAY_KEY_SECRET`: Secrets Manager secret name or ARN, cached for `GATEWAY_KEY_CACHE_SECONDS` (default 300);
 * - `GATEWAY_KEY_FILE`: a local PEM or JSON key file.
 * Exactly one must be set.
 *
 * Without an injected client, the same settings return the same source: Lambda keeps module state between warm
 * invocations, so even a handler that calls this on every invocation keeps its cache and makes no extra
 * GetSecretValue call.
 *
 * Importing this module evaluates nothing of the AWS SDK (the relay's cold start depends on it): the secret source
 * loads Powertools and its Secrets Manager client at its first `signingKey()`. Keep SDK imports here type-only.
 *
 * @example
 * const keys = keySourceFromEnv(process.env);
 * const { key, alg } = await keys.signingKey(gatewayId);
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RelayError } from '../errors.js';
import { FileKeySource } from './file-key-source.js';
import type { KeySource } from './key-source.js';
import { DEFAULT_KEY_CACHE_SECONDS, SecretsManagerKeySource } from './secrets-manager-key-source.js';

export interface KeySourceFromEnvOptions {
  /** Used for `GATEWAY_KEY_SECRET`; by default Powertools builds a client from the Lambda environment. */
  secretsManagerClient?: SecretsManagerClient;
}

const sources = new Map<string, KeySource>();

export function keySourceFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  options: KeySourceFromEnvOptions = {},
): KeySource {
  const secretId = env['GATEWAY_KEY_SECRET']?.trim() ?? '';
  const file = env['GATEWAY_KEY_FILE']?.trim() ?? '';
  if (secretId !== '' && file !== '') {
    throw new RelayError('ERR_CONFIG', 'set only one of GATEWAY_KEY_SECRET and GATEWAY_KEY_FILE, not both', {
      field: 'GATEWAY_KEY_SECRET',
    });
  }
  if (secretId === '' && file === '') {
    throw new RelayError(
      'ERR_CONFIG',
      'no gateway key configured: set GATEWAY_KEY_SECRET (Secrets Manager secret ID or ARN) ' +
        'or GATEWAY_KEY_FILE (PEM or JSON key file)',
      { field: 'GATEWAY_KEY_SECRET' },
    );
  }
  if (file !== '') return remembered(`file:${file}`, () => new FileKeySource(file));

  const cacheSeconds = keyCacheSecondsFromEnv(env);
  const client = options.secretsManagerClient;
  if (client !== undefined) return new SecretsManagerKeySource({ secretId, cacheSeconds, client });
  return remembered(`secret:${cacheSeconds}:${secretId}`, () => {
    return new SecretsManagerKeySource({ secretId, cacheSeconds });
  });
}

/** `GATEWAY_KEY_CACHE_SECONDS`: whole seconds >= 0; unset or empty means the default, 300. */
export function keyCacheSecondsFromEnv(env: Readonly<Record<string, string | undefined>>): number {
  const raw = env['GATEWAY_KEY_CACHE_SECONDS']?.trim() ?? '';
  if (raw === '') return DEFAULT_KEY_CACHE_SECONDS;
  if (!/^\d{1,9}$/.test(raw)) {
    throw new RelayError(
      'ERR_CONFIG',
      `GATEWAY_KEY_CACHE_SECONDS must be a whole number of seconds >= 0 (got ${JSON.stringify(raw)})`,
      { field: 'GATEWAY_KEY_CACHE_SECONDS' },
    );
  }
  return Number(raw);
}

function remembered(key: string, create: () => KeySource): KeySource {
  let source = sources.get(key);
  if (source === undefined) {
    source = create();
    sources.set(key, source);
  }
  return source;
}
