import { scrubError, secretValues } from '../config/redact.js';
import type { HealthCheckConfig, TracingConfig, UpstreamConfig } from '../config/schema.js';
import { ProvisionError } from '../errors.js';
import type { HttpLimits } from '../http/limits.js';
import { compileProxy, type ProxyObserver, ProxyTarget, Upstream, type UpstreamObserver } from '../http/proxy.js';
import { type ActionCompiler, compileRespond, Router } from '../http/router.js';
import type { Logger } from '../log.js';
import { sectionKey } from '../registry/key.js';
import type { Lease } from '../registry/lease.js';
import type { ResourceFactory, ResourceRegistry } from '../registry/registry.js';
import {
  HEALTH_CHECKER_KIND,
  type HealthChecker,
  healthCheckerFactory,
  healthCheckerKey,
  TARGET_HEALTH_KIND,
  type TargetHealth,
  targetHealthFactory,
  targetHealthKey,
} from '../resources/health.js';
import { LISTENER_KIND, type ListenerHandle, listenerFactory, listenerKey, type RequestHandler } from '../resources/listener.js';
import { TRACER_PROVIDER_KIND, type TracingPipeline, tracerProviderFactory } from '../resources/tracing.js';
import {
  UPSTREAM_POOL_KIND,
  type UpstreamPool,
  type UpstreamPoolSettings,
  upstreamPoolFactory,
  upstreamPoolKey,
  upstreamPoolSettings,
  upstreamTargets,
} from '../resources/upstream.js';
import type { Generation } from './generation.js';

/**
 * Factory builders, one per resource kind: given a config section, return the registry factory
 * for it. Injected into the reloader (tests stub one to make it throw or hang); nothing is built
 * until the registry calls `create`.
 */
export interface ResourceKinds {
  tracerProvider(section: TracingConfig): ResourceFactory<TracingPipeline>;
  listener(listen: string, onRequest: RequestHandler): ResourceFactory<ListenerHandle>;
  /** Health state of one target of one upstream; see `TargetHealth`. */
  targetHealth(upstream: string, origin: string): ResourceFactory<TargetHealth>;
  /** An upstream's checker over the states the generation acquired for its targets. */
  healthChecker(upstream: string, section: HealthCheckConfig, targets: readonly TargetHealth[]): ResourceFactory<HealthChecker>;
  upstreamPool(settings: UpstreamPoolSettings): ResourceFactory<UpstreamPool>;
}

/**
 * Errors of a resource's own background work after `create` (a listener's accept loop, an
 * exporter's sends), by `component`. Resources catch these and report them here; they must never
 * surface as uncaught exceptions. (Health probes count their failures in their own metric,
 * `hotconf_health_check_errors_total`: a failing probe is what a health checker is for.)
 */
export type BackgroundErrorHandler = (component: string, error: Error) => void;

/**
 * The production factory builders. `httpLimits` apply to every listener's clients; `logger` and
 * `observer` go to health checkers.
 */
export function defaultResourceKinds(
  options: { onBackgroundError?: BackgroundErrorHandler; httpLimits?: Partial<HttpLimits>; logger?: Logger; observer?: UpstreamObserver } = {},
): ResourceKinds {
  const report = (component: string) => (error: Error) => options.onBackgroundError?.(component, error);
  return {
    tracerProvider: (section) => tracerProviderFactory(section, { onExportError: report('exporter') }),
    listener: (listen, onRequest) => listenerFactory(listen, onRequest, { onError: report('listener'), limits: options.httpLimits }),
    targetHealth: (upstream, origin) => targetHealthFactory(upstream, origin),
    healthChecker: (upstream, section, targets) => healthCheckerFactory(upstream, section, targets, { logger: options.logger, observer: options.observer }),
    upstreamPool: (settings) => upstreamPoolFactory(settings),
  };
}

export interface ProvisionContext {
  registry: ResourceRegistry;
  kinds: ResourceKinds;
  /** The request handler for the listener with this registry key (it routes by active generation). */
  requestHandler(listenKey: string): RequestHandler;
  /** Builds the actions of routes other than `upstream` ones; default: `respond`. */
  compileAction?: ActionCompiler;
  /** Receives proxy attempts (metrics). */
  observer?: ProxyObserver;
  /** Parent of the proxy's loggers. */
  logger?: Logger;
}

/** Per kind: how many of the generation's leases created a value and how many reused one. */
export type ProvisionReport = Record<string, { created: number; reused: number }>;

/**
 * Acquire every resource `generation.config` needs, in order: tracing; then per upstream its
 * targets' health states and its health checker (with `health_check`), and its targets' pools;
 * then listeners, whose routes are compiled against this generation's upstreams. Resources whose
 * config section is unchanged are reused (their factories never run).
 *
 * Health states come before the checker so that a checker rebuilt with new settings finds, and
 * inherits, the states the previous generation still holds.
 *
 * On failure, releases exactly the leases this generation acquired (reused values just lose a
 * reference; values it created are destroyed) and throws.
 *
 * Factory errors may quote config values: every factory's `create` and `destroy` errors are
 * scrubbed of the config's secrets (`SECRET_PATHS`) before the registry, which logs them, or
 * anyone else sees them.
 *
 * @throws ProvisionError naming the config path (`listeners.1.listen`), kind and key that failed
 */
export async function provision(generation: Generation, ctx: ProvisionContext): Promise<ProvisionReport> {
  const report: ProvisionReport = {};
  const secrets = secretValues(generation.config);
  const acquire = async <T>(path: string, kind: string, key: string, factory: ResourceFactory<T>): Promise<T> => {
    let lease: Lease<T>;
    try {
      lease = await ctx.registry.acquire(kind, key, scrubbingFactory(factory, secrets));
    } catch (error) {
      throw new ProvisionError(path, kind, key, error);
    }
    const counts = (report[kind] ??= { created: 0, reused: 0 });
    if (lease.created) counts.created += 1;
    else counts.reused += 1;
    return generation.hold(lease);
  };

  try {
    const { config } = generation;
    if (config.tracing) {
      const section = config.tracing;
      generation.setTracing(await acquire('tracing', TRACER_PROVIDER_KIND, sectionKey(section), ctx.kinds.tracerProvider(section)));
    }
    for (const [name, section] of Object.entries(config.upstreams)) {
      generation.addUpstream(await provisionUpstream(name, section, generation, ctx, acquire));
    }
    const compileOther = ctx.compileAction ?? compileRespond;
    const compile: ActionCompiler = (route, index) => (route.upstream !== undefined ? compileProxy(route, generation.upstreams()) : compileOther(route, index));
    for (const [i, listener] of config.listeners.entries()) {
      const key = listenerKey(listener.listen);
      const router = Router.fromConfig(listener.routes, compile);
      const handle = await acquire(`listeners.${i}.listen`, LISTENER_KIND, key, ctx.kinds.listener(listener.listen, ctx.requestHandler(key)));
      generation.addListener(key, handle, router);
    }
  } catch (error) {
    await generation.release();
    throw error;
  }
  return report;
}

type Acquire = <T>(path: string, kind: string, key: string, factory: ResourceFactory<T>) => Promise<T>;

/** One upstream: health states and checker (when configured), then one pool per target. */
async function provisionUpstream(name: string, section: UpstreamConfig, generation: Generation, ctx: ProvisionContext, acquire: Acquire): Promise<Upstream> {
  const origins = upstreamTargets(section);
  const path = `upstreams.${name}`;
  let states: TargetHealth[] | undefined;
  if (section.health_check) {
    states = [];
    for (const [i, origin] of origins.entries()) {
      states.push(await acquire(`${path}.targets.${i}`, TARGET_HEALTH_KIND, targetHealthKey(name, origin), ctx.kinds.targetHealth(name, origin)));
    }
    const key = healthCheckerKey(name, origins, section.health_check);
    await acquire(`${path}.health_check`, HEALTH_CHECKER_KIND, key, ctx.kinds.healthChecker(name, section.health_check, states));
  }
  const targets: ProxyTarget[] = [];
  for (const [i, origin] of origins.entries()) {
    const settings = upstreamPoolSettings(origin, section);
    const pool = await acquire(`${path}.targets.${i}`, UPSTREAM_POOL_KIND, upstreamPoolKey(settings), ctx.kinds.upstreamPool(settings));
    targets.push(new ProxyTarget(pool, states?.[i]));
  }
  return new Upstream({ name, config: section, targets, tracer: generation.tracer, observer: ctx.observer, logger: ctx.logger });
}

/** `factory` with its errors scrubbed of `secrets` (see `scrubError`). */
function scrubbingFactory<T>(factory: ResourceFactory<T>, secrets: readonly string[]): ResourceFactory<T> {
  if (secrets.length === 0) return factory;
  return {
    async create() {
      try {
        return await factory.create();
      } catch (error) {
        throw scrubError(error, secrets);
      }
    },
    async destroy(value) {
      try {
        await factory.destroy(value);
      } catch (error) {
        throw scrubError(error, secrets);
      }
    },
  };
}
