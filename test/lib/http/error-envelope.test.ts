import { describe, expect, it } from 'vitest';
import { RelayError, type RelayErrorCode } from '../../../lib/errors.js';
import {
  errorEnvelope,
  errorEnvelopeFor,
  HTTP_ANSWERS,
  HttpRefusal,
  wwwAuthenticate,
  type HttpAnswerTable,
} from '../../../lib/http/error-envelope.js';
import { HTTP_STATUS_OF } from '../../../lib/iotcore/rpc-status.js';

const BAD_REQUEST = { '@type': 'type.googleapis.com/google.rpc.BadRequest' };

describe('errorEnvelopeFor: a RelayError', () => {
  it.each([
    ['ERR_INVALID_MESSAGE', 400, 'INVALID_ARGUMENT'],
    ['ERR_INVALID_DEVICE_ID', 400, 'INVALID_ARGUMENT'],
    ['ERR_PAYLOAD_TOO_LARGE', 413, 'INVALID_ARGUMENT'],
    ['ERR_AUTH_MISSING', 401, 'UNAUTHENTICATED'],
    ['ERR_AUTH_EXPIRED', 401, 'UNAUTHENTICATED'],
    ['ERR_AUTH_FORBIDDEN', 403, 'PERMISSION_DENIED'],
  ] as const)('%s is about the request: %i %s, with its own message', (code, httpCode, status) => {
    const { httpCode: got, envelope } = errorEnvelopeFor(new RelayError(code, `why ${code}`));
    expect(got).toBe(httpCode);
    expect(envelope).toEqual({ error: { code: httpCode, status, message: `why ${code}` } });
  });

  it.each([
    ['ERR_QUEUE_THROTTLED', 429, 'RESOURCE_EXHAUSTED', 'too many requests; retry after a pause'],
    ['ERR_QUEUE_UNAVAILABLE', 503, 'UNAVAILABLE', 'the service is unavailable; retry later'],
    ['ERR_KEY_UNAVAILABLE', 503, 'UNAVAILABLE', 'the service is unavailable; retry later'],
    ['ERR_CONFIG', 500, 'INTERNAL', 'internal error'],
    ['ERR_STORE_UNAVAILABLE', 500, 'INTERNAL', 'internal error'],
    ['ERR_CONNECT_TIMEOUT', 500, 'INTERNAL', 'internal error'],
  ] as const)('%s is ours: %i %s, with a fixed message and no field', (code, httpCode, status, message) => {
    const { httpCode: got, envelope } = errorEnvelopeFor(new RelayError(code, 'CONFIG_TABLE must be set: arn:aws:secret', { field: 'CONFIG_TABLE' }));
    expect(got).toBe(httpCode);
    expect(envelope).toEqual({ error: { code: httpCode, status, message } });
  });

  it('names the field of a refused argument in a BadRequest detail', () => {
    const { envelope } = errorEnvelopeFor(new RelayError('ERR_INVALID_SUBFOLDER', 'subfolder must not be empty', { field: 'subfolder' }));
    expect(envelope.error.details).toEqual([{ ...BAD_REQUEST, fieldViolations: [{ field: 'subfolder', description: 'subfolder must not be empty' }] }]);
  });

  it('answers anything that is not a RelayError with 500 and nothing of it', () => {
    for (const thrown of [new TypeError('x is undefined at /var/task/handler.mjs'), 'a string', undefined]) {
      expect(errorEnvelopeFor(thrown)).toEqual({ httpCode: 500, envelope: { error: { code: 500, status: 'INTERNAL', message: 'internal error' } } });
    }
  });
});

describe('errorEnvelopeFor: an HttpRefusal', () => {
  it("answers with the status's own HTTP code and the message", () => {
    expect(errorEnvelopeFor(new HttpRefusal('NOT_FOUND', 'no such resource'))).toEqual({
      httpCode: 404,
      envelope: { error: { code: 404, status: 'NOT_FOUND', message: 'no such resource' } },
    });
    expect(errorEnvelopeFor(new HttpRefusal('OUT_OF_RANGE', 'local_version 3 is newer')).envelope.error).toEqual({ code: 400, status: 'OUT_OF_RANGE', message: 'local_version 3 is newer' });
  });

  it('takes another HTTP code where HTTP has a closer one', () => {
    expect(errorEnvelopeFor(new HttpRefusal('UNIMPLEMENTED', 'use POST', 405)).envelope.error).toEqual({ code: 405, status: 'UNIMPLEMENTED', message: 'use POST' });
  });
});

describe('the table of answers', () => {
  it('gives each code an HTTP error status; only codes about the request speak, and only below 500', () => {
    for (const [code, answer] of Object.entries(HTTP_ANSWERS)) {
      expect(answer.httpCode, code).toBeGreaterThanOrEqual(400);
      expect(answer.httpCode, code).toBeLessThan(600);
      if (answer.speaks) expect(answer.httpCode, code).toBeLessThan(500);
      // The status's own HTTP code, but for 413, the one status HTTP says better.
      if (answer.httpCode !== 413) expect(HTTP_STATUS_OF[answer.status], code).toBe(answer.httpCode);
      expect(errorEnvelopeFor(new RelayError(code as RelayErrorCode, 'm')).httpCode, code).toBe(answer.httpCode);
    }
  });

  it('does not compile with a code left out (checked by tsc --noEmit -p ., which covers the tests)', () => {
    const { ERR_QUEUE_UNAVAILABLE, ...withoutOne } = HTTP_ANSWERS;
    // @ts-expect-error ERR_QUEUE_UNAVAILABLE has no answer: HttpAnswerTable must name every code.
    const incomplete: HttpAnswerTable = withoutOne;
    expect(Object.keys(incomplete)).not.toContain('ERR_QUEUE_UNAVAILABLE');
    expect(ERR_QUEUE_UNAVAILABLE.httpCode).toBe(503);
  });
});

describe('errorEnvelope', () => {
  it('builds the envelope, with a detail only when a field is named', () => {
    expect(errorEnvelope(404, 'NOT_FOUND', 'gone')).toEqual({ error: { code: 404, status: 'NOT_FOUND', message: 'gone' } });
    expect(errorEnvelope(400, 'INVALID_ARGUMENT', 'bad', 'X-Message-Id').error.details).toEqual([
      { ...BAD_REQUEST, fieldViolations: [{ field: 'X-Message-Id', description: 'bad' }] },
    ]);
  });
});

describe('wwwAuthenticate', () => {
  it('names each scheme with the realm, and nothing when there is no scheme', () => {
    expect(wwwAuthenticate(['Bearer', 'Device-Key'])).toBe('Bearer realm="iotcore-relay", Device-Key realm="iotcore-relay"');
    expect(wwwAuthenticate([])).toBeUndefined();
    expect(wwwAuthenticate(undefined)).toBeUndefined();
  });
});
