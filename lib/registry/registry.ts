import { Emitter } from '../core/emitter.js';
import { CreateTimeoutError, DestroyTimeoutError, RegistryClosedError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { withTimeout } from '../core/timeout.js';
import { LEASE_KEPT, Lease } from './lease.js';

/**
 * How to build and tear down one resource. `create` runs only on the create path (the key is
 * absent), never on reuse: callers build exporters, sockets and timers inside `create`, not
 * before calling `acquire`, which is what makes Caddy's orphaned-exporter leak impossible.
 * `destroy` receives the value `create` returned, once, when the last lease is released.
 */
export interface ResourceFactory<T> {
  create(): T | Promise<T>;
  destroy(value: T): void | Promise<void>;
}

/** Counters for one resource kind, as returned by `ResourceRegistry.stats()`. */
export interface KindStats {
  /** Values created and not yet removed (includes values being destroyed). */
  live: number;
  /** Leases currently held on this kind's values. */
  refs: number;
  created: number;
  destroyed: number;
  /**
   * Acquires and shares served without calling `create` (a live value, or joining an in-flight
   * create), and values taken over in a holder shared whole (`countReused`).
   */
  reused: number;
  createFailures: number;
  /** Destroys that threw or did not finish within `destroyTimeoutMs`. */
  destroyFailures: number;
  /** Leases garbage-collected without `release()`. */
  leakedLeases: number;
}

/** A snapshot of one entry, for leak reports. */
export interface EntrySnapshot {
  kind: string;
  key: string;
  state: 'creating' | 'live' | 'destroying';
  refs: number;
}

/** What `close()` found: leases still held at close (their values were destroyed anyway). */
export interface CloseReport {
  held: { kind: string; key: string; refs: number }[];
  destroyFailures: number;
}

/** Lifecycle events, for metrics and logs. Emitted synchronously, after the state change. */
export type RegistryEvent =
  | { type: 'created'; kind: string; key: string }
  | { type: 'reused'; kind: string; key: string }
  | { type: 'destroyed'; kind: string; key: string }
  | { type: 'create_failed'; kind: string; key: string; error: unknown }
  | { type: 'destroy_failed'; kind: string; key: string; error: unknown }
  | { type: 'leaked'; kind: string; key: string };

export interface ResourceRegistryOptions {
  /**
   * Upper bound on one `create` call, in ms. Default 10000. A create still running then fails
   * every waiter with `CreateTimeoutError`; a value it produces later is destroyed at once.
   */
  createTimeoutMs?: number;
  /**
   * Upper bound on one `destroy` call, in ms. Default 10000. Also how long `close()` waits for
   * creates and destroys in flight before it destroys what is live.
   */
  destroyTimeoutMs?: number;
  logger?: Logger;
}

interface Entry {
  /** The registry whose entry this is (a lease of another registry is never shared). */
  registry: ResourceRegistry;
  kind: string;
  key: string;
  state: 'creating' | 'live' | 'destroying';
  factory: ResourceFactory<unknown>;
  value: unknown;
  refs: number;
  /** Acquires waiting on the in-flight create, the creator included. */
  waiters: number;
  /** Settles when the in-flight create or destroy does. */
  settled: Promise<unknown>;
}

const EMPTY_STATS: KindStats = Object.freeze({
  live: 0,
  refs: 0,
  created: 0,
  destroyed: 0,
  reused: 0,
  createFailures: 0,
  destroyFailures: 0,
  leakedLeases: 0,
});

/**
 * A ref-counted pool of named resources, after Caddy's `UsagePool`: `acquire(kind, key,
 * factory)` returns a `Lease` on the one live value for `kind`+`key`, creating it on first use
 * and destroying it when the last lease is released.
 *
 * Concurrency contract (single-flight per key, as Caddy's `UsagePool.LoadOrNew`):
 * - key absent: `create()` runs once; concurrent acquires of the same key wait for that one
 *   creation and share its value.
 * - `create()` throws, or runs longer than `createTimeoutMs`: every waiter of that creation
 *   rejects with the same error, nothing is stored and no reference is counted; the next
 *   acquire tries again. A value a timed-out `create` produces later is destroyed as soon as it
 *   arrives (bounded by `destroyTimeoutMs`) and never handed out.
 * - keys are independent: a slow `create` on one key never blocks another key.
 * - an acquire that arrives while its key is being destroyed waits for the destroy, then creates
 *   a fresh value: there are never two live values for one key.
 * - the last release runs `destroy(value)` once, bounded by `destroyTimeoutMs`; a throwing or
 *   timed-out destroy is counted in `destroyFailures` and logged, and the entry is removed
 *   regardless (a dead value is never handed out again).
 * - a lease garbage-collected without `release()` is counted in `leakedLeases`, logged with its
 *   kind and key, and its reference is reclaimed (the registry never holds leases strongly, so
 *   a lost lease is detectable; keeping its resource alive forever would be the leak itself).
 */
export class ResourceRegistry {
  readonly createTimeoutMs: number;
  readonly destroyTimeoutMs: number;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #stats = new Map<string, Omit<KindStats, 'live' | 'refs'>>();
  readonly #events: Emitter<RegistryEvent>;
  // Held value: the lease's entry (never the lease itself); unregister token: the lease.
  readonly #finalizer = new FinalizationRegistry<Entry>((entry) => this.#onLeaseCollected(entry));
  // One release callback for every lease, instead of a closure per lease (the reuse path is hot).
  readonly #releaseLease = (lease: Lease<unknown>, entry: Entry): Promise<boolean> => {
    this.#finalizer.unregister(lease);
    return this.#release(entry);
  };
  /** Destroys of values that arrived after their create timed out. */
  readonly #late = new Set<Promise<void>>();
  readonly #closing = new Once(() => this.#close());

  constructor(options: ResourceRegistryOptions = {}) {
    this.createTimeoutMs = options.createTimeoutMs ?? 10_000;
    this.destroyTimeoutMs = options.destroyTimeoutMs ?? 10_000;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'registry' });
    this.#events = new Emitter((error, event) => this.#log.error({ err: error, event: event.type }, 'registry_listener_failed'));
  }

  /**
   * Get a lease on the value for `kind`+`key`, creating it with `factory.create()` if absent.
   * `factory` is used only when this call creates the value; on reuse it is ignored, so it must
   * not have built anything before `create` is called.
   *
   * @throws whatever `factory.create()` threw (to every waiter of that creation)
   * @throws RegistryClosedError after `close()`
   */
  async acquire<T>(kind: string, key: string, factory: ResourceFactory<T>): Promise<Lease<T>> {
    const id = entryId(kind, key);
    for (;;) {
      if (this.#closing.called) throw new RegistryClosedError();
      const entry = this.#entries.get(id);
      if (!entry) return this.#create(id, kind, key, factory as ResourceFactory<unknown>) as Promise<Lease<T>>;
      if (entry.state === 'live') {
        entry.refs += 1;
        this.#count(kind, 'reused');
        if (this.#events.observed) this.#emit({ type: 'reused', kind, key });
        return this.#lease(entry, false) as Lease<T>;
      }
      if (entry.state === 'creating') {
        entry.waiters += 1;
        await entry.settled; // rejects with the create error for every waiter
        this.#count(kind, 'reused');
        this.#emit({ type: 'reused', kind, key });
        return this.#leaseAfterCreate(entry, false) as Lease<T>;
      }
      await entry.settled; // destroying: never two live values for one key
    }
  }

  /**
   * Another lease on the value `lease` holds, for another owner (one that takes over a single
   * value another acquired; a reload takes upstreams over as whole tables, see
   * `UpstreamTable`): counted and emitted as a reuse, as an `acquire` of the same
   * key would be, without deriving the key again or touching a factory. Synchronous, so the value
   * cannot be destroyed between the check and the new reference.
   *
   * Returns undefined, taking no reference, when `lease` is released or its value is not this
   * registry's live value for its key (a lease of another registry, or after `close()`): the
   * caller acquires by key instead.
   */
  share<T>(lease: Lease<T>): Lease<T> | undefined {
    if (this.#closing.called) return undefined;
    const entry = this.#shareable(lease);
    if (entry === undefined) return undefined;
    this.#reuse(entry);
    return this.#lease(entry, false) as Lease<T>;
  }

  /**
   * Count `count` reuses of `kind` values that took no registry call: values a new owner took
   * over inside a holder shared whole (a reload sharing the previous generation's upstream table,
   * or an upstream's entry in it, takes one reference on the holder, none on each value). So
   * `reused` keeps counting every value a provision found live, whether acquired, shared or taken
   * over, at a cost per kind rather than per value; no `reused` event is emitted (events are per key).
   */
  countReused(kind: string, count: number): void {
    if (count > 0) this.#count(kind, 'reused', count);
  }

  /** True once `close()` was called: values still live are being destroyed, and nothing is handed out again. */
  get closed(): boolean {
    return this.#closing.called;
  }

  /** Leases currently held on `kind`+`key` (0 when absent or still being created). */
  refs(kind: string, key: string): number {
    const entry = this.#entries.get(entryId(kind, key));
    return entry && entry.state !== 'creating' ? entry.refs : 0;
  }

  /** Counters per kind. Kinds never acquired are absent. */
  stats(): Record<string, KindStats> {
    const out: Record<string, KindStats> = {};
    for (const [kind, counters] of this.#stats) out[kind] = { ...counters, live: 0, refs: 0 };
    for (const entry of this.#entries.values()) {
      if (entry.state === 'creating') continue;
      const s = (out[entry.kind] ??= { ...EMPTY_STATS });
      s.live += 1;
      s.refs += entry.refs;
    }
    return out;
  }

  /** Every entry, for leak reports. */
  entries(): EntrySnapshot[] {
    return [...this.#entries.values()].map((e) => ({ kind: e.kind, key: e.key, state: e.state, refs: e.refs }));
  }

  /** Observe lifecycle events (metrics, logs). Returns the unsubscribe function. */
  subscribe(listener: (event: RegistryEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  /**
   * Destroy every value still alive, whatever its refs, and refuse further acquires. Reports
   * (and logs) the leases that were still held. Idempotent: later calls return the same report.
   */
  close(): Promise<CloseReport> {
    return this.#closing.call();
  }

  async #close(): Promise<CloseReport> {
    const held: CloseReport['held'] = [];
    let destroyFailures = 0;
    // Let in-flight creates and destroys settle first, so nothing is created behind our back;
    // a create that hangs is given up on after destroyTimeoutMs (a value that lands after that
    // is destroyed at once, see #create), and so are destroys of values that arrived late.
    const settling = Promise.allSettled([...[...this.#entries.values()].map((e) => e.settled), ...this.#late]);
    await withTimeout(settling, this.destroyTimeoutMs, () => new Error('timeout')).catch(() => {
      this.#log.warn({ pending: this.entries().filter((e) => e.state !== 'live') }, 'close_gave_up_waiting');
    });
    for (const entry of [...this.#entries.values()]) {
      if (entry.state !== 'live') continue;
      if (entry.refs > 0) held.push({ kind: entry.kind, key: entry.key, refs: entry.refs });
      entry.refs = 0;
      if (!(await this.#destroy(entry))) destroyFailures += 1;
    }
    if (held.length > 0) this.#log.warn({ held }, 'leases_held_at_close');
    return { held, destroyFailures };
  }

  async #create(id: string, kind: string, key: string, factory: ResourceFactory<unknown>): Promise<Lease<unknown>> {
    const entry: Entry = { registry: this, kind, key, state: 'creating', factory, value: undefined, refs: 0, waiters: 1, settled: Promise.resolve() };
    this.#entries.set(id, entry);
    entry.settled = (async () => {
      let value: unknown;
      const creating = Promise.resolve().then(() => factory.create());
      try {
        value = await withTimeout(creating, this.createTimeoutMs, () => new CreateTimeoutError(kind, key, this.createTimeoutMs));
      } catch (error) {
        if (error instanceof CreateTimeoutError) this.#destroyLate(kind, key, factory, creating);
        if (this.#entries.get(id) === entry) this.#entries.delete(id);
        this.#count(kind, 'createFailures');
        this.#log.warn({ kind, key, err: error }, 'resource_create_failed');
        this.#emit({ type: 'create_failed', kind, key, error });
        throw error;
      }
      entry.value = value;
      entry.state = 'live';
      entry.refs = entry.waiters;
      entry.waiters = 0;
      this.#count(kind, 'created');
      this.#emit({ type: 'created', kind, key });
      if (this.#closing.called) {
        // close() started while this create ran: the value is destroyed, never handed out.
        entry.refs = 0;
        await this.#destroy(entry);
        throw new RegistryClosedError();
      }
    })();
    await entry.settled;
    return this.#leaseAfterCreate(entry, true);
  }

  #leaseAfterCreate(entry: Entry, created: boolean): Lease<unknown> {
    // close() may have destroyed the value between the create settling and this continuation.
    if (entry.state !== 'live') throw new RegistryClosedError();
    return this.#lease(entry, created);
  }

  /**
   * The entry `lease` holds when another reference may be taken on it: the lease is not released
   * and its entry is this registry's and live. The lease's own entry, not a lookup by key: live
   * means it is still its key's value (a destroyed entry never comes back).
   */
  #shareable<T>(lease: Lease<T>): Entry | undefined {
    if (lease.released) return undefined;
    const entry = Lease.ownerOf(lease) as Entry;
    return entry.registry === this && entry.state === 'live' ? entry : undefined;
  }

  /** One more reference on `entry`, counted and emitted as a reuse (`share`). */
  #reuse(entry: Entry): void {
    entry.refs += 1;
    this.#count(entry.kind, 'reused');
    if (this.#events.observed) this.#emit({ type: 'reused', kind: entry.kind, key: entry.key });
  }

  #lease(entry: Entry, created: boolean): Lease<unknown> {
    const lease = new Lease(entry.kind, entry.key, entry.value, created, entry, this.#releaseLease);
    this.#finalizer.register(lease, entry, lease);
    return lease;
  }

  #release(entry: Entry): Promise<boolean> {
    if (entry.state !== 'live') return LEASE_KEPT; // destroyed by close(): nothing left to drop
    entry.refs -= 1;
    if (entry.refs > 0) return LEASE_KEPT;
    return this.#destroy(entry).then(() => true);
  }

  /** Runs `destroy` bounded by the timeout; resolves false when it failed. Never rejects. */
  #destroy(entry: Entry): Promise<boolean> {
    entry.state = 'destroying';
    const { kind, key } = entry;
    const run = this.#runDestroy(kind, key, entry.factory, entry.value).then((ok) => {
      entry.value = undefined;
      const id = entryId(kind, key);
      if (this.#entries.get(id) === entry) this.#entries.delete(id);
      this.#count(kind, 'destroyed');
      this.#emit({ type: 'destroyed', kind, key });
      return ok;
    });
    entry.settled = run;
    return run;
  }

  /**
   * `factory.destroy(value)` bounded by `destroyTimeoutMs`; a throw or a timeout is counted in
   * `destroyFailures`, logged and emitted. Resolves false when it failed; never rejects.
   */
  async #runDestroy(kind: string, key: string, factory: ResourceFactory<unknown>, value: unknown): Promise<boolean> {
    try {
      await withTimeout(
        () => factory.destroy(value),
        this.destroyTimeoutMs,
        () => new DestroyTimeoutError(kind, key, this.destroyTimeoutMs),
      );
      return true;
    } catch (error) {
      this.#count(kind, 'destroyFailures');
      this.#log.error({ kind, key, err: error }, 'resource_destroy_failed');
      this.#emit({ type: 'destroy_failed', kind, key, error });
      return false;
    }
  }

  /** Destroy what a timed-out `create` eventually produces (bounded, failures counted). */
  #destroyLate(kind: string, key: string, factory: ResourceFactory<unknown>, creating: Promise<unknown>): void {
    const late: Promise<void> = creating
      .then(
        async (value) => {
          this.#log.warn({ kind, key }, 'late_resource_destroyed');
          await this.#runDestroy(kind, key, factory, value);
        },
        () => {}, // the create failed after all: there is nothing to destroy
      )
      .finally(() => this.#late.delete(late));
    this.#late.add(late);
  }

  #onLeaseCollected(entry: Entry): void {
    this.#leaked(entry.kind, entry.key);
    void this.#release(entry);
  }

  /** A lease on `kind`+`key` was collected unreleased: counted, logged and emitted (its reference is then reclaimed). */
  #leaked(kind: string, key: string): void {
    this.#count(kind, 'leakedLeases');
    this.#log.error({ kind, key }, 'lease_leaked');
    this.#emit({ type: 'leaked', kind, key });
  }

  #count(kind: string, field: keyof Omit<KindStats, 'live' | 'refs'>, by = 1): void {
    let s = this.#stats.get(kind);
    if (!s) {
      s = { created: 0, destroyed: 0, reused: 0, createFailures: 0, destroyFailures: 0, leakedLeases: 0 };
      this.#stats.set(kind, s);
    }
    s[field] += by;
  }

  #emit(event: RegistryEvent): void {
    this.#events.emit(event);
  }
}

function entryId(kind: string, key: string): string {
  return `${kind}\u0000${key}`;
}
