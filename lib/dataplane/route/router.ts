import type { RouteConfig } from '../../config/schema.js';
import type { CompiledRoute, RouteAction, RouteTable } from '../ports.js';
import { compileRespond } from './respond.js';

/** How a route's action is built from its config; extended by the data plane. */
export type ActionCompiler = (route: RouteConfig, index: number) => RouteAction;

/**
 * The route table of one listener in one generation: immutable, derived from the config by a
 * pure function. Matching is first match in config order (as Envoy's route list): a route
 * matches when its `path_prefix` is a string prefix of the normalised path, its `host` (if set)
 * equals the request host case-insensitively (`*.example.com` matches any subdomain), and its
 * `methods` (if set) contain the method.
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
