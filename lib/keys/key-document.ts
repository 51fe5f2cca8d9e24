/**
 * The text a key source holds (a Secrets Manager secret string, or a key file), and how a gateway's key is found in
 * it. Three shapes are accepted:
 *
 * 1. a bare PEM private key, used for every gateway;
 * 2. one key object: `{"privateKey": "<PEM>", "algorithm": "ES256"}` (`algorithm` optional), used for every gateway;
 * 3. a map from gateway ID to either of the above: `{"gw-1": {"privateKey": "..."}, "gw-2": "-----BEGIN ..."}`.
 *
 * A gateway ID may legally be `privateKey` (it satisfies IoT Core's device ID rule), so shape 2 is recognised by a
 * string `privateKey` member, and shape 3 by object or string values.
 *
 * @example
 * const entry = keyEntryFor(secretString, 'gw-1', 'secret gw-keys');
 * const { key, alg } = await importSigningKey(entry.pem, { origin: entry.origin, declaredAlgorithm: entry.algorithm });
 */
import { RelayError } from '../errors.js';

export interface KeyEntry {
  pem: string;
  /** As written in the document; checked against the key by `importSigningKey`. */
  algorithm: unknown;
  /** Where the entry was found, for error messages; never contains key material. */
  origin: string;
}

/** How many of a map's gateway IDs an error message lists before it stops. */
const LISTED_IDS = 10;

/**
 * The key entry for `gatewayId` in a key document.
 * Throws ERR_KEY_INVALID when the document has no usable entry; the message names the origin and the gateway only.
 */
export function keyEntryFor(document: string, gatewayId: string, origin: string): KeyEntry {
  const text = document.trim();
  if (text.startsWith('-----BEGIN')) return { pem: text, algorithm: undefined, origin };
  if (!text.startsWith('{')) {
    throw new RelayError('ERR_KEY_INVALID', `${origin}: neither a PEM private key nor a JSON key document`);
  }
  const parsed = parseJsonObject(text, origin);
  if (typeof parsed['privateKey'] === 'string') return entryFrom(parsed, origin);

  if (!Object.hasOwn(parsed, gatewayId)) {
    const ids = Object.keys(parsed);
    const listed = ids.slice(0, LISTED_IDS).join(', ') + (ids.length > LISTED_IDS ? ', ...' : '');
    throw new RelayError(
      'ERR_KEY_INVALID',
      `${origin}: no key for gateway ${gatewayId} ` +
        `(the document has ${ids.length === 0 ? 'no entries' : `entries for ${listed}`})`,
    );
  }
  const value = parsed[gatewayId];
  const entryOrigin = `${origin}, entry ${gatewayId}`;
  if (typeof value === 'string') return { pem: value, algorithm: undefined, origin: entryOrigin };
  if (isRecord(value) && typeof value['privateKey'] === 'string') return entryFrom(value, entryOrigin);
  throw new RelayError(
    'ERR_KEY_INVALID',
    `${entryOrigin}: must be a PEM string or an object {"privateKey": "<PEM>", "algorithm": "RS256" | "ES256"}`,
  );
}

function entryFrom(value: Record<string, unknown>, origin: string): KeyEntry {
  return { pem: value['privateKey'] as string, algorithm: value['algorithm'], origin };
}

function parseJsonObject(text: string, origin: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's SyntaxError quotes the text around the fault, which here is key material: neither its message nor the
    // error itself (as a cause) may travel on.
    throw new RelayError('ERR_KEY_INVALID', `${origin}: the key document is not valid JSON`);
  }
  if (!isRecord(value)) throw new RelayError('ERR_KEY_INVALID', `${origin}: the key document must be a JSON object`);
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
