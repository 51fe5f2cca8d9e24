/**
 * The secrets of the LoRaWAN integrations, in one JSON document: per integration ID, the secret its webhook must
 * present and, for config downlinks, the network server's API key.
 *
 * ```json
 * { "farm-ttn": { "webhookSecret": "<at least 16 characters>", "apiKey": "NNSXS.<...>" },
 *   "plant-chirpstack": { "webhookSecret": "<...>", "apiKey": "<ChirpStack API key, a JWT>" } }
 * ```
 *
 * | variable | meaning |
 * |---|---|
 * | `LORAWAN_SECRETS_SECRET` / `LORAWAN_SECRETS_FILE` | the Secrets Manager secret, or the local file, holding the document |
 * | `LORAWAN_SECRETS_CACHE_SECONDS` | how long a read document is reused (default 300), so a rotated secret arrives without a redeploy |
 *
 * Read the way device-authentication secrets are (lib/auth/secret-text-source.ts): cached, concurrent reads of a
 * cold container share one. No value ever appears in an error or a log line, not even a parser's excerpt of a
 * malformed document.
 *
 * @example
 * const secrets = integrationSecretsFromEnv(process.env);
 * const { webhookSecret, apiKey } = await secrets.get('farm-ttn');
 */
import type { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { DEFAULT_SECRET_MAX_AGE_SECONDS, fileTextSource, secretsManagerTextSource, type SecretTextSource } from '../auth/secret-text-source.js';
import { RelayError } from '../errors.js';

export interface IntegrationSecret {
  webhookSecret: string;
  /** The Things Stack: an API key with the right to write downlinks; ChirpStack: an API key. Optional without downlinks. */
  apiKey?: string;
}

export interface IntegrationSecrets {
  /** The source's origin (file path or secret ID), for error messages. */
  readonly origin: string;
  /**
   * The secrets of one integration. Throws ERR_KEY_UNAVAILABLE when the store cannot be read (worth a retry), and
   * ERR_CONFIG when the document is malformed or has no entry for the integration.
   */
  get(integrationId: string): Promise<IntegrationSecret>;
}

export const MIN_WEBHOOK_SECRET_LENGTH = 16;
const MAX_SECRET_LENGTH = 4096;

export function parseSecretDocument(text: string, origin: string): Map<string, IntegrationSecret> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message quotes the text around the error: never shown.
    throw new RelayError('ERR_CONFIG', `${origin} is not a JSON document`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new RelayError('ERR_CONFIG', `${origin} must be a JSON object keyed by integration ID`);
  const secrets = new Map<string, IntegrationSecret>();
  for (const [id, entry] of Object.entries(doc)) {
    const where = `${origin}: ${id.slice(0, 64)}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new RelayError('ERR_CONFIG', `${where} must be an object`);
    const { webhookSecret, apiKey } = entry as Record<string, unknown>;
    if (typeof webhookSecret !== 'string' || webhookSecret.length < MIN_WEBHOOK_SECRET_LENGTH || webhookSecret.length > MAX_SECRET_LENGTH) {
      throw new RelayError('ERR_CONFIG', `${where}.webhookSecret must be a string of ${MIN_WEBHOOK_SECRET_LENGTH} to ${MAX_SECRET_LENGTH} characters`);
    }
    const secret: IntegrationSecret = { webhookSecret };
    if (apiKey !== undefined) {
      if (typeof apiKey !== 'string' || apiKey.length === 0 || apiKey.length > MAX_SECRET_LENGTH || /[\r\n]/.test(apiKey)) {
        throw new RelayError('ERR_CONFIG', `${where}.apiKey must be a non-empty string on one line`);
      }
      secret.apiKey = apiKey;
    }
    secrets.set(id, secret);
  }
  return secrets;
}

/** Secrets read through `source`; the document is parsed again only when its text changed. */
export function integrationSecrets(source: SecretTextSource): IntegrationSecrets {
  let parsed: { text: string; secrets: Map<string, IntegrationSecret> } | undefined;
  return {
    origin: source.origin,
    async get(integrationId) {
      const text = await source.read();
      if (parsed?.text !== text) parsed = { text, secrets: parseSecretDocument(text, source.origin) };
      const secret = parsed.secrets.get(integrationId);
      if (secret === undefined) throw new RelayError('ERR_CONFIG', `${source.origin} has no entry for integration ${integrationId}`);
      return secret;
    },
  };
}

export interface IntegrationSecretsFromEnvOptions {
  secretsProvider?: SecretsProvider;
}

/** Undefined when neither variable is set. */
export function integrationSecretsFromEnv(env: NodeJS.ProcessEnv, options: IntegrationSecretsFromEnvOptions = {}): IntegrationSecrets | undefined {
  const secretId = env.LORAWAN_SECRETS_SECRET?.trim() ?? '';
  const file = env.LORAWAN_SECRETS_FILE?.trim() ?? '';
  if (secretId !== '' && file !== '') throw new RelayError('ERR_CONFIG', 'set LORAWAN_SECRETS_SECRET or LORAWAN_SECRETS_FILE, not both');
  const maxAgeSeconds = cacheSeconds(env.LORAWAN_SECRETS_CACHE_SECONDS);
  if (secretId !== '') {
    return integrationSecrets(secretsManagerTextSource(secretId, { maxAgeSeconds, ...(options.secretsProvider ? { provider: options.secretsProvider } : {}) }));
  }
  return file === '' ? undefined : integrationSecrets(fileTextSource(file, { maxAgeSeconds }));
}

function cacheSeconds(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_SECRET_MAX_AGE_SECONDS;
  if (!/^\d{1,9}$/.test(value.trim())) {
    throw new RelayError('ERR_CONFIG', `LORAWAN_SECRETS_CACHE_SECONDS must be a whole number of seconds >= 0 (got ${JSON.stringify(value.slice(0, 20))})`);
  }
  return Number(value.trim());
}
