import { ProxyTracerProvider, type Tracer } from '@opentelemetry/api';
import type { Config } from '../config/schema.js';
import type { ServingGeneration } from '../http/handler.js';
import type { Upstream } from '../http/proxy.js';
import type { Router } from '../http/router.js';
import type { Lease } from '../registry/lease.js';
import type { ListenerHandle } from '../resources/listener.js';
import { TRACER_NAME, type TracingPipeline } from '../resources/tracing.js';
import type { SourceInfo } from '../sources/source.js';

const NOOP_TRACER = new ProxyTracerProvider().getTracer(TRACER_NAME);

/** provisioning → active → draining → released; a failed provision goes straight to released. */
export type GenerationState = 'provisioning' | 'active' | 'draining' | 'released';

/** What one generation's release did: values destroyed per kind, requests cut by the drain timeout. */
export interface ReleaseReport {
  destroyed: Record<string, number>;
  aborted: number;
  drain_ms: number;
}

/**
 * One validated config and the leases it holds, after Caddy's `Context`: every resource a
 * generation uses is acquired through it and released by it, exactly once.
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
  /** Version and facts of the newest document that produced this config (updated by unchanged reloads). */
  version: string;
  source: SourceInfo;
  state: GenerationState = 'provisioning';
  /** When the generation stopped being active (ms since epoch). */
  retiredAt: number | undefined;
  readonly #leases: Lease<unknown>[] = [];
  readonly #routers = new Map<string, Router>();
  readonly #listeners = new Map<string, ListenerHandle>();
  readonly #upstreams = new Map<string, Upstream>();
  #tracing: TracingPipeline | undefined;
  readonly #inflight = new Set<() => void>();
  #onIdle: (() => void) | undefined;

  constructor(id: number, config: Config, hash: string, version: string, source: SourceInfo) {
    this.id = id;
    this.config = config;
    this.hash = hash;
    this.version = version;
    this.source = source;
    this.loadedAt = new Date();
  }

  /** Keep `lease` until `release()` and return its value. */
  hold<T>(lease: Lease<T>): T {
    this.#leases.push(lease as Lease<unknown>);
    return lease.value;
  }

  setTracing(pipeline: TracingPipeline): void {
    this.#tracing = pipeline;
  }

  addListener(key: string, handle: ListenerHandle, router: Router): void {
    this.#listeners.set(key, handle);
    this.#routers.set(key, router);
  }

  addUpstream(upstream: Upstream): void {
    this.#upstreams.set(upstream.name, upstream);
  }

  /** Upstreams by name, as this generation serves them (its pools, health states, balancers). */
  upstreams(): ReadonlyMap<string, Upstream> {
    return this.#upstreams;
  }

  get tracing(): TracingPipeline | undefined {
    return this.#tracing;
  }

  get tracer(): Tracer {
    return this.#tracing?.tracer ?? NOOP_TRACER;
  }

  router(listenKey: string): Router | undefined {
    return this.#routers.get(listenKey);
  }

  /** Listener handles by registry key. */
  listeners(): ReadonlyMap<string, ListenerHandle> {
    return this.#listeners;
  }

  /** `{kind, key}` of every lease held, for leak reports. */
  holds(): { kind: string; key: string }[] {
    return this.#leases.filter((l) => !l.released).map((l) => ({ kind: l.kind, key: l.key }));
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
   * Wait until no request is in flight, at most `timeoutMs`; then abort what is left. Resolves
   * with the number of requests aborted.
   */
  async drain(timeoutMs: number): Promise<number> {
    this.state = 'draining';
    if (this.#inflight.size > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.#onIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#onIdle = undefined;
    }
    const left = [...this.#inflight];
    for (const abort of left) abort();
    return left.length;
  }

  /** Release every lease, newest first. Resolves with the number of values destroyed per kind. */
  async release(): Promise<Record<string, number>> {
    this.state = 'released';
    const destroyed: Record<string, number> = {};
    for (const lease of this.#leases.splice(0).reverse()) {
      if (await lease.release()) destroyed[lease.kind] = (destroyed[lease.kind] ?? 0) + 1;
    }
    return destroyed;
  }
}
