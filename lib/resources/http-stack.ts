import type { IncomingMessage, ServerResponse } from 'node:http';
import { createSecureServer, type Http2SecureServer, Http2ServerResponse, constants as h2, type ServerHttp2Session } from 'node:http2';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { SecureContext, TLSSocket } from 'node:tls';
import type { TLS_ALPN, TLS_VERSIONS } from '../config/schema.js';
import { withTimeout } from '../core/timeout.js';
import { createLimitedServer, type HttpLimits, httpLimits, rejectOversizedBody } from '../net/limits.js';
import { sectionKey } from '../registry/key.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { ResourceKind } from './kind.js';
import { type ConnectionAcceptor, listenerKey } from './listener.js';

/** Registry kind (and metric label) of protocol stacks. */
export const HTTP_STACK_KIND = 'http_stack';

/** The TLS part of a stack's policy; certificates are not part of it (they rotate under it). */
export interface StackTlsPolicy {
  readonly min_version: (typeof TLS_VERSIONS)[number];
  readonly alpn: readonly (typeof TLS_ALPN)[number][];
}

/** What a stack is keyed by: the listener address, TLS on/off with its policy, and the client limits. Never certificate bytes. */
export interface StackPolicy {
  readonly listen: string;
  readonly tls: StackTlsPolicy | undefined;
}

/**
 * The PEM pair a TLS stack presents to clients that send no SNI (or a name no certificate has):
 * the first certificate of the active generation's listener. `digest` identifies the contents.
 */
export interface DefaultCertificate {
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly digest: string;
}

/**
 * What a stack calls for each request, upgrade and TLS handshake. Built once per listener by the
 * daemon's wiring: each call reads the generation active at that moment, so the stack itself
 * holds no routes, no certificates table and no per-request state.
 */
export interface StackServing {
  /** Every request (HTTP/1.1, or an HTTP/2 stream through Node's compatibility API). */
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  /** An HTTP/1.1 request with `Upgrade` (WebSocket). The socket is detached from the stack. */
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** The context for an SNI `servername` at ClientHello; undefined: the default certificate. */
  sni(servername: string): SecureContext | undefined;
  /** A TLS handshake ended: `ok`, or `error` (no shared version or protocol, bad hello, timeout). */
  tlsHandshake?(result: 'ok' | 'error'): void;
}

/** What a stack is built from; `ticketKeys` are the listener's. */
export interface HttpStackInput {
  readonly policy: StackPolicy;
  readonly serving: StackServing;
  readonly ticketKeys: Buffer;
}

/** A protocol stack: a server that never listens, fed connections by its listener. */
export interface HttpStack extends ConnectionAcceptor {
  readonly server: HttpStackServer;
  readonly policy: StackPolicy;
  /** HTTP/2 sessions open right now. */
  readonly sessions: number;
  /** Connections open right now (handshaken; upgraded ones are the listener's, not counted). */
  readonly connections: number;
  /**
   * Present `certificate` to clients whose SNI selects no other certificate; a no-op when it is
   * the one already set. Builds the default context with the full policy (an option left out of
   * `setSecureContext` would revert to its default) and the listener's ticket keys.
   */
  useDefaultCertificate(certificate: DefaultCertificate): void;
  /** Graceful close (see `httpStackFactory`), bounded by `timeoutMs`, then immediate. */
  close(timeoutMs: number): Promise<void>;
}

export type HttpStackServer = ReturnType<typeof createLimitedServer> | HttpsServer | Http2SecureServer;

/** Connection-specific headers, forbidden in HTTP/2 (RFC 9113 section 8.2.2). */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * The HTTP/2 compatibility response, minus connection-specific headers: Node throws
 * `ERR_HTTP2_INVALID_CONNECTION_HEADERS` for them, and actions written for HTTP/1.1
 * (`connection: close` on an error reply, a configured `respond` header) must not fail on h2.
 */
class EdgeHttp2Response extends Http2ServerResponse {
  override setHeader(name: string, value: number | string | readonly string[]): void {
    if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) super.setHeader(name, value);
  }

  override writeHead(statusCode: number, ...rest: unknown[]): this {
    const last = rest[rest.length - 1];
    if (last && typeof last === 'object' && !Array.isArray(last)) {
      const names = Object.keys(last);
      // A copy only when needed: the object may be shared (a `respond` route's precomputed headers).
      if (names.some((name) => CONNECTION_SPECIFIC.has(name.toLowerCase()))) {
        const kept: Record<string, unknown> = {};
        for (const name of names) if (!CONNECTION_SPECIFIC.has(name.toLowerCase())) kept[name] = (last as Record<string, unknown>)[name];
        rest[rest.length - 1] = kept;
      }
    }
    return (super.writeHead as (status: number, ...args: unknown[]) => this)(statusCode, ...rest);
  }
}

export interface HttpStackFactoryOptions {
  /** How long `destroy` lets open connections finish before cutting them, in ms. Default 1000. */
  closeTimeoutMs?: number;
  limits?: Partial<HttpLimits>;
}

/**
 * The registry factory for a protocol stack (key: `httpStackKey`): a plain HTTP/1.1
 * `http.Server`, an HTTPS `https.Server` (ALPN `http/1.1` only) or
 * `http2.createSecureServer({allowHTTP1})`, never listening: its listener hands it sockets
 * (`accept`, which emits `'connection'`), so when the policy changes, new connections get the
 * new stack while the old one drains its own.
 *
 * Per-connection state (the TLS session, the SNI result, the HTTP/2 session) lives in the
 * sockets and sessions Node builds here; per-request state (context, span, pinned generation)
 * is created by `serving.onRequest` for each request and never stored on any of them, and
 * `AsyncLocalStorage.enterWith` is never used (it would leak into the next request of the same
 * keepalive connection or h2 session: the APISIX #13200 lesson).
 *
 * A server fed by `emit('connection')` never emits `'listening'` on its own, and Node starts
 * the header and request timeout checks on `'listening'`: `create` emits it, or slow clients
 * would never be cut. `http2.createSecureServer` ignores the HTTP/1.1 timeout options, so they
 * are set as properties.
 *
 * `destroy`: close idle HTTP/1.1 connections, send HTTP/2 sessions a two-step GOAWAY (the
 * maximum stream id, then after a PING round trip the last one, as RFC 9113 section 6.8
 * advises), let the rest finish for `closeTimeoutMs`, then destroy what is left. Node 20's
 * `server.close()` leaves h2 sessions open and `closeAllConnections()` leaves upgraded sockets
 * open: sessions are tracked here, upgraded sockets belong to the listener's tunnels.
 */
export function httpStackFactory(input: HttpStackInput, options: HttpStackFactoryOptions = {}): ResourceFactory<HttpStack> {
  const closeTimeoutMs = options.closeTimeoutMs ?? 1000;
  const limits = httpLimits(options.limits);
  const { policy, serving, ticketKeys } = input;
  return {
    create() {
      const onRequest = (req: IncomingMessage, res: ServerResponse) => {
        if (!rejectOversizedBody(req, res, limits.maxBodyBytes)) serving.onRequest(req, res);
      };
      const tls = policy.tls;
      const connections = new Set<Socket>();
      const sessions = new Set<ServerHttp2Session>();
      const track = (socket: Socket) => {
        connections.add(socket);
        socket.once('close', () => connections.delete(socket));
      };
      let server: HttpStackServer;
      let defaultDigest: string | undefined;
      const tlsOptions = tls && {
        minVersion: tls.min_version,
        ticketKeys,
        handshakeTimeout: limits.headersTimeoutMs,
        SNICallback: (servername: string, done: (error: Error | null, context?: SecureContext) => void) => done(null, serving.sni(servername)),
      };
      if (!tls || !tlsOptions) {
        server = createLimitedServer(limits, onRequest);
        server.on('connection', track);
      } else {
        if (tls.alpn.includes('h2')) {
          const h2server = createSecureServer({
            ...tlsOptions,
            allowHTTP1: tls.alpn.includes('http/1.1'),
            settings: { maxHeaderListSize: limits.maxHeaderBytes },
            Http2ServerResponse: EdgeHttp2Response as unknown as typeof Http2ServerResponse,
          });
          h2server.on('request', onRequest as never);
          h2server.on('session', (session: ServerHttp2Session) => {
            sessions.add(session);
            session.once('close', () => sessions.delete(session));
          });
          // Ignored by createSecureServer's options for its HTTP/1.1 fallback: set as properties.
          Object.assign(h2server, {
            headersTimeout: limits.headersTimeoutMs,
            requestTimeout: limits.requestTimeoutMs,
            keepAliveTimeout: limits.keepAliveTimeoutMs,
            connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
            maxHeaderSize: limits.maxHeaderBytes,
          });
          server = h2server;
        } else {
          server = createHttpsServer(
            {
              ...tlsOptions,
              ALPNProtocols: ['http/1.1'],
              headersTimeout: limits.headersTimeoutMs,
              requestTimeout: limits.requestTimeoutMs,
              keepAliveTimeout: limits.keepAliveTimeoutMs,
              connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
              maxHeaderSize: limits.maxHeaderBytes,
            },
            onRequest,
          );
        }
        server.on('secureConnection', (socket: TLSSocket) => {
          track(socket);
          serving.tlsHandshake?.('ok');
        });
        server.on('tlsClientError', () => serving.tlsHandshake?.('error'));
      }
      server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        connections.delete(socket as Socket);
        serving.onUpgrade(req, socket, head);
      });
      server.emit('listening');
      return new ProtocolStack(server, policy, sessions, connections, (certificate) => {
        if (!tlsOptions || certificate.digest === defaultDigest) return;
        defaultDigest = certificate.digest;
        (server as HttpsServer).setSecureContext({ cert: certificate.certPem, key: certificate.keyPem, minVersion: tlsOptions.minVersion, ticketKeys });
      });
    },
    destroy: (stack) => stack.close(closeTimeoutMs),
  };
}

class ProtocolStack implements HttpStack {
  readonly server: HttpStackServer;
  readonly policy: StackPolicy;
  readonly #sessions: Set<ServerHttp2Session>;
  readonly #connections: Set<Socket>;
  readonly #useDefault: (certificate: DefaultCertificate) => void;

  constructor(
    server: HttpStackServer,
    policy: StackPolicy,
    sessions: Set<ServerHttp2Session>,
    connections: Set<Socket>,
    useDefault: (certificate: DefaultCertificate) => void,
  ) {
    this.server = server;
    this.policy = policy;
    this.#sessions = sessions;
    this.#connections = connections;
    this.#useDefault = useDefault;
  }

  get sessions(): number {
    return this.#sessions.size;
  }

  get connections(): number {
    return this.#connections.size;
  }

  accept(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  useDefaultCertificate(certificate: DefaultCertificate): void {
    this.#useDefault(certificate);
  }

  async close(timeoutMs: number): Promise<void> {
    this.server.close();
    for (const session of this.#sessions) goAway(session);
    if (this.#connections.size === 0) return;
    const allClosed = Promise.all([...this.#connections].map((socket) => new Promise((resolve) => socket.once('close', resolve))));
    try {
      await withTimeout(allClosed, timeoutMs, () => new Error('connections still open'));
    } catch {
      for (const session of this.#sessions) session.destroy();
      for (const socket of this.#connections) socket.destroy();
    }
  }
}

/** Two-step GOAWAY: the maximum stream id first, then, one PING round trip later, the real last one (`close`). */
function goAway(session: ServerHttp2Session): void {
  if (session.closed || session.destroyed) return;
  session.goaway(h2.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
  const closeNow = () => {
    if (!session.closed && !session.destroyed) session.close();
  };
  if (!session.ping(closeNow)) closeNow();
}

/**
 * Registry key of a stack: its listener's address and the hash of its TLS policy (the client
 * limits are the process's, the same for every stack).
 */
export function httpStackKey(input: Pick<HttpStackInput, 'policy'>): string {
  return `${listenerKey(input.policy.listen)} ${input.policy.tls ? `tls-${sectionKey(input.policy.tls)}` : 'plain'}`;
}

/** The `http_stack` kind: one protocol stack per listener address and policy, shared by every generation with that policy. */
export const httpStackKind: ResourceKind<HttpStackInput, HttpStack> = {
  kind: HTTP_STACK_KIND,
  key: (input) => httpStackKey(input),
  factory: (input, deps) => httpStackFactory(input, { limits: deps.httpLimits }),
};
