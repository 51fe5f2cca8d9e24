/**
 * The public keys devices sign their JWTs with, from a key document:
 * `{ "<deviceId>": ["<PEM public key or X.509 certificate>", ...] }`, held in a Secrets Manager secret or a local
 * file (`secret-text-source.ts`).
 *
 * IoT Core's credential formats are RSA_PEM, RSA_X509_PEM, ES256_PEM and ES256_X509_PEM, at most 3 per device
 * (docs/protocol.md §1.3); the same forms and the same limit apply here. The algorithm follows from the key: an
 * RSA key verifies RS256, a P-256 EC key verifies ES256. A certificate is only a carrier for its public key; its
 * dates and issuer are not checked.
 *
 * Parsed documents and imported keys are cached: a document is parsed once per distinct text, a PEM imported once
 * per distinct text (bounded), so a warm container verifies a JWT without parsing anything.
 *
 * @example
 * const keys = new DevicePublicKeys(fileTextSource('device-keys.json'));
 * const candidates = await keys.keysFor('pump-0042'); // [{ key: KeyObject, alg: 'ES256' }]
 */
import { createHash, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { RelayError } from '../errors.js';
import { deviceIdProblem } from '../iotcore/device-id.js';
import type { SecretTextSource } from './secret-text-source.js';

/** The two JWT algorithms IoT Core accepts from devices (docs/protocol.md §1.3). */
export type DeviceJwtAlgorithm = 'RS256' | 'ES256';
export const DEVICE_JWT_ALGORITHMS: readonly DeviceJwtAlgorithm[] = ['RS256', 'ES256'];

export interface DevicePublicKey {
  key: KeyObject;
  alg: DeviceJwtAlgorithm;
}

/** IoT Core keeps at most 3 credentials per device; more would also mean more signature checks per request. */
export const MAX_KEYS_PER_DEVICE = 3;
/** RSA keys shorter than this are refused, as on the signing side (lib/keys/signing-key.ts). */
export const MIN_RSA_MODULUS_BITS = 2048;
/** Imported keys kept per process; beyond it the oldest import is dropped (a Map keeps insertion order). */
const MAX_CACHED_KEYS = 10_000;

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----/;
const PUBLIC_LABELS = new Set(['PUBLIC KEY', 'RSA PUBLIC KEY']);

/** Device ID -> its PEMs, or why its entry is unusable. */
export type DeviceKeyDocument = ReadonlyMap<string, { pems: readonly string[] } | { problem: string }>;

/**
 * Parses a key document. Throws ERR_KEY_INVALID when the document as a whole is unusable; an entry with a bad value
 * is reported by `keysFor` for that device only, so one typo does not lock every device out.
 */
export function parseDeviceKeyDocument(text: string, origin: string): DeviceKeyDocument {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // V8's message quotes the text around the fault; the document holds only public keys, but the message says
    // nothing a reader needs beyond "not JSON".
    throw new RelayError('ERR_KEY_INVALID', `${origin}: the device key document is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RelayError('ERR_KEY_INVALID', `${origin}: the device key document must be a JSON object of device IDs`);
  }
  const doc = new Map<string, { pems: readonly string[] } | { problem: string }>();
  for (const [deviceId, pems] of Object.entries(value as Record<string, unknown>)) {
    // A key that is not a device ID can never be asked for: a request's device ID is validated first.
    if (deviceIdProblem(deviceId) !== undefined) continue;
    if (!Array.isArray(pems) || !pems.every((p) => typeof p === 'string')) {
      doc.set(deviceId, { problem: 'the entry must be an array of PEM strings' });
    } else if (pems.length > MAX_KEYS_PER_DEVICE) {
      doc.set(deviceId, { problem: `${pems.length} keys; a device has at most ${MAX_KEYS_PER_DEVICE}` });
    } else {
      doc.set(deviceId, { pems });
    }
  }
  return doc;
}

export class DevicePublicKeys {
  private parsed: { text: string; doc: DeviceKeyDocument } | undefined;

  constructor(private readonly source: SecretTextSource) {}

  get origin(): string {
    return this.source.origin;
  }

  /**
   * The usable keys registered for a device: an empty list when the document has no entry for it. Throws
   * ERR_KEY_INVALID when the device's entry is malformed or none of its keys is usable, ERR_KEY_UNAVAILABLE or
   * ERR_CONFIG from the source.
   */
  async keysFor(deviceId: string): Promise<DevicePublicKey[]> {
    const text = await this.source.read();
    if (this.parsed?.text !== text) this.parsed = { text, doc: parseDeviceKeyDocument(text, this.source.origin) };
    const entry = this.parsed.doc.get(deviceId);
    if (entry === undefined) return [];
    const origin = `${this.source.origin}, device ${deviceId}`;
    if ('problem' in entry) throw new RelayError('ERR_KEY_INVALID', `${origin}: ${entry.problem}`);
    const keys: DevicePublicKey[] = [];
    let firstProblem: unknown;
    for (const [i, pem] of entry.pems.entries()) {
      try {
        keys.push(importDevicePublicKey(pem, `${origin}, key ${i}`));
      } catch (e) {
        firstProblem ??= e;
      }
    }
    // A bad key next to good ones is skipped: a mistyped new key must not lock out a device during key rotation.
    if (keys.length === 0 && firstProblem !== undefined) throw firstProblem;
    return keys;
  }
}

const imported = new Map<string, DevicePublicKey>();

/**
 * Imports one PEM public key or certificate, cached by a digest of its text. Throws ERR_KEY_INVALID with `origin`
 * (which must not contain key material) when the PEM cannot verify a device JWT.
 */
export function importDevicePublicKey(pem: string, origin: string): DevicePublicKey {
  const text = pem.trim();
  const digest = createHash('sha256').update(text).digest('base64url');
  const hit = imported.get(digest);
  if (hit !== undefined) return hit;
  const key = parsePublicKey(text, origin);
  const entry = { key, alg: algorithmOf(key, origin) };
  if (imported.size >= MAX_CACHED_KEYS) imported.delete(imported.keys().next().value as string);
  imported.set(digest, entry);
  return entry;
}

function parsePublicKey(text: string, origin: string): KeyObject {
  const label = PEM_LABEL.exec(text)?.[1];
  if (label === undefined) throw new RelayError('ERR_KEY_INVALID', `${origin}: not a PEM (no -----BEGIN line)`);
  if (label.includes('PRIVATE KEY')) {
    // A private key here would work (a public key derives from it), but it means a device's secret was copied
    // into a document many people read: refuse it so someone notices.
    throw new RelayError('ERR_KEY_INVALID', `${origin}: is a private key; register the device's public key only`);
  }
  try {
    if (label === 'CERTIFICATE') return new X509Certificate(text).publicKey;
    if (PUBLIC_LABELS.has(label)) return createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw new RelayError('ERR_KEY_INVALID', `${origin}: the PEM ${label.toLowerCase()} could not be decoded`);
  }
  throw new RelayError('ERR_KEY_INVALID', `${origin}: a PEM of type ${label}; expected PUBLIC KEY or CERTIFICATE`);
}

function algorithmOf(key: KeyObject, origin: string): DeviceJwtAlgorithm {
  if (key.asymmetricKeyType === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_MODULUS_BITS) {
      throw new RelayError('ERR_KEY_INVALID', `${origin}: RSA key of ${bits} bits; at least ${MIN_RSA_MODULUS_BITS} are needed`);
    }
    return 'RS256';
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  // ES256 is ECDSA over P-256 only: a P-384 key would verify ES384, which IoT Core does not accept.
  const what = key.asymmetricKeyType === 'ec' ? `EC key on ${key.asymmetricKeyDetails?.namedCurve ?? 'an unknown curve'}` : `${key.asymmetricKeyType ?? 'unknown'} key`;
  throw new RelayError('ERR_KEY_INVALID', `${origin}: an ${what} cannot verify RS256 or ES256; use RSA or P-256`);
}
