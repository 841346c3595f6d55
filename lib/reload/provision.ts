import { canonicalJson } from '../config/hash.js';
import { scrubError, secretValues } from '../config/redact.js';
import { ACCESS_LOG_REDACTED_HEADERS, type RouteConfig, type UpstreamConfig } from '../config/schema.js';
import { ProvisionError } from '../core/errors.js';
import { type Logger, logDestination } from '../core/log.js';
import type { RouteAction } from '../dataplane/ports.js';
import { compileProxy, type ProxyObserver, ProxyTarget, Upstream } from '../dataplane/proxy/proxy.js';
import { TrustedProxies } from '../dataplane/proxy/trusted-proxies.js';
import { compileRedirect } from '../dataplane/route/redirect.js';
import { compileRespond } from '../dataplane/route/respond.js';
import { Router } from '../dataplane/route/router.js';
import { type AccessLineSink, AccessLog } from '../dataplane/serve/access-log.js';
import { SniTable } from '../dataplane/serve/sni.js';
import type { Lease } from '../registry/lease.js';
import type { ResourceFactory, ResourceRegistry } from '../registry/registry.js';
import { accessLogFileKind } from '../resources/access-log.js';
import { fileWatchKind } from '../resources/file-watch.js';
import { healthCheckerKind, type TargetHealth, targetHealthKind } from '../resources/health.js';
import { httpStackKind, type StackServing, type StackTlsPolicy } from '../resources/http-stack.js';
import { type KindDeps, type ResourceKind, type ResourceKinds, resolveKind } from '../resources/kind.js';
import { listenerKind } from '../resources/listener.js';
import { type TlsCertificate, tlsCertificateKind } from '../resources/tls-certificate.js';
import { generationTracing, TRACER_PROVIDER_KIND, tracerProviderKind } from '../resources/tracing.js';
import { upstreamPoolKind, upstreamPoolSettings, upstreamTargets } from '../resources/upstream.js';
import { type ResolvedTracing, resolveTracing } from '../telemetry/otel-env.js';
import type { Generation } from './generation.js';

export interface ProvisionContext {
  registry: ResourceRegistry;
  /** Kinds by name that replace the defaults (specs inject faults here); default: every kind module as it is. */
  kinds?: ResourceKinds;
  /** What the kinds' factories may use (background errors, logger, observer, HTTP limits). */
  deps: KindDeps;
  /** What the protocol stack of the listener with this registry key calls (it routes by the active generation). */
  serving(listenKey: string): StackServing;
  /** Receives proxy attempts (metrics). */
  observer?: ProxyObserver;
  /** Parent of the proxy's loggers. */
  logger?: Logger;
  /** The steps to run; default `PROVISION_STEPS` (a cluster primary runs `HEALTH_CHECK_STEPS` only). */
  steps?: readonly ProvisionStep[];
}

/** Per kind: how many of the generation's leases created a value and how many reused one. */
export type ProvisionReport = Record<string, { created: number; reused: number }>;

/**
 * Acquire one resource of `kind` for `input`, held by the generation being provisioned.
 * @throws ProvisionError naming `path`, the kind and the key
 */
type Acquire = <I, T>(path: string, kind: ResourceKind<I, T>, input: I) => Promise<T>;

/** One step of a provision: acquires what one part of the config needs and adds it to the generation. */
export type ProvisionStep = (generation: Generation, ctx: ProvisionContext, acquire: Acquire) => Promise<void>;

/**
 * The steps, in order: tracing first (the upstreams' spans use it); then per upstream its
 * targets' health states, its checker and its pools; then listeners (socket, certificates, protocol
 * stack), whose routes are compiled against this generation's upstreams; their access logs (an
 * open file per distinct `access_log.path`, else the daemon's logger); last, the watches of
 * the certificate files' directories. A new config section gets a step here; a new kind of
 * resource gets a module exporting its `ResourceKind` and is acquired by a step.
 */
export const PROVISION_STEPS: readonly ProvisionStep[] = [provisionTracing, provisionUpstreams, provisionListeners, provisionAccessLogs, provisionFileWatches];

/**
 * Health checking alone: per upstream with a `health_check`, its targets' states and its checker.
 * What a cluster primary provisions, so that it probes once for all its workers.
 */
export const HEALTH_CHECK_STEPS: readonly ProvisionStep[] = [provisionHealthChecks];

/**
 * Acquire every resource `generation.config` needs, step by step (`PROVISION_STEPS`). Resources
 * whose key is unchanged are reused (their factories never run).
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
  const acquire: Acquire = async <I, T>(path: string, kindModule: ResourceKind<I, T>, input: I): Promise<T> => {
    const kind = resolveKind(ctx.kinds, kindModule);
    const key = kind.key(input);
    let lease: Lease<T>;
    try {
      lease = await ctx.registry.acquire(kind.kind, key, scrubbingFactory(kind.factory(input, ctx.deps), secrets));
    } catch (error) {
      throw new ProvisionError(path, kind.kind, key, error);
    }
    const counts = (report[kind.kind] ??= { created: 0, reused: 0 });
    if (lease.created) counts.created += 1;
    else counts.reused += 1;
    return generation.hold(lease);
  };
  try {
    for (const step of ctx.steps ?? PROVISION_STEPS) await step(generation, ctx, acquire);
  } catch (error) {
    await generation.release();
    throw error;
  }
  return report;
}

/**
 * The `tracing` section, its unset fields filled from the process's `OTEL_*` variables
 * (`resolveTracing`), so the pipeline's key covers what the environment gave it; the pipeline is
 * shared across `sample_ratio` changes and the generation samples over it at its own ratio.
 */
async function provisionTracing(generation: Generation, _ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  const section = generation.config.tracing;
  if (!section) return;
  let resolved: ResolvedTracing;
  try {
    resolved = resolveTracing(section, process.env);
  } catch (error) {
    throw new ProvisionError('tracing', TRACER_PROVIDER_KIND, '', error);
  }
  generation.setTracing(generationTracing(await acquire('tracing', tracerProviderKind, resolved), resolved.sample_ratio));
}

async function provisionUpstreams(generation: Generation, ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  for (const [name, section] of Object.entries(generation.config.upstreams)) {
    generation.addUpstream(await provisionUpstream(name, section, generation, ctx, acquire));
  }
}

async function provisionHealthChecks(generation: Generation, _ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  for (const [name, section] of Object.entries(generation.config.upstreams)) await provisionHealth(name, section, acquire);
}

/** An upstream's target health states and its checker, when it has a `health_check`; undefined otherwise. */
async function provisionHealth(name: string, section: UpstreamConfig, acquire: Acquire): Promise<TargetHealth[] | undefined> {
  if (!section.health_check) return undefined;
  const origins = upstreamTargets(section);
  const path = `upstreams.${name}`;
  const states: TargetHealth[] = [];
  for (const [i, origin] of origins.entries()) {
    states.push(await acquire(`${path}.targets.${i}`, targetHealthKind, { upstream: name, origin }));
  }
  await acquire(`${path}.health_check`, healthCheckerKind, { upstream: name, section: section.health_check, origins, targets: states });
  return states;
}

/** One upstream: health states and checker (when configured), then one pool per target. */
async function provisionUpstream(name: string, section: UpstreamConfig, generation: Generation, ctx: ProvisionContext, acquire: Acquire): Promise<Upstream> {
  const origins = upstreamTargets(section);
  const path = `upstreams.${name}`;
  const states = await provisionHealth(name, section, acquire);
  const targets: ProxyTarget[] = [];
  for (const [i, origin] of origins.entries()) {
    const pool = await acquire(`${path}.targets.${i}`, upstreamPoolKind, upstreamPoolSettings(origin, section));
    targets.push(new ProxyTarget(pool, states?.[i]));
  }
  return new Upstream({ name, config: section, targets, tracer: generation.tracer, observer: ctx.observer, logger: ctx.logger });
}

async function provisionListeners(generation: Generation, ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  for (const [i, listener] of generation.config.listeners.entries()) {
    const trusted = new TrustedProxies(listener.trusted_proxies);
    const compile = (route: RouteConfig, index: number): RouteAction => {
      if (route.upstream !== undefined) return compileProxy(route, generation.upstreams(), trusted);
      if (route.redirect !== undefined) return compileRedirect(route);
      return compileRespond(route, index);
    };
    const router = Router.fromConfig(listener.routes, compile);
    const path = `listeners.${i}`;
    const key = listenerKind.key(listener);
    const handle = await acquire(`${path}.listen`, listenerKind, { listen: listener.listen });
    let sni: SniTable | undefined;
    let tls: StackTlsPolicy | undefined;
    if (listener.tls) {
      tls = { min_version: listener.tls.min_version, alpn: listener.tls.alpn };
      const certificates: TlsCertificate[] = [];
      for (const material of generation.tls.byListener.get(i) ?? []) {
        certificates.push(await acquire(material.path, tlsCertificateKind, { material, policy: tls }));
      }
      sni = new SniTable(certificates);
    }
    const stack = await acquire(path, httpStackKind, { policy: { listen: listener.listen, tls }, serving: ctx.serving(key), ticketKeys: handle.ticketKeys });
    generation.addListener(key, {
      handle,
      stack,
      router,
      sni,
      routeSections: listener.routes.map((route) => canonicalJson(route)),
      maxConnections: listener.max_connections,
    });
  }
}

/**
 * Each listener's access log, unless `access_log.enabled` is false: to its `path`, an open file
 * shared by every listener and generation naming that path (`access_log_file`), else to the
 * daemon's logger (stdout, beside its own events). Lines are written whatever `--log-level`
 * says, as nginx's `access_log` ignores `error_log`'s level, except when the daemon's logger is
 * silent (a library user who asked for no output).
 */
async function provisionAccessLogs(generation: Generation, ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  const logger = ctx.deps.logger;
  for (const [i, listener] of generation.config.listeners.entries()) {
    const section = listener.access_log;
    if (!section.enabled) continue;
    let sink: AccessLineSink | undefined;
    if (section.path !== undefined) sink = await acquire(`listeners.${i}.access_log.path`, accessLogFileKind, { path: section.path });
    else if (logger.level !== 'silent') sink = logDestination(logger);
    if (!sink) continue;
    generation.addAccessLog(
      listenerKind.key(listener),
      new AccessLog({
        listener: listener.name,
        sink,
        bindings: { pid: process.pid, ...logger.bindings() },
        includeQuery: section.include_query,
        requestHeaders: section.request_headers.map((name) => name.toLowerCase()),
        redacted: new Set([...ACCESS_LOG_REDACTED_HEADERS, ...section.redact_headers.map((name) => name.toLowerCase())]),
      }),
    );
  }
}

/** One watch per directory of the certificate and key files: a change there runs a reload. */
async function provisionFileWatches(generation: Generation, _ctx: ProvisionContext, acquire: Acquire): Promise<void> {
  for (const { dir, path } of generation.tls.watch) await acquire(path, fileWatchKind, { dir });
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
