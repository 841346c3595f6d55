import equal from 'fast-deep-equal';
import { sameItems, sameValues } from '../core/identity.js';
import { ConfigHasher } from './hash.js';
import { deepFreeze, type LoadedConfig, type ParseOptions, parseDocument, prototypeKeyIssues, resolveThenValidate, validateConfig } from './parse.js';
import { type Config, ConfigSchema, ListenerSchema, type RouteConfig, type UpstreamConfig, UpstreamSchema } from './schema.js';

/** The schema of one route, and of one upstream's name, as `ConfigSchema` applies them. */
const RouteSchema = ListenerSchema.shape.routes.unwrap().element;
const UpstreamNameSchema = ConfigSchema.shape.upstreams.unwrap().keyType;

/** How many sections the last `load` ran through their schema (the rest were the previous document's). */
export interface ValidationCounts {
  /** Routes validated one by one. */
  routes: number;
  /** Upstreams validated one by one. */
  upstreams: number;
  /** 1 when the rest (every listener but its routes, `admin`, `tracing`, the top-level values) was validated. */
  rest: number;
  /** 1 when the whole document went through `validateConfig` (the first one, an invalid one, or one of another shape). */
  full: number;
}

/** Plain data that is an object and not an array. */
export type Data = Record<string, unknown>;

/**
 * A validated document as `IncrementalLoader` cuts it into sections: a config, or a fragment
 * config (`FragmentConfig`), whose `listeners` and `upstreams` may be unset (read as none).
 */
export interface Sectioned {
  readonly listeners?: readonly { readonly routes: readonly RouteConfig[] }[];
  readonly upstreams?: Readonly<Record<string, UpstreamConfig>>;
}

/**
 * What `IncrementalLoader` needs to know of a kind of document: a config (`CONFIG_DOCUMENT`), a
 * fragment (`FRAGMENT_DOCUMENT`, fragments.ts). Routes are checked by `RouteSchema` and upstreams
 * by `UpstreamSchema` one by one; everything else is the kind's.
 */
export interface DocumentKind<C extends Sectioned> {
  /**
   * The whole document validated and deeply frozen (`validateConfig`), what any document the
   * loader cannot take section by section gets.
   * @throws ConfigInvalidError naming what is wrong
   */
  validate(data: unknown, origin?: string): C;
  /**
   * The rest of a document validated: `rest` is the document with each listener's `routes` (where
   * set) `[]` and `upstreams` (where set) `{}`. The result is what `validate` would give for
   * `rest` (listeners with `routes: []`), keys in its order; undefined when `validate` of the
   * whole document would throw for anything in the rest (its checks across listeners included).
   * Its prototype keys were checked.
   */
  rest(rest: Data): Data | undefined;
  /** Whether every route's `upstream` must name an upstream of the same document (`ConfigSchema`'s one check across sections). */
  readonly upstreamsNamed: boolean;
  /** Whether listener `listener` (validated, its routes taken out) must have a route. */
  routesRequired(listener: object): boolean;
}

/** Configs for `IncrementalLoader`: `validateConfig`, and `ConfigSchema` of the rest. */
export const CONFIG_DOCUMENT: DocumentKind<Config> = {
  validate: validateConfig,
  rest: (rest) => {
    const result = ConfigSchema.safeParse(rest);
    return result.success ? result.data : undefined;
  },
  upstreamsNamed: true,
  routesRequired: () => false,
};

/** A loaded document: the config (or fragment config) and its canonical hash (`LoadedConfig`, `LoadedFragment`). */
export type Loaded<C> = Omit<LoadedConfig, 'config'> & { config: C };

/**
 * The parsed document cut into its sections, each with its JSON text (`JSON.stringify`, key
 * order kept), the key a section is recognised by in the next document.
 */
interface Sections {
  /** The document without its routes (each listener's `routes`, if set, is `[]`) and with `upstreams`, if set, `{}`. */
  readonly rest: Data;
  readonly restJson: string;
  /** JSON of each top-level value but `listeners` and `upstreams`, by key. */
  readonly topJson: ReadonlyMap<string, string>;
  /** JSON of each listener without its routes. */
  readonly listenerJson: readonly string[];
  /** Each listener's routes. */
  readonly routes: readonly (readonly unknown[])[];
  /** Each upstream in document order: name, data, JSON. */
  readonly upstreams: readonly { name: string; data: unknown; json: string }[];
}

/** What the last valid document left to the next one. */
interface Previous {
  readonly config: Sectioned;
  readonly sections: Sections;
  /** The JSON of each route's data, by listener and position, where it was needed (a route that was not where it had been). */
  readonly routeJson: (string | undefined)[][];
  /** Validated upstreams by their data's JSON. */
  readonly upstreams: ReadonlyMap<string, readonly UpstreamConfig[]>;
}

/**
 * `loadConfig` for a sequence of documents that differ a little each time (one file, saved
 * again): the result of each `load` is exactly `loadConfig`'s (the same config, deeply equal;
 * the same hash; the same `ConfigInvalidError`, issue for issue), and costs in proportion to
 * what changed since the last valid document, parsing aside. Given `FRAGMENT_DOCUMENT`
 * (fragments.ts), the same of `loadFragment` for the versions of one fragment; the text below
 * says config and `ConfigSchema` for what is the kind's (`DocumentKind`).
 *
 * Sections are each route of each listener, each upstream, and the rest (every listener but its
 * routes, the top-level values). A section whose data is the same as one of the last valid
 * document's is that section's validated, frozen object again, the same object: a route is
 * compared (deep equality) with the one at its place, or one place off once a route was
 * inserted or removed before it, and when many moved, looked up by its JSON text among all of
 * the last document's; an upstream, a listener and the rest by their JSON text. Only the others
 * run through their schema
 * (`RouteSchema`, `UpstreamSchema`; the rest through `ConfigSchema`, whose checks across
 * listeners run on it then). What spans sections is checked over the whole config by lookups:
 * every route's `upstream` names an upstream. Anything invalid, and any document not shaped as
 * a config (so its sections cannot be told apart), goes through `validateConfig` whole: errors
 * are its errors. A config is structurally shared with the last one: unchanged listeners,
 * routes and upstreams are the same frozen objects, so `ConfigHasher` hashes what is new.
 *
 * Secret references (`${env:..}`, `${file:..}`) are resolved before validation, as
 * `loadConfig` does, in a document that holds any `${` (its sections are then cut from the
 * resolved data: a secret that changed is a changed section); one without skips that walk.
 * Neither JSON nor deep equality tells `-0` from `0`: a section differing only so is the same
 * section, as its canonical hash is the same.
 *
 * Memory: it keeps the last valid document's parsed data and config, and its `ConfigHasher` the
 * canonical JSON of that config's sections.
 *
 * Not safe for concurrent use (one document at a time); the parser's worker owns one.
 */
export class IncrementalLoader<C extends Sectioned = Config> {
  readonly #kind: DocumentKind<C>;
  readonly #hasher = new ConfigHasher();
  #previous: Previous | undefined;
  #counts: ValidationCounts = { routes: 0, upstreams: 0, rest: 0, full: 0 };

  /** `kind`: what the documents are (default `CONFIG_DOCUMENT`; `FRAGMENT_DOCUMENT` for a fragment's versions). */
  constructor(kind?: DocumentKind<C>) {
    this.#kind = kind ?? (CONFIG_DOCUMENT as unknown as DocumentKind<C>);
  }

  /** What the last `load` validated. */
  get counts(): Readonly<ValidationCounts> {
    return this.#counts;
  }

  /**
   * `loadConfig(text, options)`.
   * @throws ConfigInvalidError as `loadConfig` does
   */
  load(text: string | Uint8Array, options: ParseOptions = {}): Loaded<C> {
    return this.loadParsed(parseDocument(text, options), options);
  }

  /**
   * `load` of a document already parsed (`parseDocument`'s `data`): references, validation, hash.
   * @throws ConfigInvalidError as `loadConfig` does
   */
  loadParsed(data: unknown, options: ParseOptions = {}): Loaded<C> {
    this.#counts = { routes: 0, upstreams: 0, rest: 0, full: 0 };
    const sections = sectionsOf(data);
    let config: C;
    let references: LoadedConfig['references'];
    if (sections !== undefined && !mayReference(data)) {
      config = this.#validate(data, sections, options.origin);
    } else {
      const resolved = resolveThenValidate(data, options, (resolvedData, origin) => this.#validate(resolvedData, sectionsOf(resolvedData), origin));
      config = resolved.value;
      if (resolved.references.length > 0) references = resolved.references;
    }
    return { config, hash: this.#hasher.hash(config), ...(references ? { references } : {}) };
  }

  #validate(data: unknown, sections: Sections | undefined, origin: string | undefined): C {
    const incremental = sections && this.#previous && this.#incremental(sections);
    const config = (incremental?.config as C | undefined) ?? this.#full(data, origin);
    this.#previous = sections && remember(config, sections, incremental?.routeJson);
    return config;
  }

  /** The kind's `validate(data)` (`validateConfig`), which throws what is wrong. */
  #full(data: unknown, origin: string | undefined): C {
    this.#counts.full = 1;
    return this.#kind.validate(data, origin);
  }

  /** The config of valid `sections`, sharing the last config's objects, and the JSON of routes it computed; undefined when anything is invalid. */
  #incremental(sections: Sections): { config: Sectioned; routeJson: Previous['routeJson'] } | undefined {
    const previous = this.#previous!;
    const rest = this.#rest(sections, previous);
    if (rest === undefined) return undefined;
    const upstreams = Object.hasOwn(rest, 'upstreams') ? this.#upstreams(sections, previous) : NO_UPSTREAMS;
    if (upstreams === undefined) return undefined;
    const listeners: Listener[] = [];
    const found: RouteSearch = { used: new Set(), misses: 0, json: sections.routes.map((list) => new Array(list.length)) };
    const beforeListeners = previous.config.listeners ?? [];
    for (const [i, shell] of (rest.listeners ?? []).entries()) {
      // Routes are looked for in the last config's listener this one was (it may have moved), else in the one at its place.
      const was = beforeListeners.indexOf(shell);
      const routes = this.#routes(i, was >= 0 ? was : i, sections.routes[i]!, previous, found);
      if (routes === undefined || (routes.length === 0 && this.#kind.routesRequired(shell))) return undefined;
      // ConfigSchema's one check across sections: every route names a defined upstream.
      if (this.#kind.upstreamsNamed && routes.some((route) => route.upstream !== undefined && !Object.hasOwn(upstreams, route.upstream))) return undefined;
      // `shell` is the last config's listener when it is unchanged but for its routes.
      const same = was >= 0 && sameItems(shell.routes, routes);
      listeners.push(same ? shell : { ...shell, routes });
    }
    const before = previous.config;
    const config: Data = { ...rest };
    if (Object.hasOwn(rest, 'upstreams')) config.upstreams = upstreams;
    if (Object.hasOwn(rest, 'listeners')) config.listeners = before.listeners && sameItems(before.listeners, listeners) ? before.listeners : listeners;
    return { config: sameValues(before, config) ? before : deepFreeze(config), routeJson: found.json };
  }

  /**
   * Everything but routes and upstreams: the last config's when the rest's JSON is the same,
   * else `ConfigSchema` of it (its checks across listeners included), each top-level value
   * and listener (routes aside) whose JSON is unchanged replaced by the last config's object.
   */
  #rest(sections: Sections, previous: Previous): Rest | undefined {
    if (sections.restJson === previous.sections.restJson) return previous.config as Rest;
    if (prototypeKeyIssues(sections.rest).length > 0) return undefined;
    this.#counts.rest = 1;
    const validated = this.#kind.rest(sections.rest);
    if (validated === undefined) return undefined;
    const rest: Data = { ...validated };
    for (const key of Object.keys(rest)) {
      // Unset in both (a default) is unchanged too.
      const same = key !== 'listeners' && key !== 'upstreams' && previous.sections.topJson.get(key) === sections.topJson.get(key);
      if (same && Object.hasOwn(previous.config, key)) rest[key] = (previous.config as Data)[key];
    }
    // Listeners by their JSON, wherever they were (names are unique, so their JSON is too).
    const listeners = validated.listeners as Listener[] | undefined;
    if (listeners !== undefined) {
      const was = new Map(previous.sections.listenerJson.map((json, i) => [json, previous.config.listeners![i]!]));
      rest.listeners = listeners.map((listener, i) => was.get(sections.listenerJson[i]!) ?? listener);
    }
    return rest as Rest;
  }

  /** The upstreams, each the last config's when its JSON is one of the last; undefined if any is invalid. */
  #upstreams(sections: Sections, previous: Previous): Upstreams | undefined {
    const taken = new Map<string, number>();
    const upstreams: Record<string, UpstreamConfig> = {};
    for (const { name, data, json } of sections.upstreams) {
      if (!Object.hasOwn(previous.config.upstreams ?? NO_UPSTREAMS, name)) {
        if (prototypeKeyIssues({ [name]: data }).length > 0 || !UpstreamNameSchema.safeParse(name).success) return undefined;
      }
      let upstream = reuse(previous.upstreams, json, taken);
      if (upstream === undefined) {
        if (prototypeKeyIssues(data).length > 0) return undefined;
        this.#counts.upstreams += 1;
        const result = UpstreamSchema.safeParse(data);
        if (!result.success) return undefined;
        upstream = result.data;
      }
      upstreams[name] = upstream;
    }
    const before = previous.config.upstreams;
    return before !== undefined && sameValues(before, upstreams) ? before : upstreams;
  }

  /**
   * Listener `i`'s routes, each the last config's route at the same place in listener `from` (or one off, once a
   * route was inserted or removed before it) when its data is deeply equal to that one's, else
   * (routes moved: more than `SEARCH_AFTER` were not near where they had been) one of the last
   * config's routes with data of the same JSON, else validated; undefined if any is invalid. No
   * route of the last config is used twice.
   */
  #routes(i: number, from: number, routes: readonly unknown[], previous: Previous, found: RouteSearch): RouteConfig[] | undefined {
    const out: RouteConfig[] = [];
    const dataBefore = previous.sections.routes[from] ?? [];
    const before = previous.config.listeners?.[from]?.routes ?? [];
    /** Where the last route found was, relative to its place now: -1 after a route was inserted, 1 after one was removed. */
    let shift = 0;
    const at = (k: number, data: unknown) => k >= 0 && k < before.length && !found.used.has(before[k]!) && equal(data, dataBefore[k]);
    for (const [j, data] of routes.entries()) {
      let route: RouteConfig | undefined;
      let k = j + shift;
      if (!at(k, data)) k = at(k - 1, data) ? k - 1 : at(k + 1, data) ? k + 1 : -1;
      if (k >= 0) {
        shift = k - j;
        route = before[k]!;
        found.json[i]![j] = previous.routeJson[from]![k];
      } else {
        let json: string;
        try {
          json = JSON.stringify(data);
        } catch {
          return undefined; // a cycle: validateConfig refuses it
        }
        found.json[i]![j] = json;
        found.misses += 1;
        if (found.misses > SEARCH_AFTER) {
          found.byJson ??= routesByJson(previous);
          route = found.byJson.get(json)?.find((candidate) => !found.used.has(candidate));
        }
        if (route === undefined) {
          if (prototypeKeyIssues(data).length > 0) return undefined;
          this.#counts.routes += 1;
          const result = RouteSchema.safeParse(data);
          if (!result.success) return undefined;
          route = deepFreeze(result.data);
        }
      }
      found.used.add(route);
      out.push(route);
    }
    return out;
  }
}

type Listener = NonNullable<Sectioned['listeners']>[number];
type Upstreams = NonNullable<Sectioned['upstreams']>;

/** The rest of a document validated (`DocumentKind.rest`), or the last config when the rest is unchanged. */
type Rest = Data & Sectioned;

const NO_UPSTREAMS: Upstreams = Object.freeze({});

/** Routes not where they had been, after which the last config's routes are searched by JSON (a route inserted early moves every later one). */
const SEARCH_AFTER = 16;

/** What `#routes` keeps across the listeners of one document. */
interface RouteSearch {
  /** Routes of the last config given to this one. */
  readonly used: Set<RouteConfig>;
  /** Routes not found where they had been. */
  misses: number;
  /** The last config's routes by their data's JSON, once searched. */
  byJson?: ReadonlyMap<string, readonly RouteConfig[]>;
  /** The JSON of this document's routes, where known. */
  readonly json: (string | undefined)[][];
}

/** The last config's routes by their data's JSON (several when the document repeated a route), computing what JSON was not known. */
function routesByJson(previous: Previous): Map<string, RouteConfig[]> {
  const byJson = new Map<string, RouteConfig[]>();
  previous.sections.routes.forEach((list, i) => {
    list.forEach((data, j) => {
      const json = (previous.routeJson[i]![j] ??= JSON.stringify(data));
      append(byJson, json, previous.config.listeners![i]!.routes[j]!);
    });
  });
  return byJson;
}

/**
 * The next unused object validated from data of JSON `json` (`taken` counts those used), so
 * that a document repeating a section gets one object per occurrence, as a full validation does.
 */
function reuse<T>(validated: ReadonlyMap<string, readonly T[]>, json: string, taken: Map<string, number>): T | undefined {
  const all = validated.get(json);
  const used = taken.get(json) ?? 0;
  if (all === undefined || used >= all.length) return undefined;
  taken.set(json, used + 1);
  return all[used];
}

/** What `config` (validated from data cut into `sections`; `routeJson` of its routes where known) leaves to the next document. */
function remember(config: Sectioned, sections: Sections, routeJson = sections.routes.map((list) => new Array<string | undefined>(list.length))): Previous {
  const upstreams = new Map<string, UpstreamConfig[]>();
  for (const { name, json } of sections.upstreams) append(upstreams, json, config.upstreams![name]!);
  return { config, sections, routeJson, upstreams };
}

function append<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function isData(value: unknown): value is Data {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `data` cut into sections, or undefined when it is not shaped as a config (not an object,
 * `listeners` not a list of objects, `routes` or `upstreams` of the wrong type) or is cyclic:
 * such a document is invalid, and `validateConfig` says why. Unset `listeners` are none (a
 * fragment may have none; a config without is refused by the kind's `rest`).
 */
function sectionsOf(data: unknown): Sections | undefined {
  if (!isData(data)) return undefined;
  const hasListeners = Object.hasOwn(data, 'listeners');
  if (hasListeners && (!Array.isArray(data.listeners) || !data.listeners.every(isData))) return undefined;
  if (Object.hasOwn(data, 'upstreams') && !isData(data.upstreams)) return undefined;
  const listeners = hasListeners ? (data.listeners as Data[]) : [];
  if (listeners.some((listener) => Object.hasOwn(listener, 'routes') && !Array.isArray(listener.routes))) return undefined;
  try {
    // Spread defines own properties: a `__proto__` key stays a key, for the prototype check to refuse.
    const shells = listeners.map((listener) => (Object.hasOwn(listener, 'routes') ? { ...listener, routes: [] } : listener));
    const rest: Data = { ...data, ...(hasListeners ? { listeners: shells } : {}), ...(Object.hasOwn(data, 'upstreams') ? { upstreams: {} } : {}) };
    const topJson = new Map<string, string>();
    for (const [key, value] of Object.entries(data)) {
      if (key !== 'listeners' && key !== 'upstreams') topJson.set(key, JSON.stringify(value));
    }
    return {
      rest,
      restJson: JSON.stringify(rest),
      topJson,
      listenerJson: shells.map((shell) => JSON.stringify(shell)),
      routes: listeners.map((listener) => (listener.routes as unknown[] | undefined) ?? []),
      upstreams: Object.entries((data.upstreams as Data | undefined) ?? {}).map(([name, upstream]) => ({
        name,
        data: upstream,
        json: JSON.stringify(upstream),
      })),
    };
  } catch {
    return undefined; // a cycle (YAML aliases can make one): validateConfig refuses it
  }
}

/** Deeper than any document parses to without aliases making a cycle (`MAX_NESTING_DEPTH` is 64). */
const MAX_WALK_DEPTH = 1000;

/**
 * Whether any string value of `data` may be a secret reference (`resolveReferences` changes only
 * strings holding `${`); true too when `data` is nested deeper than `MAX_WALK_DEPTH` (a cycle).
 */
function mayReference(data: unknown, depth = 0): boolean {
  if (typeof data === 'string') return data.includes('${');
  if (data === null || typeof data !== 'object') return false;
  if (depth > MAX_WALK_DEPTH) return true;
  for (const value of Array.isArray(data) ? data : Object.values(data)) if (mayReference(value, depth + 1)) return true;
  return false;
}
