import type { CompiledRoute } from '../ports.js';
import { methodAllows } from './match.js';

/** One node: the path made of the segments from the root to it. Ranks are ascending in each list. */
class SegmentNode {
  /** Routes whose prefix is this node's path: they match it and every path going on past a `/`. */
  exact: number[] | undefined = undefined;
  /** Routes whose prefix is this node's path and a `/`: they match the paths going on past it. */
  slash: number[] | undefined = undefined;
  children: Map<string, SegmentNode> | undefined = undefined;

  child(segment: string): SegmentNode {
    this.children ??= new Map();
    let node = this.children.get(segment);
    if (node === undefined) {
      node = new SegmentNode();
      this.children.set(segment, node);
    }
    return node;
  }
}

/**
 * Route path prefixes in a trie over their `/`-separated segments; routes are named by their
 * rank (position in the route table, lower wins). Finding the routes whose prefix matches a path
 * on a segment boundary (`prefixMatches`) walks the path's segments once: its cost grows with the
 * path's depth, not with the number of routes.
 *
 * Why segments give exactly `prefixMatches`: with `prefix` split on `/` into s0..sm and `path`
 * into t0..tn, `prefix` matches `path` when
 * - `prefix` ends with `/` (sm is '' and m ≥ 1): t0..t(m-1) equal s0..s(m-1) and n ≥ m (the path
 *   goes on past that `/`) — kept as `slash` on the node of s0..s(m-1);
 * - otherwise: t0..tm equal s0..sm, whatever follows (a next segment begins at a `/`) — kept as
 *   `exact` on the node of s0..sm.
 * This holds for any string, normalised or not (an empty prefix matches '' and every path
 * starting with `/`, as `prefixMatches` does).
 *
 * Immutable once built; not safe to `add` while matching (build, then share).
 */
export class SegmentTrie {
  readonly #root = new SegmentNode();

  /** Add the route of `rank` with `prefix`; ranks must be added in ascending order. */
  add(prefix: string, rank: number): void {
    const segments = prefix.split('/');
    const last = segments.length - 1;
    const endsWithSlash = last >= 1 && segments[last] === '';
    let node = this.#root;
    for (let i = 0; i < (endsWithSlash ? last : last + 1); i += 1) node = node.child(segments[i]!);
    if (endsWithSlash) (node.slash ??= []).push(rank);
    else (node.exact ??= []).push(rank);
  }

  /**
   * The lowest rank below `below` whose prefix matches `path` and whose route (`routes[rank]`)
   * allows `method`; `below` when there is none. The ranks held from `skipFrom` to `skipTo`
   * (exclusive) are left out and those from `skipTo` on stand for `shift` ranks further (a
   * patched table, see `Router`): `skipFrom` must not exceed `skipTo + shift`, so that ranks keep
   * their order. The request hot path: no allocation but the path's segment strings, and only
   * while the trie has children to compare them with.
   */
  first(
    routes: readonly CompiledRoute[],
    method: string,
    path: string,
    below: number,
    skipFrom = Number.MAX_SAFE_INTEGER,
    skipTo = skipFrom,
    shift = 0,
  ): number {
    return this.#walk(path, routes, method, below, undefined, skipFrom, skipTo, shift);
  }

  /** Every rank whose prefix matches `path`, whatever the method, in no particular order. */
  matching(path: string): number[] {
    const ranks: number[] = [];
    this.#walk(path, [], '', 0, ranks, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 0);
    return ranks;
  }

  /** One walk for both: with `into`, every matching rank is added to it; else as `first`. */
  #walk(
    path: string,
    routes: readonly CompiledRoute[],
    method: string,
    below: number,
    into: number[] | undefined,
    skipFrom: number,
    skipTo: number,
    shift: number,
  ): number {
    let best = below;
    let node = this.#root;
    // Where the path's next segment begins; -1 once its last segment is consumed.
    let start = 0;
    for (;;) {
      if (node.exact !== undefined) best = visit(node.exact, routes, method, best, into, skipFrom, skipTo, shift);
      if (start >= 0 && node.slash !== undefined) best = visit(node.slash, routes, method, best, into, skipFrom, skipTo, shift);
      if (start < 0 || node.children === undefined) return best;
      const slash = path.indexOf('/', start);
      const next = node.children.get(slash < 0 ? path.slice(start) : path.slice(start, slash));
      if (next === undefined) return best;
      node = next;
      start = slash < 0 ? -1 : slash + 1;
    }
  }
}

/**
 * With `into`: add every rank of `ranks` to it (not push(...ranks): a list may hold more ranks
 * than a call may take arguments) and return `best`. Without: the first rank in `ranks`
 * (ascending, as `first` maps them: `skipFrom`, `skipTo`, `shift`) below `best` whose route allows `method`, else `best`.
 */
function visit(
  ranks: readonly number[],
  routes: readonly CompiledRoute[],
  method: string,
  best: number,
  into: number[] | undefined,
  skipFrom: number,
  skipTo: number,
  shift: number,
): number {
  if (into !== undefined) {
    for (const rank of ranks) into.push(rank);
    return best;
  }
  for (let i = 0; i < ranks.length; i += 1) {
    let rank = ranks[i]!;
    if (rank >= skipFrom) {
      if (rank < skipTo) continue;
      rank += shift;
    }
    if (rank >= best) return best;
    if (methodAllows(routes[rank]!, method)) return rank;
  }
  return best;
}
