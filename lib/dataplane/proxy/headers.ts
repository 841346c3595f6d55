import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { UpstreamConfig } from '../../config/schema.js';
import type { RequestTarget } from '../ports.js';
import { afterSegments, routePath } from '../route/normalize.js';
import { prefixMatches } from '../route/router.js';

/**
 * Hop-by-hop headers, never forwarded in either direction (RFC 9110 section 7.6.1; the list of
 * Go's `httputil.ReverseProxy`).
 */
const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
/**
 * Request headers not passed on as the client sent them: `expect` (Node's server has answered
 * it already), the trace-context headers (replaced by the client span's) and `x-forwarded-*`
 * (rebuilt by `upstreamRequestHeaders`).
 */
const REPLACED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'expect',
  'traceparent',
  'tracestate',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/**
 * Fields defined for every recipient (RFC 9110, 9111, 9112: routing, framing, representation,
 * credentials, validators, caching, forwarding and trace context), which a `Connection` option
 * never removes. RFC 9110 section 7.6.1 forbids sending them as connection options; a client
 * that does (`Connection: host, content-length`) would otherwise make the upstream see the
 * internal target address as `Host`, or a body with other framing.
 */
export const END_TO_END: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'content-type',
  'content-encoding',
  'content-language',
  'content-location',
  'content-range',
  'authorization',
  'cookie',
  'set-cookie',
  'cache-control',
  'pragma',
  'expires',
  'etag',
  'last-modified',
  'location',
  'vary',
  'date',
  'age',
  'allow',
  'retry-after',
  'www-authenticate',
  'range',
  'accept',
  'accept-encoding',
  'accept-language',
  'accept-ranges',
  'if-match',
  'if-none-match',
  'if-modified-since',
  'if-unmodified-since',
  'if-range',
  'max-forwards',
  'origin',
  'referer',
  'user-agent',
  'forwarded',
  'via',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'traceparent',
  'tracestate',
]);

const NO_TOKENS: ReadonlySet<string> = new Set();

/**
 * Header names listed in `Connection`, lowercased (they are hop-by-hop too), but never one of
 * `END_TO_END`. The common values (`keep-alive`, `close`) name no header and allocate nothing.
 */
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const joined = typeof value === 'string' ? value : value.join(',');
  const lower = joined.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return NO_TOKENS;
  const out = new Set<string>();
  for (const token of lower.split(',')) {
    const name = token.trim();
    if (name && !END_TO_END.has(name)) out.add(name);
  }
  return out;
}

/**
 * The headers sent upstream, as a flat `[name, value, ...]` list in the client's order: the
 * client's headers minus hop-by-hop ones (`Host` is kept, as Envoy and Caddy do; with an
 * absolute-form target, `authority` replaces it, RFC 9112 section 3.2.2), then the forwarding
 * headers. Those are trusted only from a trusted peer (`trustedPeer`: the connection comes from
 * one of the listener's `trusted_proxies`), as Caddy does since 2.5:
 *
 * - `x-forwarded-for`: a trusted peer's value with the peer address appended; otherwise the peer
 *   address alone (what an untrusted client sent is dropped);
 * - `x-forwarded-proto` and `x-forwarded-host`: a trusted peer's values are kept; otherwise (or
 *   when absent) `proto` and the request's host;
 * - `forwarded` (RFC 7239): with `forwarded_header: forwarded`, a trusted peer's value with this
 *   hop's element (`for=...;host=...;proto=...`) appended, otherwise this element alone; with
 *   other settings, a trusted peer's value passes and an untrusted client's is dropped;
 * - `via` (RFC 9110) is appended to when `forwarded_header: via`.
 *
 * An HTTP/2 request's pseudo-headers never go upstream (HTTP/1.1 has none); its `:authority`
 * becomes `Host` when it sent none (RFC 9113 section 8.3.1). `proto` is the scheme the client
 * used (`https` on a TLS listener).
 *
 * Pure.
 */
export function upstreamRequestHeaders(
  req: Pick<IncomingMessage, 'rawHeaders' | 'headers' | 'httpVersion'>,
  clientAddress: string | undefined,
  forwardedHeader: UpstreamConfig['forwarded_header'],
  trustedPeer = false,
  authority?: string,
  proto: 'http' | 'https' = 'http',
): string[] {
  const dropped = connectionTokens(req.headers.connection);
  const out: string[] = authority === undefined ? [] : ['host', authority];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || REPLACED_REQUEST_HEADERS.has(lower) || dropped.has(lower)) continue;
    if (lower === 'host' && authority !== undefined) continue;
    if (lower === 'forwarded' && (forwardedHeader === 'forwarded' || !trustedPeer)) continue;
    if (lower === 'via' && forwardedHeader === 'via') continue;
    out.push(name, req.rawHeaders[i + 1]!);
  }
  const headers = req.headers;
  const h2Authority = authority === undefined && headers.host === undefined ? (headers[':authority'] as string | undefined) : undefined;
  if (h2Authority) out.push('host', h2Authority);
  const host = authority ?? headers.host ?? h2Authority;
  const incomingFor = trustedPeer ? (headers['x-forwarded-for'] as string | undefined) : undefined;
  const chain = incomingFor && clientAddress ? `${incomingFor}, ${clientAddress}` : (clientAddress ?? incomingFor);
  if (chain) out.push('x-forwarded-for', chain);
  out.push('x-forwarded-proto', (trustedPeer && (headers['x-forwarded-proto'] as string | undefined)) || proto);
  const forwardedHost = (trustedPeer && (headers['x-forwarded-host'] as string | undefined)) || host;
  if (forwardedHost) out.push('x-forwarded-host', forwardedHost);
  if (forwardedHeader === 'via') {
    out.push('via', headers.via ? `${headers.via}, ${req.httpVersion} hotconf` : `${req.httpVersion} hotconf`);
  } else if (forwardedHeader === 'forwarded') {
    let element = clientAddress ? `for=${forwardedNode(clientAddress)}` : 'for=unknown';
    if (host) element += `;host=${quoteIfNeeded(host)}`;
    element += `;proto=${proto}`;
    out.push('forwarded', trustedPeer && headers.forwarded ? `${headers.forwarded}, ${element}` : element);
  }
  return out;
}

/** RFC 7239 node: IPv6 bracketed and quoted, IPv4 bare. */
function forwardedNode(address: string): string {
  return isIP(address) === 6 ? `"[${address}]"` : address;
}

function quoteIfNeeded(value: string): string {
  return /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The upstream's response headers as a flat `[name, value, ...]` list for `writeHead`, minus
 * hop-by-hop ones and those its `Connection` names, in the upstream's order with repeated fields
 * kept as separate lines (`set-cookie`). `raw` is undici's raw list (names and values as Buffers,
 * or strings); names come out lowercased, values byte for byte (latin1, as Node writes them).
 * Relayed without building an object: one pass, and a second only when `Connection` names a
 * header (rare). Pure.
 */
export function downstreamResponseHeaders(raw: readonly (Buffer | string)[]): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = latin1(raw[i]!).toLowerCase();
    const value = latin1(raw[i + 1]!);
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = connection === undefined ? value : `${connection},${value}`;
      continue;
    }
    out.push(name, value);
  }
  const dropped = connectionTokens(connection);
  if (dropped.size === 0) return out;
  const kept: string[] = [];
  for (let i = 0; i < out.length; i += 2) if (!dropped.has(out[i]!)) kept.push(out[i]!, out[i + 1]!);
  return kept;
}

function latin1(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

/**
 * The path sent upstream: the normalised path the route matched, `path_prefix` removed when
 * `strip_prefix` (`/api/users` → `/users`, `/api` → `/`), then the query exactly as the client
 * sent it. The prefix matched on a segment boundary, so what is left is a normalised path itself
 * (the stripped segments' `;` parameters go with them): the upstream receives the spelling the
 * routes matched. Pure.
 */
export function upstreamPath(target: RequestTarget, action: { readonly pathPrefix: string; readonly stripPrefix: boolean }): string {
  const prefix = action.pathPrefix;
  const { path } = target;
  const routed = routePath(path);
  if (!action.stripPrefix || !prefixMatches(prefix, routed)) return path + target.query;
  let rest: string;
  if (routed === path) {
    // A prefix ending in `/` keeps that slash as the start of what is left.
    rest = path.slice(prefix.charCodeAt(prefix.length - 1) === 47 ? prefix.length - 1 : prefix.length);
  } else {
    // Parameters: the prefix's segments are removed with theirs (`/api;v=1/x` → `/x`).
    rest = afterSegments(path, prefix.split('/').filter(Boolean).length);
  }
  return (rest === '' ? '/' : rest) + target.query;
}
