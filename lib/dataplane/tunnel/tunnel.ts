import type { Duplex } from 'node:stream';
import type { OpenTunnel, TunnelBinding, TunnelCloseReason } from '../../resources/listener.js';
import { closeFrame, FrameCursor, GOING_AWAY } from './frames.js';

/** Receives the end of every tunnel, for `hotconf_tunnels_closed_total{reason}`. */
export interface TunnelObserver {
  tunnelClosed(reason: TunnelCloseReason): void;
}

/** One direction of a tunnel: bytes from `from` written to `to`, frame boundaries tracked. */
class Direction {
  readonly cursor = new FrameCursor();
  /** Set once the close frame went out: what `from` sends afterwards is dropped. */
  closed = false;

  constructor(
    readonly from: Duplex,
    readonly to: Duplex,
    /** A close frame toward `to`: masked toward the upstream (hotconf is its client there). */
    readonly masked: boolean,
    /** Who ended the tunnel when `from` sends the first close frame. */
    readonly cause: TunnelCloseReason,
  ) {}
}

/**
 * A WebSocket connection relayed after its `101`: the client's socket and the upstream's,
 * bytes copied both ways with backpressure, nothing parsed but frame headers. It holds only
 * those two sockets and its binding: no generation, no pool lease.
 *
 * `close(reason, delayMs)` is the graceful verb: each direction finishes the frame in progress,
 * then a close frame `1001` goes to both ends (masked toward the upstream) and each socket is
 * half-closed; both are destroyed when their peers are done, or after `delayMs` at the latest.
 * `destroy(reason)` is immediate. The first cause of the end is the reason reported, once: the
 * side that sent the first close frame, else the side whose socket closed first.
 */
export class Tunnel implements OpenTunnel {
  readonly binding: TunnelBinding;
  readonly #client: Duplex;
  readonly #upstream: Duplex;
  readonly #directions: readonly [Direction, Direction];
  readonly #observer: TunnelObserver | undefined;
  readonly #onEnd: () => void;
  #reason: TunnelCloseReason | undefined;
  #closing = false;
  #timer: NodeJS.Timeout | undefined;
  #open = 2;

  constructor(client: Duplex, upstream: Duplex, binding: TunnelBinding, observer: TunnelObserver | undefined, onEnd: () => void) {
    this.binding = binding;
    this.#client = client;
    this.#upstream = upstream;
    this.#observer = observer;
    this.#onEnd = onEnd;
    this.#directions = [new Direction(client, upstream, true, 'client'), new Direction(upstream, client, false, 'upstream')];
    for (const [socket, cause] of [
      [client, 'client'],
      [upstream, 'upstream'],
    ] as const) {
      socket.on('error', () => this.destroy(cause));
      socket.once('close', () => {
        this.#reason ??= cause;
        // One side gone: the other has nobody to talk to.
        this.#otherOf(socket).destroy();
        this.#open -= 1;
        if (this.#open === 0) this.#ended();
      });
    }
    for (const direction of this.#directions) this.#relay(direction);
  }

  close(reason: TunnelCloseReason, delayMs: number): void {
    if (this.#closing || this.#reason !== undefined) return;
    this.#closing = true;
    this.#reason = reason;
    this.#timer = setTimeout(() => this.destroy(reason), delayMs).unref();
    for (const direction of this.#directions) if (direction.cursor.atBoundary) this.#sendClose(direction);
  }

  destroy(reason: TunnelCloseReason): void {
    this.#reason ??= reason;
    this.#client.destroy();
    this.#upstream.destroy();
  }

  #relay(direction: Direction): void {
    const { from, to, cursor } = direction;
    from.on('data', (chunk: Buffer) => {
      if (direction.closed) return;
      if (!this.#closing) {
        cursor.feed(chunk);
        if (cursor.sawClose) this.#reason ??= direction.cause;
        if (!to.write(chunk)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
        return;
      }
      const upTo = cursor.feedUntilBoundary(chunk);
      if (upTo > 0) to.write(upTo === chunk.length ? chunk : chunk.subarray(0, upTo));
      if (cursor.atBoundary) this.#sendClose(direction);
    });
    from.once('end', () => {
      if (!direction.closed) to.end();
    });
  }

  #sendClose(direction: Direction): void {
    if (direction.closed) return;
    direction.closed = true;
    direction.from.resume();
    direction.to.end(closeFrame(GOING_AWAY, direction.masked));
  }

  #otherOf(socket: Duplex): Duplex {
    return socket === this.#client ? this.#upstream : this.#client;
  }

  #ended(): void {
    clearTimeout(this.#timer);
    this.#onEnd();
    this.#observer?.tunnelClosed(this.#reason ?? 'client');
  }
}
