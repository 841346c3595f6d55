/**
 * Comparisons by identity (`===`), for structures that share their unchanged parts with the last
 * version (frozen config sections, parsed documents rebuilt copy-on-write): two versions are
 * told apart by which objects they hold, not by their contents.
 */

/** Whether `a` and `b` hold the same items (by identity) from index `from` to `to` (exclusive); both must reach `to`. */
export function sameRange(a: readonly unknown[], b: readonly unknown[], from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether `a` and `b` have the same length and the same items, by identity. */
export function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && sameRange(a, b, 0, a.length);
}

/** Whether `a` and `b` have the same own enumerable keys, in the same order, with identical values. */
export function sameValues(a: object, b: object): boolean {
  const keys = Object.keys(a);
  if (!sameItems(keys, Object.keys(b))) return false;
  return keys.every((key) => (a as Record<string, unknown>)[key] === (b as Record<string, unknown>)[key]);
}

/** How many leading (`head`) and trailing (`tail`) items two arrays have in common: see `sameEnds`. */
export interface Ends {
  readonly head: number;
  readonly tail: number;
}

/**
 * What is known of a frozen array's ends against another frozen array (`from`), held weakly both
 * ways: a note never keeps an array alive (the previous generation's routes, say), and arrays that
 * are frozen cannot change, so a note stays true as long as both arrays live.
 */
interface EndsNote extends Ends {
  readonly from: WeakRef<readonly unknown[]>;
}

/** By the array the note was made for: one note each, the latest (a config is compared with the one it replaces). */
const notes = new WeakMap<readonly unknown[], EndsNote>();

/**
 * How many leading (`head`) and trailing (`tail`) elements `a` and `b` have in common by
 * identity, the two ranges not overlapping in either: what lies between is what changed.
 *
 * Answered in O(1) from a note when one is held for the pair (either way round): made by
 * `noteEnds` (a producer that built one array from the other) or by an earlier call on the same
 * two frozen arrays. Otherwise a scan (`scanEnds`) costing the common ends, noted when both are frozen.
 */
export function sameEnds<T>(a: readonly T[], b: readonly T[]): Ends {
  const noted = notedEnds(a, b);
  if (noted !== undefined) return noted;
  const ends = scanEnds(a, b);
  if (Object.isFrozen(a) && Object.isFrozen(b)) notes.set(b, { from: new WeakRef(a), head: ends.head, tail: ends.tail });
  return ends;
}

/** `sameEnds(a, b)` as noted for the pair (either way round), or undefined when nothing is: never scans. */
export function notedEnds(a: readonly unknown[], b: readonly unknown[]): Ends | undefined {
  const forB = notes.get(b);
  if (forB !== undefined && forB.from.deref() === a) return { head: forB.head, tail: forB.tail };
  const forA = notes.get(a);
  if (forA !== undefined && forA.from.deref() === b) return { head: forA.head, tail: forA.tail };
  return undefined;
}

/**
 * Record `ends`, which must be exactly `scanEnds(from, to)` (the producer of `to` knows it
 * without a scan, see `concatEnds`), for `sameEnds` to answer from. Only frozen arrays are noted
 * (a note about an array that may still change could turn false): for others this does nothing.
 */
export function noteEnds(from: readonly unknown[], to: readonly unknown[], ends: Ends): void {
  if (Object.isFrozen(from) && Object.isFrozen(to)) notes.set(to, { from: new WeakRef(from), head: ends.head, tail: ends.tail });
}

/** `sameEnds` by comparing items one by one from both ends, ignoring notes. */
export function scanEnds<T>(a: readonly T[], b: readonly T[]): Ends {
  return extendEnds(a, b, 0, 0);
}

/**
 * `sameEnds(a, b)` where `a` is the concatenation of `aParts` and `b` that of `bParts`: the
 * leading and trailing parts that are the same arrays in both are counted by their length
 * without reading them, the items past them are compared one by one. Costs the parts' count
 * plus what lies between the identical parts (a one-part change among many: that part), and
 * answers exactly what a scan of `a` and `b` would.
 */
export function concatEnds<T>(a: readonly T[], aParts: readonly (readonly T[])[], b: readonly T[], bParts: readonly (readonly T[])[]): Ends {
  // The parts' own ends (parts are the items here) never overlap: none is counted at both.
  const parts = scanEnds(aParts, bParts);
  return extendEnds(a, b, lengthOf(aParts, 0, parts.head), lengthOf(aParts, aParts.length - parts.tail, aParts.length));
}

/** How many items the parts from `from` to `to` (exclusive) hold together. */
export function lengthOf(parts: readonly (readonly unknown[])[], from: number, to: number): number {
  let length = 0;
  for (let i = from; i < to; i += 1) length += parts[i]!.length;
  return length;
}

/** The common ends of `a` and `b`, knowing they share at least `head` leading and `tail` trailing items. */
function extendEnds<T>(a: readonly T[], b: readonly T[], head: number, tail: number): Ends {
  const limit = Math.min(a.length, b.length);
  while (head < limit && a[head] === b[head]) head += 1;
  // A known tail may reach into what the head now covers: what a scan counts twice, the head keeps.
  tail = Math.min(tail, limit - head);
  while (tail < limit - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail += 1;
  return { head, tail };
}
