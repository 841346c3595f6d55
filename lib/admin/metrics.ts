import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { RetryReason, UpstreamObserver } from '../dataplane/proxy/proxy.js';
import type { EdgeObserver } from '../dataplane/serve/serving.js';
import type { KindStats, ResourceRegistry } from '../registry/registry.js';
import type { Generation } from '../reload/generation.js';
import { RELOAD_OUTCOMES, type Reloader } from '../reload/reloader.js';
import { type ListenerHandle, listenerKey, type TunnelCloseReason } from '../resources/listener.js';
import type { ConfigSource } from '../sources/source.js';
import type { LeakTrend } from './leaks.js';

export interface DaemonMetricsOptions {
  registry: ResourceRegistry;
  reloader: Reloader;
  /** Its `registerMetrics` hook, if any, adds the source's own metrics. */
  source?: ConfigSource;
  /** Node's default process metrics (fds, heap, event loop lag, GC). Default true. */
  defaultMetrics?: boolean;
  /** The prom-client registry to register on (shared with `UpstreamMetrics`). Default: a new one. */
  register?: Registry;
  /** The leak report's trend, read at scrape time for `hotconf_leak_trend_per_reload`. */
  leakTrend?: () => LeakTrend;
  /** The data plane's metrics, whose series of upstreams and targets no generation uses any more are removed after each release. */
  upstreamMetrics?: UpstreamMetrics;
}

/**
 * The daemon's Prometheus metrics, on a prom-client `Registry` of its own (never the global
 * default one, so several daemons can live in one process).
 *
 * Resource counters are read from `ResourceRegistry.stats()` at scrape time, so they always
 * equal what the leak report shows; reload counters and the duration histogram are fed by the
 * reloader's events.
 */
export class DaemonMetrics {
  readonly register: Registry;
  readonly #unsubscribe: () => void;

  constructor(options: DaemonMetricsOptions) {
    this.register = options.register ?? new Registry();
    const { registry, reloader, register } = { ...options, register: this.register };
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register });
    options.source?.registerMetrics?.(register);

    new Gauge({
      name: 'hotconf_config_generation',
      help: 'Generation number of the active config (0 before the first one).',
      registers: [register],
      collect() {
        this.set(reloader.active?.id ?? 0);
      },
    });
    new Gauge({
      name: 'hotconf_generations_live',
      help: 'Generations not yet released: the active one plus those draining.',
      registers: [register],
      collect() {
        this.set(reloader.generations().length);
      },
    });
    const reloads = new Counter({ name: 'hotconf_reloads_total', help: 'Reloads by result.', labelNames: ['result'], registers: [register] });
    for (const result of RELOAD_OUTCOMES) reloads.inc({ result }, 0);
    const duration = new Histogram({
      name: 'hotconf_reload_duration_seconds',
      help: 'Time from reading the source to the swap (or rejection).',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [register],
    });
    const lastSuccess = new Gauge({
      name: 'hotconf_last_reload_success_timestamp_seconds',
      help: 'Unix time of the last reload that ended applied or unchanged.',
      registers: [register],
    });
    const sourceErrors = new Counter({
      name: 'hotconf_source_errors_total',
      help: 'Background source errors (unreadable file, lost watch) that produced no document.',
      registers: [register],
    });
    const background = new Counter({
      name: 'hotconf_background_errors_total',
      help: "Errors caught in resources' background work (listener accept, span export), by component; failed health probes count in hotconf_health_check_errors_total.",
      labelNames: ['component'],
      registers: [register],
    });
    const aborted = new Counter({
      name: 'hotconf_requests_aborted_total',
      help: 'Requests cut because their generation did not drain within shutdown_timeout_ms.',
      registers: [register],
    });

    const perKind = (name: string, help: string, field: keyof KindStats, type: 'counter' | 'gauge'): void => {
      const collect = function (this: Counter<'kind'> | Gauge<'kind'>) {
        this.reset();
        for (const [kind, stats] of Object.entries(registry.stats())) {
          if (this instanceof Gauge) this.set({ kind }, stats[field]);
          else this.inc({ kind }, stats[field]);
        }
      };
      if (type === 'counter') new Counter({ name, help, labelNames: ['kind'], registers: [register], collect });
      else new Gauge({ name, help, labelNames: ['kind'], registers: [register], collect });
    };
    new Gauge({
      name: 'hotconf_upstream_target_healthy',
      help: 'Health of each target of each upstream of the active config (1 healthy, 0 unhealthy; always 1 without health_check).',
      labelNames: ['upstream', 'target'],
      registers: [register],
      collect() {
        this.reset();
        for (const upstream of reloader.active?.upstreams().values() ?? []) {
          for (const target of upstream.targets) this.set({ upstream: upstream.name, target: target.origin }, target.healthy ? 1 : 0);
        }
      },
    });

    new Gauge({
      name: 'hotconf_tunnels_open',
      help: 'WebSocket tunnels open, by listener (name in the active config, else its address).',
      labelNames: ['listener'],
      registers: [register],
      collect() {
        this.reset();
        for (const { name, handle } of liveListeners(reloader)) this.set({ listener: name }, handle.tunnels.size);
      },
    });
    new Gauge({
      name: 'hotconf_tls_certificate_not_after_timestamp_seconds',
      help: 'End of validity (Unix time) of each certificate the active config serves, by listener and server name: alert before it passes.',
      labelNames: ['listener', 'server_name'],
      registers: [register],
      collect() {
        this.reset();
        const active = reloader.active;
        if (!active) return;
        for (const listener of active.config.listeners) {
          for (const certificate of active.sni(listenerKey(listener.listen))?.certificates ?? []) {
            const names = certificate.material.names.length > 0 ? certificate.material.names : [''];
            for (const name of names) this.set({ listener: listener.name, server_name: name }, certificate.material.notAfterMs / 1000);
          }
        }
      },
    });

    const { leakTrend } = options;
    if (leakTrend) {
      new Gauge({
        name: 'hotconf_leak_trend_per_reload',
        help: 'Least-squares growth per reload over the last reloads (see /leaks trend): handles, handles:TYPE, fds, live:KIND.',
        labelNames: ['resource'],
        registers: [register],
        collect() {
          this.reset();
          for (const [resource, slope] of Object.entries(leakTrend().slopes)) this.set({ resource }, slope);
        },
      });
    }

    perKind('hotconf_resources_live', 'Resources created and not yet destroyed.', 'live', 'gauge');
    perKind('hotconf_resource_refs', 'Leases held on live resources.', 'refs', 'gauge');
    perKind('hotconf_resources_created_total', 'Resources created (factory create ran).', 'created', 'counter');
    perKind('hotconf_resources_destroyed_total', 'Resources destroyed (last lease released).', 'destroyed', 'counter');
    perKind(
      'hotconf_resources_reused_total',
      'Values a provision found live: acquires served without create, and values of upstream tables or entries taken over.',
      'reused',
      'counter',
    );
    perKind('hotconf_resource_create_failures_total', 'Factory create calls that threw.', 'createFailures', 'counter');
    perKind('hotconf_resource_destroy_failures_total', 'Destroys that threw or timed out.', 'destroyFailures', 'counter');
    perKind('hotconf_leases_leaked_total', 'Leases garbage-collected without release().', 'leakedLeases', 'counter');

    this.#unsubscribe = reloader.subscribe((event) => {
      if (event.type === 'reload') {
        reloads.inc({ result: event.result.result });
        duration.observe(event.duration_seconds);
        if (event.result.result === 'applied' || event.result.result === 'unchanged') lastSuccess.set(Date.now() / 1000);
      } else if (event.type === 'generation_released') {
        if (event.report.aborted > 0) aborted.inc(event.report.aborted);
        options.upstreamMetrics?.removeUnused(upstreamsInUse(reloader)).catch(() => background.inc({ component: 'metrics' }));
      } else if (event.type === 'source_error') {
        sourceErrors.inc();
      } else if (event.type === 'background_error') {
        background.inc({ component: event.component });
      }
    });
  }

  /** Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.register.contentType, body: await this.register.metrics() };
  }

  /** Stop listening to the reloader. */
  close(): void {
    this.#unsubscribe();
  }
}

/**
 * The data plane's metrics, on the daemon's prom-client registry: injected into the proxy and
 * the health checkers as their `UpstreamObserver` (never a module global).
 */
export class UpstreamMetrics implements UpstreamObserver {
  readonly #requests: Counter<'upstream' | 'target' | 'code_class'>;
  readonly #duration: Histogram<'upstream' | 'target'>;
  readonly #healthErrors: Counter<'upstream'>;
  readonly #retries: Counter<'reason'>;

  constructor(register: Registry) {
    this.#requests = new Counter({
      name: 'hotconf_upstream_requests_total',
      help: 'Upstream attempts by target and outcome (code_class 2xx..5xx, or error: connect error, timeout, reset, client abort).',
      labelNames: ['upstream', 'target', 'code_class'],
      registers: [register],
    });
    this.#duration = new Histogram({
      name: 'hotconf_upstream_request_duration_seconds',
      help: 'Upstream attempt duration: request sent to last response byte relayed (or the error).',
      labelNames: ['upstream', 'target'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [register],
    });
    this.#healthErrors = new Counter({
      name: 'hotconf_health_check_errors_total',
      help: 'Health probes that threw (connect error, timeout, reset); the probe loop goes on.',
      labelNames: ['upstream'],
      registers: [register],
    });
    this.#retries = new Counter({
      name: 'hotconf_upstream_retries_total',
      help: 'Upstream attempts retried, by reason: connect_error (to another target), reused_connection_closed (a kept-alive connection closed before any response byte; once per request).',
      labelNames: ['reason'],
      registers: [register],
    });
  }

  upstreamRetry(_upstream: string, reason: RetryReason): void {
    this.#retries.inc({ reason });
  }

  upstreamRequest(upstream: string, target: string, codeClass: string, durationSeconds: number): void {
    this.#requests.inc({ upstream, target, code_class: codeClass });
    this.#duration.observe({ upstream, target }, durationSeconds);
  }

  healthCheckError(upstream: string): void {
    this.#healthErrors.inc({ upstream });
  }

  /**
   * Remove the series of every upstream and target `inUse` no longer lists, so a config that
   * keeps changing targets does not grow the exposition forever (ingress-nginx kept the series of
   * removed endpoints: a slow memory leak). `inUse` is asked after the series are read and right
   * before they are removed, so a target that came back meanwhile keeps its series; it is asked
   * about the series' upstreams only, so the cost follows the series, not the config's size.
   * Series of targets in use are kept as they are (counters never reset).
   */
  async removeUnused(inUse: UpstreamsInUse): Promise<void> {
    const [requests, duration, healthErrors] = await Promise.all([this.#requests.get(), this.#duration.get(), this.#healthErrors.get()]);
    const unused = (labels: Partial<Record<string, string | number>>) => !inUse.target(String(labels.upstream), String(labels.target));
    for (const { labels } of requests.values) if (unused(labels)) this.#requests.remove(labels as Record<'upstream' | 'target' | 'code_class', string>);
    const gone = new Set<string>();
    for (const { labels } of duration.values) {
      const key = `${labels.upstream}\0${labels.target}`;
      if (unused(labels) && !gone.has(key)) {
        gone.add(key);
        this.#duration.remove({ upstream: String(labels.upstream), target: String(labels.target) });
      }
    }
    for (const { labels } of healthErrors.values)
      if (!inUse.upstream(String(labels.upstream))) this.#healthErrors.remove({ upstream: String(labels.upstream) });
  }
}

/** Whether some live generation serves an upstream (by name), and a target (by origin) of it. */
export interface UpstreamsInUse {
  upstream(name: string): boolean;
  target(upstream: string, origin: string): boolean;
}

/** What every generation not yet released (the active one and those draining) uses, looked up per name in their upstream maps. */
function upstreamsInUse(reloader: Reloader): UpstreamsInUse {
  // Listed at the first question, after the series were read, and kept for the rest: the
  // questions come in one synchronous pass (a series each), during which no generation changes.
  let generations: Generation[] | undefined;
  const live = () => (generations ??= reloader.generations().filter((generation) => generation.state !== 'released'));
  return {
    upstream: (name) => live().some((generation) => generation.upstreams().has(name)),
    target: (upstream, origin) =>
      live().some(
        (generation) =>
          generation
            .upstreams()
            .get(upstream)
            ?.targets.some((target) => target.origin === origin) === true,
      ),
  };
}

/** Every listener of a live generation once, named as the newest generation naming it calls it. */
function liveListeners(reloader: Reloader): { name: string; handle: ListenerHandle }[] {
  const out = new Map<ListenerHandle, string>();
  for (const generation of reloader.generations()) {
    for (const listener of generation.config.listeners) {
      const served = generation.listeners().get(listenerKey(listener.listen));
      if (served && !out.has(served.handle)) out.set(served.handle, listener.name);
    }
  }
  return [...out].map(([handle, name]) => ({ name, handle }));
}

/** Why tunnels end: every label of `hotconf_tunnels_closed_total`, exported at 0 from the start. */
const TUNNEL_CLOSE_REASONS: readonly TunnelCloseReason[] = ['client', 'upstream', 'route_changed', 'shutdown', 'lifetime'];

/**
 * The edge's event metrics (TLS handshakes, tunnel ends), on the daemon's prom-client registry:
 * injected into each listener's serving as its `EdgeObserver`. `listenerName` maps a listener
 * key to the name the metrics show.
 */
export class EdgeMetrics implements EdgeObserver {
  readonly #handshakes: Counter<'listener' | 'result'>;
  readonly #tunnelsClosed: Counter<'reason'>;
  readonly #listenerName: (listenKey: string) => string;

  constructor(register: Registry, listenerName: (listenKey: string) => string) {
    this.#listenerName = listenerName;
    this.#handshakes = new Counter({
      name: 'hotconf_tls_handshakes_total',
      help: 'TLS handshakes by listener and result (ok, or error: no shared version or protocol, bad hello, timeout).',
      labelNames: ['listener', 'result'],
      registers: [register],
    });
    this.#tunnelsClosed = new Counter({
      name: 'hotconf_tunnels_closed_total',
      help: 'WebSocket tunnels ended, by reason: client, upstream, route_changed (a reload removed its route or target), shutdown, lifetime (its listener was destroyed).',
      labelNames: ['reason'],
      registers: [register],
    });
    for (const reason of TUNNEL_CLOSE_REASONS) this.#tunnelsClosed.inc({ reason }, 0);
  }

  tlsHandshake(listenKey: string, result: 'ok' | 'error'): void {
    this.#handshakes.inc({ listener: this.#listenerName(listenKey), result });
  }

  tunnelClosed(reason: TunnelCloseReason): void {
    this.#tunnelsClosed.inc({ reason });
  }
}
