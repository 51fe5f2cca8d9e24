/**
 * A set of values kept in the order of an increasing key, for paging through large lists without sorting or
 * scanning them per request: devices in numId order, a gateway's bound devices in binding order.
 *
 * Keys only ever grow (numIds and binding sequence numbers are handed out increasing), so adding is an append.
 * Deleting leaves a hole that is skipped and, once holes outnumber values, swept out in one pass; so every
 * operation is O(1) or O(log n) amortized, and a page costs O(log n + its size).
 *
 * @example
 * const index = new OrderedIndex<string>();
 * index.add(1n, 'pump-1'); index.add(2n, 'pump-2'); index.add(3n, 'pump-3');
 * index.delete('pump-2');
 * index.page(1n, 10); // { entries: [{ key: 3n, value: 'pump-3' }], more: false }
 */

export interface IndexEntry<V> {
  key: bigint;
  value: V;
}

/** Holes are swept out once there are more of them than this and than live values. */
const MIN_HOLES_TO_SWEEP = 64;

export class OrderedIndex<V> {
  #keys: bigint[] = [];
  /** `undefined` marks a deleted value, skipped until the next sweep. */
  #values: (V | undefined)[] = [];
  #keyOf = new Map<V, bigint>();
  #holes = 0;

  get size(): number {
    return this.#keyOf.size;
  }

  has(value: V): boolean {
    return this.#keyOf.has(value);
  }

  keyOf(value: V): bigint | undefined {
    return this.#keyOf.get(value);
  }

  /** Appends a value; its key must be larger than every key added before, and the value new to the index. */
  add(key: bigint, value: V): void {
    const last = this.#keys[this.#keys.length - 1];
    if (last !== undefined && key <= last) throw new RangeError(`index keys must increase (${key} after ${last})`);
    if (this.#keyOf.has(value)) throw new RangeError('value is already in the index');
    this.#keys.push(key);
    this.#values.push(value);
    this.#keyOf.set(value, key);
  }

  delete(value: V): boolean {
    const key = this.#keyOf.get(value);
    if (key === undefined) return false;
    this.#keyOf.delete(value);
    this.#values[this.#firstAtOrAfter(key)] = undefined;
    this.#holes += 1;
    if (this.#holes > MIN_HOLES_TO_SWEEP && this.#holes > this.#keyOf.size) this.#sweep();
    return true;
  }

  /** The values in key order. Do not add or delete while iterating. */
  *values(): IterableIterator<V> {
    for (const v of this.#values) if (v !== undefined) yield v;
  }

  /**
   * Up to `limit` entries with a key larger than `after` (from the start when undefined), and whether any entry
   * follows them.
   */
  page(after: bigint | undefined, limit: number): { entries: IndexEntry<V>[]; more: boolean } {
    const entries: IndexEntry<V>[] = [];
    let i = after === undefined ? 0 : this.#firstAtOrAfter(after + 1n);
    for (; i < this.#values.length && entries.length < limit; i++) {
      const value = this.#values[i];
      if (value !== undefined) entries.push({ key: this.#keys[i]!, value });
    }
    for (; i < this.#values.length; i++) if (this.#values[i] !== undefined) return { entries, more: true };
    return { entries, more: false };
  }

  /** The position of the first key >= `key` (binary search; keys are sorted). */
  #firstAtOrAfter(key: bigint): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #sweep(): void {
    const keys: bigint[] = [];
    const values: V[] = [];
    for (let i = 0; i < this.#values.length; i++) {
      const v = this.#values[i];
      if (v === undefined) continue;
      keys.push(this.#keys[i]!);
      values.push(v);
    }
    this.#keys = keys;
    this.#values = values;
    this.#holes = 0;
  }
}
