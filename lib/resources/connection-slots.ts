/** A request waiting in `ConnectionSlots` for a connection. */
export interface QueuedRequest {
  /** Called once, when a slot is handed to it: it holds the slot until it calls `release()`. */
  admit(): void;
}

/**
 * Admission to one target's connections, after Envoy's circuit breakers (`max_requests` per
 * host, `max_pending_requests`): at most `capacity` requests (the pool's `connections`) are
 * handed to the undici pool at once, so undici's own queue, which has no bound, stays empty; the
 * others wait here, first come first served, for as long and in such numbers as the caller
 * allows (its upstream's `max_pending_requests` and `queue_timeout_ms`).
 *
 * Shared, with its pool, by every generation and upstream using the target, so a reload neither
 * resets nor doubles it. Runs on the event loop: no call is re-entered.
 */
export class ConnectionSlots {
  /** Requests that may hold a connection at once. */
  readonly capacity: number;
  #active = 0;
  readonly #waiting: QueuedRequest[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Requests holding a slot. */
  get active(): number {
    return this.#active;
  }

  /** Requests waiting for one. */
  get pending(): number {
    return this.#waiting.length;
  }

  /** Take a slot if one is free and nobody waits for it; the caller then owes one `release()`. */
  tryAcquire(): boolean {
    if (this.#active >= this.capacity || this.#waiting.length > 0) return false;
    this.#active += 1;
    return true;
  }

  /** Wait for a slot, unless `maxPending` requests wait already (false: not queued). */
  enqueue(request: QueuedRequest, maxPending: number): boolean {
    if (this.#waiting.length >= maxPending) return false;
    this.#waiting.push(request);
    return true;
  }

  /** Stop waiting (timed out, or the client left); a no-op once admitted. */
  cancel(request: QueuedRequest): void {
    const index = this.#waiting.indexOf(request);
    if (index >= 0) this.#waiting.splice(index, 1);
  }

  /** Give a slot back: to the longest waiting request if any, else free it. */
  release(): void {
    const next = this.#waiting.shift();
    if (next) next.admit();
    else this.#active -= 1;
  }
}
