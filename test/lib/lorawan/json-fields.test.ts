import { describe, expect, it } from 'vitest';
import {
  arrayAt,
  devEuiAt,
  isJsonObject,
  objectAt,
  optionalDevEuiAt,
  optionalNumberAt,
  optionalObjectAt,
  optionalStringAt,
  stringAt,
  uintAt,
} from '../../../lib/lorawan/json-fields.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

/** The refusal's field and message, which names the path and says what was there. */
const refusal = (read: () => unknown): { field: string | undefined; message: string } => {
  const { field, message } = thrownRelayError(read, 'ERR_INVALID_FIELD');
  return { field, message };
};

describe('isJsonObject', () => {
  it('is true of objects only: not null, arrays or scalars', () => {
    expect([{}, { a: 1 }].map(isJsonObject)).toEqual([true, true]);
    expect([null, [], 'a', 1, undefined].map(isJsonObject)).toEqual([false, false, false, false, false]);
  });
});

describe('objects', () => {
  it('objectAt requires one, naming the path given or the key', () => {
    expect(objectAt({ a: { b: 1 } }, 'a')).toEqual({ b: 1 });
    expect(refusal(() => objectAt({ a: [] }, 'a', 'x.a'))).toEqual({ field: 'x.a', message: 'x.a must be an object (got an array)' });
    expect(refusal(() => objectAt({}, 'a'))).toEqual({ field: 'a', message: 'a must be an object (got nothing)' });
  });

  it('optionalObjectAt takes an absent one as undefined, a null as wrong', () => {
    expect(optionalObjectAt({}, 'a')).toBeUndefined();
    expect(optionalObjectAt({ a: {} }, 'a')).toEqual({});
    expect(refusal(() => optionalObjectAt({ a: null }, 'a', 'p.a'))).toEqual({ field: 'p.a', message: 'p.a must be an object (got null)' });
  });
});

describe('strings', () => {
  it('stringAt requires a non-empty string up to the length given, 256 by default', () => {
    expect(stringAt({ a: 'x' }, 'a')).toBe('x');
    expect(stringAt({ a: 'x'.repeat(256) }, 'a')).toHaveLength(256);
    expect(refusal(() => stringAt({ a: 'x'.repeat(257) }, 'a')).message).toBe(`a must be at most 256 characters (got "${'x'.repeat(40)}…")`);
    expect(refusal(() => stringAt({ a: 'abcd' }, 'a', 'a', 3)).message).toBe('a must be at most 3 characters (got "abcd")');
    expect(refusal(() => stringAt({ a: '' }, 'a'))).toEqual({ field: 'a', message: 'a must be a non-empty string (got "")' });
    expect(refusal(() => stringAt({ a: 7 }, 'a', 'q.a')).message).toBe('q.a must be a non-empty string (got 7)');
  });

  it('optionalStringAt takes absent and empty as undefined, and checks anything else', () => {
    expect(optionalStringAt({}, 'a')).toBeUndefined();
    expect(optionalStringAt({ a: '' }, 'a')).toBeUndefined();
    expect(optionalStringAt({ a: 'v' }, 'a')).toBe('v');
    expect(refusal(() => optionalStringAt({ a: false }, 'a')).message).toBe('a must be a non-empty string (got false)');
    expect(refusal(() => optionalStringAt({ a: 'long' }, 'a', 'a', 2)).message).toMatch(/at most 2 characters/);
  });
});

describe('numbers', () => {
  it('uintAt reads absent as 0, and takes whole numbers from 0 to the maximum', () => {
    expect(uintAt({}, 'n', 'n', 10)).toBe(0);
    expect(uintAt({ n: 0 }, 'n', 'n', 10)).toBe(0);
    expect(uintAt({ n: 10 }, 'n', 'n', 10)).toBe(10);
    for (const bad of [11, -1, 1.5, '3', null, Number.NaN]) {
      expect(refusal(() => uintAt({ n: bad }, 'n', 'm.n', 10))).toMatchObject({ field: 'm.n', message: expect.stringMatching(/^m\.n must be an integer from 0 to 10 \(got /) });
    }
  });

  it('optionalNumberAt takes any finite number, undefined when absent', () => {
    expect(optionalNumberAt({ r: -97.5 }, 'r', 'r')).toBe(-97.5);
    expect(optionalNumberAt({}, 'r', 'r')).toBeUndefined();
    for (const bad of ['-97', Infinity, Number.NaN, null]) expect(refusal(() => optionalNumberAt({ r: bad }, 'r', 'x.r')).message).toMatch(/^x\.r must be a number/);
  });
});

describe('arrayAt', () => {
  it('is empty when absent, and refuses anything but an array', () => {
    expect(arrayAt({}, 'l', 'l')).toEqual([]);
    expect(arrayAt({ l: [1, 2] }, 'l', 'l')).toEqual([1, 2]);
    expect(refusal(() => arrayAt({ l: { 0: 1 } }, 'l', 'x.l'))).toEqual({ field: 'x.l', message: 'x.l must be an array (got an object)' });
  });
});

describe('DevEUIs', () => {
  it('are 16 hexadecimal digits, returned in lower case', () => {
    expect(devEuiAt({ e: '70B3D57ED0061A2C' }, 'e', 'e')).toBe('70b3d57ed0061a2c');
    expect(refusal(() => devEuiAt({ e: '70B3D57ED0061AZZ' }, 'e', 'd.e'))).toEqual({ field: 'd.e', message: 'd.e must be 16 hexadecimal digits (got "70B3D57ED0061AZZ")' });
    expect(refusal(() => devEuiAt({ e: '70b3' }, 'e', 'e')).message).toMatch(/16 hexadecimal digits/);
    expect(refusal(() => devEuiAt({ e: '70b3d57ed0061a2c0' }, 'e', 'e')).message).toMatch(/at most 16 characters/);
  });

  it('optionalDevEuiAt takes absent and empty as undefined', () => {
    expect(optionalDevEuiAt({}, 'e', 'e')).toBeUndefined();
    expect(optionalDevEuiAt({ e: '' }, 'e', 'e')).toBeUndefined();
    expect(optionalDevEuiAt({ e: 'A840411F2E3C4150' }, 'e', 'e')).toBe('a840411f2e3c4150');
    expect(refusal(() => optionalDevEuiAt({ e: 5 }, 'e', 'e')).message).toMatch(/non-empty string/);
  });
});
