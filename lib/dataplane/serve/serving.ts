import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../core/log.js';
import type { StackServing } from '../../resources/http-stack.js';
import type { RequestTarget, ServingGeneration } from '../ports.js';
import { ProxyAction } from '../proxy/proxy.js';
import { BadHost, normalizeTarget, routePath } from '../route/normalize.js';
import type { TunnelObserver } from '../tunnel/tunnel.js';
import { isWebSocketUpgrade, proxyUpgrade, type UpgradeEnd } from '../tunnel/upgrade.js';
import { ConnectionBytes } from './access-log.js';
import { ConnectionAuthority } from './authority.js';
import { createRequestHandler, routingHost } from './handler.js';
import { responseOnUpgradeSocket } from './upgrade-response.js';

/** Receives TLS handshakes and tunnel ends, for metrics; injected, never a module global. */
export interface EdgeObserver extends TunnelObserver {
  /** A TLS handshake on listener `listenKey` ended: `hotconf_tls_handshakes_total{listener,result}`. */
  tlsHandshake(listenKey: string, result: 'ok' | 'error'): void;
}

export interface ListenerServingOptions {
  /** The generation active right now (read once per request, upgrade and handshake). */
  active: () => ServingGeneration | undefined;
  /** Registry key of the listener served. */
  listenKey: string;
  logger: Logger;
  observer?: EdgeObserver;
}

/**
 * Everything a listener's protocol stack calls, for one listener: requests, upgrades and SNI,
 * each resolved against the generation active when it arrives. Built once per stack by the
 * daemon's wiring.
 */
export function createListenerServing(options: ListenerServingOptions): StackServing {
  const { active, listenKey, observer } = options;
  const authority = new ConnectionAuthority();
  const connectionBytes = new ConnectionBytes();
  const onRequest = createRequestHandler({ ...options, authority, connectionBytes });
  return {
    onRequest,
    onUpgrade: (req, socket, head) => {
      if (!tunnelUpgrade(options, authority, connectionBytes, req, socket, head)) answerOnUpgradeSocket(req, socket, head, onRequest);
    },
    // The generation active at ClientHello picks the certificate; undefined: the stack's default.
    sni: (servername) => active()?.sni(listenKey)?.lookup(servername).context,
    tlsHandshake: observer ? (result) => observer.tlsHandshake(listenKey, result) : undefined,
  };
}

/**
 * Open a tunnel for a WebSocket upgrade whose route, in the generation active now, proxies to an
 * upstream; false when it does not (the request is then answered as any other: a bad or
 * misdirected host gets its 400 or 421 there). The generation is pinned until the upstream answered.
 */
function tunnelUpgrade(
  options: ListenerServingOptions,
  authority: ConnectionAuthority,
  bytes: ConnectionBytes,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): boolean {
  const { listenKey } = options;
  const generation = options.active();
  const target = normalizeTarget(req.url);
  if (!generation || !target || !isWebSocketUpgrade(req)) return false;
  const host = routingHost(req, target);
  if (host instanceof BadHost || (host !== undefined && !authority.allows(req, host, generation.sni(listenKey)))) return false;
  const route = generation.router(listenKey)?.match('GET', host, routePath(target.path));
  const tunnels = generation.tunnels(listenKey);
  const routeSection = route && generation.routeSection(listenKey, route.index);
  if (!route || !(route.action instanceof ProxyAction) || !tunnels || routeSection === undefined) return false;
  const unpin = generation.pin(() => socket.destroy());
  proxyUpgrade(req, socket, head, {
    action: route.action,
    target,
    listenKey,
    routeSection,
    tunnels,
    observer: options.observer,
    logger: options.logger,
    unpin,
    onEnd:
      generation.accessLog(listenKey) &&
      upgradeAccess(options, bytes, req, socket, generation.id, route.index, route.pathPrefix, target, route.action.upstream.name),
  });
  return true;
}

/**
 * The access line of an upgrade, written when it ends to the access log of the generation active
 * then (a tunnel outlives the generation that routed it, and holds none: only these values).
 */
function upgradeAccess(
  options: ListenerServingOptions,
  bytes: ConnectionBytes,
  req: IncomingMessage,
  socket: Duplex,
  generation: number,
  route: number,
  pathPrefix: string,
  target: RequestTarget,
  upstream: string,
): (end: UpgradeEnd) => void {
  const startedAt = process.hrtime.bigint();
  return (end) =>
    options
      .active()
      ?.accessLog(options.listenKey)
      ?.tunnel(
        req,
        socket,
        { generation, route, pathPrefix, target, startedAt, upstream, origin: end.origin, status: end.status, ended: end.ended, closeReason: end.closeReason },
        bytes,
      );
}

/** Answer an `Upgrade` request as a plain request (`respond`, `redirect`, 404 work for it as for any request). */
export function answerOnUpgradeSocket(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
): void {
  onRequest(req, responseOnUpgradeSocket(req, socket, head));
}
