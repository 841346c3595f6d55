import type { Server, Socket } from 'node:net';
import { listenOn } from './ports.js';

/**
 * The connections a spec server (an upstream, an OTLP receiver; HTTP or plain TCP) accepts: counted, so a spec can
 * tell one pooled connection from many or see a leaked client's socket stay open, and destroyed
 * by `close()`, so closing never waits on a client's keepalive.
 */
export class TrackedServer {
  /** TCP connections ever accepted. */
  connectionsOpened = 0;
  readonly server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(server: Server) {
    this.server = server;
    server.on('connection', (socket: Socket) => {
      this.connectionsOpened += 1;
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  /** Connections open right now. */
  get openConnections(): number {
    return this.#sockets.size;
  }

  /**
   * Listen on 127.0.0.1 (`port` 0: any); resolves with the port.
   * @throws the bind error (`EADDRINUSE`)
   */
  async listen(port = 0): Promise<number> {
    await listenOn(this.server, port);
    return (this.server.address() as { port: number }).port;
  }

  /** Stop listening and destroy every connection. Idempotent. */
  async close(): Promise<void> {
    if (!this.server.listening) return;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
