import { HTTP_METHODS, type RouteConfig } from '../../config/schema.js';
import type { CompiledRoute, RouteAction, RouteTable } from '../ports.js';
import { normalizePath, routePath } from './normalize.js';
import { compileRespond } from './respond.js';

/** How a route's action is built from its config; extended by the data plane. */
export type ActionCompiler = (route: RouteConfig, index: number) => RouteAction;

/** What a route without `methods` allows: every method but `TRACE` (and `CONNECT`, which never reaches a route). */
const ANY_METHOD: readonly string[] = HTTP_METHODS.filter((m) => m !== 'TRACE' && m !== 'CONNECT');

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
 */
export class Router implements RouteTable {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = routes;
  }

  /** Compile `routes`; `compileAction` builds each route's action (default: `respond` only). */
  static fromConfig(routes: readonly RouteConfig[], compileAction: ActionCompiler = compileRespond): Router {
    return new Router(
      routes.map((route, index) => ({
        index,
        // A prefix with a malformed escape never matches: such request paths are refused first.
        pathPrefix: routePath(normalizePath(route.path_prefix) ?? route.path_prefix),
        host: route.host?.toLowerCase(),
        methods: route.methods ? new Set(route.methods.includes('GET') ? [...route.methods, 'HEAD'] : route.methods) : undefined,
        action: compileAction(route, index),
      })),
    );
  }

  /** First route matching; `host` is already normalised (`normalizeHost`), `path` is a `routePath`. */
  match(method: string, host: string | undefined, path: string): CompiledRoute | undefined {
    for (const route of this.routes) {
      if (!prefixMatches(route.pathPrefix, path)) continue;
      if (route.methods ? !route.methods.has(method) : method === 'TRACE') continue;
      if (route.host !== undefined && (host === undefined || !hostMatches(route.host, host))) continue;
      return route;
    }
    return undefined;
  }

  allowedMethods(host: string | undefined, path: string): string | undefined {
    const allowed = new Set<string>();
    for (const route of this.routes) {
      if (!prefixMatches(route.pathPrefix, path)) continue;
      if (route.host !== undefined && (host === undefined || !hostMatches(route.host, host))) continue;
      for (const method of route.methods ?? ANY_METHOD) allowed.add(method);
    }
    if (allowed.size === 0) return undefined;
    return HTTP_METHODS.filter((m) => allowed.has(m)).join(', ');
  }
}

/** `prefix` matches `path` (a `routePath`) on a segment boundary (see `Router`). */
export function prefixMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.charCodeAt(prefix.length - 1) === 47 || path.charCodeAt(prefix.length) === 47;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}
