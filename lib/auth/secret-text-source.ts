/**
 * Where the text of a device-authentication secret comes from: a Secrets Manager secret in Lambda, or a local file
 * on the local stack. Both are re-read at most once per `maxAgeSeconds`, so a rotated value (a new device key
 * registered, a replaced master secret) reaches a warm container without a redeploy, and a busy container does not
 * call Secrets Manager on every request.
 *
 * Powertools Parameters and the Secrets Manager client are loaded by the first read, not with this module: the HTTP
 * handlers import it, and a request refused before its credentials are checked needs neither. Keep the import of
 * `@aws-lambda-powertools/parameters/secrets` here type-only (test/deploy/bundles-lazy-sdk.test.ts).
 *
 * @example
 * const source = secretsManagerTextSource('iotcore-relay/device-keys', { maxAgeSeconds: 300 });
 * const text = await source.read();
 */
import { readFile } from 'node:fs/promises';
import type { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { RelayError } from '../errors.js';
import { lazy } from '../lazy.js';

export interface SecretTextSource {
  /** The file path or the secret ID, for error messages and logs. Never the value. */
  readonly origin: string;
  /**
   * The secret's text. Throws RelayError ERR_KEY_UNAVAILABLE when the store could not be read (worth a retry),
   * ERR_CONFIG when a local file is missing or unreadable.
   */
  read(): Promise<string>;
}

/** Five minutes: a new device key works within that time, and a warm container makes at most 12 reads an hour. */
export const DEFAULT_SECRET_MAX_AGE_SECONDS = 300;

export interface FileTextSourceOptions {
  maxAgeSeconds?: number;
  /** Milliseconds clock, for tests. */
  now?: () => number;
}

export function fileTextSource(path: string, options: FileTextSourceOptions = {}): SecretTextSource {
  const maxAgeMs = (options.maxAgeSeconds ?? DEFAULT_SECRET_MAX_AGE_SECONDS) * 1000;
  const now = options.now ?? Date.now;
  const origin = `file ${path}`;
  let cached: { text: Promise<string>; readAt: number } | undefined;
  return {
    origin,
    read(): Promise<string> {
      if (cached !== undefined && now() - cached.readAt < maxAgeMs) return cached.text;
      const text = readFile(path, 'utf8').catch((e: unknown) => {
        cached = undefined;
        const reason = (e as NodeJS.ErrnoException).code ?? 'unreadable';
        throw new RelayError('ERR_CONFIG', `${origin} cannot be read (${reason})`);
      });
      // Concurrent requests on a cold container share one read.
      cached = { text, readAt: now() };
      return text;
    },
  };
}

export interface SecretsManagerTextSourceOptions {
  maxAgeSeconds?: number;
  /** Defaults to one provider shared by every source of the process, so its cache and SDK client are shared too. */
  provider?: SecretsProvider;
}

/** One provider for the process, loaded with its SDK client by the first read that needs it. */
const sharedProvider = lazy(async () => new (await import('@aws-lambda-powertools/parameters/secrets')).SecretsProvider());

export function secretsManagerTextSource(secretId: string, options: SecretsManagerTextSourceOptions = {}): SecretTextSource {
  const maxAge = options.maxAgeSeconds ?? DEFAULT_SECRET_MAX_AGE_SECONDS;
  const origin = `secret ${secretId}`;
  return {
    origin,
    async read(): Promise<string> {
      let value: string | Uint8Array | undefined;
      try {
        // The SDK client honours AWS_ENDPOINT_URL_SECRETS_MANAGER, which is how the tests reach a local endpoint.
        // A failed load is an unreadable secret like any other, and the next read loads again.
        const provider = options.provider ?? (await sharedProvider());
        value = await provider.get(secretId, { maxAge });
      } catch (e) {
        throw new RelayError('ERR_KEY_UNAVAILABLE', `${origin} could not be read`, { cause: e });
      }
      if (value === undefined) throw new RelayError('ERR_KEY_UNAVAILABLE', `${origin} has no value`);
      // A secret stored as SecretBinary holds the same text, as bytes.
      return typeof value === 'string' ? value : Buffer.from(value).toString('utf8');
    },
  };
}
