import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteConfig } from '../../config/schema.js';
import type { RequestContext, RouteAction } from '../ports.js';
import { normalizePath } from '../route/normalize.js';
import { bufferRequestBody, hasBody } from './body.js';
import { type ProxyRoute, proxyRequest } from './exchange.js';
import type { Upstream } from './target.js';
import { TRUST_NO_PEER, type TrustedProxies } from './trusted-proxies.js';

export { ClientAbortedError, type ProxyRoute, proxyRequest, UpstreamTimeoutError } from './exchange.js';
export { type ProxyObserver, ProxyTarget, type RetryReason, Upstream, type UpstreamObserver, type UpstreamOptions } from './target.js';

/**
 * A route that proxies to an upstream, compiled per generation and pointing at that
 * generation's `Upstream` (its balancer, pools and health states). `run` starts `proxyRequest`.
 */
export class ProxyAction implements RouteAction, ProxyRoute {
  readonly type = 'proxy';
  readonly upstream: Upstream;
  /** Normalised, as the router matches it (`normalizePath`). */
  readonly pathPrefix: string;
  readonly stripPrefix: boolean;
  /** The listener's `trusted_proxies`. */
  readonly trustedProxies: TrustedProxies;

  constructor(upstream: Upstream, pathPrefix: string, stripPrefix: boolean, trustedProxies: TrustedProxies = TRUST_NO_PEER) {
    this.upstream = upstream;
    this.pathPrefix = normalizePath(pathPrefix) ?? pathPrefix;
    this.stripPrefix = stripPrefix;
    this.trustedProxies = trustedProxies;
  }

  /** Read a body that fits `request_buffer_bytes` whole first (`bufferRequestBody`), then `proxyRequest`. */
  run(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const { config } = this.upstream;
    if (config.request_buffer_bytes > 0 && hasBody(req)) {
      bufferRequestBody(req, res, config.request_buffer_bytes, config.body_idle_timeout_ms, (body) => proxyRequest(this, req, res, ctx, body));
    } else proxyRequest(this, req, res, ctx);
  }
}

/**
 * Compile an `upstream` route of a listener whose `trusted_proxies` are `trustedProxies` against
 * the generation's upstreams.
 * @throws Error for an unknown name (the schema rejects those first)
 */
export function compileProxy(route: RouteConfig, upstreams: ReadonlyMap<string, Upstream>, trustedProxies: TrustedProxies = TRUST_NO_PEER): ProxyAction {
  const upstream = route.upstream === undefined ? undefined : upstreams.get(route.upstream);
  if (!upstream) throw new Error(`route ${route.path_prefix}: unknown upstream ${String(route.upstream)}`);
  return new ProxyAction(upstream, route.path_prefix, route.strip_prefix, trustedProxies);
}
