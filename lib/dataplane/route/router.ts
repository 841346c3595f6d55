import equal from 'fast-deep-equal';
import type { RouteConfig } from '../../config/schema.js';
import { spliced } from '../../core/arrays.js';
import { sameEnds } from '../../core/identity.js';
import type { CompiledRoute, RouteAction, RouteTable } from '../ports.js';
import { ANY_METHOD, allowValue, isWildcardHost } from './match.js';
import { normalizePath, routePath } from './normalize.js';
import { compileRespond } from './respond.js';
import { SegmentTrie } from './segment-trie.js';

export { prefixMatches } from './match.js';

/** How a route's action is built from its config; extended by the data plane. */
export type ActionCompiler = (route: RouteConfig, index: number) => RouteAction;

/**
 * Compile `routes` for matching, in config order (`index` is the position); `compileAction`
 * builds each route's action (default: `respond` only).
 */
export function compileRoutes(routes: readonly RouteConfig[], compileAction: ActionCompiler = compileRespond): CompiledRoute[] {
  return routes.map((route, index) => compileRoute(route, index, compileAction));
}

function compileRoute(route: RouteConfig, index: number, compileAction: ActionCompiler): CompiledRoute {
  return {
    index,
    // A prefix with a malformed escape never matches: such request paths are refused first.
    pathPrefix: routePath(normalizePath(route.path_prefix) ?? route.path_prefix),
    host: route.host?.toLowerCase(),
    methods: route.methods ? new Set(route.methods.includes('GET') ? [...route.methods, 'HEAD'] : route.methods) : undefined,
    action: compileAction(route, index),
  };
}

/** A listener's route table as one generation compiled it, and the route sections it was compiled from. */
export interface CompiledTable {
  readonly sections: readonly RouteConfig[];
  readonly router: Router;
}

/**
 * Which compiled actions of a previous table may serve again: a test per action, or `'all'`
 * when the caller vouches for every one (nothing any action references changed), which spares
 * the test over the routes whose sections are the very objects the previous table was compiled from.
 */
export type Reusable = ((action: RouteAction) => boolean) | 'all';

/**
 * What `Router.fromConfig(routes, compileAction)` builds, reusing what `previous` compiled, so a
 * reload costs the routes that changed rather than every route:
 *
 * - the leading and trailing routes whose sections are the very objects of `previous.sections`
 *   (an unchanged fragment's frozen sections are the same objects from one merge to the next)
 *   keep their compiled routes without being compared, as a whole (one array copy, the routes
 *   between spliced in, when none moved), when `reusable` is `'all'`; else each when
 *   `reusable(action)` holds. How many lead and trail is `sameEnds`: O(1) when the producer
 *   of `routes` noted it (the fragment merge does), else a scan that it notes for the next
 *   caller (provisioning's route texts);
 * - between them, a route whose section deeply equals one of `previous.sections` (the one at
 *   its position; when routes were added or removed, else the one as many positions away as
 *   the count changed by, else one between the kept leading and trailing sections with the same
 *   `host` and `path_prefix`) keeps that compiled route (its action included) when `reusable`
 *   vouches for its action, a new `index` being the only difference; every other route goes
 *   through `compileAction`. `reusable` is the caller's proof that what the action references
 *   (an upstream's pools, say) is still valid where the table will serve;
 * - when every route is kept at its position, `previous.router` itself is returned;
 * - the new router shares `previous.router`'s index, the positions between the kept leading and
 *   trailing routes (narrowed to those whose path prefix or host changed, when no route was
 *   added or removed) indexed again apart (see `Router`'s constructor).
 *
 * Equal sections compile to equal routes (compiling is a pure function of the section and of
 * what `reusable` vouches for), so the table matches exactly as one compiled from scratch.
 */
export function compileReusing(routes: readonly RouteConfig[], compileAction: ActionCompiler, previous: CompiledTable | undefined, reusable: Reusable): Router {
  if (previous === undefined) return Router.fromConfig(routes, compileAction);
  const { sections, router } = previous;
  const before = router.routes;
  // From a note when the merge that built `routes` from `sections` made one: no scan.
  const { head, tail } = sameEnds(sections, routes);
  const keep = (from: number, index: number): CompiledRoute => {
    const kept = before[from]!;
    if (reusable !== 'all' && !reusable(kept.action)) return compileRoute(routes[index]!, index, compileAction);
    return kept.index === index ? kept : { ...kept, index };
  };
  // Routes added or removed shift the ones after them by `shift`; equal counts: changed in place.
  const shift = routes.length - sections.length;
  const end = routes.length - tail;
  const middle: CompiledRoute[] = [];
  let byPlace: Map<string, number[]> | undefined;
  for (let index = head; index < end; index += 1) {
    const route = routes[index]!;
    let from = index < sections.length && equal(sections[index], route) ? index : -1;
    if (from < 0 && shift !== 0) {
      const shifted = index - shift;
      if (shifted >= 0 && shifted < sections.length && equal(sections[shifted], route)) from = shifted;
      else {
        // Among the previous sections that changed: the others are kept at their own place.
        byPlace ??= placeIndex(sections, head, sections.length - tail);
        from = byPlace.get(placeOf(route))?.find((candidate) => equal(sections[candidate], route)) ?? -1;
      }
    }
    middle.push(from >= 0 ? keep(from, index) : compileRoute(route, index, compileAction));
  }
  // The leading and trailing routes, vouched for and at their position: the very objects, copied by a builtin.
  const inPlace = shift === 0 && reusable === 'all';
  if (inPlace && middle.every((route, at) => route === before[head + at])) return router;
  const kept = (from: number, to: number): CompiledRoute[] => {
    const out: CompiledRoute[] = [];
    for (let index = from; index < to; index += 1) out.push(keep(index < head ? index : index - shift, index));
    return out;
  };
  let compiled: CompiledRoute[];
  if (inPlace) compiled = spliced(before, head, end, middle);
  else if (reusable === 'all') compiled = before.slice(0, head).concat(middle, kept(end, routes.length));
  else compiled = kept(0, head).concat(middle, kept(end, routes.length));
  if (!inPlace && shift === 0 && compiled.every((route, index) => route === before[index])) return router;
  return new Router(compiled, router, { from: head, to: end });
}

/** Where a route section may have moved to: its host and path prefix. */
function placeOf(route: RouteConfig): string {
  return `${route.host ?? ''} ${route.path_prefix}`;
}

/** The positions of `sections` from `from` to `to` (exclusive) by `placeOf`, ascending. */
function placeIndex(sections: readonly RouteConfig[], from: number, to: number): Map<string, number[]> {
  const index = new Map<string, number[]>();
  for (let position = from; position < to; position += 1) {
    const place = placeOf(sections[position]!);
    const list = index.get(place);
    if (list === undefined) index.set(place, [position]);
    else list.push(position);
  }
  return index;
}

/**
 * The route table of one listener in one generation: immutable, derived from the config by a
 * pure function. Matching is first match in config order (as Envoy's route list): a route
 * matches when
 *
 * - its `path_prefix` (normalised like request paths) matches the normalised path on a segment
 *   boundary, as Envoy's `path_separated_prefix`: `/api` matches `/api` and `/api/x`, never
 *   `/apiadmin`; a prefix ending in `/` matches the paths that start with it (`/api/` matches
 *   `/api/` and `/api/x`, not `/api`), and `/` matches every path. Paths are matched without
 *   their segment parameters (`routePath`: `/api;v=1/admin` as `/api/admin`), as Tomcat and
 *   Spring route them;
 * - its `host` (if set) equals the request host case-insensitively (`*.example.com` matches any
 *   subdomain);
 * - its `methods` (if set) contain the method, `HEAD` being allowed wherever `GET` is (RFC 9110
 *   section 9.3.2); a route without `methods` allows every method but `TRACE` (RFC 9110 section
 *   9.3.8: it echoes the request, credentials included, so a route must list it to allow it).
 *
 * When routes match the path and host but none allows the method, `allowedMethods` gives the
 * `Allow` value of the 405 the handler answers.
 *
 * Routes are indexed as APISIX and Envoy do at scale, so a match costs what the request's host
 * labels and path segments cost, not what the number of routes does: a host index (exact hosts
 * in a map, `*.example.com` by each dot-suffix of the request host, routes without `host` apart),
 * each entry a `SegmentTrie` over path segments; the lowest-ranked route found in the tries the
 * request's host reaches wins. `LinearRouter` is the same table as a plain scan, the reference
 * this one is checked against (spec/dataplane/router-tree.spec.ts).
 */
export class Router implements RouteTable {
  /** The routes in config order; a route's rank in the index is its position here. */
  readonly routes: readonly CompiledRoute[];
  /**
   * The index, shared by the tables whose routes have the path prefixes and hosts it was built
   * from outside the patched ranks. Its ranks from `#patchFrom` to `#staleTo` (exclusive) are
   * stale and skipped; those from `#staleTo` on are ranks `#shift` further in `routes` (routes
   * added or removed before them since it was built).
   */
  readonly #index: HostIndex;
  /** The ranks `#patchFrom` to `#staleTo + #shift` of `routes`, indexed again. */
  readonly #patch: HostIndex | undefined;
  readonly #patchFrom: number;
  readonly #staleTo: number;
  readonly #shift: number;

  /**
   * Index `routes`. With `previous`, its index is shared instead of built: the index holds ranks
   * and strings only (what a rank's route allows and does is read from `routes` at match time),
   * and is never changed once built. The ranks whose path prefix or host may differ from
   * `previous`'s (`changed`; with as many routes as `previous`, narrowed to the first and last
   * that do differ), joined with the range `previous` patched, are indexed again as a patch whose
   * ranks the shared index skips, the ranks after them shifted by the routes added or removed, as
   * long as that range holds at most an eighth of the routes; else the whole index is built again.
   *
   * `changed`: the only ranks of `routes` whose route may differ in path prefix or host from
   * `previous`'s (the caller knows the others are compiled from the same sections): those before
   * `from` are `previous`'s at the same rank, those from `to` on are `previous`'s as many ranks
   * back as routes were added. Default: every rank, and with a different count, no sharing.
   */
  constructor(routes: readonly CompiledRoute[], previous?: Router, changed?: { readonly from: number; readonly to: number }) {
    this.routes = routes;
    const shift = previous === undefined ? 0 : routes.length - previous.routes.length;
    if (previous !== undefined && (shift === 0 || changed !== undefined)) {
      const change = shift === 0 ? differingRanks(previous.routes, routes, changed ?? { from: 0, to: routes.length }) : changed;
      if (change === undefined) {
        this.#index = previous.#index;
        this.#patch = previous.#patch;
        this.#patchFrom = previous.#patchFrom;
        this.#staleTo = previous.#staleTo;
        this.#shift = previous.#shift;
        return;
      }
      // In `previous`'s ranks: what changed, joined with what it patched (its patch ends where its ranks map to the index's again).
      const patched = previous.#patch !== undefined;
      const from = patched ? Math.min(change.from, previous.#patchFrom) : change.from;
      const to = patched ? Math.max(change.to - shift, previous.#staleTo + previous.#shift) : change.to - shift;
      if (to + shift - from <= routes.length >> 3) {
        this.#index = previous.#index;
        this.#patch = new HostIndex(routes, from, to + shift);
        this.#patchFrom = from;
        this.#staleTo = patched ? to - previous.#shift : to;
        this.#shift = (patched ? previous.#shift : 0) + shift;
        return;
      }
    }
    this.#index = new HostIndex(routes, 0, routes.length);
    this.#patch = undefined;
    this.#patchFrom = UNPATCHED;
    this.#staleTo = UNPATCHED;
    this.#shift = 0;
  }

  /** Whether this table shares its index with `other` (built by one, reused by the other, patched or not). */
  sharesIndexWith(other: Router): boolean {
    return this.#index === other.#index;
  }

  /** Compile `routes`; `compileAction` builds each route's action (default: `respond` only). */
  static fromConfig(routes: readonly RouteConfig[], compileAction: ActionCompiler = compileRespond): Router {
    return new Router(compileRoutes(routes, compileAction));
  }

  /** First route matching; `host` is already normalised (`normalizeHost`), `path` is a `routePath`. */
  match(method: string, host: string | undefined, path: string): CompiledRoute | undefined {
    const routes = this.routes;
    let best = this.#index.first(routes, method, host, path, routes.length, this.#patchFrom, this.#staleTo, this.#shift);
    if (this.#patch !== undefined) best = this.#patch.first(routes, method, host, path, best, UNPATCHED, UNPATCHED, 0);
    return best < routes.length ? routes[best] : undefined;
  }

  allowedMethods(host: string | undefined, path: string): string | undefined {
    const allowed = new Set<string>();
    const add = (index: HostIndex, skipFrom: number, skipTo: number, shift: number) => {
      for (const trie of index.triesFor(host)) {
        for (let rank of trie.matching(path)) {
          if (rank >= skipFrom) {
            if (rank < skipTo) continue;
            rank += shift;
          }
          for (const method of this.routes[rank]!.methods ?? ANY_METHOD) allowed.add(method);
        }
      }
    };
    add(this.#index, this.#patchFrom, this.#staleTo, this.#shift);
    if (this.#patch !== undefined) add(this.#patch, UNPATCHED, UNPATCHED, 0);
    return allowValue(allowed);
  }
}

/** A rank no table reaches: where an unpatched index's stale ranks begin and end. */
const UNPATCHED = Number.MAX_SAFE_INTEGER;

/**
 * The routes of ranks `from` to `to` (exclusive) by host, each entry a `SegmentTrie` (see
 * `Router`): exact hosts in a map, wildcards by the suffix they match, routes without `host` apart.
 * Immutable once built.
 */
class HostIndex {
  readonly #anyHost = new SegmentTrie();
  readonly #exactHosts = new Map<string, SegmentTrie>();
  /** By the suffix a wildcard host matches: `.example.com` for `*.example.com`. */
  readonly #wildcardHosts = new Map<string, SegmentTrie>();

  constructor(routes: readonly CompiledRoute[], from: number, to: number) {
    for (let rank = from; rank < to; rank += 1) this.#trieFor(routes[rank]!.host).add(routes[rank]!.pathPrefix, rank);
  }

  /** The lowest rank below `best` matching (see `SegmentTrie.first` for `skipFrom`, `skipTo` and `shift`); `best` when none. */
  first(
    routes: readonly CompiledRoute[],
    method: string,
    host: string | undefined,
    path: string,
    best: number,
    skipFrom: number,
    skipTo: number,
    shift: number,
  ): number {
    best = this.#anyHost.first(routes, method, path, best, skipFrom, skipTo, shift);
    if (host !== undefined) {
      const exact = this.#exactHosts.get(host);
      if (exact !== undefined) best = exact.first(routes, method, path, best, skipFrom, skipTo, shift);
      if (this.#wildcardHosts.size > 0) {
        // A wildcard matches a host longer than its suffix: every suffix from a dot but the first character.
        for (let dot = host.indexOf('.', 1); dot >= 0; dot = host.indexOf('.', dot + 1)) {
          const trie = this.#wildcardHosts.get(host.slice(dot));
          if (trie !== undefined) best = trie.first(routes, method, path, best, skipFrom, skipTo, shift);
        }
      }
    }
    return best;
  }

  /** The tries holding every route whose `host` matches `host` (see `Router.match`). */
  triesFor(host: string | undefined): SegmentTrie[] {
    const tries = [this.#anyHost];
    if (host === undefined) return tries;
    const exact = this.#exactHosts.get(host);
    if (exact !== undefined) tries.push(exact);
    for (let dot = host.indexOf('.', 1); dot >= 0; dot = host.indexOf('.', dot + 1)) {
      const trie = this.#wildcardHosts.get(host.slice(dot));
      if (trie !== undefined) tries.push(trie);
    }
    return tries;
  }

  #trieFor(host: string | undefined): SegmentTrie {
    if (host === undefined) return this.#anyHost;
    const [index, key] = isWildcardHost(host) ? [this.#wildcardHosts, host.slice(1)] : [this.#exactHosts, host];
    let trie = index.get(key);
    if (trie === undefined) {
      trie = new SegmentTrie();
      index.set(key, trie);
    }
    return trie;
  }
}

/** The ranks of `within` whose path prefix or host differ between `a` and `b`: from the first to past the last, or undefined when none do. */
function differingRanks(
  a: readonly CompiledRoute[],
  b: readonly CompiledRoute[],
  within: { readonly from: number; readonly to: number },
): { from: number; to: number } | undefined {
  const differs = (rank: number) => a[rank]!.pathPrefix !== b[rank]!.pathPrefix || a[rank]!.host !== b[rank]!.host;
  let from = within.from;
  while (from < within.to && !differs(from)) from += 1;
  if (from === within.to) return undefined;
  let to = within.to;
  while (!differs(to - 1)) to -= 1;
  return { from, to };
}
