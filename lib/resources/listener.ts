import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { parseListenAddress } from '../config/address.js';
import { withTimeout } from '../core/timeout.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { ResourceKind } from './kind.js';

/** Registry kind (and metric label) of listeners: bound sockets. */
export const LISTENER_KIND = 'listener';

/** What a listener hands each accepted connection to: a protocol stack (`http_stack`). */
export interface ConnectionAcceptor {
  accept(socket: Socket): void;
}

/** Why a tunnel was closed: the label of `hotconf_tunnels_closed_total{reason}`. */
export type TunnelCloseReason = 'client' | 'upstream' | 'route_changed' | 'shutdown' | 'lifetime';

/**
 * What a tunnel was opened for, all a swap needs to decide whether it may stay: the listener,
 * the canonical JSON of the route section that routed the upgrade, the upstream's name and the
 * target origin it is connected to. Plain values: a tunnel holds no generation.
 */
export interface TunnelBinding {
  readonly listenKey: string;
  readonly route: string;
  readonly upstream: string;
  readonly target: string;
}

/** A long-lived stream (a WebSocket tunnel) accepted on a listener; implemented by the data plane. */
export interface OpenTunnel {
  readonly binding: TunnelBinding;
  /**
   * Close gracefully: close frames to both ends now, the sockets destroyed after `delayMs` at
   * the latest. Idempotent.
   */
  close(reason: TunnelCloseReason, delayMs: number): void;
  /** Destroy both sockets now. Idempotent. */
  destroy(reason: TunnelCloseReason): void;
}

/**
 * The tunnels open on one listener. They belong to the listener, not to a generation: a tunnel
 * outlives the generation that routed its upgrade, and the listener's destroy closes whatever
 * is left. `add` returns the function that removes the tunnel (called when it closes).
 */
export class TunnelSet<T extends OpenTunnel = OpenTunnel> {
  readonly #open = new Set<T>();

  add(tunnel: T): () => void {
    this.#open.add(tunnel);
    return () => void this.#open.delete(tunnel);
  }

  get size(): number {
    return this.#open.size;
  }

  /** A snapshot of the open tunnels. */
  list(): T[] {
    return [...this.#open];
  }
}

/** A bound socket. `address` is the bound address (the real port when `listen` asked for 0). */
export interface ListenerHandle {
  readonly server: Server;
  readonly address: AddressInfo;
  /** Resolves once the server is closed and its last connection has ended. */
  readonly closed: Promise<void>;
  /**
   * Session-ticket keys (48 bytes) of every TLS stack this listener feeds: they belong to the
   * listener and stay fixed, so session resumption survives certificate rotations and stack changes.
   */
  readonly ticketKeys: Buffer;
  /** WebSocket tunnels accepted on this listener. */
  readonly tunnels: TunnelSet;
  /** Raw connections open right now (tunnels and h2 sessions included). */
  readonly connections: number;
  /**
   * From now on, new connections go to `acceptor` (the active generation's stack for this
   * listener); connections accepted before stay with the stack that took them. Connections that
   * arrive before the first call wait for it.
   */
  serveWith(acceptor: ConnectionAcceptor): void;
  /** Stop accepting new connections; connections already open go on. Idempotent. */
  stopAccepting(): void;
  /** Destroy every raw connection now (upgraded ones included). */
  destroyConnections(): void;
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
  /** Server errors after the bind (the bind error itself rejects `create`). */
  onError?: (error: Error) => void;
  /** Share the port with the other workers of a node:cluster (`exclusive: false`). Default false. */
  shared?: boolean;
}

/**
 * The registry factory for a listener (key: its `listen` address, so a listener whose address
 * is unchanged is kept across reloads and its connections, keepalive and tunnels included,
 * survive).
 *
 * The listener speaks no protocol: it owns the bound `net.Server`, its raw connections, the
 * session-ticket keys and the tunnels, and hands each connection to the acceptor the active
 * generation chose (`serveWith`), which is a protocol stack keyed by its policy. `create`
 * resolves once the socket is bound and rejects with the bind error (`EADDRINUSE`, `EACCES`).
 * `destroy` stops accepting, destroys the tunnels left, lets the other connections finish for
 * `closeTimeoutMs` (the stacks close their idle ones), then destroys every raw connection left,
 * upgraded ones included, so it never hangs on one.
 */
export function listenerFactory(listen: string, options: ListenerFactoryOptions = {}): ResourceFactory<ListenerHandle> {
  const closeTimeoutMs = options.closeTimeoutMs ?? 1000;
  return {
    async create() {
      const parsed = parseListenAddress(listen);
      if ('error' in parsed) throw new Error(`${listen}: ${parsed.error}`);
      const sockets = new Set<Socket>();
      let acceptor: ConnectionAcceptor | undefined;
      const waiting: Socket[] = [];
      const server = createServer({ noDelay: true }, (socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        if (acceptor) acceptor.accept(socket);
        else waiting.push(socket);
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
      const handle: ListenerHandle = {
        server,
        closed,
        address: server.address() as AddressInfo,
        ticketKeys: randomBytes(48),
        tunnels: new TunnelSet(),
        get connections() {
          return sockets.size;
        },
        serveWith(next) {
          acceptor = next;
          for (const socket of waiting.splice(0)) if (!socket.destroyed) next.accept(socket);
        },
        stopAccepting() {
          if (!accepting) return;
          accepting = false;
          server.close();
        },
        destroyConnections() {
          for (const socket of [...waiting.splice(0), ...sockets]) socket.destroy();
        },
        setMaxConnections(max) {
          server.maxConnections = max;
        },
      };
      return handle;
    },
    async destroy(handle) {
      handle.stopAccepting();
      for (const tunnel of handle.tunnels.list()) tunnel.destroy('lifetime');
      try {
        await withTimeout(handle.closed, closeTimeoutMs, () => new Error('connections still open'));
      } catch {
        handle.destroyConnections();
        await handle.closed;
      }
    },
  };
}

/** Registry key of a listener: its normalised `listen` address. */
export function listenerKey(listen: string): string {
  return listen.toLowerCase();
}

/** What a listener is built from: its address. */
export interface ListenerInput {
  readonly listen: string;
}

/** The `listener` kind, keyed by address only: the bound socket and its connections survive every reload that keeps the address. */
export const listenerKind: ResourceKind<ListenerInput, ListenerHandle> = {
  kind: LISTENER_KIND,
  key: (input) => listenerKey(input.listen),
  factory: (input, deps) => listenerFactory(input.listen, { onError: (error) => deps.onBackgroundError('listener', error), shared: deps.sharedListeners }),
};
