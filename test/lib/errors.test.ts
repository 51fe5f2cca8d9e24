import { describe, expect, it } from 'vitest';
import { describeInput, isRelayError, RelayError } from '../../lib/errors.js';

describe('RelayError', () => {
  it('carries its code, message, field and cause, and names itself', () => {
    const cause = new Error('socket hang up');
    const e = new RelayError('ERR_INVALID_FIELD', 'subfolder is too long', { field: 'subfolder', cause });
    expect(e).toBeInstanceOf(Error);
    expect(e).toMatchObject({ name: 'RelayError', code: 'ERR_INVALID_FIELD', message: 'subfolder is too long', field: 'subfolder', cause });
    expect(String(e)).toBe('RelayError: subfolder is too long');
    expect(e.stack).toMatch(/^RelayError: subfolder is too long\n/);
  });

  it('has no field and no cause unless given', () => {
    const e = new RelayError('ERR_CONFIG', 'x');
    expect(e.field).toBeUndefined();
    expect('cause' in e).toBe(false);
  });
});

describe('isRelayError', () => {
  it('is true of RelayErrors only', () => {
    expect(isRelayError(new RelayError('ERR_INTERNAL', 'x'))).toBe(true);
    const lookalike = Object.assign(new Error('x'), { name: 'RelayError', code: 'ERR_INTERNAL' });
    expect([lookalike, { code: 'ERR_INTERNAL' }, undefined, 'ERR_INTERNAL'].map(isRelayError)).toEqual([false, false, false, false]);
  });
});

describe('describeInput', () => {
  it('quotes strings and numbers, cutting strings at 40 characters', () => {
    expect(describeInput('2')).toBe('"2"');
    expect(describeInput(2)).toBe('2');
    expect(describeInput('a'.repeat(40))).toBe(`"${'a'.repeat(40)}"`);
    expect(describeInput('a'.repeat(41))).toBe(`"${'a'.repeat(40)}…"`);
    expect(describeInput('say "hi"\n')).toBe('"say \\"hi\\"\\n"');
    expect(describeInput(true)).toBe('true');
  });

  it('names everything else by its kind', () => {
    expect([undefined, null, [1], {}, new Date(0)].map(describeInput)).toEqual(['nothing', 'null', 'an array', 'an object', 'an object']);
    expect(describeInput(Symbol('s'))).toBe('symbol');
    expect(describeInput(() => 1)).toBe('function');
  });

  it('copes with input too deep to write out', () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(describeInput(deep)).toBe('an array');
    expect(describeInput({ a: deep })).toBe('an object');
  });
});
