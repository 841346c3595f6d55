import type { RequestTarget } from '../ports.js';

/**
 * Request-target normalisation: done once per request, and what routes match is exactly what the
 * upstream receives (the nginx "off-by-slash" lesson: a proxy that matches one spelling and
 * forwards another lets a client reach what a route denies).
 */

const SLASH = 47;
const DOT = 46;
const PERCENT = 37;
const BACKSLASH = 92;

/** RFC 3986 section 2.3 unreserved characters, by code point. */
function isUnreserved(code: number): boolean {
  return (
    (code >= 0x41 && code <= 0x5a) ||
    (code >= 0x61 && code <= 0x7a) ||
    (code >= 0x30 && code <= 0x39) ||
    code === 0x2d ||
    code === DOT ||
    code === 0x5f ||
    code === 0x7e
  );
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return -1;
}

/** True when `path` may change under `normalizePath`: it has `%`, `\`, `//` or a segment starting with `.`. */
function needsNormalizing(path: string): boolean {
  for (let i = 0; i < path.length; i += 1) {
    const code = path.charCodeAt(i);
    if (code === PERCENT || code === BACKSLASH) return true;
    if (code === SLASH) {
      const next = path.charCodeAt(i + 1);
      if (next === SLASH || next === DOT) return true;
    }
  }
  return false;
}

/**
 * An origin-form path (starting with `/`) in the one spelling hotconf routes and forwards, after
 * RFC 3986 section 6.2.2 (syntax-based normalisation) as common upstream frameworks read paths:
 *
 * - percent-encoded unreserved characters are decoded (`%61` → `a`, `%2e` → `.`); every other
 *   escape is kept byte for byte (`%2F` stays an escaped slash inside a segment, not a separator,
 *   and keeps its case, so signatures over the path survive);
 * - `\` is read as `/` (as WHATWG URL parsing, and so many servers, read it);
 * - repeated slashes are merged (`/a//b` → `/a/b`);
 * - dot segments are removed (section 5.2.4: `/a/./b/../c` → `/a/c`, never above the root); a
 *   path ending in a dot segment keeps a trailing slash (`/a/b/..` → `/a/`).
 *
 * Every other byte is kept as sent. Idempotent. Returns undefined for a path with no single
 * reading, which is refused (400): a malformed escape (`%zz`, a `%` without two hex digits), or a
 * dot segment with path parameters (`/..;/`, `/.;x/`), which Tomcat and Spring read as `..` and
 * `.` after dropping the parameters, while other servers read a name.
 */
export function normalizePath(path: string): string | undefined {
  if (!needsNormalizing(path)) return path;
  let decoded = '';
  let from = 0;
  for (let i = 0; i < path.length; i += 1) {
    const code = path.charCodeAt(i);
    if (code === BACKSLASH) {
      decoded += `${path.slice(from, i)}/`;
      from = i + 1;
    } else if (code === PERCENT) {
      const high = hexValue(path.charCodeAt(i + 1));
      const low = hexValue(path.charCodeAt(i + 2));
      if (high < 0 || low < 0) return undefined;
      const value = high * 16 + low;
      if (isUnreserved(value)) {
        decoded += path.slice(from, i) + String.fromCharCode(value);
        from = i + 3;
      }
      i += 2;
    }
  }
  decoded += path.slice(from);
  const parts = decoded.split('/');
  const out: string[] = [];
  for (let k = 1; k < parts.length; k += 1) {
    const segment = parts[k]!;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else if (segment.startsWith('.;') || segment.startsWith('..;')) return undefined;
    else out.push(segment);
  }
  const last = parts[parts.length - 1];
  const trailingSlash = out.length > 0 && (last === '' || last === '.' || last === '..');
  return `/${out.join('/')}${trailingSlash ? '/' : ''}`;
}

/**
 * The path routes match: `path` (normalised) without the parameters of its segments
 * (`/api;v=1/admin;jsessionid=2` → `/api/admin`), as Tomcat and Spring read a path before they
 * route it, so a route guarding `/api/admin` sees every spelling they would serve as it. The
 * path is forwarded with its parameters. Returns `path` itself (no allocation) when it has none.
 */
export function routePath(path: string): string {
  if (path.indexOf(';') < 0) return path;
  let out = '';
  let from = 0;
  for (;;) {
    const semi = path.indexOf(';', from);
    if (semi < 0) {
      out += path.slice(from);
      break;
    }
    out += path.slice(from, semi);
    from = path.indexOf('/', semi);
    if (from < 0) break;
  }
  // A segment that was all parameters (`/a/;x/b`) leaves an empty one, which Tomcat merges too.
  return normalizePath(out) ?? out;
}

/**
 * The part of `path` after its first `segments` named segments (segments that are only
 * parameters, `;x`, are not counted): '' when nothing is left. For `strip_prefix` on a path with
 * parameters, whose prefix matched `routePath(path)`.
 */
export function afterSegments(path: string, segments: number): string {
  let at = 0;
  for (let seen = 0; seen < segments; ) {
    const next = path.indexOf('/', at + 1);
    const name = path.slice(at + 1, next < 0 ? path.length : next);
    if (name !== '' && name.charCodeAt(0) !== 59) seen += 1;
    if (next < 0) return '';
    at = next;
  }
  return path.slice(at);
}

/** `host [":" port]` of RFC 3986: an IP literal in brackets or a reg-name (no userinfo, no path, no spaces). */
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::[0-9]*)?$/;

/** True when `value` is a syntactically valid `Host` value or absolute-form authority (RFC 9112 section 3.2). */
export function isValidAuthority(value: string): boolean {
  return AUTHORITY.test(value);
}

const ABSOLUTE_FORM = /^https?:\/\//i;

/**
 * Parse a request target (`req.url`) once: the path normalised by `normalizePath`, the query
 * exactly as sent (`?` included, or ''; never decoded or re-encoded, so signed URLs survive), and
 * for the absolute form (`http://host/path`, RFC 9112 section 3.2.2) its authority, which
 * replaces `Host`. Returns undefined for a target hotconf cannot serve: not a path (`*`, garbage),
 * a fragment (`#` cannot appear in a request target), a malformed escape, or an absolute form
 * whose authority is not a valid host (userinfo included).
 */
export function normalizeTarget(rawUrl: string | undefined): RequestTarget | undefined {
  if (!rawUrl) return undefined;
  let authority: string | undefined;
  let rest = rawUrl;
  if (rawUrl.charCodeAt(0) !== SLASH) {
    if (!ABSOLUTE_FORM.test(rawUrl)) return undefined;
    const start = rawUrl.indexOf('//') + 2;
    let end = start;
    while (end < rawUrl.length && rawUrl[end] !== '/' && rawUrl[end] !== '?') end += 1;
    authority = rawUrl.slice(start, end);
    if (!isValidAuthority(authority)) return undefined;
    rest = rawUrl[end] === '/' ? rawUrl.slice(end) : `/${rawUrl.slice(end)}`;
  }
  if (rest.includes('#')) return undefined;
  const q = rest.indexOf('?');
  const path = normalizePath(q < 0 ? rest : rest.slice(0, q));
  if (path === undefined) return undefined;
  const query = q < 0 ? '' : rest.slice(q);
  return authority === undefined ? { path, query } : { path, query, authority };
}

/** A `Host` value (or authority) → lowercase host without port or trailing dot; undefined when absent or empty. */
export function normalizeHost(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) host = host.slice(0, host.indexOf(']') + 1);
  else if (host.includes(':')) host = host.slice(0, host.lastIndexOf(':'));
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host || undefined;
}

/** Why a request's `Host` makes it invalid (400); one shared instance per reason. */
export class BadHost {
  readonly reason: string;
  constructor(reason: string) {
    this.reason = reason;
  }
}

const DUPLICATE_HOST = new BadHost('more than one Host header');
const INVALID_HOST = new BadHost('invalid Host header');

/**
 * The request's `Host` value from its raw header lines (undefined when there is none), or why
 * the request is invalid: more than one `Host` line, or a value that is not `host [":" port]` (a
 * `/`, `?`, `@`, space or other character a host cannot contain). RFC 9112 section 3.2 requires
 * a 400 for both. An empty value is allowed (a target without authority). Node's parser keeps
 * only the first of several `Host` lines in `req.headers`, so the raw lines are counted.
 */
export function requestHost(rawHeaders: readonly string[]): string | undefined | BadHost {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (value !== undefined) return DUPLICATE_HOST;
    value = rawHeaders[i + 1]!;
  }
  if (value !== undefined && value !== '' && !isValidAuthority(value)) return INVALID_HOST;
  return value;
}
