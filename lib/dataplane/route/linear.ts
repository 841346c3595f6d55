import type { CompiledRoute, RouteTable } from '../ports.js';
import { ANY_METHOD, allowValue, hostMatches, methodAllows, prefixMatches } from './match.js';

/**
 * The route table as a scan over every route, in config order: the reference semantics of
 * `Router` (same results, cost linear in the number of routes). The property spec checks the
 * tree router against it; nothing serves with it.
 */
export class LinearRouter implements RouteTable {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = routes;
  }

  match(method: string, host: string | undefined, path: string): CompiledRoute | undefined {
    for (const route of this.routes) {
      if (!prefixMatches(route.pathPrefix, path)) continue;
      if (!methodAllows(route, method)) continue;
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
    return allowValue(allowed);
  }
}
