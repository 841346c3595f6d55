import type { ResourceFactory } from '../registry/registry.js';
import { HEALTH_CHECKER_KIND, type HealthCheckerInput, healthCheckerKind, type TargetHealth, targetHealthKey } from './health.js';
import type { ResourceKind } from './kind.js';

/**
 * Health decided elsewhere: in a cluster, only the primary probes (N workers must not mean N×
 * probes, as Envoy's main thread checks for all its workers); each worker applies the
 * transitions the primary broadcasts to its own target states through one `HealthFeed`.
 *
 * The feed remembers the last health of every (upstream, target) it was told, so a checker that
 * starts later (a reload, a re-forked worker) begins from the current health, not from healthy.
 */
export class HealthFeed {
  readonly #last = new Map<string, boolean>();
  readonly #checkers = new Set<RemoteHealthChecker>();

  /** A transition (or a snapshot entry) from the primary. */
  update(upstream: string, target: string, healthy: boolean): void {
    this.#last.set(targetHealthKey(upstream, target), healthy);
    for (const checker of this.#checkers) checker.apply(target, healthy);
  }

  /** The last health told for a target; undefined when never told (a fresh target starts healthy). */
  last(upstream: string, target: string): boolean | undefined {
    return this.#last.get(targetHealthKey(upstream, target));
  }

  register(checker: RemoteHealthChecker): void {
    this.#checkers.add(checker);
  }

  unregister(checker: RemoteHealthChecker): void {
    this.#checkers.delete(checker);
  }
}

/**
 * A health checker that does not probe: it claims its upstream's target states (so they keep
 * the reuse and ownership rules of a real checker) and sets them from a `HealthFeed`.
 */
export class RemoteHealthChecker {
  readonly upstream: string;
  readonly #feed: HealthFeed;
  readonly #states: readonly TargetHealth[];

  constructor(upstream: string, states: readonly TargetHealth[], feed: HealthFeed) {
    this.upstream = upstream;
    this.#states = states;
    this.#feed = feed;
  }

  start(): void {
    for (const state of this.#states) {
      state.claim(this);
      const last = this.#feed.last(this.upstream, state.target);
      if (last !== undefined) state.set(this, last);
    }
    this.#feed.register(this);
  }

  apply(target: string, healthy: boolean): void {
    for (const state of this.#states) if (state.target === target) state.set(this, healthy);
  }

  stop(): void {
    this.#feed.unregister(this);
    for (const state of this.#states) state.unclaim(this);
  }
}

/** The `health_checker` kind of a cluster worker: same name and key as `healthCheckerKind`, fed by `feed` instead of probing. */
export function remoteHealthCheckerKind(feed: HealthFeed): ResourceKind<HealthCheckerInput, RemoteHealthChecker> {
  return {
    kind: HEALTH_CHECKER_KIND,
    key: healthCheckerKind.key,
    factory: (input): ResourceFactory<RemoteHealthChecker> => ({
      create() {
        const checker = new RemoteHealthChecker(input.upstream, input.targets, feed);
        checker.start();
        return checker;
      },
      destroy: (checker) => checker.stop(),
    }),
  };
}
