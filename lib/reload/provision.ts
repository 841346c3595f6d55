import equal from 'fast-deep-equal';
import { canonicalJson } from '../config/hash.js';
import { scrubError } from '../config/redact.js';
import { ACCESS_LOG_REDACTED_HEADERS, type RouteConfig, type UpstreamConfig } from '../config/schema.js';
import { spliced } from '../core/arrays.js';
import { ProvisionError } from '../core/errors.js';
import { sameEnds } from '../core/identity.js';
import { type Logger, logDestination } from '../core/log.js';
import type { RouteAction } from '../dataplane/ports.js';
import { compileProxy, ProxyAction, type ProxyObserver, ProxyTarget, Upstream } from '../dataplane/proxy/proxy.js';
import { TrustedProxies } from '../dataplane/proxy/trusted-proxies.js';
import { compileRedirect, RedirectAction } from '../dataplane/route/redirect.js';
import { compileRespond, RespondAction } from '../dataplane/route/respond.js';
import { compileReusing, type Router } from '../dataplane/route/router.js';
import { type AccessLineSink, AccessLog } from '../dataplane/serve/access-log.js';
import { SniTable } from '../dataplane/serve/sni.js';
import { watchedDirs } from '../net/tls-files.js';
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
import type { Generation, ServedListener } from './generation.js';
import { countKinds, UpstreamTable } from './upstream-table.js';

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

/** What keeps a lease until it is released: the generation, or an upstream's entry in its upstream table. */
interface LeaseHolder {
  /** Keep `lease` and return its value; a holder already released releases it at once and throws. */
  hold<T>(lease: Lease<T>): T;
}

/**
 * Acquire one resource of `kind` for `input`, held by `holder` (default the generation being
 * provisioned; an upstream's leases are held by its `UpstreamEntry`).
 * @throws ProvisionError naming `path`, the kind and the key
 */
type Acquire = <I, T>(path: string, kind: ResourceKind<I, T>, input: I, holder?: LeaseHolder) => Promise<T>;

/** What a step provisions with. */
export interface Provisioner {
  acquire: Acquire;
  /**
   * Count values taken over without a registry call, as reused: `counts` leases per kind that an
   * upstream table or entry shared from `previous` holds (in the report and the registry's `reused`).
   */
  countReused(counts: Readonly<Record<string, number>>): void;
  /** The generation being replaced (the active one), whose unchanged parts may be taken over; undefined for the first. */
  readonly previous: Generation | undefined;
  /**
   * Set by the upstreams step: every upstream `previous` serves is served by this generation as
   * the very same `Upstream`, so no proxy action `previous` compiled points at anything this
   * generation does not hold (the listeners step then reuses unchanged routes without a test each).
   */
  upstreamsKept: boolean;
}

/** One step of a provision: acquires what one part of the config needs and adds it to the generation. */
export type ProvisionStep = (generation: Generation, ctx: ProvisionContext, provisioner: Provisioner) => Promise<void>;

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
 * With `previous` (the active generation, which stays live until this one replaces it), what did
 * not change is taken over rather than built again, so a reload costs what changed: the upstreams
 * of the very same `upstreams` record, with the same tracer, are `previous`'s upstream table,
 * shared whole (one reference, whatever their number); else an upstream whose section is
 * unchanged is the same `Upstream`, its table entry (with the leases it is built from) shared
 * (`provisionUpstreamTable`); a listener's routes whose sections are unchanged keep
 * their compiled routes, and a listener whose routes are all unchanged its whole route table
 * (`compileReusing`), as long as every resource those reference is this generation's own.
 *
 * Health states come before the checker so that a checker rebuilt with new settings finds, and
 * inherits, the states the previous generation still holds.
 *
 * On failure, releases exactly what this generation took: the leases it acquired (reused values
 * just lose a reference; values it created are destroyed) and its reference on the upstream
 * table it built or shared (a shared one, and shared entries, live on with `previous`), then throws.
 *
 * Reuse is counted per kind in the report and the registry's `reused`: a lease acquired on a live
 * value, and each lease of an upstream table or entry taken over (`UpstreamTable.counts`: O(kinds)
 * for a table shared whole).
 *
 * Factory errors may quote config values: every factory's `create` and `destroy` errors are
 * scrubbed of the generation's secrets (`Generation.secrets`: `SECRET_PATHS`, the values of
 * secret references, OTLP headers from the environment) before the registry, which logs them,
 * or anyone else sees them.
 *
 * @throws ProvisionError naming the config path (`listeners.1.listen`), kind and key that failed
 */
export async function provision(generation: Generation, ctx: ProvisionContext, previous?: Generation): Promise<ProvisionReport> {
  const report: ProvisionReport = {};
  const count = <T>(lease: Lease<T>) => {
    const counts = (report[lease.kind] ??= { created: 0, reused: 0 });
    if (lease.created) counts.created += 1;
    else counts.reused += 1;
  };
  const acquire: Acquire = async <I, T>(path: string, kindModule: ResourceKind<I, T>, input: I, holder: LeaseHolder = generation): Promise<T> => {
    const kind = resolveKind(ctx.kinds, kindModule);
    const key = kind.key(input);
    let lease: Lease<T>;
    try {
      lease = await ctx.registry.acquire(kind.kind, key, scrubbingFactory(kind.factory(input, ctx.deps), generation));
    } catch (error) {
      throw new ProvisionError(path, kind.kind, key, error);
    }
    count(lease);
    return holder.hold(lease);
  };
  const countReused = (counts: Readonly<Record<string, number>>) => {
    for (const kind in counts) {
      const n = counts[kind]!;
      (report[kind] ??= { created: 0, reused: 0 }).reused += n;
      ctx.registry.countReused(kind, n);
    }
  };
  const provisioner: Provisioner = { acquire, countReused, previous, upstreamsKept: false };
  try {
    for (const step of ctx.steps ?? PROVISION_STEPS) await step(generation, ctx, provisioner);
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
async function provisionTracing(generation: Generation, _ctx: ProvisionContext, { acquire, previous }: Provisioner): Promise<void> {
  const section = generation.config.tracing;
  if (!section) return;
  let resolved: ResolvedTracing;
  try {
    resolved = resolveTracing(section, process.env);
  } catch (error) {
    throw new ProvisionError('tracing', TRACER_PROVIDER_KIND, '', error);
  }
  // Headers from OTEL_EXPORTER_OTLP_*HEADERS are as secret as the config's own.
  generation.addSecrets(Object.values(resolved.headers));
  const pipeline = await acquire('tracing', tracerProviderKind, resolved);
  const before = previous?.tracing;
  // The same pipeline at the same ratio: the previous provider, so its tracer (which upstreams hold) stays the same object.
  const same = before !== undefined && before.pipeline === pipeline && before.sampleRatio === resolved.sample_ratio;
  generation.setTracing(same ? before : generationTracing(pipeline, resolved.sample_ratio));
}

async function provisionUpstreams(generation: Generation, ctx: ProvisionContext, provisioner: Provisioner): Promise<void> {
  await provisionUpstreamTable(generation, ctx, provisioner, true);
}

/**
 * The generation's upstream table (`UpstreamTable`): `previous`'s, shared whole, when it was built
 * for the very same `upstreams` record with the same tracer, observer, logger and registry (the
 * fragment merge and the single-document delta keep the record when no upstream changed): one
 * reference and its per-kind counts, whatever the number of upstreams. Else a table of its own,
 * in config order: an upstream whose section is `previous`'s (the same frozen object, else deep
 * equality) takes `previous`'s entry over (the same `Upstream`, its balancer's position carrying
 * on, and the leases it is built from: one reference on the entry); the others are built
 * (`provisionUpstream`; `provisionHealth` alone when not `serving`). Safe because an
 * `Upstream` references no registry value but those its entry holds leases on, and an entry is
 * released only by the last table holding it.
 */
async function provisionUpstreamTable(generation: Generation, ctx: ProvisionContext, provisioner: Provisioner, serving: boolean): Promise<void> {
  const { previous } = provisioner;
  const basis = { registry: ctx.registry, record: generation.config.upstreams, serving, tracer: generation.tracer, observer: ctx.observer, logger: ctx.logger };
  const before = ctx.registry.closed ? undefined : previous?.upstreamTable;
  if (before?.sameBasis(basis) && before.share()) {
    generation.holdUpstreams(before);
    provisioner.countReused(before.counts);
    provisioner.upstreamsKept = true;
    return;
  }
  const table = new UpstreamTable(basis);
  generation.holdUpstreams(table);
  const from = before?.canServe(basis) ? before : undefined;
  const reused: Record<string, number> = {};
  let kept = 0;
  try {
    // `Object.keys` and a lookup each: `Object.entries` over a frozen record of 10,000 keys (a
    // dictionary-mode object) costs about 2.5 times as much (its pairs are allocated).
    const record = basis.record;
    for (const name of Object.keys(record)) {
      const section = record[name]!;
      const old = from?.entries.get(name);
      if (old !== undefined && (old.section === section || equal(old.section, section)) && table.adopt(old)) {
        countKinds(old.leases, reused);
        kept += 1;
        continue;
      }
      const { entry, done } = table.begin(name, section);
      if (serving) entry.serve(await provisionUpstream(name, section, generation, ctx, provisioner.acquire, entry));
      else await provisionHealth(name, section, provisioner.acquire, entry);
      done();
    }
  } finally {
    // What was taken over before a failure is held (until the generation's release) and counted.
    provisioner.countReused(reused);
  }
  // Names are unique and each taken over is one of `previous`'s: as many means all of them.
  provisioner.upstreamsKept = previous !== undefined && kept === previous.upstreams().size;
}

/** The upstream table of health states and checkers alone (`provisionUpstreamTable`, not serving). */
async function provisionHealthChecks(generation: Generation, ctx: ProvisionContext, provisioner: Provisioner): Promise<void> {
  await provisionUpstreamTable(generation, ctx, provisioner, false);
}

/** An upstream's target health states and its checker, when it has a `health_check`; undefined otherwise. Leases are `holder`'s. */
async function provisionHealth(name: string, section: UpstreamConfig, acquire: Acquire, holder: LeaseHolder): Promise<TargetHealth[] | undefined> {
  if (!section.health_check) return undefined;
  const origins = upstreamTargets(section);
  const path = `upstreams.${name}`;
  const states: TargetHealth[] = [];
  for (const [i, origin] of origins.entries()) {
    states.push(await acquire(`${path}.targets.${i}`, targetHealthKind, { upstream: name, origin }, holder));
  }
  await acquire(`${path}.health_check`, healthCheckerKind, { upstream: name, section: section.health_check, origins, targets: states }, holder);
  return states;
}

/**
 * One upstream: health states and checker (when configured), then one pool per target; the
 * leases of every value it references are `holder`'s (its table entry, which holds the `Upstream`
 * too). Whatever else it is built from must be in `UpstreamTableBasis` (checked by `canServe`).
 */
async function provisionUpstream(
  name: string,
  section: UpstreamConfig,
  generation: Generation,
  ctx: ProvisionContext,
  acquire: Acquire,
  holder: LeaseHolder,
): Promise<Upstream> {
  const origins = upstreamTargets(section);
  const path = `upstreams.${name}`;
  const states = await provisionHealth(name, section, acquire, holder);
  const targets: ProxyTarget[] = [];
  for (const [i, origin] of origins.entries()) {
    const pool = await acquire(`${path}.targets.${i}`, upstreamPoolKind, upstreamPoolSettings(origin, section), holder);
    targets.push(new ProxyTarget(pool, states?.[i]));
  }
  return new Upstream({ name, config: section, targets, tracer: generation.tracer, observer: ctx.observer, logger: ctx.logger });
}

/**
 * Whether `action`, compiled for an equal route section by the previous generation, may serve in
 * `generation`: `respond` and `redirect` actions reference nothing; a proxy action only when
 * its upstream is the very `Upstream` this generation serves under that name (taken over, so
 * every pool and health state it reaches is one this generation holds a lease on) and its
 * trusted proxies are this listener's. Any other action is compiled again.
 */
function actionReusable(action: RouteAction, generation: Generation, trusted: TrustedProxies): boolean {
  if (action instanceof RespondAction || action instanceof RedirectAction) return true;
  if (action instanceof ProxyAction) return action.upstream === generation.upstreams().get(action.upstream.name) && action.trustedProxies === trusted;
  return false;
}

async function provisionListeners(generation: Generation, ctx: ProvisionContext, { acquire, previous, upstreamsKept }: Provisioner): Promise<void> {
  for (const [i, listener] of generation.config.listeners.entries()) {
    const key = listenerKind.key(listener);
    const before = previous?.listeners().get(key);
    const trusted =
      before !== undefined && equal(before.config.trusted_proxies, listener.trusted_proxies)
        ? before.trustedProxies
        : new TrustedProxies(listener.trusted_proxies);
    const compile = (route: RouteConfig, index: number): RouteAction => {
      if (route.upstream !== undefined) return compileProxy(route, generation.upstreams(), trusted);
      if (route.redirect !== undefined) return compileRedirect(route);
      return compileRespond(route, index);
    };
    const table = before && { sections: before.config.routes, router: before.router };
    // Every action `before` compiled references only what this generation holds: reuse them untested.
    const all = upstreamsKept && before !== undefined && trusted === before.trustedProxies;
    const router = compileReusing(listener.routes, compile, table, all ? 'all' : (action) => actionReusable(action, generation, trusted));
    const path = `listeners.${i}`;
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
      config: listener,
      handle,
      stack,
      router,
      trustedProxies: trusted,
      sni,
      routeSections: routeSections(listener.routes, router, before),
      maxConnections: listener.max_connections,
    });
  }
}

/**
 * Canonical JSON of each route section of `router` (what tunnels are bound to): the leading and
 * trailing sections that are the previous table's very objects keep their text as a whole (one
 * array copy); between them, a route compiled by the previous table keeps its text (its section
 * is equal), only the others are serialised. Those ends are the ones `compileReusing` found
 * (`sameEnds` answers again from its note): no second scan of the routes.
 */
function routeSections(sections: readonly RouteConfig[], router: Router, before: ServedListener | undefined): readonly string[] {
  if (before === undefined) return sections.map((section) => canonicalJson(section));
  if (before.router === router) return before.routeSections;
  const previous = before.config.routes;
  const { head, tail } = sameEnds(previous, sections);
  const end = sections.length - tail;
  const changed: string[] = [];
  // An action is only ever kept for a section equal to the one it was compiled from.
  let byAction: Map<RouteAction, string> | undefined;
  for (let index = head; index < end; index += 1) {
    const route = router.routes[index]!;
    if (route === before.router.routes[index]) changed.push(before.routeSections[index]!);
    else {
      byAction ??= new Map(before.router.routes.slice(head, previous.length - tail).map((kept, at) => [kept.action, before.routeSections[head + at]!]));
      changed.push(byAction.get(route.action) ?? canonicalJson(sections[index]!));
    }
  }
  return spliced(before.routeSections, head, previous.length - tail, changed);
}

/**
 * Each listener's access log, unless `access_log.enabled` is false: to its `path`, an open file
 * shared by every listener and generation naming that path (`access_log_file`), else to the
 * daemon's logger (stdout, beside its own events). Lines are written whatever `--log-level`
 * says, as nginx's `access_log` ignores `error_log`'s level, except when the daemon's logger is
 * silent (a library user who asked for no output).
 */
async function provisionAccessLogs(generation: Generation, ctx: ProvisionContext, { acquire }: Provisioner): Promise<void> {
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

/**
 * One watch per directory of the certificate and key files and of the files secret references
 * name (`${file:/path}`; with the directory of a symlink's target, as for certificates): a
 * change there runs a reload. A directory is watched once, for the first path that needs it.
 */
async function provisionFileWatches(generation: Generation, _ctx: ProvisionContext, { acquire }: Provisioner): Promise<void> {
  const watched = new Set<string>();
  const watch = async (dir: string, path: string) => {
    if (watched.has(dir)) return;
    watched.add(dir);
    await acquire(path, fileWatchKind, { dir });
  };
  for (const { dir, path } of generation.tls.watch) await watch(dir, path);
  for (const reference of generation.references) {
    if (reference.kind === 'file') for (const dir of await watchedDirs(reference.name)) await watch(dir, reference.path);
  }
}

/**
 * The watches of certificate files and of the files secret references name, alone: what a
 * cluster primary provisions, as it is the process that reloads (its workers get the resolved config).
 */
export const FILE_WATCH_STEPS: readonly ProvisionStep[] = [provisionFileWatches];

/**
 * `factory` with its errors scrubbed of the generation's secrets (see `scrubError`), as they are
 * when the error happens. It holds the secrets list, not the generation: the registry keeps a
 * value's factory (for its destroy) as long as the value lives, often long after the generation
 * that created it is released, and a generation holds its whole config and route tables.
 */
function scrubbingFactory<T>(factory: ResourceFactory<T>, generation: Generation): ResourceFactory<T> {
  // The same array all along: `Generation.addSecrets` appends to it.
  const secrets = generation.secrets;
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
