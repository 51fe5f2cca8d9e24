/**
 * Reads the `Authorization` header a device sends. Two schemes:
 * - `Bearer <device JWT>`, as IoT Core's HTTP bridge takes it (docs/protocol.md §5);
 * - `Device-Key <base64url key>`, for devices that cannot sign (`device-key.ts`).
 * Scheme names compare case-insensitively (RFC 9110 §11.1).
 *
 * @example
 * parseAuthorization('Bearer eyJ...');        // { scheme: 'Bearer', credential: 'eyJ...' }
 * parseAuthorization('device-key q0Z...');    // { scheme: 'Device-Key', credential: 'q0Z...' }
 */
import { RelayError } from '../errors.js';

export type AuthScheme = 'Bearer' | 'Device-Key';

export interface PresentedCredential {
  scheme: AuthScheme;
  credential: string;
}

const SCHEMES: Record<string, AuthScheme> = { bearer: 'Bearer', 'device-key': 'Device-Key' };
/** token68 (RFC 9110 §11.2): one word of these characters, possibly ending in '='. */
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

export function parseAuthorization(header: string | undefined): PresentedCredential {
  const value = header?.trim() ?? '';
  if (value === '') throw new RelayError('ERR_AUTH_MISSING', 'an Authorization header is required (Bearer <device JWT> or Device-Key <key>)');
  const match = /^(\S+)\s+(\S+)$/.exec(value);
  const scheme = match ? SCHEMES[match[1]!.toLowerCase()] : undefined;
  if (match === null || scheme === undefined) {
    throw new RelayError('ERR_AUTH_INVALID', 'the Authorization header must be "Bearer <device JWT>" or "Device-Key <key>"');
  }
  const credential = match[2]!;
  if (!TOKEN68.test(credential)) throw new RelayError('ERR_AUTH_INVALID', `the ${scheme} credential has characters it cannot contain`);
  return { scheme, credential };
}
