/**
 * Gateway keys held in one AWS Secrets Manager secret (shapes in `key-document.ts`), read through Powertools
 * Parameters. The secret string is cached for `cacheSeconds` (Powertools' `maxAge`), so a warm Lambda container
 * calls GetSecretValue at most once per TTL whatever the number of invocations; the imported key is cached for the
 * life of the container by `importSigningKey`, keyed by the PEM text, so rotating the secret takes effect within one
 * TTL without a cold start.
 *
 * Keep one instance per container (module scope): the cache lives in the instance.
 *
 * A secret ID holding `{gateway}` names one secret per gateway (`key-location.ts`): each session then reads only its
 * own gateway's secret, and all of them share one provider, one client and one cache.
 *
 * Powertools and the Secrets Manager client it brings are loaded by the first `signingKey()`, not when this module
 * is imported: the relay's handler reaches this module, and its cold start must not evaluate the AWS SDK before the
 * handler even runs (handlers/relay.ts). The first invocation pays for the client instead; it fetches the secret
 * anyway.
 *
 * @example
 * const source = new SecretsManagerKeySource({ secretId: 'iotcore/gateway-keys', cacheSeconds: 300 });
 * const { key, alg } = await source.signingKey('gw-1');
 */
import type { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { RelayError } from '../errors.js';
import { lazy } from '../lazy.js';
import { keyEntryFor } from './key-document.js';
import { keyLocation, type KeyLocation } from './key-location.js';
import type { KeySource } from './key-source.js';
import { importSigningKey, type SigningKey } from './signing-key.js';

export const DEFAULT_KEY_CACHE_SECONDS = 300;

export interface SecretsManagerKeySourceOptions {
  /** Secret name or ARN; `{gateway}` in it names one secret per gateway. */
  secretId: string;
  /** How long a fetched secret string is reused, in whole seconds; 0 fetches on every call. Default 300. */
  cacheSeconds?: number;
  /** The SDK client to use; by default Powertools builds one from the Lambda environment (region, role). */
  client?: SecretsManagerClient;
}

export class SecretsManagerKeySource implements KeySource {
  readonly secretId: string;
  readonly cacheSeconds: number;
  readonly #client: SecretsManagerClient | undefined;
  readonly #location: KeyLocation;
  /**
   * Built once, by the first call; Powertools' cache of the secret strings lives in it. Concurrent first calls share
   * one load and so one provider (one cache); a load that failed is tried again by the next call.
   */
  readonly #secretsProvider = lazy(async (): Promise<SecretsProvider> => {
    const { SecretsProvider } = await import('@aws-lambda-powertools/parameters/secrets');
    return new SecretsProvider(this.#client ? { awsSdkV3Client: this.#client } : {});
  });
  /** The reads in progress by secret ID, which calls arriving meanwhile share. */
  readonly #reading = new Map<string, Promise<string>>();

  constructor(options: SecretsManagerKeySourceOptions) {
    const cacheSeconds = options.cacheSeconds ?? DEFAULT_KEY_CACHE_SECONDS;
    // Powertools computes the expiry with Date#setSeconds, which drops fractions: only whole seconds mean what they say.
    if (!Number.isSafeInteger(cacheSeconds) || cacheSeconds < 0) {
      throw new RelayError('ERR_CONFIG', `key cache TTL must be a whole number of seconds >= 0 (got ${cacheSeconds})`);
    }
    if (options.secretId.trim() === '') throw new RelayError('ERR_CONFIG', 'the key secret ID is empty');
    this.secretId = options.secretId;
    this.#location = keyLocation(options.secretId, 'GATEWAY_KEY_SECRET');
    this.cacheSeconds = cacheSeconds;
    this.#client = options.client;
  }

  async signingKey(gatewayId: string): Promise<SigningKey> {
    const secretId = this.#location.for(gatewayId);
    const document = await this.#secretText(secretId);
    const entry = keyEntryFor(document, gatewayId, `secret ${secretId}`);
    return importSigningKey(entry.pem, { origin: entry.origin, declaredAlgorithm: entry.algorithm });
  }

  /**
   * Calls made while a read is in progress wait for that read. Powertools' cache answers only once a value is in it,
   * so without this every gateway session of a cold container's first batch (they start together) would make its
   * own GetSecretValue call, and every session after the TTL expired as well.
   */
  #secretText(secretId: string): Promise<string> {
    const inProgress = this.#reading.get(secretId);
    if (inProgress !== undefined) return inProgress;
    const reading = this.#readSecret(secretId).finally(() => {
      if (this.#reading.get(secretId) === reading) this.#reading.delete(secretId);
    });
    this.#reading.set(secretId, reading);
    return reading;
  }

  async #readSecret(secretId: string): Promise<string> {
    // Outside the try: a module that fails to load is a packaging defect, not an unreachable Secrets Manager.
    const provider = await this.#secretsProvider();
    let value: string | Uint8Array | undefined;
    try {
      value = await provider.get(secretId, { maxAge: this.cacheSeconds });
    } catch (e) {
      throw unavailable(secretId, e);
    }
    if (typeof value === 'string') return value;
    // A secret created with SecretBinary (e.g. `--secret-binary fileb://key.pem`) holds the PEM file's bytes.
    if (value instanceof Uint8Array) return new TextDecoder().decode(value);
    throw new RelayError(
      'ERR_KEY_UNAVAILABLE',
      `secret ${secretId} has no value (neither SecretString nor SecretBinary)`,
    );
  }
}

/**
 * Says which failure it was: the relay retries all of them, but an operator reading the log must tell a missing
 * secret (fix the configuration) from throttling (raise the cache TTL) from a network problem (check the VPC).
 */
function unavailable(secretId: string, error: unknown): RelayError {
  // Powertools wraps the SDK error in GetParameterError; the SDK's own error is its cause.
  const sdkError = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const name = sdkError instanceof Error ? sdkError.name : 'Error';
  const detail = sdkError instanceof Error ? sdkError.message : String(sdkError);
  let message: string;
  switch (name) {
    case 'ResourceNotFoundException':
      message = `secret ${secretId} was not found (ResourceNotFoundException)`;
      break;
    case 'ThrottlingException':
      message =
        `Secrets Manager throttled the read of secret ${secretId} (ThrottlingException); ` +
        'a longer key cache TTL makes fewer calls';
      break;
    case 'AccessDeniedException':
      message =
        `access to secret ${secretId} was denied (AccessDeniedException): the role needs ` +
        'secretsmanager:GetSecretValue, and kms:Decrypt for a customer-managed key';
      break;
    case 'DecryptionFailure':
      message = `KMS could not decrypt secret ${secretId} (DecryptionFailure)`;
      break;
    default:
      message = isServiceError(sdkError)
        ? `Secrets Manager refused to read secret ${secretId} (${name}: ${detail})`
        : `Secrets Manager could not be reached to read secret ${secretId} (${networkReason(sdkError)})`;
  }
  return new RelayError('ERR_KEY_UNAVAILABLE', message, { cause: sdkError });
}

/** Errors the service answered with carry `$fault` and the HTTP metadata; transport failures do not. */
function isServiceError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && '$fault' in error;
}

function networkReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' ? `${code}: ${error.message}` : `${error.name}: ${error.message}`;
}
