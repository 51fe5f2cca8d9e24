/**
 * A set of values kept in the order of an increasing key, for paging through large lists without sorting or
 * scanning them per request: devices in creation order, a gateway's bound devices in binding order.
 *
 * Keys only ever grow (creation and binding sequence numbers are handed out increasing), so adding is an append.
 * Deleting leaves a hole that is skipped and, once holes outnumber values, swept out in one pass; so every
 * operation is O(1) or O(log n) amortized, and a page costs O(log n + its size).
 *
 * It is made for hundreds of thousands of small ones too (one per device, for the gateways it is bound to, at most
 * ten): keys are plain numbers in a packed array, and the value-to-key map exists only past a few values, below
 * which a value is found by a short linear search.
 *
 * @example
 * const index = new OrderedIndex<string>();
 * index.add(1, 'pump-1'); index.add(2, 'pump-2'); index.add(3, 'pump-3');
 * index.delete('pump-2');
 * index.page(1, 10); // { entries: [{ key: 3, value: 'pump-3' }], more: false }
 */

export interface IndexEntry<V> {
  key: number;
  value: V;
}

/** Holes are swept out once there are more of them than this and than live values. */
const MIN_HOLES_TO_SWEEP = 64;
/** Up to this many slots, values are found by a linear search; past it, through a map. */
const LINEAR_SLOTS = 16;

export class OrderedIndex<V> {
  #keys: number[] = [];
  /** `undefined` marks a deleted value, skipped until the next sweep. */
  #values: (V | undefined)[] = [];
  #keyOf: Map<V, number> | undefined;
  #size = 0;
  #holes = 0;

  get size(): number {
    return this.#size;
  }

  has(value: V): boolean {
    return this.keyOf(value) !== undefined;
  }

  keyOf(value: V): number | undefined {
    if (this.#keyOf !== undefined) return this.#keyOf.get(value);
    const i = this.#values.indexOf(value);
    return i < 0 ? undefined : this.#keys[i];
  }

  /** Appends a value; its key must be larger than every key added before, and the value new to the index. */
  add(key: number, value: V): void {
    const last = this.#keys[this.#keys.length - 1];
    if (last !== undefined && key <= last) throw new RangeError(`index keys must increase (${key} after ${last})`);
    if (this.has(value)) throw new RangeError('value is already in the index');
    this.#keys.push(key);
    this.#values.push(value);
    this.#size += 1;
    if (this.#keyOf !== undefined) this.#keyOf.set(value, key);
    else if (this.#values.length > LINEAR_SLOTS) this.#keyOf = new Map(this.#live().map((e) => [e.value, e.key]));
  }

  delete(value: V): boolean {
    const key = this.keyOf(value);
    if (key === undefined) return false;
    this.#keyOf?.delete(value);
    this.#values[this.#firstAtOrAfter(key)] = undefined;
    this.#size -= 1;
    this.#holes += 1;
    if (this.#holes > MIN_HOLES_TO_SWEEP && this.#holes > this.#size) this.#sweep();
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
  page(after: number | undefined, limit: number): { entries: IndexEntry<V>[]; more: boolean } {
    const entries: IndexEntry<V>[] = [];
    let i = after === undefined ? 0 : this.#firstAfter(after);
    for (; i < this.#values.length && entries.length < limit; i++) {
      const value = this.#values[i];
      if (value !== undefined) entries.push({ key: this.#keys[i]!, value });
    }
    for (; i < this.#values.length; i++) if (this.#values[i] !== undefined) return { entries, more: true };
    return { entries, more: false };
  }

  /** The position of the first key >= `key` (binary search; keys are sorted). */
  #firstAtOrAfter(key: number): number {
    let lo = 0;
    let hi = this.#keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#keys[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The position of the first key > `key`. */
  #firstAfter(key: number): number {
    const i = this.#firstAtOrAfter(key);
    return i < this.#keys.length && this.#keys[i] === key ? i + 1 : i;
  }

  #live(): IndexEntry<V>[] {
    const out: IndexEntry<V>[] = [];
    for (let i = 0; i < this.#values.length; i++) {
      const value = this.#values[i];
      if (value !== undefined) out.push({ key: this.#keys[i]!, value });
    }
    return out;
  }

  #sweep(): void {
    const live = this.#live();
    this.#keys = live.map((e) => e.key);
    this.#values = live.map((e) => e.value);
    this.#holes = 0;
  }
}
