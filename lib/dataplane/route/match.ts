import { HTTP_METHODS } from '../../config/schema.js';
import type { CompiledRoute } from '../ports.js';

/**
 * What one route matches, each part on its own (see `Router` for the whole rule). Shared by the
 * tree router and the linear reference it is checked against, so both read the same semantics.
 */

/** What a route without `methods` allows: every method but `TRACE` (and `CONNECT`, which never reaches a route). */
export const ANY_METHOD: readonly string[] = HTTP_METHODS.filter((m) => m !== 'TRACE' && m !== 'CONNECT');

/** `prefix` matches `path` (a `routePath`) on a segment boundary, as Envoy's `path_separated_prefix` (see `Router`). */
export function prefixMatches(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.charCodeAt(prefix.length - 1) === 47 || path.charCodeAt(prefix.length) === 47;
}

/** A route `host` (lowercase; `*.example.com` for any subdomain at any depth) matches the normalised request host. */
export function hostMatches(pattern: string, host: string): boolean {
  if (isWildcardHost(pattern)) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

/** `*.example.com`: a route host that matches every subdomain of `example.com`. */
export function isWildcardHost(pattern: string): boolean {
  return pattern.startsWith('*.');
}

/** The route allows `method` (case-sensitive): its `methods` (HEAD with GET), or all but `TRACE` without them. */
export function methodAllows(route: CompiledRoute, method: string): boolean {
  return route.methods ? route.methods.has(method) : method !== 'TRACE';
}

/** An `Allow` value (`GET, HEAD`, in `HTTP_METHODS` order) for `allowed`, undefined when it is empty. */
export function allowValue(allowed: ReadonlySet<string>): string | undefined {
  if (allowed.size === 0) return undefined;
  return HTTP_METHODS.filter((m) => allowed.has(m)).join(', ');
}
