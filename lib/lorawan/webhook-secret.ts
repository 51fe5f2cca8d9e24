/**
 * Checks the secret a network server's webhook presents, in constant time: both values are hashed with SHA-256
 * and the digests compared with `timingSafeEqual`, so neither the position of the first differing character nor the
 * length of the expected secret shows in the time taken. A missing header is compared too, against an empty value,
 * so it takes the same time as a wrong one.
 *
 * @example
 * if (!webhookSecretMatches(request.headers['x-webhook-secret'], secret.webhookSecret)) return unauthorized();
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

export function webhookSecretMatches(presented: string | undefined, expected: string): boolean {
  const same = timingSafeEqual(digest(presented ?? ''), digest(expected));
  // An empty expected secret never matches, even an empty or absent header (the secret document refuses one anyway).
  return same && presented !== undefined && expected.length > 0;
}
