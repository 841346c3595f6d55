import { createHash } from 'node:crypto';
import equal from 'fast-deep-equal';
import type { ConfigIssue } from '../core/errors.js';
import { concatEnds, lengthOf, noteEnds, sameItems, scanEnds } from '../core/identity.js';
import { BindPlan } from './address.js';
import { type FragmentConfig, type FragmentFacts, fragmentFacts, type ListenerEntry, type LoadedFragment, SINGLE_SECTIONS } from './fragments.js';
import { deepFreeze, type LoadedConfig } from './parse.js';
import type { ConfigReference } from './references.js';
import { type Config, ConfigSchema, type ListenerConfig, type RouteConfig, type UpstreamConfig } from './schema.js';

/**
 * `ok`: the fragment's current version is in the merged config. `invalid-kept-last-good`: its
 * current version (or its removal) is refused and its last good version stays merged.
 * `invalid-never-applied`: it never was valid and is left out.
 */
export type FragmentState = 'ok' | 'invalid-kept-last-good' | 'invalid-never-applied';

/** One fragment as `/config` lists it. */
export interface FragmentStatus {
  name: string;
  /** Its current version at the source; null for a fragment whose removal was refused. */
  version: string | null;
  state: FragmentState;
  /** The version merged, when it is not `version` (`invalid-kept-last-good`). */
  applied_version?: string;
  /** Why its current version is refused (paths within the fragment). */
  errors?: ConfigIssue[];
}

/** A fragment as the merge gets it: parsed and validated on its own (`loadFragment`), or refused with its issues. */
export interface FragmentInput {
  readonly name: string;
  readonly version: string;
  readonly parsed: { readonly ok: true; readonly loaded: LoadedFragment } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };
}

/** What `FragmentMerger.plan` proposes; `commit` makes it the merger's state. */
export interface MergePlan {
  /** The merged config and its hash (see `FragmentMerger`), undefined when no fragment is valid. */
  readonly loaded: LoadedConfig | undefined;
  /** Issues of every fragment left at its last good version or out, each with `origin`, the fragment's name. */
  readonly issues: readonly ConfigIssue[];
  /** Fragments whose merged version the plan changes (added, changed, removed). */
  readonly changed: number;
  /** @internal the merger's own bookkeeping. */
  readonly internal: unknown;
}

/** One fragment version that is merged. */
interface Merged {
  readonly version: string;
  readonly config: FragmentConfig;
  readonly hash: string;
  readonly facts: FragmentFacts;
  /** This fragment's share of the merged hash (see `combine`). */
  readonly digest: bigint;
  /** Its secret references, paths within the fragment. */
  readonly references: readonly ConfigReference[] | undefined;
}

interface PlanState {
  /** Candidates admitted: name → new merged version, or null for a removal. */
  readonly admitted: Map<string, Merged | null>;
  readonly statuses: Map<string, FragmentStatus | null>;
  readonly sum: bigint;
  readonly listeners: Map<string, ListenerConfig>;
  readonly upstreams: Readonly<Record<string, UpstreamConfig>> | undefined;
  readonly config: Config | undefined;
}

/** Sorted lists of fragment names per key, changed by binary-search insertion: owners come out in fragment-name order. */
class Owners {
  readonly #map = new Map<string, string[]>();
  get(key: string): readonly string[] {
    return this.#map.get(key) ?? [];
  }
  keys(): IterableIterator<string> {
    return this.#map.keys();
  }
  add(key: string, name: string): void {
    const list = this.#map.get(key);
    if (!list) this.#map.set(key, [name]);
    else list.splice(lowerBound(list, name), 0, name);
  }
  remove(key: string, name: string): void {
    const list = this.#map.get(key);
    if (!list) return;
    const at = lowerBound(list, name);
    if (list[at] === name) list.splice(at, 1);
    if (list.length === 0) this.#map.delete(key);
  }
}

function lowerBound(list: readonly string[], name: string): number {
  let low = 0;
  let high = list.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (list[mid]! < name) low = mid + 1;
    else high = mid;
  }
  return low;
}

/** Who defines and refers to what, over the merged fragments: the cross-fragment checks look keys up here instead of walking documents. */
class FragmentIndex {
  readonly sections = new Owners();
  readonly upstreams = new Owners();
  /** Listener name → fragments defining it. */
  readonly listeners = new Owners();
  /** Listener name → fragments with an entry for it (definition or routes added). */
  readonly members = new Owners();
  /** Upstream key → fragments whose routes name it. */
  readonly refs = new Owners();
  /** '' → fragments that define upstreams. */
  readonly withUpstreams = new Owners();

  add(name: string, facts: FragmentFacts): void {
    this.#each(name, facts, (owners, key) => owners.add(key, name));
  }
  remove(name: string, facts: FragmentFacts): void {
    this.#each(name, facts, (owners, key) => owners.remove(key, name));
  }
  #each(_name: string, facts: FragmentFacts, visit: (owners: Owners, key: string) => void): void {
    for (const section of facts.sections) visit(this.sections, section);
    for (const key of facts.upstreams) visit(this.upstreams, key);
    if (facts.upstreams.length > 0) visit(this.withUpstreams, '');
    for (const { name } of facts.listeners) visit(this.listeners, name);
    for (const name of facts.members.keys()) visit(this.members, name);
    for (const key of facts.refs.keys()) visit(this.refs, key);
  }
}

/** The keys a set of fragment versions touch, to check and rebuild only those. */
interface Touched {
  sections: Set<string>;
  upstreams: Set<string>;
  listeners: Set<string>;
  binds: boolean;
  upstreamMap: boolean;
}

function touch(touched: Touched, facts: FragmentFacts | undefined): void {
  if (!facts) return;
  for (const section of facts.sections) touched.sections.add(section);
  for (const key of facts.upstreams) touched.upstreams.add(key);
  for (const key of facts.refs.keys()) touched.upstreams.add(key);
  for (const name of facts.members.keys()) touched.listeners.add(name);
  if (facts.listeners.length > 0 || facts.sections.includes('admin')) touched.binds = true;
  if (facts.upstreams.length > 0) touched.upstreamMap = true;
}

/** The config of a document without sections: the defaults a section no fragment sets takes. */
const DEFAULTS = deepFreeze(ConfigSchema.parse({ listeners: [] }));

const MODULUS = 1n << 256n;

/**
 * The last good version of every fragment of a multi-document config, merged (see the rules in
 * fragments.ts), and the plan of each new set of fragments against it.
 *
 * `plan(inputs)` takes every fragment's current version: fragments whose version differs from the
 * merged one (changed, new, removed, or still refused) are candidates; the others are not looked
 * at beyond a map lookup. A candidate that is invalid on its own (syntax, schema) is refused; the
 * others are merged together, and each cross-fragment problem (a name defined twice, a reference
 * to an upstream or listener no fragment defines, two listeners on one address) refuses the
 * candidate that caused it: a fragment already merged wins over a candidate, and between two
 * candidates the first in name order wins; a candidate that removes what merged fragments use is
 * refused (a refused removal keeps the removed fragment's last good version merged). Refusing
 * one can make others fail, so this repeats until no problem is left. A refused fragment keeps
 * its last good version, or stays out if it never had one. Only the keys the candidates touch
 * are checked, and only the listeners whose routes they touch are rebuilt (the others are the
 * same frozen objects as before).
 *
 * The merged hash is not a hash of the merged config: it is derived from the fragments' own
 * canonical hashes (a sum over `SHA-256(name, hash)` mod 2^256, updated by what changed), so a
 * change to one fragment of 100,000 routes costs no re-hash of the rest. Equal hashes mean equal
 * fragments, so an equal config; the same config split differently has another hash.
 *
 * `commit(plan)` makes a plan the merged state, once its config serves (or is unchanged);
 * a plan never committed changes nothing. Not re-entrant: one plan at a time (the reload queue).
 */
export class FragmentMerger {
  readonly #merged = new Map<string, Merged>();
  readonly #index = new FragmentIndex();
  readonly #statuses = new Map<string, FragmentStatus>();
  /** Names of the fragments whose state is not `ok`: each plan looks at these again, not at every fragment. */
  readonly #troubled = new Set<string>();
  /** Merged fragments that hold secret references. */
  readonly #referencing = new Set<string>();
  #sum = 0n;
  #listeners = new Map<string, ListenerConfig>();
  #upstreams: Readonly<Record<string, UpstreamConfig>> = DEFAULTS.upstreams;
  #config: Config | undefined;
  /** A merged listener's routes → the member fragments' route arrays they are the concatenation of, in order. */
  readonly #parts = new WeakMap<readonly RouteConfig[], readonly (readonly RouteConfig[])[]>();

  /** Every fragment's state after the last committed plan, in name order. */
  statuses(): FragmentStatus[] {
    return [...this.#statuses.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Plan the merge of `inputs`, every fragment's current version (any order; names unique). */
  plan(inputs: readonly FragmentInput[]): MergePlan {
    const current = new Map<string, FragmentInput>();
    for (const input of inputs) current.set(input.name, input);
    const admitted = new Map<string, Merged | null>();
    const refused = new Map<string, readonly ConfigIssue[]>();
    for (const input of inputs) {
      const merged = this.#merged.get(input.name);
      // Same version, same resolved values: a fragment with references is parsed again each time, and may differ.
      if (merged?.version === input.version && input.parsed.ok && input.parsed.loaded.hash === merged.hash) continue;
      if (!input.parsed.ok) refused.set(input.name, input.parsed.issues);
      else {
        const { config, hash, references } = input.parsed.loaded;
        admitted.set(input.name, { version: input.version, config, hash, facts: fragmentFacts(config), digest: digestOf(input.name, hash), references });
      }
    }
    for (const name of this.#merged.keys()) if (!current.has(name)) admitted.set(name, null);

    const touched: Touched = { sections: new Set(), upstreams: new Set(), listeners: new Set(), binds: false, upstreamMap: false };
    for (const [name, next] of admitted) {
      touch(touched, this.#merged.get(name)?.facts);
      touch(touched, next?.facts);
      this.#swap(name, this.#merged.get(name), next ?? undefined);
    }
    try {
      for (;;) {
        const blamed = this.#problems(touched, admitted);
        if (blamed.size === 0) break;
        for (const [name, issues] of blamed) {
          this.#swap(name, admitted.get(name) ?? undefined, this.#merged.get(name));
          admitted.delete(name);
          refused.set(name, issues);
        }
      }
      return this.#build(current, admitted, refused, touched);
    } finally {
      for (const [name, next] of admitted) this.#swap(name, next ?? undefined, this.#merged.get(name));
    }
  }

  /** Make `plan` (the last one planned) the merged state and the fragments' states. */
  commit(plan: MergePlan): void {
    const state = plan.internal as PlanState;
    for (const [name, next] of state.admitted) {
      const previous = this.#merged.get(name);
      this.#swap(name, previous, next ?? undefined);
      if (next) this.#merged.set(name, next);
      else this.#merged.delete(name);
      if (next?.references) this.#referencing.add(name);
      else this.#referencing.delete(name);
    }
    for (const [name, status] of state.statuses) {
      if (status) this.#statuses.set(name, status);
      else this.#statuses.delete(name);
      if (status && status.state !== 'ok') this.#troubled.add(name);
      else this.#troubled.delete(name);
    }
    this.#sum = state.sum;
    this.#listeners = state.listeners;
    if (state.upstreams) this.#upstreams = state.upstreams;
    this.#config = state.config;
  }

  /** The merged config after the last commit. */
  get config(): Config | undefined {
    return this.#config;
  }

  #swap(name: string, from: Merged | undefined, to: Merged | undefined): void {
    // Most edits keep the keys a fragment defines and uses (a route changed): the index holds only those.
    if (from === to || (from && to && sameKeys(from.facts, to.facts))) return;
    if (from) this.#index.remove(name, from.facts);
    if (to) this.#index.add(name, to.facts);
  }

  /** The config of fragment `name` as the index holds it now (admitted candidate, else merged). */
  #fragment(name: string, admitted: Map<string, Merged | null>): Merged {
    const merged = admitted.has(name) ? admitted.get(name) : this.#merged.get(name);
    if (!merged) throw new Error(`fragment ${name} is indexed but not merged`);
    return merged;
  }

  /** The candidates to refuse for the problems among the touched keys, each with its issues. */
  #problems(touched: Touched, admitted: Map<string, Merged | null>): Map<string, ConfigIssue[]> {
    const blamed = new Map<string, ConfigIssue[]>();
    const blame = (name: string, issue: ConfigIssue) => {
      if (!admitted.has(name)) return; // only candidates are refused: the merged fragments were valid together
      const list = blamed.get(name);
      if (list) list.push(issue);
      else blamed.set(name, [issue]);
    };
    const index = this.#index;
    /** Owners of a key defined twice: a merged one wins over candidates, else the first candidate. */
    const duplicates = (owners: readonly string[], issue: (name: string, other: string) => ConfigIssue) => {
      if (owners.length < 2) return;
      const keeper = owners.find((name) => !admitted.has(name)) ?? owners[0]!;
      for (const name of owners) if (name !== keeper && admitted.has(name)) blame(name, issue(name, keeper));
    };
    /** `key` is used by `users` but defined by nobody: refuse the users that are candidates, and the candidates whose change removed it. */
    const dangling = (users: readonly string[], removedBy: (merged: Merged) => ConfigIssue | undefined, used: (name: string) => ConfigIssue) => {
      let mergedUsers = false;
      for (const name of users) {
        if (admitted.has(name)) blame(name, used(name));
        else mergedUsers = true;
      }
      if (!mergedUsers) return;
      for (const name of admitted.keys()) {
        const previous = this.#merged.get(name);
        const issue = previous && removedBy(previous);
        if (issue) blame(name, issue);
      }
    };
    const listOf = (names: readonly string[]) => names.map((n) => JSON.stringify(n)).join(', ');

    for (const section of touched.sections) {
      duplicates(index.sections.get(section), (_name, other) => ({
        path: section,
        message: `${section} is also set by fragment ${JSON.stringify(other)}: one fragment at most sets each top-level section`,
      }));
    }
    for (const key of touched.upstreams) {
      const owners = index.upstreams.get(key);
      duplicates(owners, (_name, other) => ({ path: `upstreams.${key}`, message: `upstream "${key}" is also defined by fragment ${JSON.stringify(other)}` }));
      if (owners.length > 0) continue;
      const users = index.refs.get(key);
      if (users.length === 0) continue;
      dangling(
        users,
        (previous) =>
          previous.facts.upstreams.includes(key)
            ? {
                path: `upstreams.${key}`,
                message: `removes upstream "${key}", which routes of fragment(s) ${listOf(users.filter((u) => !admitted.has(u)))} name: change those first, or together`,
              }
            : undefined,
        (name) => ({
          path: this.#fragment(name, admitted).facts.refs.get(key) ?? '',
          message: `unknown upstream "${key}": no fragment defines it`,
        }),
      );
    }
    for (const listener of touched.listeners) {
      const owners = index.listeners.get(listener);
      duplicates(owners, (name, other) => {
        const at = this.#fragment(name, admitted).facts.members.get(listener);
        return { path: `listeners.${at}.name`, message: `listener "${listener}" is also defined by fragment ${JSON.stringify(other)}` };
      });
      if (owners.length > 0) continue;
      const members = index.members.get(listener);
      if (members.length === 0) continue;
      dangling(
        members,
        (previous) => {
          const at = previous.facts.listeners.find((l) => l.name === listener)?.index;
          if (at === undefined) return undefined;
          const users = listOf(members.filter((u) => !admitted.has(u)));
          return {
            path: `listeners.${at}`,
            message: `removes listener "${listener}", to which fragment(s) ${users} add routes: change those first, or together`,
          };
        },
        (name) => ({
          path: `listeners.${this.#fragment(name, admitted).facts.members.get(listener)}.name`,
          message: `adds routes to listener "${listener}", which no fragment defines (an entry with listen defines it)`,
        }),
      );
    }
    if (touched.binds) this.#bindProblems(admitted, blame);
    return blamed;
  }

  /** Two listeners (or one and the admin API) on one address: refuse the candidate, the later one if both are. */
  #bindProblems(admitted: Map<string, Merged | null>, blame: (name: string, issue: ConfigIssue) => void): void {
    const binds = new BindPlan();
    const adminOwner = this.#index.sections.get('admin')[0];
    const admin = adminOwner === undefined ? DEFAULTS.admin : this.#fragment(adminOwner, admitted).config.admin!;
    binds.add(admin.listen, '0');
    const owners: { fragment: string | undefined; name: string; index: number }[] = [{ fragment: adminOwner, name: 'the admin API', index: -1 }];
    for (const def of this.#definitions(admitted)) {
      const earlier = binds.add(def.listen, String(owners.length));
      owners.push({ fragment: def.fragment, name: `listener "${def.name}"`, index: def.index });
      if (!earlier) continue;
      const other = owners[Number(earlier.owner)]!;
      const self = owners.at(-1)!;
      // A candidate loses; between two candidates the later one. Two merged owners cannot clash (they were merged together).
      const candidates = [self, other].filter((o) => o.fragment !== undefined && admitted.has(o.fragment));
      const loser = candidates[0];
      if (!loser) continue;
      const winner = loser === self ? other : self;
      const where = winner.fragment === undefined ? '' : ` of fragment ${JSON.stringify(winner.fragment)}`;
      const how = earlier.relation === 'same' ? `is also the address of ${winner.name}${where}` : `clashes with ${winner.name}${where}: binding both fails`;
      const path = loser.index < 0 ? 'admin.listen' : `listeners.${loser.index}.listen`;
      blame(loser.fragment!, { path, message: `address ${loser === self ? def.listen : earlier.listen} ${how}` });
    }
  }

  /** Every listener definition the index holds, in fragment-name order, then document order. */
  #definitions(admitted: Map<string, Merged | null>): { fragment: string; name: string; listen: string; index: number }[] {
    const out: { fragment: string; name: string; listen: string; index: number }[] = [];
    for (const name of this.#index.listeners.keys()) {
      for (const fragment of this.#index.listeners.get(name)) {
        const def = this.#fragment(fragment, admitted).facts.listeners.find((l) => l.name === name)!;
        out.push({ fragment, name, listen: def.listen, index: def.index });
      }
    }
    return out.sort((a, b) => (a.fragment < b.fragment ? -1 : a.fragment > b.fragment ? 1 : a.index - b.index));
  }

  #build(current: Map<string, FragmentInput>, admitted: Map<string, Merged | null>, refused: Map<string, readonly ConfigIssue[]>, touched: Touched): MergePlan {
    let sum = this.#sum;
    for (const [name, next] of admitted) {
      const previous = this.#merged.get(name);
      if (previous) sum -= previous.digest;
      if (next) sum += next.digest;
    }
    sum = ((sum % MODULUS) + MODULUS) % MODULUS;

    const statuses = new Map<string, FragmentStatus | null>();
    const issues: ConfigIssue[] = [];
    for (const name of admitted.keys()) statuses.set(name, current.has(name) ? { name, version: current.get(name)!.version, state: 'ok' } : null);
    for (const [name, errors] of refused) {
      const merged = this.#merged.get(name);
      const version = current.get(name)?.version ?? null;
      const withOrigin = errors.map((issue) => ({ ...issue, origin: name }));
      issues.push(...withOrigin);
      statuses.set(
        name,
        merged
          ? { name, version, state: 'invalid-kept-last-good', applied_version: merged.version, errors: withOrigin }
          : { name, version, state: 'invalid-never-applied', errors: withOrigin },
      );
    }
    // A fragment refused before whose current version is the merged one again (an edit undone).
    for (const name of this.#troubled) {
      if (!refused.has(name) && !admitted.has(name)) {
        const merged = this.#merged.get(name);
        statuses.set(name, merged && current.has(name) ? { name, version: merged.version, state: 'ok' } : null);
      }
    }

    let count = this.#merged.size;
    for (const [name, next] of admitted) count += (next ? 1 : 0) - (this.#merged.has(name) ? 1 : 0);
    const upstreams = touched.upstreamMap && !this.#sameUpstreams(admitted) ? this.#mergeUpstreams(admitted) : undefined;
    const listeners = new Map<string, ListenerConfig>();
    let config: Config | undefined;
    let references: readonly ConfigReference[] = [];
    if (count > 0) {
      const sections: Record<string, unknown> = {};
      for (const section of SINGLE_SECTIONS) {
        const owner = this.#index.sections.get(section)[0];
        const value = owner === undefined ? DEFAULTS[section] : this.#fragment(owner, admitted).config[section];
        if (value !== undefined) sections[section] = value;
      }
      const ordered: ListenerConfig[] = [];
      for (const def of this.#definitions(admitted)) {
        const cached = this.#listeners.get(def.name);
        const listener = cached && !touched.listeners.has(def.name) ? cached : this.#mergeListener(def.name, admitted);
        listeners.set(def.name, listener);
        ordered.push(listener);
      }
      // Only the objects made here are frozen: every section in them is a fragment's, frozen already.
      config = Object.freeze({ ...sections, upstreams: upstreams ?? this.#upstreams, listeners: Object.freeze(ordered) } as Config);
      references = this.#mergedReferences(admitted, listeners);
    }
    const changed = admitted.size;
    const hash = createHash('sha256')
      .update(`hotconf-fragments:${sum.toString(16)}`)
      .digest('hex');
    const state: PlanState = { admitted, statuses, sum, listeners, upstreams, config };
    return { loaded: config && { config, hash, ...(references.length > 0 ? { references } : {}) }, issues, changed, internal: state };
  }

  /**
   * The secret references of the merged fragments (as the index holds them now), in fragment-name
   * order, with their keys rewritten to the merged config's paths: a listener entry lands at its
   * listener's index, and its routes after those of the member fragments named before it. The
   * sections and upstreams keep their paths (merged by name). `listeners`: the merged ones, in order.
   */
  #mergedReferences(admitted: Map<string, Merged | null>, listeners: Map<string, ListenerConfig>): readonly ConfigReference[] {
    const names = new Set(this.#referencing);
    for (const [name, next] of admitted) {
      if (next?.references) names.add(name);
      else names.delete(name);
    }
    if (names.size === 0) return [];
    const positions = new Map<string, number>();
    for (const name of listeners.keys()) positions.set(name, positions.size);
    const out: ConfigReference[] = [];
    for (const name of [...names].sort()) {
      const fragment = this.#fragment(name, admitted);
      for (const reference of fragment.references!) {
        const keys = [...reference.keys];
        if (keys[0] === 'listeners') {
          const listener = fragment.config.listeners![Number(keys[1])]!.name;
          keys[1] = String(positions.get(listener));
          if (keys[2] === 'routes' && keys[3] !== undefined) keys[3] = String(this.#routeOffset(listener, name, admitted) + Number(keys[3]));
        }
        out.push({ ...reference, keys, path: keys.join('.') });
      }
    }
    return deepFreeze(out);
  }

  /** How many routes of `listener` come before those of fragment `name`: the member fragments named before it (see `#mergeListener`). */
  #routeOffset(listener: string, name: string, admitted: Map<string, Merged | null>): number {
    let offset = 0;
    for (const member of this.#index.members.get(listener)) {
      if (member === name) break;
      const fragment = this.#fragment(member, admitted);
      offset += fragment.config.listeners![fragment.facts.members.get(listener)!]!.routes.length;
    }
    return offset;
  }

  /**
   * Whether every admitted fragment defines the same upstreams as its merged version (a fragment
   * whose routes changed, re-parsed into new but equal sections): the merged record is then kept,
   * the very same object, so provisioning finds each upstream section unchanged by identity.
   * Costs the admitted fragments' upstreams, not the merged ones.
   */
  #sameUpstreams(admitted: Map<string, Merged | null>): boolean {
    for (const [name, next] of admitted) {
      const before = this.#merged.get(name)?.config.upstreams;
      const after = next?.config.upstreams;
      if (before !== after && !equal(before ?? {}, after ?? {})) return false;
    }
    return true;
  }

  #mergeUpstreams(admitted: Map<string, Merged | null>): Readonly<Record<string, UpstreamConfig>> {
    const out: Record<string, UpstreamConfig> = {};
    for (const name of this.#index.withUpstreams.get('')) Object.assign(out, this.#fragment(name, admitted).config.upstreams);
    return Object.freeze(out);
  }

  /**
   * One listener: its definition with the routes of every member fragment, in name order, then
   * document order. What the routes share with the merged listener's (`sameEnds`) is noted from
   * the member fragments that changed (`concatEnds`), so that those who compare the two (route
   * compiling, provisioning) need not scan 100,000 routes for a one-fragment change.
   */
  #mergeListener(listener: string, admitted: Map<string, Merged | null>): ListenerConfig {
    let definition: ListenerConfig | undefined;
    const parts: (readonly RouteConfig[])[] = [];
    for (const name of this.#index.members.get(listener)) {
      const fragment = this.#fragment(name, admitted);
      const entry: ListenerEntry = fragment.config.listeners![fragment.facts.members.get(listener)!]!;
      if ('listen' in entry) definition = entry;
      parts.push(entry.routes);
    }
    if (!definition) throw new Error(`listener ${listener} has no definition`);
    const previous = this.#listeners.get(listener)?.routes;
    const previousParts = previous && this.#parts.get(previous);
    const routes = (previousParts && replacedParts(previous, previousParts, parts)) ?? concatAll(parts);
    Object.freeze(routes);
    if (previousParts) noteEnds(previous, routes, concatEnds(previous, previousParts, routes, parts));
    this.#parts.set(routes, parts);
    return Object.freeze({ ...definition, routes });
  }
}

/** The concatenation of `parts`: concat copies whole arrays at once; in slices, as a call has a bounded number of arguments. */
function concatAll<T>(parts: readonly (readonly T[])[]): T[] {
  let all: T[] = [];
  for (let i = 0; i < parts.length; i += 8192) all = all.concat(...parts.slice(i, i + 8192));
  return all;
}

/**
 * The concatenation of `parts` made from `previous`, that of `previousParts`, when the parts that
 * differ hold as many items as those they replace (a fragment's routes edited, none added): a
 * copy of `previous` (spread: the builtin that copies a frozen array fast, where slice and
 * concat go item by item) with the differing parts' items written over. Undefined otherwise.
 */
function replacedParts<T>(previous: readonly T[], previousParts: readonly (readonly T[])[], parts: readonly (readonly T[])[]): T[] | undefined {
  const same = scanEnds(previousParts, parts);
  const from = lengthOf(parts, 0, same.head);
  const changed = lengthOf(parts, same.head, parts.length - same.tail);
  if (changed !== lengthOf(previousParts, same.head, previousParts.length - same.tail) || changed > previous.length / 4) return undefined;
  const routes = [...previous];
  let at = from;
  for (let i = same.head; i < parts.length - same.tail; i += 1) for (const item of parts[i]!) routes[at++] = item;
  return routes;
}

/** Whether two fragment versions define and use the same keys, in the same order: all `FragmentIndex` holds of them. */
function sameKeys(a: FragmentFacts, b: FragmentFacts): boolean {
  return (
    sameItems(a.sections, b.sections) &&
    sameItems(a.upstreams, b.upstreams) &&
    sameItems(
      a.listeners.map((l) => l.name),
      b.listeners.map((l) => l.name),
    ) &&
    sameItems([...a.members.keys()], [...b.members.keys()]) &&
    sameItems([...a.refs.keys()], [...b.refs.keys()])
  );
}

/** A fragment's share of the merged hash: SHA-256 of its name and canonical hash, as a number. */
function digestOf(name: string, hash: string): bigint {
  return BigInt(`0x${createHash('sha256').update(name).update('\0').update(hash).digest('hex')}`);
}
