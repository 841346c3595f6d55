import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Attributes, context, defaultTextMapGetter, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_ROUTE,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Logger } from '../../core/log.js';
import { sendFailure, sendJson } from '../../net/json.js';
import { HTTP_PROPAGATOR } from '../../telemetry/forwarding-tracer.js';
import { endHttpSpan, setRequestMethod, spanMethodName } from '../../telemetry/semconv.js';
import type { CompiledRoute, RequestContext, RequestTarget, RouteTable, ServingGeneration } from '../ports.js';
import { BadHost, normalizeHost, normalizeTarget, requestHost, routePath } from '../route/normalize.js';
import { ConnectionBytes } from './access-log.js';
import type { ConnectionAuthority } from './authority.js';
import { runInRequestContext } from './context.js';

export interface RequestHandlerOptions {
  /** The generation active right now (read once per request, at arrival). */
  active: () => ServingGeneration | undefined;
  /** Registry key of the listener this handler serves. */
  listenKey: string;
  logger: Logger;
  /** Checks a TLS request's host against its connection's certificate (421 when not covered). */
  authority?: ConnectionAuthority;
  /** Byte counts of the listener's connections, for the access log (shared with its tunnels); default: the handler's own. */
  connectionBytes?: ConnectionBytes;
}

const CLOSED_EARLY = { type: 'aborted', message: 'connection closed before the response finished' };

/**
 * The per-request entry point of a listener. For each request: read the active generation once
 * and pin it (the whole request is served by it, even across a reload), route it, start a
 * server span (OTel HTTP semantic conventions, parented on an incoming `traceparent`), create a
 * fresh `RequestContext`, run the action, and when the response closes write the access line
 * (the generation's `accessLog`, if on), end the span and unpin.
 *
 * Routing reads the target once (`normalizeTarget`: the path routes match, without segment
 * parameters (`routePath`), is the path the upstream gets) and the host from an absolute-form
 * target's authority, else the single `Host` field, else an HTTP/2 request's `:authority`.
 * Answers without an action: 400 for a target that is not a path or is malformed, and for two
 * `Host` lines or an invalid one (RFC 9112 section 3.2, connection closed); 421 on a TLS
 * connection whose certificate does not serve the host (checked before routing); 405 with
 * `Allow` when routes match the path and host but not the method; 404 when none matches.
 */
export function createRequestHandler(options: RequestHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { active, listenKey, logger, authority } = options;
  const bytes = options.connectionBytes ?? new ConnectionBytes();
  return (req, res) => {
    const generation = active();
    if (!generation) {
      sendJson(res, 503, { error: 'no active config' }, true);
      return;
    }
    const unpin = generation.pin(() => req.socket.destroy());
    res.once('close', unpin);
    const router = generation.router(listenKey);
    if (!router) {
      // The listener is still bound for a draining generation but the active one dropped it.
      sendJson(res, 503, { error: 'listener is not in the active config' }, true);
      return;
    }
    const target = normalizeTarget(req.url);
    const method = req.method ?? 'GET';
    const routing = routingHost(req, target);
    const badHost = routing instanceof BadHost ? routing : undefined;
    const host = badHost ? undefined : (routing as string | undefined);
    // Checked before routing: a TLS connection's certificate must serve the host (421 otherwise).
    const misdirected = host !== undefined && authority !== undefined && !authority.allows(req, host, generation.sni(listenKey));
    const route = target && !badHost && !misdirected ? router.match(method, host, routePath(target.path)) : undefined;

    // Without a traceparent there is no parent to extract (the common case: skip the propagator).
    const parent = req.headers.traceparent === undefined ? ROOT_CONTEXT : HTTP_PROPAGATOR.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const spanMethod = spanMethodName(method);
    const span = generation.tracer.startSpan(route ? `${spanMethod} ${route.pathPrefix}` : spanMethod, SERVER_SPAN, parent);
    // Attributes are built for spans that are recorded only (not for unsampled ones, nor with tracing off).
    if (span.isRecording()) span.setAttributes(serverAttributes(req, method, host, target, route, generation.id, listenKey));
    const ctx: RequestContext = {
      generation: generation.id,
      listener: listenKey,
      target,
      route,
      span,
      startedAt: process.hrtime.bigint(),
      outcome: { attempts: 0 },
    };
    const accessLog = generation.accessLog(listenKey);
    res.once('close', () => {
      // Before the span ends: the line carries its ids while it is still recording.
      accessLog?.request(req, res, ctx, bytes);
      // Only a status that was sent: before writeHead, statusCode is just the default 200.
      endHttpSpan(span, res.headersSent ? res.statusCode : undefined, res.writableFinished ? undefined : CLOSED_EARLY, 500);
    });
    const run = () => runInRequestContext(ctx, () => runAction(req, res, ctx, router, host, target, badHost, misdirected, logger));
    // The OpenTelemetry context (the active span for code that asks) is entered only when it
    // carries something: a recorded span, or a parent to continue. hotconf's own code passes
    // `ctx.span` explicitly.
    if (span.isRecording() || parent !== ROOT_CONTEXT) context.with(trace.setSpan(parent, span), run);
    else run();
  };
}

const SERVER_SPAN = { kind: SpanKind.SERVER };

/**
 * The normalised host a request is routed by: an absolute-form target's authority wins over
 * Host (RFC 9112 section 3.2.2), else the single `Host` field, else an HTTP/2 request's
 * `:authority` (RFC 9113 section 8.3.1). `BadHost` for two `Host` lines or an invalid one.
 */
export function routingHost(req: IncomingMessage, target: RequestTarget | undefined): string | undefined | BadHost {
  const field = requestHost(req.rawHeaders);
  if (field instanceof BadHost) return field;
  return normalizeHost(target?.authority ?? field ?? (req.headers[':authority'] as string | undefined));
}

function runAction(
  req: IncomingMessage,
  res: ServerResponse,
  ctx: RequestContext,
  router: RouteTable,
  host: string | undefined,
  target: RequestTarget | undefined,
  badHost: BadHost | undefined,
  misdirected: boolean,
  logger: Logger,
): void {
  const { route } = ctx;
  try {
    if (route) route.action.run(req, res, ctx);
    else if (!target) sendJson(res, 400, { error: 'bad request target' }, false);
    else if (badHost) sendJson(res, 400, { error: badHost.reason }, true);
    else if (misdirected) sendJson(res, 421, { error: 'misdirected request: the certificate of this connection does not serve this host' }, false);
    else noRoute(router, host, target, res);
  } catch (error) {
    logger.error({ err: error, generation: ctx.generation, listener: ctx.listener, action: route?.action.type }, 'request_failed');
    sendFailure(res, 500, { error: 'internal error' });
  }
}

/** 405 with `Allow` when routes match the path and host but not the method (RFC 9110 section 15.5.6), else 404. */
function noRoute(router: RouteTable, host: string | undefined, target: RequestTarget, res: ServerResponse): void {
  const allow = router.allowedMethods(host, routePath(target.path));
  if (allow === undefined) {
    sendJson(res, 404, { error: 'no route' }, false);
    return;
  }
  res.setHeader('allow', allow);
  sendJson(res, 405, { error: 'method not allowed' }, false);
}

/** The server span's attributes (OTel HTTP semantic conventions) and hotconf's own (generation, listener). */
function serverAttributes(
  req: IncomingMessage,
  method: string,
  host: string | undefined,
  target: RequestTarget | undefined,
  route: CompiledRoute | undefined,
  generation: number,
  listenKey: string,
): Attributes {
  const socket = req.socket;
  const attributes: Attributes = {
    [ATTR_URL_SCHEME]: (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    // Node reports HTTP/2 as `2.0`; the conventions' value is `2`.
    [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersionMajor === 2 ? '2' : req.httpVersion,
    'hotconf.generation': generation,
    'hotconf.listener': listenKey,
  };
  setRequestMethod(attributes, method);
  if (target) {
    attributes[ATTR_URL_PATH] = target.path;
    if (target.query) attributes[ATTR_URL_QUERY] = target.query.slice(1);
  }
  if (route) attributes[ATTR_HTTP_ROUTE] = route.pathPrefix;
  if (host) attributes[ATTR_SERVER_ADDRESS] = host;
  if (socket.localPort !== undefined) attributes[ATTR_SERVER_PORT] = socket.localPort;
  if (socket.remoteAddress) {
    attributes[ATTR_CLIENT_ADDRESS] = socket.remoteAddress;
    attributes[ATTR_NETWORK_PEER_ADDRESS] = socket.remoteAddress;
  }
  if (socket.remotePort !== undefined) attributes[ATTR_NETWORK_PEER_PORT] = socket.remotePort;
  const userAgent = req.headers['user-agent'];
  if (userAgent) attributes[ATTR_USER_AGENT_ORIGINAL] = userAgent;
  return attributes;
}
