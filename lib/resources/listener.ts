import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseListenAddress } from '../config/address.js';
import { withTimeout } from '../core/timeout.js';
import { createLimitedServer, type HttpLimits, httpLimits, rejectOversizedBody } from '../net/limits.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { ResourceKind } from './kind.js';

/** Registry kind (and metric label) of HTTP listeners. */
export const LISTENER_KIND = 'listener';

/** Called for every request a listener accepts. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** A bound HTTP server. `address` is the bound address (the real port when `listen` asked for 0). */
export interface ListenerHandle {
  readonly server: Server;
  readonly address: AddressInfo;
  /** Resolves once the server is closed and its last connection has ended. */
  readonly closed: Promise<void>;
  /** Stop accepting new connections; requests already in progress finish. Idempotent. */
  stopAccepting(): void;
  /**
   * Bound the client connections open at once (Node's `server.maxConnections`): more are closed
   * as they are accepted, before a byte is read. Set by the generation that becomes active, so a
   * kept listener follows the active config.
   */
  setMaxConnections(max: number): void;
}

export interface ListenerFactoryOptions {
  /** How long `destroy` lets open connections finish before cutting them, in ms. Default 1000. */
  closeTimeoutMs?: number;
  /** Timeouts and size limits for clients; unset fields take `DEFAULT_HTTP_LIMITS`. */
  limits?: Partial<HttpLimits>;
  /** Server errors after the bind (the bind error itself rejects `create`). */
  onError?: (error: Error) => void;
  /** Share the port with the other workers of a node:cluster (`exclusive: false`). Default false. */
  shared?: boolean;
}

/**
 * The registry factory for a listener (key: its `listen` address, so a listener whose address
 * is unchanged is kept across reloads and its connections, keepalive included, survive).
 *
 * The server holds no routes and no per-request state: `onRequest` is called for every request
 * and decides, at arrival, which generation serves it. `create` resolves once the socket is
 * bound and rejects with the bind error (`EADDRINUSE`, `EACCES`). `destroy` stops accepting,
 * closes idle keepalive connections, lets requests in progress finish for `closeTimeoutMs`, then
 * closes every connection that is left. Clients get `limits` (slow heads and bodies time out,
 * oversized heads and declared bodies are refused before `onRequest` runs).
 */
export function listenerFactory(listen: string, onRequest: RequestHandler, options: ListenerFactoryOptions = {}): ResourceFactory<ListenerHandle> {
  const closeTimeoutMs = options.closeTimeoutMs ?? 1000;
  const limits = httpLimits(options.limits);
  return {
    async create() {
      const parsed = parseListenAddress(listen);
      if ('error' in parsed) throw new Error(`${listen}: ${parsed.error}`);
      const server = createLimitedServer(limits, (req, res) => {
        if (!rejectOversizedBody(req, res, limits.maxBodyBytes)) onRequest(req, res);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: parsed.host, port: parsed.port, exclusive: !options.shared }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      // Installed after bind: bind errors reject create, later ones (EMFILE on accept) must not
      // become an uncaught 'error' event.
      server.on('error', (error) => options.onError?.(error));
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      let accepting = true;
      return {
        server,
        closed,
        address: server.address() as AddressInfo,
        stopAccepting() {
          if (!accepting) return;
          accepting = false;
          server.close();
          server.closeIdleConnections();
        },
        setMaxConnections(max) {
          server.maxConnections = max;
        },
      };
    },
    async destroy(handle) {
      handle.stopAccepting();
      try {
        await withTimeout(handle.closed, closeTimeoutMs, () => new Error('connections still open'));
      } catch {
        handle.server.closeAllConnections();
        await handle.closed;
      }
    },
  };
}

/** Registry key of a listener: its normalised `listen` address. */
export function listenerKey(listen: string): string {
  return listen.toLowerCase();
}

/** What a listener is built from: its address and the handler that routes each request (by the generation active at arrival). */
export interface ListenerInput {
  readonly listen: string;
  readonly onRequest: RequestHandler;
}

/** The `listener` kind, keyed by address only: the bound socket and its connections survive every reload that keeps the address. */
export const listenerKind: ResourceKind<ListenerInput, ListenerHandle> = {
  kind: LISTENER_KIND,
  key: (input) => listenerKey(input.listen),
  factory: (input, deps) =>
    listenerFactory(input.listen, input.onRequest, {
      onError: (error) => deps.onBackgroundError('listener', error),
      limits: deps.httpLimits,
      shared: deps.sharedListeners,
    }),
};
