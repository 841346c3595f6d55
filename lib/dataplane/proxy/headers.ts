import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import type { UpstreamConfig } from '../../config/schema.js';
import type { RequestTarget } from '../ports.js';

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

const NO_TOKENS: ReadonlySet<string> = new Set();

/** Header names listed in `Connection`, lowercased (they are hop-by-hop too). */
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const out = new Set<string>();
  for (const token of (typeof value === 'string' ? value : value.join(',')).split(',')) {
    const name = token.trim().toLowerCase();
    if (name) out.add(name);
  }
  return out;
}

/**
 * The headers sent upstream, as a flat `[name, value, ...]` list in the client's order: the
 * client's headers minus hop-by-hop ones (`Host` is kept, as Envoy and Caddy do), then
 * `x-forwarded-for` (the client's chain plus the client address), `x-forwarded-proto`,
 * `x-forwarded-host`, and `via` (RFC 9110) or `forwarded` (RFC 7239) when configured. Pure.
 *
 * An HTTP/2 request's pseudo-headers never go upstream (HTTP/1.1 has none); its `:authority`
 * becomes `Host` when it sent none (RFC 9113 section 8.3.1). `proto` is the scheme the client
 * used (`https` on a TLS listener).
 */
export function upstreamRequestHeaders(
  req: Pick<IncomingMessage, 'rawHeaders' | 'headers' | 'httpVersion'>,
  clientAddress: string | undefined,
  forwardedHeader: UpstreamConfig['forwarded_header'],
  proto: 'http' | 'https' = 'http',
): string[] {
  const dropped = connectionTokens(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || REPLACED_REQUEST_HEADERS.has(lower) || dropped.has(lower)) continue;
    if ((lower === 'via' && forwardedHeader === 'via') || (lower === 'forwarded' && forwardedHeader === 'forwarded')) continue;
    out.push(name, req.rawHeaders[i + 1]!);
  }
  const authority = req.headers[':authority'] as string | undefined;
  if (req.headers.host === undefined && authority) out.push('host', authority);
  const host = req.headers.host ?? authority;
  const chain = [req.headers['x-forwarded-for'], clientAddress].filter((v): v is string => Boolean(v)).join(', ');
  if (chain) out.push('x-forwarded-for', chain);
  out.push('x-forwarded-proto', proto);
  if (host) out.push('x-forwarded-host', host);
  if (forwardedHeader === 'via') {
    out.push('via', [req.headers.via, `${req.httpVersion} hotconf`].filter(Boolean).join(', '));
  } else if (forwardedHeader === 'forwarded') {
    const element = [clientAddress ? `for=${forwardedNode(clientAddress)}` : 'for=unknown', host ? `host=${quoteIfNeeded(host)}` : undefined, `proto=${proto}`]
      .filter(Boolean)
      .join(';');
    out.push('forwarded', [req.headers.forwarded, element].filter(Boolean).join(', '));
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

/** The upstream's response headers minus hop-by-hop ones. Pure. */
export function downstreamResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const dropped = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || dropped.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** The path sent upstream: the normalised path and query, `path_prefix` removed when `strip_prefix`. Pure. */
export function upstreamPath(target: RequestTarget, action: { readonly pathPrefix: string; readonly stripPrefix: boolean }): string {
  let path = target.path;
  if (action.stripPrefix && path.startsWith(action.pathPrefix)) {
    path = path.slice(action.pathPrefix.length);
    if (!path.startsWith('/')) path = `/${path}`;
  }
  return path + target.query;
}
