import fc from 'fast-check';
import { ConfigInvalidError } from '../../lib/core/errors.js';

// Random configs and fragments, valid and invalid, and random edits of them: for the specs that
// hold an incremental loader to the whole-document one (`IncrementalLoader` against `loadConfig`,
// and against `loadFragment`).

/** A load's outcome, comparable: the loaded config, or the error's origin and issues. */
export function outcome(load: () => unknown): unknown {
  try {
    return { ok: load() };
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    return { origin: error.origin, issues: error.issues, message: error.message };
  }
}

/** Mostly `valid`, one time in twenty one of `invalid`. */
export const orBad = <T>(valid: fc.Arbitrary<T>, invalid: readonly unknown[]) =>
  fc.oneof({ arbitrary: valid as fc.Arbitrary<unknown>, weight: 19 }, { arbitrary: fc.constantFrom(...invalid), weight: 1 });
export const pick = <T>(valid: readonly T[], invalid: readonly unknown[]) => orBad(fc.constantFrom(...valid), invalid);
// Routes name `a` and `b` mostly, which every config defines; `c` may be missing.
export const name = orBad(fc.constantFrom('a', 'b', 'a', 'b', 'c'), ['', 'bad name', 'constructor']);
const prefix = pick(['/', '/a', '/b/c'], ['a', '/a b']);
export const route = orBad(
  fc.oneof(
    fc.record(
      {
        path_prefix: prefix,
        respond: fc.record(
          { status: pick([200, 404], [100, 204]), body: fc.constantFrom('', 'hi'), headers: pick([{ 'x-a': '1' }], [{ connection: 'x' }]) },
          { requiredKeys: ['status'] },
        ),
      },
      { requiredKeys: ['path_prefix', 'respond'] },
    ),
    fc.record({ path_prefix: prefix, upstream: name, strip_prefix: fc.boolean() }, { requiredKeys: ['path_prefix', 'upstream'] }),
    fc.record({ path_prefix: prefix, redirect: fc.record({ scheme: pick(['http', 'https'], ['ftp']), status: pick([301, 308], [200]) }) }),
  ),
  [null, 'route', {}, { path_prefix: '/', respond: { status: 200 }, extra: 1 }, { path_prefix: '/', upstream: 'a', respond: { status: 200 } }],
);
export const upstream = fc.record(
  {
    targets: orBad(fc.uniqueArray(fc.constantFrom('http://127.0.0.1:1', 'http://127.0.0.1:2', 'https://h:3'), { minLength: 1, maxLength: 3 }), [
      [],
      ['ftp://x'],
      ['127.0.0.1:3'],
      ['http://127.0.0.1:1/'],
      ['http://127.0.0.1:1', 'http://127.0.0.1:1'],
    ]),
    retries: pick([0, 2], [11, -1, '1']),
  },
  { requiredKeys: ['targets'] },
);
/** Listener `id`: its own name and port, but now and then another's, or a bad one. */
export const listenerOf = (id: number) =>
  fc.record(
    {
      name: pick([`l${id}`], ['l0', '-x']),
      listen: pick([`127.0.0.1:${8080 + id}`], ['localhost:8080', '127.0.0.1:9901', 'nope']),
      routes: orBad(fc.array(route, { maxLength: 5 }), ['x']),
      max_connections: pick([10], [0]),
    },
    { requiredKeys: ['name', 'listen'] },
  );
export const listener = fc.nat({ max: 3 }).chain(listenerOf);
export const upstreams = fc.record({ a: upstream, b: upstream, c: upstream }, { requiredKeys: ['a', 'b'], noNullPrototype: true });
/** Top-level values of a config or fragment, each optional. */
export const topFields = {
  shutdown_timeout_ms: pick([0, 100], [-1]),
  admin: fc.record({ listen: pick(['127.0.0.1:9901', '127.0.0.1:9902'], ['127.0.0.1:8080']) }),
  tracing: fc.record({ sample_ratio: pick([0.5], [2]) }),
};
const top = fc.record(topFields, { requiredKeys: [] });

/** One edit: what it changes, at which (wrapped) indices, to what; `listener` replaces a listener (entry). */
export const editOf = (listener: fc.Arbitrary<unknown>) =>
  fc.record({
    kind: fc.constantFrom('route', 'insert', 'remove', 'upstream', 'unset-upstream', 'listener', 'rename', 'top', 'same'),
    i: fc.nat(),
    j: fc.nat(),
    route,
    upstream,
    listener,
    name,
    top,
  });
export type Edit = ReturnType<typeof editOf> extends fc.Arbitrary<infer E> ? E : never;

/** `data` with `e` applied (a copy). */
export function applyEdit(data: Record<string, unknown>, e: Edit): Record<string, unknown> {
  // biome-ignore lint/suspicious/noExplicitAny: random data, edited wherever it has the shape the edit needs
  const next = structuredClone(data) as Record<string, any>;
  const listeners = Array.isArray(next.listeners) ? next.listeners : [];
  const target = listeners.length > 0 ? listeners[e.i % listeners.length] : undefined;
  const routes = Array.isArray(target?.routes) ? (target.routes as unknown[]) : undefined;
  const map = next.upstreams !== null && typeof next.upstreams === 'object' && !Array.isArray(next.upstreams) ? next.upstreams : undefined;
  const names = Object.keys(map ?? {});
  if (e.kind === 'route' && routes?.length) routes[e.j % routes.length] = e.route;
  else if (e.kind === 'insert' && routes) routes.splice(e.j % (routes.length + 1), 0, e.route);
  else if (e.kind === 'remove' && routes?.length) routes.splice(e.j % routes.length, 1);
  else if (e.kind === 'upstream' && map) map[e.name as string] = e.upstream;
  else if (e.kind === 'unset-upstream' && names.length > 0) delete map[names[e.j % names.length]!];
  else if (e.kind === 'listener' && target) listeners[e.i % listeners.length] = e.listener;
  else if (e.kind === 'rename' && target) target.name = e.name;
  else if (e.kind === 'top') {
    for (const key of ['shutdown_timeout_ms', 'admin', 'tracing'] as const) if (key in e.top) next[key] = e.top[key];
  }
  return next;
}

/** A fragment's listener entry: a definition (`listenerOf`), or routes added to a listener by name (which must have a route). */
export const fragmentEntry = fc.oneof(
  listener,
  fc.record(
    {
      name: pick(['l0', 'l1', 'web'], ['-x']),
      routes: orBad(fc.array(route, { minLength: 1, maxLength: 5 }), ['x', []]),
      trusted_proxies: fc.constant([]),
    },
    { requiredKeys: ['name', 'routes'] },
  ),
);

/** A fragment: every section optional; its listener entries may repeat a name (refused). */
export const fragment = fc.record(
  { listeners: orBad(fc.array(fragmentEntry, { maxLength: 3 }), ['x']), upstreams: orBad(upstreams, [[], 'x']), ...topFields },
  { requiredKeys: [] },
);
