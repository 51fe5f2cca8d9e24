import { describe, expect, it } from 'vitest';
import { parseAuthorization } from '../../../lib/auth/authorization-header.js';

describe('parseAuthorization', () => {
  it('reads Bearer and Device-Key, scheme names in any case', () => {
    expect(parseAuthorization('Bearer a.b.c')).toEqual({ scheme: 'Bearer', credential: 'a.b.c' });
    expect(parseAuthorization('bearer  a.b.c ')).toEqual({ scheme: 'Bearer', credential: 'a.b.c' });
    expect(parseAuthorization('DEVICE-KEY q0Z_-x')).toEqual({ scheme: 'Device-Key', credential: 'q0Z_-x' });
  });

  it('calls an absent or blank header missing', () => {
    for (const header of [undefined, '', '   ']) {
      expect(() => parseAuthorization(header)).toThrow(expect.objectContaining({ code: 'ERR_AUTH_MISSING' }));
    }
  });

  it('refuses other schemes, a scheme alone, and credentials with spaces or quotes', () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer a b', 'Device-Key "abc"', 'Token abc']) {
      expect(() => parseAuthorization(header)).toThrow(expect.objectContaining({ code: 'ERR_AUTH_INVALID' }));
    }
  });
});
