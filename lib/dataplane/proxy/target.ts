import type { Tracer } from '@opentelemetry/api';
import type { UpstreamConfig } from '../../config/schema.js';
import { type Logger, silentLogger } from '../../core/log.js';
import type { TargetHealth } from '../../resources/health.js';
import type { HealthObserver } from '../../resources/kind.js';
import type { UpstreamPool } from '../../resources/upstream.js';
import { Balancer } from './balancer.js';
import { DeadlineList } from './deadline.js';

/**
 * Why a failed attempt was tried again: `connect_error` (nothing was sent; another target is
 * tried), `reused_connection_closed` (a kept-alive connection was closed or reset before any
 * byte of the response came; the request goes again on a new connection, as browsers and
 * Envoy's `reset` retry policy do).
 */
export type RetryReason = 'connect_error' | 'reused_connection_closed';

/** Receives one event per upstream attempt, and per retry, for metrics; injected, never a module global. */
export interface ProxyObserver {
  /**
   * One attempt to `target` ended. `codeClass` is `2xx`..`5xx` from the upstream's status when
   * its response was relayed completely, `error` otherwise (connect error, timeout, reset, client
   * abort). `durationSeconds`: from sending the request to the last response byte (or the error).
   */
  upstreamRequest(upstream: string, target: string, codeClass: string, durationSeconds: number): void;
  /** A failed attempt of a request to `upstream` is retried, for `reason`. */
  upstreamRetry(upstream: string, reason: RetryReason): void;
}

/** Everything the data plane reports: proxy attempts and health-check errors. */
export type UpstreamObserver = ProxyObserver & HealthObserver;

/** One target of an upstream in one generation: its pool and, with health checks, its shared state. */
export class ProxyTarget {
  readonly origin: string;
  /** `server.address` and `server.port` of the client spans to this target, derived once from `origin`. */
  readonly serverAddress: string;
  readonly serverPort: number;
  /** `host:port` (IPv6 bracketed), as a request's outcome names the target. */
  readonly authority: string;
  readonly pool: UpstreamPool;
  readonly #health: TargetHealth | undefined;

  constructor(pool: UpstreamPool, health: TargetHealth | undefined) {
    this.origin = pool.origin;
    const url = new URL(pool.origin);
    this.serverAddress = url.hostname.replace(/^\[|\]$/g, '');
    this.serverPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    this.authority = `${url.hostname}:${this.serverPort}`;
    this.pool = pool;
    this.#health = health;
  }

  /** Without a health check every target is healthy. */
  get healthy(): boolean {
    return this.#health?.healthy ?? true;
  }

  /** Requests holding or waiting for one of this target's connections, across generations. */
  get inflight(): number {
    return this.pool.slots.active + this.pool.slots.pending;
  }
}

export interface UpstreamOptions {
  name: string;
  config: UpstreamConfig;
  targets: readonly ProxyTarget[];
  /** The generation's tracer: client spans go to the same pipeline as its server spans. */
  tracer: Tracer;
  observer?: ProxyObserver;
  logger?: Logger;
  /** For `random` balancing. Default `Math.random`. */
  random?: () => number;
}

/**
 * An upstream as one generation serves it: its config, its targets (pools and health states
 * acquired by that generation), a balancer, and the deadlines (`timeout_ms`) of its requests in
 * flight. Built per generation and closed with it (`close`); the pools and states it points at
 * are registry resources that outlive it when unchanged.
 */
export class Upstream {
  readonly name: string;
  readonly config: UpstreamConfig;
  readonly targets: readonly ProxyTarget[];
  readonly tracer: Tracer;
  readonly observer: ProxyObserver | undefined;
  readonly log: Logger;
  readonly balancer: Balancer<ProxyTarget>;
  /** Every request's `timeout_ms`, swept by one timer. */
  readonly deadlines: DeadlineList;

  constructor(options: UpstreamOptions) {
    this.name = options.name;
    this.config = options.config;
    this.targets = options.targets;
    this.tracer = options.tracer;
    this.observer = options.observer;
    this.log = (options.logger ?? silentLogger()).child({ component: 'proxy', upstream: options.name });
    this.balancer = new Balancer(options.config.load_balancing, options.targets, options.random);
    this.deadlines = new DeadlineList(options.config.timeout_ms);
  }

  /** Holders serving this upstream (the reload layer's upstream table entry, which every generation taking the upstream over shares). */
  #holders = 0;

  /**
   * Count one more holder serving this upstream; call the returned function (once) when that
   * holder is released. The deadline sweep stops when the last one is: a generation that took
   * the upstream over still has requests in flight through it when the one that built it goes.
   */
  hold(): () => void {
    this.#holders += 1;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#holders -= 1;
      if (this.#holders === 0) this.close();
    };
  }

  /** Stop the deadline sweep: entries still listed never expire. Idempotent; `hold`'s release calls it for the last holder. */
  close(): void {
    this.deadlines.close();
  }
}
