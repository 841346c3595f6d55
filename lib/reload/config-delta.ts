import type { Sectioned } from '../config/incremental.js';
import { deepFreeze } from '../config/parse.js';
import type { RouteConfig, UpstreamConfig } from '../config/schema.js';
import { sameItems, sameValues } from '../core/identity.js';
import type { ConfigDelta } from './parse-protocol.js';

/**
 * `next` told as its differences from `base` (the config of reply `baseId`), for the parser's
 * worker to send instead of the whole config: a section of `next` that is an object of `base`
 * (the same object: `IncrementalLoader` shares what did not change) is named by where it is in
 * `base`; the rest is sent. The cost is one pass over `next`'s listeners and upstreams, and a
 * clone of what changed. `applyConfigDelta(base, delta)` on the other side rebuilds `next`.
 * A config or a fragment config (`Sectioned`: unset listeners and upstreams are none).
 */
export function configDelta<C extends Sectioned>(base: C, next: C, baseId: number): ConfigDelta {
  const changed: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(next)) {
    if (key !== 'listeners' && key !== 'upstreams' && value !== (base as Record<string, unknown>)[key]) changed[key] = value;
  }
  const baseListeners = new Map<object, number>((base.listeners ?? []).map((listener, i) => [listener, i]));
  let baseRoutes: Map<RouteConfig, [number, number]> | undefined;
  const listeners = (next.listeners ?? []).map((listener): ConfigDelta['listeners'][number] => {
    const same = baseListeners.get(listener);
    if (same !== undefined) return { base: same };
    baseRoutes ??= routeIndex(base);
    return { listener: { ...listener, routes: [] }, routes: routeRuns(listener.routes, baseRoutes) };
  });
  return { base: baseId, keys: Object.keys(next), changed, upstreams: upstreamsDelta(base.upstreams, next.upstreams), listeners };
}

/**
 * The config the parser's worker sent for a document (the single config, or one fragment): whole
 * (`sent.config`, deeply frozen here), or as a delta rebuilt on `base`, the config of the reply it
 * must be told against (`applyConfigDelta`: unchanged sections are `base`'s frozen objects).
 * @throws Error naming `what` ("a config", "fragment NAME") when a delta is told against another reply than `base`'s (a worker that misbehaves)
 */
export function receivedConfig<C extends Sectioned>(
  base: { readonly id: number; readonly config: C } | undefined,
  sent: { readonly config: unknown } | { readonly delta: ConfigDelta },
  what: string,
): C {
  if ('config' in sent) return deepFreeze(sent.config as C);
  if (base?.id !== sent.delta.base) {
    throw new Error(`the config parser's worker sent ${what} told against parse ${sent.delta.base}, not the last one (${base?.id ?? 'none'})`);
  }
  return applyConfigDelta(base.config, sent.delta);
}

/**
 * The config `delta` tells, rebuilt on `base` (the config of reply `delta.base`), deeply frozen:
 * unchanged sections are `base`'s objects, and `base` itself when nothing changed. A config or
 * a fragment config (`Sectioned`).
 * @throws Error when `delta` names what `base` does not have (not a delta of `base`)
 */
export function applyConfigDelta<C extends Sectioned>(base: C, delta: ConfigDelta): C {
  const baseValues = base as Record<string, unknown>;
  const baseListeners = base.listeners ?? [];
  const upstreams = applyUpstreams(base.upstreams ?? NONE, delta.upstreams);
  const rebuilt = delta.listeners.map((entry, i) => {
    if ('base' in entry) return at(baseListeners, entry.base, `listener ${i}`);
    const routes: unknown[] = [];
    for (const item of entry.routes) {
      if (!Array.isArray(item)) routes.push(item);
      else {
        const [listener, first, count] = item;
        const from = at(baseListeners, listener, `listener ${i}'s routes`).routes;
        if (first + count > from.length)
          throw new Error(`the config delta names routes ${first}-${first + count - 1} of base listener ${listener}, which has ${from.length}`);
        for (let j = first; j < first + count; j++) routes.push(from[j]);
      }
    }
    return { ...entry.listener, routes };
  });
  const listeners = base.listeners !== undefined && sameItems(rebuilt, base.listeners) ? base.listeners : rebuilt;
  const config: Record<string, unknown> = {};
  for (const key of delta.keys) {
    if (key === 'listeners') config[key] = listeners;
    else if (key === 'upstreams') config[key] = upstreams;
    else if (Object.hasOwn(delta.changed, key)) config[key] = delta.changed[key];
    else if (Object.hasOwn(base, key)) config[key] = baseValues[key];
    else throw new Error(`the config delta keeps the base config's ${key}, which it does not have`);
  }
  // `config`'s keys are `delta.keys`, in order: the same keys and values as `base` is `base`.
  return sameValues(base, config) ? base : deepFreeze(config as C);
}

/** Where each route of `config` is: listener index, route index. */
function routeIndex(config: Sectioned): Map<RouteConfig, [number, number]> {
  const index = new Map<RouteConfig, [number, number]>();
  (config.listeners ?? []).forEach((listener, i) => {
    listener.routes.forEach((route, j) => {
      index.set(route, [i, j]);
    });
  });
  return index;
}

/** `routes` as runs of consecutive base routes `[listener, first, count]` and new routes. */
function routeRuns(
  routes: readonly RouteConfig[],
  base: ReadonlyMap<RouteConfig, [number, number]>,
): Extract<ConfigDelta['listeners'][number], { routes: unknown }>['routes'] {
  const out: ([number, number, number] | RouteConfig)[] = [];
  let run: [number, number, number] | undefined;
  for (const route of routes) {
    const where = base.get(route);
    if (where === undefined) {
      out.push(route);
      run = undefined;
    } else if (run && run[0] === where[0] && run[1] + run[2] === where[1]) run[2] += 1;
    else {
      run = [where[0], where[1], 1];
      out.push(run);
    }
  }
  return out;
}

/** Unset upstreams (a fragment's) are none. */
function upstreamsDelta(base: Sectioned['upstreams'] = NONE, next: Sectioned['upstreams'] = NONE): ConfigDelta['upstreams'] {
  if (next === base) return 'base';
  const names = new Map<UpstreamConfig, string>(Object.entries(base).map(([name, upstream]) => [upstream, name]));
  const from: Record<string, string> = {};
  const changed: Record<string, UpstreamConfig> = {};
  for (const [name, upstream] of Object.entries(next)) {
    const was = names.get(upstream);
    if (was === undefined) changed[name] = upstream;
    else if (was !== name) from[name] = was;
  }
  return { names: Object.keys(next), from, changed };
}

const NONE: NonNullable<Sectioned['upstreams']> = Object.freeze({});

function applyUpstreams(base: NonNullable<Sectioned['upstreams']>, delta: ConfigDelta['upstreams']): Sectioned['upstreams'] {
  if (delta === 'base') return base;
  const upstreams: Record<string, unknown> = {};
  for (const name of delta.names) {
    const was = Object.hasOwn(delta.from, name) ? delta.from[name]! : name;
    if (Object.hasOwn(delta.changed, name)) upstreams[name] = delta.changed[name];
    else if (Object.hasOwn(base, was)) upstreams[name] = base[was];
    else throw new Error(`the config delta keeps upstream ${was} of the base config, which has none of that name`);
  }
  return upstreams as Sectioned['upstreams'];
}

function at<T>(items: readonly T[], index: number, what: string): T {
  if (index >= items.length) throw new Error(`the config delta names base listener ${index} for ${what}; the base config has ${items.length}`);
  return items[index]!;
}
