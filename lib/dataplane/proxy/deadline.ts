/** An entry of a `DeadlineList`: the list links entries through these fields, so adding one allocates nothing. */
export interface Deadlined {
  /** `performance.now()` at which `expire` is called, in ms; set by `DeadlineList.add`. */
  deadlineAt: number;
  prevDeadline: Deadlined | undefined;
  nextDeadline: Deadlined | undefined;
  /** The deadline passed while the entry was in the list (it has been removed). */
  expire(): void;
}

/**
 * The deadlines of in-flight requests that all have the same budget (`budgetMs`), swept by one
 * timer instead of a timer per request: entries are appended as they start, so the list is in
 * deadline order, and adding or removing one is a few pointer writes. The timer is armed for the
 * first entry's deadline; when it fires it expires every entry whose deadline passed and re-arms
 * for the next one. An entry that ended is unlinked and costs nothing more; the timer runs out
 * once the list is empty (it is not cleared for every request that ends, which would re-arm a
 * timer per request again). `close()` clears it.
 *
 * The timer is unref'd: requests' sockets, not their deadlines, keep the process alive. Runs on
 * the event loop; `expire` may add or remove other entries.
 */
export class DeadlineList {
  readonly budgetMs: number;
  #head: Deadlined | undefined;
  #tail: Deadlined | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (`performance.now()` ms). */
  #timerAt = 0;

  constructor(budgetMs: number) {
    this.budgetMs = budgetMs;
  }

  /** Start `entry`'s budget now. */
  add(entry: Deadlined): void {
    entry.deadlineAt = performance.now() + this.budgetMs;
    entry.prevDeadline = this.#tail;
    entry.nextDeadline = undefined;
    if (this.#tail) this.#tail.nextDeadline = entry;
    else this.#head = entry;
    this.#tail = entry;
    if (this.#timer === undefined) this.#arm(entry.deadlineAt);
  }

  /** Take `entry` out (its request ended); a no-op for an entry not in the list. */
  remove(entry: Deadlined): void {
    const { prevDeadline: prev, nextDeadline: next } = entry;
    if (prev) prev.nextDeadline = next;
    else if (this.#head === entry) this.#head = next;
    else return;
    if (next) next.prevDeadline = prev;
    else this.#tail = prev;
    entry.prevDeadline = undefined;
    entry.nextDeadline = undefined;
  }

  /** Stop the timer; entries still listed never expire. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#head = undefined;
    this.#tail = undefined;
  }

  #arm(at: number): void {
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(1, Math.ceil(at - performance.now()))).unref();
  }

  #sweep(): void {
    this.#timer = undefined;
    // Node may fire a timer up to a millisecond early: the clocks differ in rounding.
    const now = Math.max(performance.now(), this.#timerAt);
    for (let entry = this.#head; entry !== undefined && entry.deadlineAt <= now; entry = this.#head) {
      this.remove(entry);
      entry.expire();
    }
    if (this.#head && this.#timer === undefined) this.#arm(this.#head.deadlineAt);
  }
}
