import { z } from 'zod';
import type { ConfigIssue } from '../core/errors.js';
import { ConfigInvalidError } from '../core/errors.js';
import { canonicalHash } from './hash.js';
import type { Data, DocumentKind } from './incremental.js';
import { deepFreeze, type ParseOptions, parseDocument, prototypeKeyIssues, resolveThenValidate, zodIssues } from './parse.js';
import type { ConfigReference } from './references.js';
import { AdminSchema, ConfigSchema, ListenerSchema, RouteSchema, TracingSchema } from './schema.js';

/**
 * Fragments: one config split across documents (the files of `--config-dir`, the keys under an
 * etcd `--prefix`), validated one by one and merged by name. The pure half: a fragment's schema
 * (`loadFragment`) and what a set of valid fragments contributes (`fragmentFacts`); the merge
 * with last-good-per-fragment is `FragmentMerger` (fragment-merge.ts).
 *
 * Merge rules (after Traefik's file provider, which merges a directory by name, without its
 * failure mode, #8921, where one bad file drops every file):
 * - `listeners`: an entry with `listen` defines the listener of that `name` (one fragment may
 *   define it); an entry with only `name` and `routes` adds routes to the listener of that name
 *   defined by any fragment. A listener's routes are those of every fragment that defines or adds
 *   to it, in fragment-name order, then document order.
 * - `upstreams`: merged by key; one fragment may define each key. A route may name an upstream
 *   any fragment defines.
 * - `admin`, `tracing`, `shutdown_timeout_ms`, `tunnel_close_delay_ms` (`SINGLE_SECTIONS`): one
 *   fragment at most sets each; unset, the defaults of a single document apply.
 */

/** Total size of a config's fragments by default, in bytes (64 MiB: about 900,000 routes of the bench's shape). */
export const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024;

/** Top-level sections that are not merged by name: one fragment at most sets each. */
export const SINGLE_SECTIONS = ['admin', 'shutdown_timeout_ms', 'tunnel_close_delay_ms', 'tracing'] as const;
export type SingleSection = (typeof SINGLE_SECTIONS)[number];

/** A listener entry without `listen`: routes added to the listener of that name, which another fragment (or this one) defines. */
export const ListenerRoutesSchema = z.strictObject({
  name: ListenerSchema.shape.name,
  routes: z.array(RouteSchema).min(1),
});

/** A listener entry of a fragment: a definition (`listen` set) or routes added to one. */
export type ListenerEntry = z.infer<typeof ListenerSchema> | z.infer<typeof ListenerRoutesSchema>;

/** The sections of a fragment, each optional and without the document defaults; `listeners` entries are checked one by one. */
const FragmentSchema = z.strictObject({
  admin: AdminSchema.optional(),
  shutdown_timeout_ms: ConfigSchema.shape.shutdown_timeout_ms.unwrap().optional(),
  tunnel_close_delay_ms: ConfigSchema.shape.tunnel_close_delay_ms.unwrap().optional(),
  tracing: TracingSchema.optional(),
  upstreams: ConfigSchema.shape.upstreams.unwrap().optional(),
  listeners: z.array(z.unknown()).optional(),
});

/**
 * The shape of a fragment document for JSON Schema (`hotconf schema --fragment`): `FragmentSchema`
 * with each `listeners` entry a listener definition or routes added by name, as
 * `validateFragment` checks them one by one. Not used to validate (its messages would name the
 * union, not the entry's own problem).
 */
export const FragmentDocumentSchema = FragmentSchema.extend({
  listeners: z.array(z.union([ListenerSchema, ListenerRoutesSchema])).optional(),
});

/** A validated, defaults-filled, deeply frozen fragment. */
export type FragmentConfig = Omit<z.infer<typeof FragmentSchema>, 'listeners'> & { listeners?: readonly ListenerEntry[] };

/** A valid fragment and its canonical hash (SHA-256 hex of the defaults-filled fragment, references resolved). */
export interface LoadedFragment {
  config: FragmentConfig;
  hash: string;
  /** The secret references the fragment held, paths within the fragment (their values are in `config`); absent: none. */
  references?: readonly ConfigReference[];
}

/** What a listener entry without `listen` may hold, said where a key is refused. */
const ROUTES_ONLY = 'a listener entry without listen only adds routes to the listener of that name that a fragment defines: it may hold name and routes';

/**
 * Validate parsed data as a fragment: the schema of a document, but every section optional and
 * listener entries either definitions or routes added by name (see the merge rules above). Keys
 * named `__proto__`, `constructor` or `prototype` are refused at any depth, as in a document.
 * References to upstreams and listeners of other fragments are checked when fragments merge.
 *
 * @throws ConfigInvalidError with one `{path, message}` per problem, paths within the fragment
 */
export function validateFragment(data: unknown, origin?: string): FragmentConfig {
  const polluting = prototypeKeyIssues(data);
  if (polluting.length > 0) throw new ConfigInvalidError(polluting, origin);
  const result = FragmentSchema.safeParse(data);
  const issues: ConfigIssue[] = result.success ? [] : zodIssues(result.error, data);
  const listeners: ListenerEntry[] = [];
  const entries = result.success ? (result.data.listeners ?? []) : [];
  const names = new Map<string, number>();
  entries.forEach((entry, i) => {
    const defines = entry !== null && typeof entry === 'object' && Object.hasOwn(entry, 'listen');
    const parsed = (defines ? ListenerSchema : ListenerRoutesSchema).safeParse(entry);
    if (!parsed.success) {
      for (const issue of zodIssues(parsed.error, entry)) {
        const message = !defines && issue.message === 'unknown key' ? `unknown key (${ROUTES_ONLY})` : issue.message;
        issues.push({ path: issue.path ? `listeners.${i}.${issue.path}` : `listeners.${i}`, message });
      }
      return;
    }
    const same = names.get(parsed.data.name);
    if (same !== undefined) {
      issues.push({ path: `listeners.${i}.name`, message: `listener "${parsed.data.name}" appears twice in this fragment (also listeners.${same}.name)` });
    } else names.set(parsed.data.name, i);
    listeners.push(parsed.data);
  });
  if (!result.success || issues.length > 0) throw new ConfigInvalidError(issues, origin);
  const { listeners: _entries, ...sections } = result.data;
  return deepFreeze(entries.length > 0 ? { ...sections, listeners } : sections);
}

/** A listener entry without `listen` as `IncrementalLoader` validates it: its routes taken out (`[]`), checked one by one. */
const RoutesShellSchema = ListenerRoutesSchema.extend({ routes: z.tuple([]) });

/**
 * Fragments for `IncrementalLoader` (`new IncrementalLoader(FRAGMENT_DOCUMENT)` loads the
 * versions of one fragment as `loadFragment` does): `validateFragment`, and the rest checked as
 * it checks it, each listener entry a definition or routes added (which must have a route), no
 * name twice. No check across sections: a route may name an upstream of another fragment.
 */
export const FRAGMENT_DOCUMENT: DocumentKind<FragmentConfig> = {
  validate: validateFragment,
  rest: (rest) => {
    const result = FragmentSchema.safeParse(rest);
    if (!result.success) return undefined;
    const { listeners: entries = [], ...sections } = result.data;
    const listeners: Data[] = [];
    const names = new Set<string>();
    for (const entry of entries) {
      const defines = Object.hasOwn(entry as Data, 'listen');
      const parsed = (defines ? ListenerSchema : RoutesShellSchema).safeParse(entry);
      if (!parsed.success || names.has(parsed.data.name)) return undefined;
      names.add(parsed.data.name);
      listeners.push(parsed.data);
    }
    return listeners.length > 0 ? { ...sections, listeners } : sections;
  },
  upstreamsNamed: false,
  routesRequired: (listener) => !Object.hasOwn(listener, 'listen'),
};

/**
 * `parseDocument` + `resolveReferences` + `validateFragment` + canonical hash: what `loadConfig`
 * is for a document (the same references, errors and scrubbing). `maxDocumentBytes` is the limit
 * of one fragment.
 * @throws ConfigInvalidError as the three
 */
export function loadFragment(text: string | Uint8Array, options: ParseOptions = {}): LoadedFragment {
  const { value: config, references } = resolveThenValidate(parseDocument(text, options), options, validateFragment);
  return { config, hash: canonicalHash(config), ...(references.length > 0 ? { references } : {}) };
}

/** What one valid fragment defines and refers to: the keys the merge indexes it by. Paths are within the fragment. */
export interface FragmentFacts {
  readonly sections: readonly SingleSection[];
  /** Upstream keys it defines. */
  readonly upstreams: readonly string[];
  /** Listeners it defines: name, `listen`, entry index. */
  readonly listeners: readonly { name: string; listen: string; index: number }[];
  /** Listener names it has an entry for (definition or routes added), with the entry's index. */
  readonly members: ReadonlyMap<string, number>;
  /** Upstream keys its routes name, each with the path of the first route naming it. */
  readonly refs: ReadonlyMap<string, string>;
}

/** The facts of a valid fragment, in one pass over its entries and routes. */
export function fragmentFacts(config: FragmentConfig): FragmentFacts {
  const sections = SINGLE_SECTIONS.filter((section) => config[section] !== undefined);
  const listeners: { name: string; listen: string; index: number }[] = [];
  const members = new Map<string, number>();
  const refs = new Map<string, string>();
  (config.listeners ?? []).forEach((entry, i) => {
    members.set(entry.name, i);
    if ('listen' in entry) listeners.push({ name: entry.name, listen: entry.listen, index: i });
    entry.routes.forEach((route, j) => {
      if (route.upstream !== undefined && !refs.has(route.upstream)) refs.set(route.upstream, `listeners.${i}.routes.${j}.upstream`);
    });
  });
  return { sections, upstreams: Object.keys(config.upstreams ?? {}), listeners, members, refs };
}
