import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Dispatcher } from 'undici';
import { errorCode } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { sendFailure, sendJson } from '../../net/json.js';
import type { TunnelCloseReason, TunnelSet } from '../../resources/listener.js';
import type { AccessEnded, RequestTarget } from '../ports.js';
import { downstreamResponseHeaders, upstreamPath, upstreamRequestHeaders } from '../proxy/headers.js';
import type { ProxyAction } from '../proxy/proxy.js';
import { responseOnUpgradeSocket } from '../serve/upgrade-response.js';
import { Tunnel, type TunnelObserver } from './tunnel.js';

/** Everything one upgrade needs besides the request: where the tunnel goes and who owns it. */
export interface UpgradeRequest {
  readonly action: ProxyAction;
  readonly target: RequestTarget;
  readonly listenKey: string;
  /** Canonical JSON of the route section that matched (the tunnel's binding). */
  readonly routeSection: string;
  /** The listener's tunnels: the tunnel joins them after its 101. */
  readonly tunnels: TunnelSet;
  readonly observer?: TunnelObserver;
  readonly logger: Logger;
  /** Unpins the generation that routed the upgrade: called after the 101, or when the answer ended. */
  readonly unpin: () => void;
  /** Called once when the upgrade is over (its tunnel closed, or its answer did), for the access log. */
  readonly onEnd?: (end: UpgradeEnd) => void;
}

/** How an upgrade ended: what the access log writes of it. */
export interface UpgradeEnd {
  /** 101 for a tunnel, the answer's status otherwise, 0 when the client left before any. */
  readonly status: number;
  /** The target chosen, unset when none was (no healthy target). */
  readonly origin: string | undefined;
  readonly ended: AccessEnded;
  /** Why its tunnel closed; unset without a tunnel. */
  readonly closeReason?: TunnelCloseReason;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Proxy an HTTP/1.1 `Upgrade` (WebSocket) request to a target of the route's upstream with
 * undici's `dispatch` and an upgrade handler (undici's `upgrade()` rejects any answer but 101,
 * and the client must see the upstream's 401/403/404 as it is):
 * - `101`: the status line and headers go to the client as the upstream sent them, then the two
 *   sockets become a `Tunnel` in the listener's set, and the generation is unpinned (a tunnel
 *   never holds a generation).
 * - any other answer: relayed (status, headers minus hop-by-hop ones, body) and the connection
 *   closed.
 * - no healthy target: 503; connect error: 502; no answer within the upstream's `timeout_ms`: 504.
 * The client leaving before the answer aborts the upstream request.
 */
export function proxyUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, u: UpgradeRequest): void {
  const { upstream } = u.action;
  const chosen = upstream.balancer.pick();
  let res: ServerResponse | undefined;
  let reported = false;
  const report = (status: number, ended: AccessEnded, closeReason?: TunnelCloseReason) => {
    if (reported || !u.onEnd) return;
    reported = true;
    u.onEnd({ status, origin: chosen?.origin, ended, closeReason });
  };
  /** How an answer that is not a 101 ended when it did not complete on its own terms. */
  let failure: AccessEnded | undefined;
  const answer = (): ServerResponse => {
    if (res) return res;
    const created = responseOnUpgradeSocket(req, socket, head);
    res = created;
    if (u.onEnd)
      created.once('close', () => report(created.headersSent ? created.statusCode : 0, failure ?? (created.writableFinished ? 'complete' : 'client_aborted')));
    return created;
  };
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    u.unpin();
  };
  if (!chosen) {
    failure = 'upstream_error';
    sendJson(answer(), 503, { error: 'no healthy upstream target', upstream: upstream.name }, true);
    finish();
    return;
  }
  const encrypted = (socket as { encrypted?: boolean }).encrypted === true;
  const peer = (socket as Socket).remoteAddress;
  const trusted = u.action.trustedProxies.trusts(peer);
  const headers = upstreamRequestHeaders(req, peer, upstream.config.forwarded_header, trusted, u.target.authority, encrypted ? 'https' : 'http');
  let resume: (() => void) | undefined;
  let abort: ((reason?: Error) => void) | undefined;
  const onClientGone = () => abort?.(new Error('the client closed the connection'));
  socket.once('close', onClientGone);
  const handler: Dispatcher.DispatchHandler = {
    onConnect(abortRequest) {
      abort = abortRequest;
    },
    onUpgrade(_status, rawHeaders, upstreamSocket) {
      socket.off('close', onClientGone);
      finish();
      if (socket.destroyed) {
        upstreamSocket.destroy();
        report(0, 'client_aborted');
        return;
      }
      const lines = ['HTTP/1.1 101 Switching Protocols'];
      const raw = rawHeaders ?? [];
      for (let i = 0; i + 1 < raw.length; i += 2) lines.push(`${String(raw[i])}: ${String(raw[i + 1])}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.byteLength > 0) upstreamSocket.write(head);
      const binding = { listenKey: u.listenKey, route: u.routeSection, upstream: upstream.name, target: chosen.origin };
      let leave = () => {};
      const observer: TunnelObserver | undefined = u.onEnd
        ? {
            tunnelClosed: (reason) => {
              u.observer?.tunnelClosed(reason);
              report(101, 'complete', reason);
            },
          }
        : u.observer;
      const tunnel = new Tunnel(socket, upstreamSocket, binding, observer, () => leave());
      leave = u.tunnels.add(tunnel);
    },
    onHeaders(status, rawHeaders, resumeRead) {
      resume = resumeRead;
      const out = answer();
      out.writeHead(status, downstreamResponseHeaders(rawHeaders));
      return true;
    },
    onData(chunk) {
      const more = answer().write(chunk);
      if (!more) answer().once('drain', () => resume?.());
      return more;
    },
    onComplete() {
      socket.off('close', onClientGone);
      answer().end();
      finish();
    },
    onError(error) {
      socket.off('close', onClientGone);
      finish();
      if (socket.destroyed) {
        report(0, 'client_aborted');
        return;
      }
      const code = errorCode(error) ?? '';
      failure = TIMEOUT_CODES.has(code) ? 'timeout' : 'upstream_error';
      if (TIMEOUT_CODES.has(code)) sendFailure(answer(), 504, { error: 'upstream timeout', upstream: upstream.name });
      else sendFailure(answer(), 502, { error: 'upstream connect error', upstream: upstream.name });
      u.logger.warn({ err: error, target: chosen.origin, upstream: upstream.name }, 'upgrade_failed');
    },
  };
  chosen.pool.pool.dispatch(
    {
      path: upstreamPath(u.target, u.action),
      method: 'GET',
      headers,
      upgrade: String(req.headers.upgrade),
      headersTimeout: upstream.config.timeout_ms,
    },
    handler,
  );
}

/** True for an HTTP/1.1 WebSocket handshake (`Upgrade: websocket`, RFC 6455 section 4.1). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}
