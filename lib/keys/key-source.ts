/**
 * Where a gateway's private key comes from. The relay asks once per session; implementations cache, so the
 * question is cheap on a warm container.
 *
 * @example
 * const source: KeySource = keySourceFromEnv(process.env);
 * const { key, alg } = await source.signingKey('gw-1');
 */
import type { SigningKey } from './signing-key.js';

export interface KeySource {
  /**
   * The key gateway `gatewayId` signs its JWT with.
   * Throws RelayError ERR_KEY_UNAVAILABLE (the store could not be read: worth a retry) or ERR_KEY_INVALID
   * (the store answered, but holds no usable key for this gateway).
   */
  signingKey(gatewayId: string): Promise<SigningKey>;
}
