/**
 * Device authentication for the HTTP routes (ingest, config delivery): device JWTs verified against registered
 * public keys, and per-device HMAC keys derived from one master secret.
 *
 * | variable | meaning |
 * |---|---|
 * | `IOTCORE_PROJECT` | the JWT audience |
 * | `DEVICE_KEYS_SECRET` / `DEVICE_KEYS_FILE` | the device public key document (`{"<deviceId>": ["<PEM>", ...]}`) |
 * | `DEVICE_KEY_MASTER_SECRET` / `DEVICE_KEY_MASTER_FILE` | the master secret of device keys |
 * | `DEVICE_AUTH_CACHE_SECONDS` | how long a read secret is reused (default 300) |
 *
 * @example
 * const auth = deviceAuthenticatorFromEnv(process.env);
 * const device = await auth.authenticate(event.headers.authorization, 'pump-0042');
 */
import type { SecretsProvider } from '@aws-lambda-powertools/parameters/secrets';
import { RelayError } from '../errors.js';
import { SettingsCheck } from '../settings-check.js';
import { DeviceAuthenticator } from './device-authenticator.js';
import { DevicePublicKeys } from './device-public-keys.js';
import { DEFAULT_SECRET_MAX_AGE_SECONDS, fileTextSource, secretsManagerTextSource, type SecretTextSource } from './secret-text-source.js';

export { parseAuthorization, type AuthScheme, type PresentedCredential } from './authorization-header.js';
export { DeviceAuthenticator, type AuthenticatedDevice, type DeviceAuthenticatorOptions } from './device-authenticator.js';
export { deriveDeviceKey, deviceKeyMatches, masterKeyFromText, MIN_MASTER_SECRET_BYTES } from './device-key.js';
export { deviceNamedInJwt, verifyDeviceJwt, type DeviceJwtClaims, type VerifyDeviceJwtOptions } from './device-jwt.js';
export {
  DevicePublicKeys,
  importDevicePublicKey,
  parseDeviceKeyDocument,
  MAX_KEYS_PER_DEVICE,
  type DeviceJwtAlgorithm,
  type DeviceKeyDocument,
  type DevicePublicKey,
} from './device-public-keys.js';
export {
  DEFAULT_SECRET_MAX_AGE_SECONDS,
  fileTextSource,
  secretsManagerTextSource,
  type SecretTextSource,
} from './secret-text-source.js';

export interface DeviceAuthFromEnvOptions {
  /** The Secrets Manager provider to read through; defaults to one shared by the process. */
  secretsProvider?: SecretsProvider;
}

/** Throws one RelayError ERR_CONFIG listing every wrong or missing variable (lib/settings-check.ts). */
export function deviceAuthenticatorFromEnv(env: NodeJS.ProcessEnv = process.env, options: DeviceAuthFromEnvOptions = {}): DeviceAuthenticator {
  const check = new SettingsCheck();
  const project = env.IOTCORE_PROJECT?.trim() ?? '';
  if (project === '') {
    check.add(new RelayError('ERR_CONFIG', 'IOTCORE_PROJECT must name the IoT Core project (the device JWT audience)', { field: 'IOTCORE_PROJECT' }));
  }
  const maxAgeSeconds = check.read(() => cacheSeconds(env.DEVICE_AUTH_CACHE_SECONDS)) ?? DEFAULT_SECRET_MAX_AGE_SECONDS;
  const source = (secretVar: string, fileVar: string): SecretTextSource | undefined => {
    const secretId = env[secretVar]?.trim() ?? '';
    const file = env[fileVar]?.trim() ?? '';
    if (secretId !== '' && file !== '') {
      check.add(new RelayError('ERR_CONFIG', `set ${secretVar} or ${fileVar}, not both`, { field: secretVar }));
      return undefined;
    }
    if (secretId !== '') {
      return secretsManagerTextSource(secretId, { maxAgeSeconds, ...(options.secretsProvider ? { provider: options.secretsProvider } : {}) });
    }
    return file !== '' ? fileTextSource(file, { maxAgeSeconds }) : undefined;
  };
  const keys = source('DEVICE_KEYS_SECRET', 'DEVICE_KEYS_FILE');
  const master = source('DEVICE_KEY_MASTER_SECRET', 'DEVICE_KEY_MASTER_FILE');
  const anySet = ['DEVICE_KEYS_SECRET', 'DEVICE_KEYS_FILE', 'DEVICE_KEY_MASTER_SECRET', 'DEVICE_KEY_MASTER_FILE'].some((name) => (env[name]?.trim() ?? '') !== '');
  if (!anySet) {
    check.add(
      new RelayError(
        'ERR_CONFIG',
        'no device authentication configured: set DEVICE_KEYS_SECRET or DEVICE_KEYS_FILE, ' +
          'and/or DEVICE_KEY_MASTER_SECRET or DEVICE_KEY_MASTER_FILE',
        { field: 'DEVICE_KEYS_SECRET' },
      ),
    );
  }
  check.throwIfAny();
  return new DeviceAuthenticator({
    project,
    ...(keys ? { publicKeys: new DevicePublicKeys(keys) } : {}),
    ...(master ? { masterSecret: master } : {}),
  });
}

function cacheSeconds(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_SECRET_MAX_AGE_SECONDS;
  const seconds = /^\d{1,9}$/.test(value.trim()) ? Number(value) : Number.NaN;
  // Whole seconds only: Powertools computes the expiry with Date#setSeconds, which drops fractions.
  if (!Number.isSafeInteger(seconds)) {
    throw new RelayError('ERR_CONFIG', `DEVICE_AUTH_CACHE_SECONDS must be a whole number of seconds >= 0 (got ${JSON.stringify(value)})`, {
      field: 'DEVICE_AUTH_CACHE_SECONDS',
    });
  }
  return seconds;
}
