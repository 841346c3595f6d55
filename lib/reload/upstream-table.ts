import type { Tracer } from '@opentelemetry/api';
import type { UpstreamConfig } from '../config/schema.js';
import type { Logger } from '../core/log.js';
import type { ProxyObserver, Upstream } from '../dataplane/proxy/proxy.js';
import { type Lease, releaseNewestFirst } from '../registry/lease.js';
import type { ResourceRegistry } from '../registry/registry.js';

/**
 * An upstream table or entry given more to hold after its release: a provision abandoned by a
 * stop (its generation released) whose acquire finished late. What was given is released at once.
 */
export class UpstreamReleasedError extends Error {
  constructor(what: string) {
    super(`${what}: released while being provisioned`);
  }
}

/**
 * One upstream as provisioned once and served unchanged by every table that takes it over: its
 * section, its `Upstream` (absent in a health-only table: a cluster primary's), and the leases on
 * every registry value it references (its targets' health states, its checker, its pools).
 *
 * Ref-counted by the tables holding it (the one that built it holds the first reference): the
 * last `release` releases its leases, newest first, and then its hold on the `Upstream` (whose
 * deadline sweep stops when no entry serves it). Its leases are held by it alone, never by a
 * generation: a reload that keeps the upstream takes one more reference on the entry, not on
 * each value.
 */
export class UpstreamEntry {
  readonly name: string;
  readonly section: UpstreamConfig;
  readonly #leases: Lease<unknown>[] = [];
  #upstream: Upstream | undefined;
  #unhold: (() => void) | undefined;
  #refs = 1;

  constructor(name: string, section: UpstreamConfig) {
    this.name = name;
    this.section = section;
  }

  /** The leases on every registry value its `Upstream` references, in acquisition order; all released once the entry is. */
  get leases(): readonly Lease<unknown>[] {
    return this.#leases;
  }

  get upstream(): Upstream | undefined {
    return this.#upstream;
  }

  /** True once the last table holding it released it. */
  get released(): boolean {
    return this.#refs === 0;
  }

  /**
   * Keep `lease` until the entry is released and return its value (as `Generation.hold`). A lease
   * given to an entry already released is released at once.
   * @throws UpstreamReleasedError when the entry is released
   */
  hold<T>(lease: Lease<T>): T {
    if (this.#refs === 0) {
      void lease.release();
      throw new UpstreamReleasedError(`upstream ${this.name}`);
    }
    this.#leases.push(lease as Lease<unknown>);
    return lease.value;
  }

  /** Serve `upstream`, built from the values of its leases: held (`Upstream.hold`) until the entry is released. */
  serve(upstream: Upstream): void {
    this.#upstream = upstream;
    this.#unhold = upstream.hold();
    if (this.#refs === 0) this.#unhold();
  }

  /** One more reference, for another table; false, taking none, once the entry is released. */
  share(): boolean {
    if (this.#refs === 0) return false;
    this.#refs += 1;
    return true;
  }

  /**
   * Drop one reference; the last releases every lease, newest first (values destroyed counted
   * into `destroyed` per kind), then the hold on its `Upstream`. Undefined when nothing was
   * released (other tables still hold it): nothing to wait for.
   */
  release(destroyed: Record<string, number>): Promise<void> | undefined {
    if (this.#refs === 0) return undefined;
    this.#refs -= 1;
    if (this.#refs > 0) return undefined;
    return releaseNewestFirst(this.#leases, destroyed).then(() => this.#unhold?.());
  }
}

/** What a table's upstreams were built with, beyond their sections: another table may share them only when the same. */
export interface UpstreamTableBasis {
  readonly registry: ResourceRegistry;
  /** The `upstreams` record of the config it was built for. */
  readonly record: Readonly<Record<string, UpstreamConfig>>;
  /** With an `Upstream` per entry (a serving generation), or health states and checkers only (a cluster primary). */
  readonly serving: boolean;
  readonly tracer: Tracer;
  readonly observer: ProxyObserver | undefined;
  readonly logger: Logger | undefined;
}

/**
 * A generation's upstreams: per name, in config order, an `UpstreamEntry` (its `Upstream` and
 * the leases it is built from), and per kind how many leases its entries hold (`counts`).
 *
 * The unit a reload takes over, so that a reload costs what changed: a generation whose
 * `upstreams` record is the previous one's very object, built with the same tracer, observer,
 * logger and registry (`UpstreamTableBasis`), shares the previous table whole (`share`: one
 * reference, no per-upstream work at all); otherwise it builds a table of its own, sharing each
 * unchanged entry (one reference per entry) and building the others.
 *
 * Ref-counted by the generations holding it (the one that built it holds the first reference):
 * the last `release` releases every entry, newest first, so a pool stays alive while any
 * generation, active or draining, can reach it, and goes with the last one.
 */
export class UpstreamTable {
  readonly basis: UpstreamTableBasis;
  readonly #entries = new Map<string, UpstreamEntry>();
  readonly #upstreams = new Map<string, Upstream>();
  /** Leases per kind over every entry: what a table shared whole reports as reused, without a pass over its entries. */
  readonly #counts: Record<string, number> = {};
  #refs = 1;

  constructor(basis: UpstreamTableBasis) {
    this.basis = basis;
  }

  get entries(): ReadonlyMap<string, UpstreamEntry> {
    return this.#entries;
  }

  /** The `Upstream` of every entry that has one, by name, in config order. */
  get upstreams(): ReadonlyMap<string, Upstream> {
    return this.#upstreams;
  }

  /** Leases per kind held by its entries (each entry's own, whether built here or shared). */
  get counts(): Readonly<Record<string, number>> {
    return this.#counts;
  }

  /** True once the last generation holding it released it. */
  get released(): boolean {
    return this.#refs === 0;
  }

  /**
   * Whether a generation provisioned with `basis` may share this table whole: built for the very
   * same `upstreams` record, and its entries may serve there (`canServe`).
   */
  sameBasis(basis: UpstreamTableBasis): boolean {
    return this.basis.record === basis.record && this.canServe(basis);
  }

  /**
   * Whether this table's entries may serve in a table built with `basis` (each whose section is
   * unchanged): their `Upstream`s were built with the same tracer, observer and logger, their
   * leases are of the same registry, and the mode is the same.
   */
  canServe(basis: UpstreamTableBasis): boolean {
    const own = this.basis;
    return (
      own.serving === basis.serving &&
      own.tracer === basis.tracer &&
      own.observer === basis.observer &&
      own.logger === basis.logger &&
      own.registry === basis.registry
    );
  }

  /** One more reference, for another generation; false, taking none, once the table is released. */
  share(): boolean {
    if (this.#refs === 0) return false;
    this.#refs += 1;
    return true;
  }

  /**
   * Take `entry` (another table's, unchanged) into this table with one more reference on it.
   * False, taking nothing, when the entry is released.
   * @throws UpstreamReleasedError when this table is released
   */
  adopt(entry: UpstreamEntry): boolean {
    this.#expectLive();
    if (!entry.share()) return false;
    this.#add(entry);
    countKinds(entry.leases, this.#counts);
    return true;
  }

  /**
   * A new entry for upstream `name`, held by this table from now on (its leases go with the table
   * even if its provision fails half-way); `done` counts its leases once they are all acquired.
   * @throws UpstreamReleasedError when this table is released
   */
  begin(name: string, section: UpstreamConfig): { entry: UpstreamEntry; done: () => void } {
    this.#expectLive();
    const entry = new UpstreamEntry(name, section);
    this.#entries.set(name, entry);
    return {
      entry,
      done: () => {
        countKinds(entry.leases, this.#counts);
        if (entry.upstream !== undefined) this.#upstreams.set(name, entry.upstream);
      },
    };
  }

  #expectLive(): void {
    if (this.#refs === 0) throw new UpstreamReleasedError('upstream table');
  }

  #add(entry: UpstreamEntry): void {
    this.#entries.set(entry.name, entry);
    if (entry.upstream !== undefined) this.#upstreams.set(entry.name, entry.upstream);
  }

  /**
   * Drop one reference; the last releases every entry, newest first (values destroyed counted
   * into `destroyed` per kind). Undefined when nothing was released: nothing to wait for.
   */
  release(destroyed: Record<string, number>): Promise<void> | undefined {
    if (this.#refs === 0) return undefined;
    this.#refs -= 1;
    if (this.#refs > 0) return undefined;
    return this.#releaseEntries(destroyed);
  }

  async #releaseEntries(destroyed: Record<string, number>): Promise<void> {
    const entries = [...this.#entries.values()];
    for (let i = entries.length - 1; i >= 0; i -= 1) {
      const releasing = entries[i]!.release(destroyed);
      if (releasing) await releasing;
    }
  }
}

/** Add one to `counts[kind]` for each of `leases`, by its kind. */
export function countKinds(leases: readonly Lease<unknown>[], counts: Record<string, number>): void {
  for (const lease of leases) counts[lease.kind] = (counts[lease.kind] ?? 0) + 1;
}
