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

/**
 * How many leading (`head`) and trailing (`tail`) elements `a` and `b` have in common by
 * identity, the two ranges not overlapping in either: what lies between is what changed.
 */
export function sameEnds<T>(a: readonly T[], b: readonly T[]): { head: number; tail: number } {
  const limit = Math.min(a.length, b.length);
  let head = 0;
  while (head < limit && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < limit - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail += 1;
  return { head, tail };
}
