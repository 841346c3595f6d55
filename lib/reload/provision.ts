import { scrubError, secretValues } from '../config/redact.js';
import type { TracingConfig } from '../config/schema.js';
import { ProvisionError } from '../errors.js';
import type { HttpLimits } from '../http/limits.js';
import { Router, type ActionCompiler } from '../http/router.js';
import type { ResourceFactory, ResourceRegistry } from '../registry/registry.js';
import { sectionKey } from '../registry/key.js';
import { LISTENER_KIND, listenerFactory, listenerKey, type ListenerHandle, type RequestHandler } from '../resources/listener.js';
import { TRACER_PROVIDER_KIND, tracerProviderFactory, type TracingPipeline } from '../resources/tracing.js';
import type { Generation } from './generation.js';

/**
 * Factory builders, one per resource kind: given a config section, return the registry factory
 * for it. Injected into the reloader (tests stub one to make it throw or hang); nothing is built
 * until the registry calls `create`.
 */
export interface ResourceKinds {
  tracerProvider(section: TracingConfig): ResourceFactory<TracingPipeline>;
  listener(listen: string, onRequest: RequestHandler): ResourceFactory<ListenerHandle>;
}

/**
 * Errors of a resource's own background work after `create` (a listener's accept loop, an
 * exporter's sends, a health checker's probes), by `component`. Resources catch these and
 * report them here; they must never surface as uncaught exceptions.
 */
export type BackgroundErrorHandler = (component: string, error: Error) => void;

/** The production factory builders; `httpLimits` apply to every listener's clients. */
export function defaultResourceKinds(options: { onBackgroundError?: BackgroundErrorHandler; httpLimits?: Partial<HttpLimits> } = {}): ResourceKinds {
  const report = (component: string) => (error: Error) => options.onBackgroundError?.(component, error);
  return {
    tracerProvider: (section) => tracerProviderFactory(section, { onExportError: report('exporter') }),
    listener: (listen, onRequest) => listenerFactory(listen, onRequest, { onError: report('listener'), limits: options.httpLimits }),
  };
}

export interface ProvisionContext {
  registry: ResourceRegistry;
  kinds: ResourceKinds;
  /** The request handler for the listener with this registry key (it routes by active generation). */
  requestHandler(listenKey: string): RequestHandler;
  /** Builds route actions; default: `respond` only. */
  compileAction?: ActionCompiler;
}

/** Per kind: how many of the generation's leases created a value and how many reused one. */
export type ProvisionReport = Record<string, { created: number; reused: number }>;

/**
 * Acquire every resource `generation.config` needs, in order: tracing, then listeners. Resources
 * whose config section is unchanged are reused (their factories never run).
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
    let lease;
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
    for (const [i, listener] of config.listeners.entries()) {
      const key = listenerKey(listener.listen);
      const router = Router.fromConfig(listener.routes, ctx.compileAction);
      const handle = await acquire(`listeners.${i}.listen`, LISTENER_KIND, key, ctx.kinds.listener(listener.listen, ctx.requestHandler(key)));
      generation.addListener(key, handle, router);
    }
  } catch (error) {
    await generation.release();
    throw error;
  }
  return report;
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
