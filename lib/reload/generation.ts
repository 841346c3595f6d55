import { ProxyTracerProvider, type Tracer } from '@opentelemetry/api';
import { SECRET_PATHS, secretValues } from '../config/redact.js';
import type { ConfigReference } from '../config/references.js';
import type { Config, ListenerConfig } from '../config/schema.js';
import { Once } from '../core/once.js';
import type { RequestLog, RouteTable, ServingGeneration } from '../dataplane/ports.js';
import type { Upstream } from '../dataplane/proxy/proxy.js';
import type { TrustedProxies } from '../dataplane/proxy/trusted-proxies.js';
import type { Router } from '../dataplane/route/router.js';
import type { SniTable } from '../dataplane/serve/sni.js';
import { NO_TLS_MATERIAL, type TlsMaterial } from '../net/tls-files.js';
import { type Lease, releaseCounted } from '../registry/lease.js';
import type { HttpStack } from '../resources/http-stack.js';
import type { ListenerHandle, TunnelSet } from '../resources/listener.js';
import { type GenerationTracing, TRACER_NAME } from '../resources/tracing.js';
import type { SourceInfo } from '../sources/source.js';
import { type UpstreamEntry, UpstreamTable } from './upstream-table.js';

const NOOP_TRACER = new ProxyTracerProvider().getTracer(TRACER_NAME);
const NO_UPSTREAMS: ReadonlyMap<string, Upstream> = new Map();

/** provisioning → active → draining → released; a failed provision goes straight to released. */
export type GenerationState = 'provisioning' | 'active' | 'draining' | 'released';

/** What one generation's release did: values destroyed per kind, requests cut by the drain timeout. */
export interface ReleaseReport {
  destroyed: Record<string, number>;
  aborted: number;
  drain_ms: number;
}

/** One listener as a generation serves it: the bound socket, the protocol stack new connections go to, the routes. */
export interface ServedListener {
  /** The section it was provisioned from (the next generation compares its routes with it). */
  readonly config: ListenerConfig;
  readonly handle: ListenerHandle;
  readonly stack: HttpStack;
  /** Compiled from `config.routes`; the next generation may reuse it, or its compiled routes, where they did not change. */
  readonly router: Router;
  /** Built from `config.trusted_proxies`; the proxy actions of `router` hold it. */
  readonly trustedProxies: TrustedProxies;
  /** Its certificates, for a TLS listener. */
  readonly sni?: SniTable;
  /** Canonical JSON of each route section, in order (what tunnels are bound to). */
  readonly routeSections: readonly string[];
  /** The listener's `max_connections`, applied when this generation becomes active. */
  readonly maxConnections?: number;
}

/** A transition asked of a generation in a state that does not allow it (a bug in the caller). */
export class GenerationStateError extends Error {
  constructor(id: number, action: string, state: GenerationState) {
    super(`generation ${id}: cannot ${action} in state ${state}`);
  }
}

/**
 * One validated config and everything it holds, after Caddy's `Context`: every resource a
 * generation uses is acquired through it and released by it, exactly once, and other teardown it
 * owns (watches, tables that are not leases) is registered with `onRelease`.
 *
 * Its state changes only through its own methods: `activate()` (provisioning → active),
 * `drain()` (active → draining), `release()` (any → released, once). What it serves is added
 * while provisioning only.
 *
 * Requests pin the generation they arrived under (`pin`), so `drain` can wait for them before
 * `release` drops the leases. Runtime state lives in the leased resources; the config object is
 * frozen and only read.
 */
export class Generation implements ServingGeneration {
  readonly id: number;
  readonly config: Config;
  readonly hash: string;
  readonly loadedAt: Date;
  /** The certificate files this config names, as read when it was loaded. */
  readonly tls: TlsMaterial;
  /** The secret references (`${env:…}`, `${file:…}`) the config held; their values are in `config`. */
  readonly references: readonly ConfigReference[];
  readonly #secrets: string[];
  #version: string;
  #source: SourceInfo;
  #state: GenerationState = 'provisioning';
  #retiredAt: number | undefined;
  /** Its own leases and its upstream table, in the order taken (released newest first). */
  readonly #leases: (Lease<unknown> | UpstreamTable)[] = [];
  readonly #onRelease: (() => unknown)[] = [];
  readonly #listeners = new Map<string, ServedListener>();
  #upstreamTable: UpstreamTable | undefined;
  readonly #accessLogs = new Map<string, RequestLog>();
  #tracing: GenerationTracing | undefined;
  readonly #inflight = new Set<() => void>();
  #onIdle: (() => void) | undefined;
  /** Ends the drain's wait now (`cutDrain`); set while `drain` waits. */
  #cut: (() => void) | undefined;
  #cutRequested = false;
  readonly #release = new Once(() => this.#releaseAll());

  constructor(
    id: number,
    config: Config,
    hash: string,
    version: string,
    source: SourceInfo,
    tls: TlsMaterial = NO_TLS_MATERIAL,
    references: readonly ConfigReference[] = [],
  ) {
    this.id = id;
    this.tls = tls;
    this.references = references;
    this.#secrets = secretValues(config, SECRET_PATHS, references);
    this.config = config;
    this.hash = hash;
    this.#version = version;
    this.#source = source;
    this.loadedAt = new Date();
  }

  get state(): GenerationState {
    return this.#state;
  }

  /** Version of the newest document that produced this config (see `sawDocument`). */
  get version(): string {
    return this.#version;
  }

  /** Facts of the newest document that produced this config. */
  get source(): SourceInfo {
    return this.#source;
  }

  /** When the generation stopped being active (ms since epoch); undefined before. */
  get retiredAt(): number | undefined {
    return this.#retiredAt;
  }

  /**
   * Every secret value this generation knows: those of `SECRET_PATHS`, the values its references
   * resolved to, and what provisioning added (`addSecrets`). Errors and logs are scrubbed of them.
   * One array for the generation's life (`addSecrets` appends to it): a holder of it sees later additions.
   */
  get secrets(): readonly string[] {
    return this.#secrets;
  }

  /** Values provisioning found secret beyond the config's own (OTLP headers from `OTEL_EXPORTER_OTLP_HEADERS`). */
  addSecrets(values: Iterable<string>): void {
    for (const value of values) if (value.length > 0 && !this.#secrets.includes(value)) this.#secrets.push(value);
  }

  /** A newer document produced this same config (an `unchanged` reload): `/config` reports it. */
  sawDocument(version: string, source: SourceInfo): void {
    this.#version = version;
    this.#source = source;
  }

  /**
   * Keep `lease` until `release()` and return its value. A lease handed to a generation already
   * released (a provision abandoned by a stop, whose acquire finished late) is released at once.
   * @throws GenerationStateError unless provisioning
   */
  hold<T>(lease: Lease<T>): T {
    if (this.#state === 'released') void lease.release();
    this.#expect('provisioning', 'hold a lease');
    this.#leases.push(lease as Lease<unknown>);
    return lease.value;
  }

  /**
   * Serve the upstreams of `table`, holding one reference on it (the one it was built with, or
   * one `UpstreamTable.share` took) until `release()`, released in its place in the order of
   * holds. Its entries hold the leases on every registry value the upstreams reference; a later
   * generation takes the table, or its unchanged entries, over (`upstreamTable`). A table handed
   * to a generation already released is released at once.
   * @throws GenerationStateError unless provisioning, or when it already has a table
   */
  holdUpstreams(table: UpstreamTable): void {
    if (this.#state === 'released') void table.release({});
    this.#expect('provisioning', 'hold an upstream table');
    if (this.#upstreamTable !== undefined) throw new GenerationStateError(this.id, 'hold a second upstream table', this.#state);
    this.#upstreamTable = table;
    this.#leases.push(table);
  }

  /** The upstream table this generation holds (see `holdUpstreams`); undefined before the upstreams step, or without one. */
  get upstreamTable(): UpstreamTable | undefined {
    return this.#upstreamTable;
  }

  /**
   * Run `fn` when the generation is released, after its leases, newest registration first: for
   * what it owns that is not a lease. Registered after the release began, `fn` runs at once.
   */
  onRelease(fn: () => unknown): void {
    if (this.#release.called) {
      void Promise.resolve().then(fn);
      return;
    }
    this.#onRelease.push(fn);
  }

  /** This generation's tracer provider over a leased pipeline (`generationTracing`). */
  setTracing(tracing: GenerationTracing): void {
    this.#expect('provisioning', 'set its tracing');
    this.#tracing = tracing;
  }

  addListener(key: string, listener: ServedListener): void {
    this.#expect('provisioning', 'add a listener');
    this.#listeners.set(key, listener);
  }

  /** The access log of the listener with registry key `key` (absent: that listener logs nothing). */
  addAccessLog(key: string, log: RequestLog): void {
    this.#expect('provisioning', 'add an access log');
    this.#accessLogs.set(key, log);
  }

  /**
   * The leases on every registry value upstream `name`'s `Upstream` references (its pools, its
   * targets' health states, its checker), held by its upstream table's entry (maybe shared with
   * other generations); undefined for an upstream this generation does not have.
   */
  upstreamLeases(name: string): readonly Lease<unknown>[] | undefined {
    return this.#upstreamTable?.entries.get(name)?.leases;
  }

  /**
   * Provisioning is complete: the generation may serve. Its listeners hand new connections to
   * its stacks from now on (connections accepted before stay with theirs), and their connection
   * bounds take effect now (a listener kept from the previous generation follows the active config).
   */
  activate(): void {
    this.#expect('provisioning', 'activate');
    this.#state = 'active';
    for (const { handle, stack, sni, maxConnections } of this.#listeners.values()) {
      if (sni) stack.useDefaultCertificate(sni.default.material);
      if (maxConnections !== undefined) handle.setMaxConnections(maxConnections);
      handle.serveWith(stack);
    }
  }

  /** Upstreams by name, as this generation serves them (its pools, health states, balancers). */
  upstreams(): ReadonlyMap<string, Upstream> {
    return this.#upstreamTable?.upstreams ?? NO_UPSTREAMS;
  }

  get tracing(): GenerationTracing | undefined {
    return this.#tracing;
  }

  get tracer(): Tracer {
    return this.#tracing?.tracer ?? NOOP_TRACER;
  }

  router(listenKey: string): RouteTable | undefined {
    return this.#listeners.get(listenKey)?.router;
  }

  sni(listenKey: string): SniTable | undefined {
    return this.#listeners.get(listenKey)?.sni;
  }

  tunnels(listenKey: string): TunnelSet | undefined {
    return this.#listeners.get(listenKey)?.handle.tunnels;
  }

  accessLog(listenKey: string): RequestLog | undefined {
    return this.#accessLogs.get(listenKey);
  }

  routeSection(listenKey: string, index: number): string | undefined {
    return this.#listeners.get(listenKey)?.routeSections[index];
  }

  /** Listeners by registry key: handle, stack and routes. */
  listeners(): ReadonlyMap<string, ServedListener> {
    return this.#listeners;
  }

  /**
   * `{kind, key}` of every live lease this generation holds, itself or through its upstream table
   * (whose leases other generations may hold too: `heldLeases` counts each lease once).
   */
  holds(): { kind: string; key: string }[] {
    return heldLeases([this]);
  }

  /**
   * @internal For `heldLeases`: `fn` for each of its own leases, and its upstream table (if it
   * holds one, and has not released it) added to `tables`.
   */
  eachHeld(fn: (lease: Lease<unknown>) => void, tables: Set<UpstreamTable>): void {
    for (const held of this.#leases) {
      if (held instanceof UpstreamTable) {
        if (!held.released) tables.add(held);
      } else fn(held);
    }
  }

  /** Requests in flight on this generation. */
  get inflight(): number {
    return this.#inflight.size;
  }

  pin(abort: () => void): () => void {
    const entry = () => abort();
    this.#inflight.add(entry);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inflight.delete(entry);
      if (this.#inflight.size === 0) this.#onIdle?.();
    };
  }

  /**
   * Stop being active (active → draining) and wait until no request is in flight, at most
   * `timeoutMs`; then abort what is left. Resolves with the number of requests aborted.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.#expect('active', 'drain');
    this.#state = 'draining';
    this.#retiredAt = Date.now();
    if (this.#inflight.size > 0 && !this.#cutRequested) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        this.#onIdle = done;
        this.#cut = done;
      });
      this.#onIdle = undefined;
      this.#cut = undefined;
    }
    const left = [...this.#inflight];
    for (const abort of left) abort();
    return left.length;
  }

  /** Stop waiting for requests in flight: `drain` (running or still to come) aborts them now. */
  cutDrain(): void {
    this.#cutRequested = true;
    this.#cut?.();
  }

  /**
   * Release every lease, newest first, then run the `onRelease` hooks, newest first. Idempotent:
   * every caller gets the same completion. Resolves with the number of values destroyed per kind.
   */
  release(): Promise<Record<string, number>> {
    return this.#release.call();
  }

  async #releaseAll(): Promise<Record<string, number>> {
    this.#state = 'released';
    const destroyed: Record<string, number> = {};
    const held = this.#leases.splice(0);
    for (let i = held.length - 1; i >= 0; i -= 1) {
      const next = held[i]!;
      // A release that destroys nothing is not awaited (see `releaseCounted`).
      const destroying = next instanceof UpstreamTable ? next.release(destroyed) : releaseCounted(next, destroyed);
      if (destroying) await destroying;
    }
    for (const fn of this.#onRelease.splice(0).reverse()) await fn();
    return destroyed;
  }

  #expect(state: GenerationState, action: string): void {
    if (this.#state !== state) throw new GenerationStateError(this.id, action, this.#state);
  }
}

/**
 * `{kind, key}` of every live lease `generations` hold, each lease once: a generation's own, and
 * those of the upstream tables they hold, a table shared by several generations and an entry
 * shared by several tables counted once (one registry reference each). What the registry's
 * `refs` of a live value should equal when these are every live generation (`leakReport`).
 */
export function heldLeases(generations: Iterable<Generation>): { kind: string; key: string }[] {
  const out: { kind: string; key: string }[] = [];
  const add = (lease: Lease<unknown>) => {
    if (!lease.released) out.push({ kind: lease.kind, key: lease.key });
  };
  const tables = new Set<UpstreamTable>();
  for (const generation of generations) generation.eachHeld(add, tables);
  const entries = new Set<UpstreamEntry>();
  for (const table of tables) {
    for (const entry of table.entries.values()) {
      if (entries.has(entry)) continue;
      entries.add(entry);
      for (const lease of entry.leases) add(lease);
    }
  }
  return out;
}
