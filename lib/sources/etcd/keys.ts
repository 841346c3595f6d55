import { hash } from 'node:crypto';
import type { RawFragment } from '../source.js';

/** One key of the watched range, as the source last saw it. */
interface Entry {
  /** Mod revision of the key's newest value in etcd. */
  mod: number;
  /** The key's value as a fragment (undefined for the single key, whose documents are built from the value itself). */
  fragment: RawFragment | undefined;
  /** SHA-256 of `fragment`'s name and version, XOR-ed into the set digest (undefined with `fragment`). */
  hash: Buffer | undefined;
}

/** `key`, mod revision, and the fragment its value makes (undefined for the single key). */
export type KeyValue = readonly [key: string, mod: number, fragment: RawFragment | undefined];

/**
 * The keys of an etcd range the source tracks (one key, or every key under a prefix): each
 * key's mod revision, which the source's consistency checks compare with etcd's answers, and
 * (for a prefix) each key's fragment, from which the source builds its documents.
 *
 * Built for 100,000 keys where a change touches a few: names and fragments are kept in name
 * order (binary-search insert, replace and remove, no sort per change), and the set's digest is
 * the XOR of one SHA-256 per fragment, updated per change rather than re-hashed. `fragments()`
 * is a copy of the ordered array; `maxMod()` is O(n) after the key with the highest mod
 * revision was deleted.
 *
 * Not thread-safe; owned by one source.
 */
export class TrackedKeys {
  readonly #entries = new Map<string, Entry>();
  /** Keys in name order (JavaScript string order: the fragments' merge order). */
  #names: string[] = [];
  /** Each key's fragment, in the order of `#names`. */
  #ordered: (RawFragment | undefined)[] = [];
  readonly #digest = Buffer.alloc(32);
  #fragmentCount = 0;
  /** Highest mod revision of any key; undefined: to be computed. */
  #maxMod: number | undefined = 0;

  /** The keys of a read, in any order. */
  static of(values: readonly KeyValue[]): TrackedKeys {
    const keys = new TrackedKeys();
    for (const [key, mod, fragment] of values) keys.#set(key, mod, fragment);
    keys.#names = [...keys.#entries.keys()].sort(compareNames);
    keys.#ordered = keys.#names.map((name) => keys.#entries.get(name)!.fragment);
    keys.#maxMod = undefined;
    return keys;
  }

  /** Keys in the range. */
  get size(): number {
    return this.#entries.size;
  }

  /** Keys that have a fragment (0 for the single key). */
  get fragmentCount(): number {
    return this.#fragmentCount;
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** Mod revision of `key`, 0 when it is not in the range. */
  modOf(key: string): number {
    return this.#entries.get(key)?.mod ?? 0;
  }

  /** Highest mod revision in the range (0: empty). */
  maxMod(): number {
    if (this.#maxMod === undefined) {
      let max = 0;
      for (const entry of this.#entries.values()) max = Math.max(max, entry.mod);
      this.#maxMod = max;
    }
    return this.#maxMod;
  }

  keys(): IterableIterator<string> {
    return this.#entries.keys();
  }

  /** A put of `key` at `mod`, its value making `fragment`. */
  put(key: string, mod: number, fragment: RawFragment | undefined): void {
    const index = insertionIndex(this.#names, key);
    if (this.#entries.has(key)) this.#ordered[index] = fragment;
    else {
      this.#names.splice(index, 0, key);
      this.#ordered.splice(index, 0, fragment);
    }
    this.#set(key, mod, fragment);
    if (this.#maxMod !== undefined) this.#maxMod = Math.max(this.#maxMod, mod);
  }

  /** A delete of `key`; false when it was not tracked. */
  delete(key: string): boolean {
    const entry = this.#entries.get(key);
    if (!entry) return false;
    this.#forget(entry);
    this.#entries.delete(key);
    const index = insertionIndex(this.#names, key);
    this.#names.splice(index, 1);
    this.#ordered.splice(index, 1);
    if (entry.mod === this.#maxMod) this.#maxMod = undefined;
    return true;
  }

  /** The fragments, in name order. */
  fragments(): RawFragment[] {
    if (this.#fragmentCount === this.#ordered.length) return this.#ordered.slice() as RawFragment[];
    return this.#ordered.filter((fragment) => fragment !== undefined);
  }

  /**
   * Identifies the set of fragments: `COUNT:DIGEST` (32 hex digits of the XOR of each
   * fragment's SHA-256 over its name and version). Equal versions mean equal fragments.
   */
  version(): string {
    return `${this.#fragmentCount}:${this.#digest.toString('hex', 0, 16)}`;
  }

  #set(key: string, mod: number, fragment: RawFragment | undefined): void {
    const known = this.#entries.get(key);
    if (known) this.#forget(known);
    const digest = fragment ? hash('sha256', `${fragment.name}\0${fragment.version}`, 'buffer') : undefined;
    if (digest) {
      xorInto(this.#digest, digest);
      this.#fragmentCount += 1;
    }
    this.#entries.set(key, { mod, fragment, hash: digest });
  }

  #forget(entry: Entry): void {
    if (!entry.hash) return;
    xorInto(this.#digest, entry.hash);
    this.#fragmentCount -= 1;
  }
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of `name` in the sorted `names`, or where it would be inserted. */
function insertionIndex(names: readonly string[], name: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (names[mid]! < name) low = mid + 1;
    else high = mid;
  }
  return low;
}

function xorInto(target: Buffer, other: Buffer): void {
  for (let i = 0; i < target.length; i += 1) target[i] = target[i]! ^ other[i]!;
}
