/** A request waiting in `ConnectionSlots` for a connection. */
export interface QueuedRequest {
  /** Its body streams at the client's pace (see `ConnectionSlots.streamingCapacity`). */
  readonly streaming: boolean;
  /** Called once, when a slot is handed to it: it holds the slot until it calls `release()`. */
  admit(): void;
}

/**
 * Admission to one target's connections, after Envoy's circuit breakers (`max_requests` per
 * host, `max_pending_requests`): at most `capacity` requests (the pool's `connections`) are
 * handed to the undici pool at once, so undici's own queue, which has no bound, stays empty; the
 * others wait here, in arrival order, for as long and in such numbers as the caller allows (its
 * upstream's `max_pending_requests` and `queue_timeout_ms`).
 *
 * Requests whose body streams (larger than the upstream's request buffer) hold their connection
 * for as long as their client takes to send it, so together they may hold only
 * `streamingCapacity` slots (half, rounded up): clients that trickle large bodies can never take
 * the connections every other request needs. A streaming request over that share waits; a
 * request behind it that may take a free slot is not held up by it.
 *
 * Shared, with its pool, by every generation and upstream using the target, so a reload neither
 * resets nor doubles it. Runs on the event loop: no call is re-entered.
 */
export class ConnectionSlots {
  /** Requests that may hold a connection at once. */
  readonly capacity: number;
  /** Of those, requests with a streaming body. */
  readonly streamingCapacity: number;
  #active = 0;
  #streaming = 0;
  readonly #waiting: QueuedRequest[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
    this.streamingCapacity = Math.ceil(capacity / 2);
  }

  /** Requests holding a slot. */
  get active(): number {
    return this.#active;
  }

  /** Requests with a streaming body holding a slot. */
  get streaming(): number {
    return this.#streaming;
  }

  /** Requests waiting for one. */
  get pending(): number {
    return this.#waiting.length;
  }

  /**
   * Take a slot if `streaming` may have one now; the caller then owes one `release(streaming)`.
   * Whoever waits cannot take it (a free slot is handed to the first waiter that may take it as
   * soon as it frees), so taking it skips nobody.
   */
  tryAcquire(streaming: boolean): boolean {
    if (!this.#mayTake(streaming)) return false;
    this.#take(streaming);
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

  /** Give back a slot taken with the same `streaming`, and hand free slots to the first waiters that may take them. */
  release(streaming: boolean): void {
    this.#active -= 1;
    if (streaming) this.#streaming -= 1;
    for (let i = 0; i < this.#waiting.length && this.#active < this.capacity; ) {
      const next = this.#waiting[i]!;
      if (!this.#mayTake(next.streaming)) {
        i += 1;
        continue;
      }
      this.#waiting.splice(i, 1);
      this.#take(next.streaming);
      next.admit();
    }
  }

  #mayTake(streaming: boolean): boolean {
    return this.#active < this.capacity && (!streaming || this.#streaming < this.streamingCapacity);
  }

  #take(streaming: boolean): void {
    this.#active += 1;
    if (streaming) this.#streaming += 1;
  }
}
