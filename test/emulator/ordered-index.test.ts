/**
 * The ordered index that lists page through: against a plain array model, under any mix of adds, deletes and
 * page walks, a walk returns every live value once in key order, and sweeping holes changes nothing visible.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OrderedIndex } from '../../emulator/ordered-index.js';

/** Every value, page by page, resuming after the last key of each page. */
function walk<V>(index: OrderedIndex<V>, size: number): V[] {
  const out: V[] = [];
  let after: number | undefined;
  for (;;) {
    const { entries, more } = index.page(after, size);
    out.push(...entries.map((e) => e.value));
    if (!more) return out;
    expect(entries.length).toBe(size);
    after = entries[entries.length - 1]!.key;
  }
}

describe('OrderedIndex', () => {
  it('matches a sorted array model under random adds and deletes', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(400)), { maxLength: 600 }), fc.integer({ min: 1, max: 50 }), (ops, size) => {
        const index = new OrderedIndex<number>();
        const model: number[] = [];
        let key = 0;
        let nextValue = 0;
        for (const [add, pick] of ops) {
          if (add || model.length === 0) {
            key += 1 + (pick % 3);
            index.add(key, nextValue);
            model.push(nextValue++);
          } else {
            const value = model.splice(pick % model.length, 1)[0]!;
            expect(index.delete(value)).toBe(true);
            expect(index.delete(value)).toBe(false);
          }
        }
        expect(index.size).toBe(model.length);
        expect([...index.values()]).toEqual(model);
        expect(walk(index, size)).toEqual(model);
      }),
    );
  });

  it('resumes after a key that was deleted, and reports whether more follow', () => {
    const index = new OrderedIndex<string>();
    for (let i = 1; i <= 5; i++) index.add(i * 10, `v${i}`);
    const first = index.page(undefined, 2);
    expect(first).toEqual({ entries: [{ key: 10, value: 'v1' }, { key: 20, value: 'v2' }], more: true });
    index.delete('v2');
    index.delete('v3');
    expect(index.page(20, 2)).toEqual({ entries: [{ key: 40, value: 'v4' }, { key: 50, value: 'v5' }], more: false });
    index.delete('v5');
    expect(index.page(20, 1)).toEqual({ entries: [{ key: 40, value: 'v4' }], more: false });
    expect(index.page(50, 10)).toEqual({ entries: [], more: false });
  });

  it('finds values the same way below and above the size where it switches to a map', () => {
    for (const n of [1, 5, 16, 17, 40]) {
      const index = new OrderedIndex<string>();
      for (let i = 0; i < n; i++) index.add(i + 1, `v${i}`);
      for (let i = 0; i < n; i++) expect(index.keyOf(`v${i}`)).toBe(i + 1);
      expect(index.delete(`v${n - 1}`)).toBe(true);
      expect(index.has(`v${n - 1}`)).toBe(false);
      expect(index.size).toBe(n - 1);
      if (n > 1) expect(() => index.add(n + 1, 'v0')).toThrow(RangeError);
    }
  });

  it('refuses keys that do not increase and values already present', () => {
    const index = new OrderedIndex<string>();
    index.add(5, 'a');
    expect(() => index.add(5, 'b')).toThrow(RangeError);
    expect(() => index.add(6, 'a')).toThrow(RangeError);
    expect(index.keyOf('a')).toBe(5);
    expect(index.has('b')).toBe(false);
  });

  it('stays fast when most values are deleted: holes are swept', () => {
    const index = new OrderedIndex<number>();
    for (let i = 0; i < 100_000; i++) index.add(i, i);
    for (let i = 0; i < 99_990; i++) index.delete(i);
    expect(index.page(undefined, 500).entries.map((e) => e.value)).toEqual(Array.from({ length: 10 }, (_, i) => 99_990 + i));
  });
});
