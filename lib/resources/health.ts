import { Agent } from 'undici';
import type { HealthCheckConfig } from '../config/schema.js';
import { HotconfError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { RepeatLimiter } from '../core/repeat-limiter.js';
import { sectionKey } from '../registry/key.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { HealthObserver, ResourceKind } from './kind.js';

/** Registry kind of per-target health state. */
export const TARGET_HEALTH_KIND = 'target_health';
/** Registry kind (and metric label) of health checkers. */
export const HEALTH_CHECKER_KIND = 'health_checker';

/**
 * The health of one target as seen by one upstream: a registry resource of its own (kind
 * `target_health`, key `targetHealthKey(upstream, origin)`), so it lives exactly as long as some
 * generation uses that upstream's target, independently of the checker that updates it.
 *
 * This is where health state survives reloads: a generation acquires the states of its
 * upstream's targets before its checker, so an unchanged target's state is reused (never reset)
 * whether the checker is reused or rebuilt with new settings. A fresh state (no previous
 * generation had this target) starts healthy: "healthy until proven otherwise".
 *
 * Several checkers can hold a state at once while generations overlap (an old checker lives until
 * its generation has drained); only the newest one (`claim`ed last and not yet `unclaim`ed)
 * updates it, so an old checker's settings never fight the new ones.
 */
export class TargetHealth {
  readonly upstream: string;
  readonly target: string;
  #healthy = true;
  #successes = 0;
  #failures = 0;
  readonly #owners: object[] = [];

  constructor(upstream: string, target: string) {
    this.upstream = upstream;
    this.target = target;
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  /** Consecutive probe outcomes of the current streak. */
  get streak(): { successes: number; failures: number } {
    return { successes: this.#successes, failures: this.#failures };
  }

  /** Make `owner` the checker whose probes count (the newest claim wins). */
  claim(owner: object): void {
    this.#owners.push(owner);
  }

  /** Drop `owner`'s claim; the previous claimant, if still there, counts again. */
  unclaim(owner: object): void {
    const i = this.#owners.lastIndexOf(owner);
    if (i >= 0) this.#owners.splice(i, 1);
  }

  /** True when `owner`'s probes update this state. */
  ownedBy(owner: object): boolean {
    return this.#owners.at(-1) === owner;
  }

  /**
   * Set the health from outside the probes (a cluster worker, told by the primary's checker),
   * when `owner` owns the state. Resets the streak. Returns the new health when it changed.
   */
  set(owner: object, healthy: boolean): boolean | undefined {
    if (!this.ownedBy(owner) || this.#healthy === healthy) return undefined;
    this.#successes = 0;
    this.#failures = 0;
    this.#healthy = healthy;
    return healthy;
  }

  /**
   * Count one probe outcome from `owner` (ignored unless it owns the state). Thresholds as
   * Envoy's active health checking: `unhealthy_threshold` consecutive failures turn a healthy
   * target unhealthy, `healthy_threshold` consecutive successes turn it healthy again.
   * Returns the new health when this outcome changed it, undefined otherwise.
   */
  record(owner: object, ok: boolean, thresholds: Pick<HealthCheckConfig, 'healthy_threshold' | 'unhealthy_threshold'>): boolean | undefined {
    if (!this.ownedBy(owner)) return undefined;
    if (ok) {
      this.#failures = 0;
      this.#successes += 1;
      if (!this.#healthy && this.#successes >= thresholds.healthy_threshold) return (this.#healthy = true);
    } else {
      this.#successes = 0;
      this.#failures += 1;
      if (this.#healthy && this.#failures >= thresholds.unhealthy_threshold) return (this.#healthy = false);
    }
    return undefined;
  }
}

/** Registry key of a target's health state within an upstream. */
export function targetHealthKey(upstream: string, origin: string): string {
  return `${upstream} ${origin}`;
}

/** The registry factory for a `TargetHealth` (plain state: nothing to tear down). */
export function targetHealthFactory(upstream: string, origin: string): ResourceFactory<TargetHealth> {
  return {
    create: () => new TargetHealth(upstream, origin),
    destroy: () => {},
  };
}

/**
 * Registry key of an upstream's checker: its name, its target origins and its `health_check`
 * section. Any change to those builds a new checker; anything else (routes, retries, timeouts,
 * other upstreams) reuses the running one.
 */
export function healthCheckerKey(upstream: string, targets: readonly string[], section: HealthCheckConfig): string {
  return `${upstream} ${sectionKey({ targets, health_check: section })}`;
}

/** The URL a target is probed at. Pure. */
export function probeUrl(origin: string, section: Pick<HealthCheckConfig, 'path'>): string {
  return `${origin}${section.path}`;
}

/** `expected_status` as a predicate: a list of codes, or a class like `"2xx"`. Pure. */
export function statusMatcher(expected: HealthCheckConfig['expected_status']): (status: number) => boolean {
  if (typeof expected === 'string') {
    const cls = Number(expected[0]);
    return (status) => Math.floor(status / 100) === cls;
  }
  const codes = new Set(expected);
  return (status) => codes.has(status);
}

/** A probe did not answer within `health_check.timeout_ms`. */
export class ProbeTimeoutError extends HotconfError {
  constructor(url: string, timeoutMs: number) {
    super('E_PROBE_TIMEOUT', `health probe ${url} did not answer within ${timeoutMs} ms`);
  }
}

export interface HealthCheckerOptions {
  upstream: string;
  section: HealthCheckConfig;
  /** The states this checker updates, one per target, in target order. */
  targets: readonly TargetHealth[];
  logger?: Logger;
  observer?: HealthObserver;
  /** Identical probe errors for a target are logged at most once per this, in ms. Default 60000. */
  errorLogIntervalMs?: number;
}

interface ProbeLoop {
  readonly state: TargetHealth;
  readonly url: string;
  timer: NodeJS.Timeout | undefined;
  running: Promise<void> | undefined;
  abort: AbortController | undefined;
}

/**
 * Active health checks for one upstream, as Envoy's active HTTP health checking: every target is
 * probed with `GET origin + path` every `interval_ms`; a probe passes when it answers within
 * `timeout_ms` with an `expected_status`, and the thresholds move the target between healthy and
 * unhealthy (see `TargetHealth.record`).
 *
 * Concurrency contract: one loop per target, so a slow target never delays another; within a
 * loop, the next probe is scheduled only after the previous one settled (a slow probe delays the
 * next, probes never overlap). Timers are unref'd. Every error is caught: counted through
 * `observer.healthCheckError`, logged (identical repeats rate-limited per target), and the loop
 * goes on. A checker that no longer owns a state (a newer checker claimed it) skips its probes.
 * `stop()` clears the timers, aborts probes in flight, releases the claims and closes the probe
 * connections; it is idempotent.
 */
export class HealthChecker {
  readonly upstream: string;
  readonly section: HealthCheckConfig;
  readonly #loops: ProbeLoop[];
  readonly #matches: (status: number) => boolean;
  readonly #agent: Agent;
  readonly #log: Logger;
  readonly #observer: HealthObserver | undefined;
  readonly #errors: RepeatLimiter;
  readonly #stopping = new Once(() => this.#stop());

  constructor(options: HealthCheckerOptions) {
    this.upstream = options.upstream;
    this.section = options.section;
    this.#matches = statusMatcher(options.section.expected_status);
    this.#log = (options.logger ?? silentLogger()).child({ component: 'health', upstream: options.upstream });
    this.#observer = options.observer;
    this.#errors = new RepeatLimiter(options.errorLogIntervalMs ?? 60_000);
    // Probes use their own connections (one per target, kept alive between probes), never the
    // data-plane pools: a probe must not queue behind traffic, nor traffic behind a probe.
    this.#agent = new Agent({ connections: 1, keepAliveTimeout: Math.max(options.section.interval_ms * 2, 1000) });
    this.#loops = options.targets.map((state) => ({
      state,
      url: probeUrl(state.target, options.section),
      timer: undefined,
      running: undefined,
      abort: undefined,
    }));
  }

  /** Claim the states and start probing (the first probe of each target runs at once). */
  start(): void {
    for (const loop of this.#loops) {
      loop.state.claim(this);
      this.#schedule(loop, 0);
    }
  }

  /** The states this checker probes, in target order. */
  get targets(): readonly TargetHealth[] {
    return this.#loops.map((l) => l.state);
  }

  /** Stop probing and release everything. Idempotent: later calls return the same promise. */
  stop(): Promise<void> {
    return this.#stopping.call();
  }

  async #stop(): Promise<void> {
    for (const loop of this.#loops) {
      clearTimeout(loop.timer);
      loop.timer = undefined;
      loop.abort?.abort(new HotconfError('E_CHECKER_STOPPED', 'health checker stopped'));
      loop.state.unclaim(this);
    }
    await Promise.all(this.#loops.map((l) => l.running));
    await this.#agent.destroy();
  }

  #schedule(loop: ProbeLoop, delayMs: number): void {
    if (this.#stopping.called) return;
    loop.timer = setTimeout(() => {
      loop.timer = undefined;
      loop.running = this.#tick(loop).finally(() => {
        loop.running = undefined;
        this.#schedule(loop, this.section.interval_ms);
      });
    }, delayMs).unref();
  }

  async #tick(loop: ProbeLoop): Promise<void> {
    if (!loop.state.ownedBy(this)) return;
    let ok: boolean;
    try {
      ok = await this.#probe(loop);
      if (ok) this.#errors.reset(loop.state.target);
    } catch (error) {
      if (this.#stopping.called) return;
      ok = false;
      this.#onError(loop, error);
    }
    try {
      const changed = loop.state.record(this, ok, this.section);
      if (changed !== undefined) {
        this.#log.info({ target: loop.state.target, healthy: changed }, 'target_health_changed');
        this.#observer?.healthChanged?.(this.upstream, loop.state.target, changed);
      }
    } catch (error) {
      this.#onError(loop, error);
    }
  }

  async #probe(loop: ProbeLoop): Promise<boolean> {
    const abort = new AbortController();
    loop.abort = abort;
    const { timeout_ms: timeoutMs } = this.section;
    const timer = setTimeout(() => abort.abort(new ProbeTimeoutError(loop.url, timeoutMs)), timeoutMs).unref();
    try {
      const url = new URL(loop.url);
      const { statusCode, body } = await this.#agent.request({
        origin: url.origin,
        path: url.pathname + url.search,
        method: 'GET',
        headers: { 'user-agent': 'hotconf-health-check' },
        signal: abort.signal,
      });
      await body.dump();
      const ok = this.#matches(statusCode);
      if (!ok) this.#log.debug({ target: loop.state.target, status: statusCode }, 'health_probe_failed');
      return ok;
    } finally {
      clearTimeout(timer);
      loop.abort = undefined;
    }
  }

  #onError(loop: ProbeLoop, error: unknown): void {
    try {
      this.#observer?.healthCheckError(this.upstream);
    } catch {
      // A broken metrics sink must not stop the loop either.
    }
    const logged = this.#errors.checkError(loop.state.target, error);
    if (logged) this.#log.warn({ target: loop.state.target, ...logged }, 'health_probe_error');
  }
}

export interface HealthCheckerFactoryOptions {
  logger?: Logger;
  observer?: HealthObserver;
  errorLogIntervalMs?: number;
}

/**
 * The registry factory for an upstream's checker (key: `healthCheckerKey`). `create` builds and
 * starts the checker over `targets` (the states the generation acquired just before, reused when
 * they existed, so a replacing checker inherits them); `destroy` stops it. Nothing is built or
 * started before `create` runs.
 */
export function healthCheckerFactory(
  upstream: string,
  section: HealthCheckConfig,
  targets: readonly TargetHealth[],
  options: HealthCheckerFactoryOptions = {},
): ResourceFactory<HealthChecker> {
  return {
    create() {
      const checker = new HealthChecker({ upstream, section, targets, ...options });
      checker.start();
      return checker;
    },
    destroy: (checker) => checker.stop(),
  };
}

/** What one target's health state is built from. */
export interface TargetHealthInput {
  readonly upstream: string;
  readonly origin: string;
}

/** The `target_health` kind: one state per upstream and target origin, kept while any generation lists the target. */
export const targetHealthKind: ResourceKind<TargetHealthInput, TargetHealth> = {
  kind: TARGET_HEALTH_KIND,
  key: (input) => targetHealthKey(input.upstream, input.origin),
  factory: (input) => targetHealthFactory(input.upstream, input.origin),
};

/** What an upstream's health checker is built from: its section, target origins and their states (in the same order). */
export interface HealthCheckerInput {
  readonly upstream: string;
  readonly section: HealthCheckConfig;
  readonly origins: readonly string[];
  readonly targets: readonly TargetHealth[];
}

/** The `health_checker` kind, keyed by upstream, origins and section (a rebuilt checker inherits the states). */
export const healthCheckerKind: ResourceKind<HealthCheckerInput, HealthChecker> = {
  kind: HEALTH_CHECKER_KIND,
  key: (input) => healthCheckerKey(input.upstream, input.origins, input.section),
  factory: (input, deps) => healthCheckerFactory(input.upstream, input.section, input.targets, { logger: deps.logger, observer: deps.observer }),
};
