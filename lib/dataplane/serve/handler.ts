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
import { endHttpSpan, setRequestMethod } from '../../telemetry/semconv.js';
import type { CompiledRoute, RequestContext, RequestTarget, ServingGeneration } from '../ports.js';
import { normalizeHost, normalizeTarget } from '../route/normalize.js';
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
}

const CLOSED_EARLY = { type: 'aborted', message: 'connection closed before the response finished' };

/**
 * The per-request entry point of a listener. For each request: read the active generation once
 * and pin it (the whole request is served by it, even across a reload), route it, start a
 * server span (OTel HTTP semantic conventions, parented on an incoming `traceparent`), create a
 * fresh `RequestContext`, run the action, and end the span and unpin when the response closes.
 */
export function createRequestHandler(options: RequestHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { active, listenKey, logger, authority } = options;
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
    const host = normalizeHost(req.headers.host ?? (req.headers[':authority'] as string | undefined));
    const misdirected = host !== undefined && authority !== undefined && !authority.allows(req, host, generation.sni(listenKey));
    const route = target && !misdirected ? router.match(method, host, target.path) : undefined;

    const parent = HTTP_PROPAGATOR.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const attributes = serverAttributes(req, host, target, route);
    const spanMethod = setRequestMethod(attributes, method);
    attributes['hotconf.generation'] = generation.id;
    attributes['hotconf.listener'] = listenKey;
    const span = generation.tracer.startSpan(route ? `${spanMethod} ${route.pathPrefix}` : spanMethod, { kind: SpanKind.SERVER, attributes }, parent);
    const ctx: RequestContext = { generation: generation.id, listener: listenKey, target, route, span, startedAt: process.hrtime.bigint() };
    res.once('close', () =>
      // Only a status that was sent: before writeHead, statusCode is just the default 200.
      endHttpSpan(span, res.headersSent ? res.statusCode : undefined, res.writableFinished ? undefined : CLOSED_EARLY, 500),
    );

    context.with(trace.setSpan(parent, span), () =>
      runInRequestContext(ctx, () => {
        try {
          if (!target) sendJson(res, 400, { error: 'bad request target' }, false);
          else if (misdirected) sendJson(res, 421, { error: 'misdirected request: the certificate of this connection does not serve this host' }, false);
          else if (!route) sendJson(res, 404, { error: 'no route' }, false);
          else route.action.run(req, res, ctx);
        } catch (error) {
          logger.error({ err: error, generation: generation.id, listener: listenKey, action: route?.action.type }, 'request_failed');
          sendFailure(res, 500, { error: 'internal error' });
        }
      }),
    );
  };
}

/** The server span's attributes but for the method (`setRequestMethod`) and hotconf's own. */
function serverAttributes(req: IncomingMessage, host: string | undefined, target: RequestTarget | undefined, route: CompiledRoute | undefined): Attributes {
  const socket = req.socket;
  const attributes: Attributes = {
    [ATTR_URL_SCHEME]: (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    // Node reports HTTP/2 as `2.0`; the conventions' value is `2`.
    [ATTR_NETWORK_PROTOCOL_VERSION]: req.httpVersionMajor === 2 ? '2' : req.httpVersion,
  };
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
