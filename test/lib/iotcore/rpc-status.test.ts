import { describe, expect, it } from 'vitest';
import { HTTP_STATUS_OF, RPC, type ApiStatus } from '../../../lib/iotcore/rpc-status.js';

describe('google.rpc.Code', () => {
  it('numbers the statuses 1 to 16, each once', () => {
    expect(Object.values(RPC).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
  });

  it.each([
    ['INVALID_ARGUMENT', 3],
    ['NOT_FOUND', 5],
    ['RESOURCE_EXHAUSTED', 8],
    ['FAILED_PRECONDITION', 9],
    ['INTERNAL', 13],
    ['UNAUTHENTICATED', 16],
  ] as const)('%s is %i, the number a lastErrorStatus carries', (status, code) => {
    expect(RPC[status]).toBe(code);
  });
});

describe('HTTP status of each rpc status', () => {
  it('gives every status an error status of HTTP', () => {
    expect(Object.keys(HTTP_STATUS_OF).sort()).toEqual(Object.keys(RPC).sort());
    for (const code of Object.values(HTTP_STATUS_OF)) expect(code >= 400 && code < 600).toBe(true);
  });

  it.each([
    ['INVALID_ARGUMENT', 400],
    ['OUT_OF_RANGE', 400],
    ['UNAUTHENTICATED', 401],
    ['PERMISSION_DENIED', 403],
    ['NOT_FOUND', 404],
    ['ALREADY_EXISTS', 409],
    ['RESOURCE_EXHAUSTED', 429],
    ['INTERNAL', 500],
    ['UNIMPLEMENTED', 501],
    ['UNAVAILABLE', 503],
  ] satisfies [ApiStatus, number][])('answers %s with %i', (status, http) => {
    expect(HTTP_STATUS_OF[status]).toBe(http);
  });
});
