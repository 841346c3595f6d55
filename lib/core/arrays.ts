/** Array copies made by builtins, which on large arrays cost a fraction of a loop in JS. */

/** Items a builtin call takes as spread arguments at most: the call stack bounds their count. */
const SPREAD_LIMIT = 8192;

/**
 * A copy of `array` with the items from `from` to `to` (exclusive) replaced by `items`, as
 * `array.toSpliced(from, to - from, ...items)`: one builtin copy when `items` are few, else
 * two slices and a concat. `array` is best not frozen: V8 copies a frozen array item by item,
 * several times slower.
 */
export function spliced<T>(array: readonly T[], from: number, to: number, items: readonly T[]): T[] {
  if (items.length <= SPREAD_LIMIT) return array.toSpliced(from, to - from, ...items);
  return array.slice(0, from).concat(items, array.slice(to));
}
