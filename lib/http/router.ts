import type { OutgoingHttpHeaders } from 'node:http';
import type { RouteConfig } from '../config/schema.js';
import type { ProxyAction } from './proxy.js';

/** A static response, precomputed once per generation. */
export interface RespondAction {
  type: 'respond';
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer;
}

/** What a matched route does: answer from the config, or proxy to an upstream. */
export type RouteAction = RespondAction | ProxyAction;

/** A route compiled for matching. `index` is its position in the listener's `routes`. */
export interface CompiledRoute {
  readonly index: number;
  readonly pathPrefix: string;
  readonly host: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly action: RouteAction;
}

/** How a route's action is built from its config; extended by the data plane. */
export type ActionCompiler = (route: RouteConfig, index: number) => RouteAction;

/**
 * The route table of one listener in one generation: immutable, derived from the config by a
 * pure function. Matching is first match in config order (as Envoy's route list): a route
 * matches when its `path_prefix` is a string prefix of the normalised path, its `host` (if set)
 * equals the request host case-insensitively (`*.example.com` matches any subdomain), and its
 * `methods` (if set) contain the method.
 */
export class Router {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = routes;
  }

  /** Compile `routes`; `compileAction` builds each route's action (default: `respond` only). */
  static fromConfig(routes: readonly RouteConfig[], compileAction: ActionCompiler = compileRespond): Router {
    return new Router(
      routes.map((route, index) => ({
        index,
        pathPrefix: route.path_prefix,
        host: route.host?.toLowerCase(),
        methods: route.methods ? new Set(route.methods) : undefined,
        action: compileAction(route, index),
      })),
    );
  }

  /** First route matching; `host` is already normalised (`normalizeHost`). */
  match(method: string, host: string | undefined, path: string): CompiledRoute | undefined {
    for (const route of this.routes) {
      if (!path.startsWith(route.pathPrefix)) continue;
      if (route.methods && !route.methods.has(method)) continue;
      if (route.host !== undefined && (host === undefined || !hostMatches(route.host, host))) continue;
      return route;
    }
    return undefined;
  }
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/** Compile a `respond` route: body bytes, content-type and content-length fixed once. */
export function compileRespond(route: RouteConfig, index: number): RespondAction {
  const respond = route.respond;
  if (!respond) throw new Error(`route ${index} has no respond action`);
  const body = Buffer.from(respond.body, 'utf8');
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(respond.headers)) headers[name.toLowerCase()] = value;
  headers['content-type'] ??= 'text/plain; charset=utf-8';
  headers['content-length'] = String(body.byteLength);
  return { type: 'respond', status: respond.status, headers, body };
}

/** A request target as routes see it: the normalised path, and the query (`?` included, or ''). */
export interface RequestTarget {
  readonly path: string;
  readonly query: string;
}

/**
 * The request target's path and query, with dot segments removed and percent-encoded dots
 * decoded as WHATWG URL parsing does, so `/api/../admin` and `/api/%2e%2e/admin` are matched as
 * `/admin`. Returns undefined for a target that is not a path (`*`, garbage).
 */
export function normalizeTarget(rawUrl: string | undefined): RequestTarget | undefined {
  if (!rawUrl || (rawUrl[0] !== '/' && !/^https?:\/\//i.test(rawUrl))) return undefined;
  try {
    // Origin-form is appended, not resolved, so `//x` stays a path instead of becoming a host.
    const url = new URL(rawUrl[0] === '/' ? `http://target.invalid${rawUrl}` : rawUrl);
    return { path: url.pathname, query: url.search };
  } catch {
    return undefined;
  }
}

/** `Host` header → lowercase host without port or trailing dot; undefined when absent. */
export function normalizeHost(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) host = host.slice(0, host.indexOf(']') + 1);
  else if (host.includes(':')) host = host.slice(0, host.lastIndexOf(':'));
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host || undefined;
}
