import type { Logger } from '../core/log.js';
import type { HttpLimits } from '../net/limits.js';
import type { ResourceFactory } from '../registry/registry.js';

/**
 * Errors of a resource's own background work after `create` (a listener's accept loop, an
 * exporter's sends), by `component`. Resources catch these and report them here; they must never
 * surface as uncaught exceptions. (Health probes count their failures in their own metric,
 * `hotconf_health_check_errors_total`: a failing probe is what a health checker is for.)
 */
export type BackgroundErrorHandler = (component: string, error: Error) => void;

/** Receives health-check events for metrics; injected, never a module global. */
export interface HealthObserver {
  /** A probe threw (connect error, timeout, reset, or a bug): `hotconf_health_check_errors_total{upstream}`. */
  healthCheckError(upstream: string): void;
  /** A checker turned a target healthy or unhealthy (a cluster primary broadcasts it to the workers). */
  healthChanged?(upstream: string, target: string, healthy: boolean): void;
}

/** A file the process reopens on SIGUSR1 (logrotate's `postrotate`, as nginx): an access log file. */
export interface ReopenableFile {
  /** Finish writing to the file open now, then open its path again. Never throws. */
  reopen(): void;
}

/** What a kind's factory may use besides its input: the process's shared services, injected once. */
export interface KindDeps {
  readonly onBackgroundError: BackgroundErrorHandler;
  /** Parent of the resources' loggers (each adds its own `component`). */
  readonly logger: Logger;
  /** Receives health-check errors (the daemon's metrics). */
  readonly observer?: HealthObserver;
  /** Client limits of listeners; unset fields take `DEFAULT_HTTP_LIMITS`. */
  readonly httpLimits?: Partial<HttpLimits>;
  /** Ask for a reload (a watched certificate file changed); `trigger` labels it. Ignored unless the reloader watches. */
  readonly requestReload?: (trigger: string) => void;
  /**
   * Listeners share their port with the other workers of a node:cluster (bound without
   * `exclusive`, so the primary hands connections round-robin). Default false: bound exclusively.
   */
  readonly sharedListeners?: boolean;
  /** Where open log files register for SIGUSR1 reopening (the daemon's `AccessLogFiles`). */
  readonly logFiles?: { add(file: ReopenableFile): () => void };
}

/**
 * One kind of registry resource, after Caddy's module registration: its registry kind name (also
 * the metric label), the key a given input is shared under, and the factory that builds it.
 * `factory` only describes: nothing is built until the registry calls `create`, and only when
 * the key is absent, so a reused resource costs no construction.
 *
 * `I` is what the kind is built from: a config section, plus the runtime values it needs from
 * resources acquired before it (a health checker gets its targets' health states). `key(input)`
 * must be a pure function of the parts of `input` that change what is built.
 */
export interface ResourceKind<I, T> {
  readonly kind: string;
  key(input: I): string;
  factory(input: I, deps: KindDeps): ResourceFactory<T>;
}

/**
 * The kinds a provision uses, by kind name: the defaults (`defaultResourceKinds()`), or a table
 * where some are replaced (specs inject faults this way). Open: any kind module can be added.
 */
export type ResourceKinds = Readonly<Record<string, ResourceKind<never, unknown>>>;

/** The table's entry for `kind`'s name, else `kind` itself. */
export function resolveKind<I, T>(kinds: ResourceKinds | undefined, kind: ResourceKind<I, T>): ResourceKind<I, T> {
  return (kinds?.[kind.kind] as ResourceKind<I, T> | undefined) ?? kind;
}
