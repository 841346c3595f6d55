import type { IncomingHttpHeaders } from 'node:http';
import { isLoopbackHost } from '../config/address.js';
import { normalizeHost } from '../dataplane/route/normalize.js';

/** A request the admin API refuses before routing it: `status` and the `error` of the JSON body. */
export interface Refusal {
  status: 403 | 415;
  error: string;
}

/**
 * Who may call the admin API, as Caddy's admin endpoint decides it (`enforce_origin`, its
 * allowed origins and its Host check):
 *
 * - **Host** (DNS rebinding): an admin API bound to loopback answers only requests whose `Host`
 *   is a loopback name (`localhost`, `127.0.0.0/8`, `[::1]`, any port) or one of
 *   `allowedHosts`; a web page that rebinds `evil.example` to 127.0.0.1 still sends
 *   `Host: evil.example`. Bound elsewhere (where a token is required), any `Host` is accepted
 *   unless `allowedHosts` is set.
 * - **Origin** (cross-site requests, which browsers send with an `Origin`): refused unless the
 *   origin is the admin API itself: http(s), a host the Host rule accepts (bound elsewhere
 *   without `allowedHosts`: the request's own `Host`), and the port the API is bound to.
 *   `Origin: null` (sandboxed pages, local files) is refused. Clients that are not browsers send
 *   no `Origin`.
 * - **Content type** (a "simple" cross-site POST can carry `text/plain`): a state-changing
 *   request with a `Content-Type` must be `application/json`; without one it must have no body.
 *
 * Pure but for the allowed hosts, which `setAllowedHosts` replaces (a reload may change them).
 */
export class AdminRequestGuard {
  readonly #loopback: boolean;
  readonly #port: number;
  #allowed: ReadonlySet<string> | undefined;

  /**
   * @param bound the bound address: its host decides whether `Host` is checked by default, its
   *   port is the only port an `Origin` may name
   * @param allowedHosts extra host names accepted in `Host` and `Origin` (`admin.allowed_hosts`)
   */
  constructor(bound: { host: string; port: number }, allowedHosts?: readonly string[]) {
    this.#loopback = isLoopbackHost(bound.host);
    this.#port = bound.port;
    this.setAllowedHosts(allowedHosts);
  }

  /** Replace the extra host names (lowercased; IPv6 in brackets, as `Host` carries it). */
  setAllowedHosts(hosts: readonly string[] | undefined): void {
    this.#allowed = hosts === undefined ? undefined : new Set(hosts.map((h) => h.toLowerCase()));
  }

  /** The refusal for a request with these headers (its `Host` and `Origin`), or undefined when it may be routed. */
  check(headers: IncomingHttpHeaders): Refusal | undefined {
    const host = normalizeHost(headers.host);
    if (!this.#hostAllowed(host)) {
      const allowed = ['localhost', '127.0.0.1', '[::1]', ...(this.#allowed ?? [])].join(', ');
      return { status: 403, error: `host not allowed: ${headers.host ?? '(none)'}; this admin API answers to ${allowed} (admin.allowed_hosts adds names)` };
    }
    const origin = headers.origin;
    if (origin !== undefined && !this.#originAllowed(origin, host)) return { status: 403, error: `origin not allowed: ${origin}` };
    return undefined;
  }

  #checksHost(): boolean {
    return this.#loopback || this.#allowed !== undefined;
  }

  #hostAllowed(host: string | undefined): boolean {
    if (!this.#checksHost()) return true;
    if (host === undefined) return false;
    return isLoopbackHost(host === '[::1]' ? '::1' : host) || (this.#allowed?.has(host) ?? false);
  }

  #originAllowed(origin: string, requestHost: string | undefined): boolean {
    if (!URL.canParse(origin)) return false;
    const url = new URL(origin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    if (port !== this.#port) return false;
    const host = url.hostname.toLowerCase();
    return this.#checksHost() ? this.#hostAllowed(host) : host === requestHost;
  }
}

/** For a state-changing request: 415 unless it has no body and no `Content-Type`, or a JSON one (see `AdminRequestGuard`). */
export function contentTypeRefusal(headers: IncomingHttpHeaders): Refusal | undefined {
  const type = headers['content-type'];
  if (type === undefined) {
    const hasBody = headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0;
    return hasBody ? { status: 415, error: 'a request body needs Content-Type: application/json' } : undefined;
  }
  const mediaType = type.split(';')[0]!.trim().toLowerCase();
  if (mediaType === 'application/json') return undefined;
  return { status: 415, error: `unsupported content type ${mediaType || '(empty)'}: send application/json, or no body` };
}
