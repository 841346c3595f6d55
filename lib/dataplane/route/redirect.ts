import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RedirectConfig, RouteConfig } from '../../config/schema.js';
import { sendJson } from '../../net/json.js';
import type { RequestContext, RouteAction } from '../ports.js';
import { normalizeHost } from './normalize.js';

const DEFAULT_PORTS: Readonly<Record<string, number>> = { http: 80, https: 443 };

/**
 * A redirect, precomputed once per generation. With a fixed `location`, every request gets it
 * as it is. Otherwise the `Location` is the request's own URL (its normalised path and query,
 * as routed) with the configured scheme, host and port replacing the request's: a scheme change
 * without a port drops the port (the new scheme's default), as Caddy's and nginx's HTTPS
 * redirects do. The response has no body; `HEAD` gets the same.
 */
export class RedirectAction implements RouteAction {
  readonly type = 'redirect';
  readonly status: number;
  readonly config: RedirectConfig;

  constructor(config: RedirectConfig) {
    this.config = config;
    this.status = config.status;
  }

  run(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): void {
    const location = this.config.location ?? this.#relative(req, ctx);
    if (location === undefined) {
      sendJson(res, 400, { error: 'no Host to redirect to' }, false);
      return;
    }
    res.writeHead(this.status, { location, 'content-length': '0' });
    res.end();
  }

  #relative(req: IncomingMessage, ctx: RequestContext): string | undefined {
    const { scheme: toScheme, host: toHost, port: toPort } = this.config;
    const raw = ctx.target?.authority ?? req.headers.host ?? (req.headers[':authority'] as string | undefined);
    const host = toHost ?? normalizeHost(raw);
    if (host === undefined || ctx.target === undefined) return undefined;
    const fromScheme = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
    const scheme = toScheme ?? fromScheme;
    let port = toPort;
    if (port === undefined && scheme === fromScheme && toHost === undefined) port = requestPort(raw);
    const authority = port === undefined || port === DEFAULT_PORTS[scheme] ? host : `${host}:${port}`;
    return `${scheme}://${authority}${ctx.target.path}${ctx.target.query}`;
  }
}

/** The explicit port of a `Host` value, if any. */
function requestPort(host: string | undefined): number | undefined {
  const match = host === undefined ? null : /:(\d+)$/.exec(host);
  return match ? Number(match[1]) : undefined;
}

/** Compile a `redirect` route. @throws Error when the route has none (the schema rejects that first) */
export function compileRedirect(route: RouteConfig): RedirectAction {
  if (!route.redirect) throw new Error(`route ${route.path_prefix} has no redirect action`);
  return new RedirectAction(route.redirect);
}
