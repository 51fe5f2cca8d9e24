import { describe, expect, it } from 'vitest';
import { webhookSecretMatches } from '../../../lib/lorawan/webhook-secret.js';

describe('webhookSecretMatches', () => {
  const expected = 'a-webhook-secret-of-some-length';

  it('matches only the exact value', () => {
    expect(webhookSecretMatches(expected, expected)).toBe(true);
    expect(webhookSecretMatches(`${expected} `, expected)).toBe(false);
    expect(webhookSecretMatches(expected.toUpperCase(), expected)).toBe(false);
    // Same length, one character off; and lengths that differ (timingSafeEqual alone would throw on those).
    expect(webhookSecretMatches(`${expected.slice(0, -1)}X`, expected)).toBe(false);
    expect(webhookSecretMatches('a', expected)).toBe(false);
    expect(webhookSecretMatches('x'.repeat(10_000), expected)).toBe(false);
  });

  it('compares the text as UTF-8, so a look-alike character does not match', () => {
    expect(webhookSecretMatches('sécret-of-sixteen', 'sécret-of-sixteen')).toBe(true);
    expect(webhookSecretMatches('se\u0301cret-of-sixteen', 'sécret-of-sixteen')).toBe(false);
  });

  it('never matches a missing header, nor an empty expected secret', () => {
    expect(webhookSecretMatches(undefined, expected)).toBe(false);
    expect(webhookSecretMatches('', expected)).toBe(false);
    expect(webhookSecretMatches('', '')).toBe(false);
    expect(webhookSecretMatches(undefined, '')).toBe(false);
  });
});
