import type { RequestTarget } from '../ports.js';

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
