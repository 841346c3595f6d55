import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/schema.js';
import { RepeatLimiter } from '../core/repeat-limiter.js';
import { withTimeout } from '../core/timeout.js';
import { sectionKey } from '../registry/key.js';
import type { ResourceFactory } from '../registry/registry.js';
import { ConnectionSlots } from './connection-slots.js';
import type { ResourceKind } from './kind.js';
import { interimTolerantConnector } from './upstream-connector.js';

/** Registry kind (and metric label) of upstream connection pools. */
export const UPSTREAM_POOL_KIND = 'upstream_pool';

/** The settings a pool is built from: one target origin plus the upstream's connection settings. */
export interface UpstreamPoolSettings {
  /** Normalised origin, `http://127.0.0.1:9000`. */
  readonly origin: string;
  readonly connections: number;
  readonly keep_alive_timeout_ms: number;
  readonly connect_timeout_ms: number;
}

/**
 * An undici `Pool` to one target origin, shared by every generation (and every upstream) that
 * uses the same origin with the same settings. `slots` admits requests to its connections and
 * counts them across generations (for `least_request` balancing too).
 */
export interface UpstreamPool {
  readonly origin: string;
  readonly pool: Pool;
  readonly slots: ConnectionSlots;
  /**
   * Decides which failed attempts to this origin are logged, keyed by upstream name: identical
   * errors once a minute at most. It lives here, not in a generation, so a reload does not
   * start a fresh minute.
   */
  readonly attemptErrors: RepeatLimiter;
}

export interface UpstreamPoolFactoryOptions {
  /** How long `destroy` waits for in-flight requests (graceful `close()`) before `destroy()`, in ms. Default 5000. */
  closeTimeoutMs?: number;
}

/**
 * The origins of an upstream's targets, in config order (`http://127.0.0.1:9000/` →
 * `http://127.0.0.1:9000`). Pure: derived from the frozen config, never stored on it.
 */
export function upstreamTargets(upstream: Pick<UpstreamConfig, 'targets'>): string[] {
  return upstream.targets.map((target) => new URL(target).origin);
}

/** The pool settings for one target of `upstream`. Pure. */
export function upstreamPoolSettings(origin: string, upstream: UpstreamConfig): UpstreamPoolSettings {
  return {
    origin,
    connections: upstream.pool.connections,
    keep_alive_timeout_ms: upstream.pool.keep_alive_timeout_ms,
    connect_timeout_ms: upstream.connect_timeout_ms,
  };
}

/** Registry key of a pool: the hash of its settings, so any change to them builds a new pool. */
export function upstreamPoolKey(settings: UpstreamPoolSettings): string {
  return `${settings.origin} ${sectionKey(settings)}`;
}

/**
 * The registry factory for one target's connection pool (key: `upstreamPoolKey`), so a target
 * whose origin and pool settings are unchanged keeps its pool, and its keepalive connections,
 * across reloads.
 *
 * `create` builds an undici `Pool` (`connections`, `keepAliveTimeout` capped at
 * `keep_alive_timeout_ms` even when the server advertises more, `connect_timeout_ms`, and
 * connections that accept an unsolicited `100 Continue`: `interimTolerantConnector`); nothing
 * connects until the first request. `destroy` follows undici's verbs: `close()` (graceful: queued
 * and running requests finish, then the sockets close) bounded by `closeTimeoutMs`, then
 * `destroy()` (immediate: whatever is still running fails) if the bound was hit. It only runs
 * when the last generation using the pool is released, that is after that generation drained.
 */
export function upstreamPoolFactory(settings: UpstreamPoolSettings, options: UpstreamPoolFactoryOptions = {}): ResourceFactory<UpstreamPool> {
  const closeTimeoutMs = options.closeTimeoutMs ?? 5000;
  return {
    create() {
      const pool = new Pool(settings.origin, {
        connections: settings.connections,
        keepAliveTimeout: settings.keep_alive_timeout_ms,
        keepAliveMaxTimeout: settings.keep_alive_timeout_ms,
        connect: interimTolerantConnector(settings.connect_timeout_ms),
      });
      return { origin: settings.origin, pool, slots: new ConnectionSlots(settings.connections), attemptErrors: new RepeatLimiter(60_000) };
    },
    async destroy({ pool }) {
      try {
        await withTimeout(pool.close(), closeTimeoutMs, () => new Error('pool close timed out'));
      } catch {
        await pool.destroy();
      }
    },
  };
}

/** The `upstream_pool` kind: one undici pool per target origin and pool settings, shared by every upstream and generation using them. */
export const upstreamPoolKind: ResourceKind<UpstreamPoolSettings, UpstreamPool> = {
  kind: UPSTREAM_POOL_KIND,
  key: upstreamPoolKey,
  factory: (settings) => upstreamPoolFactory(settings),
};
