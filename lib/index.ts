// The public API of hotconf: re-exports only.
export { ResourceRegistry, Lease, sectionKey } from './registry/index.js';
export type { ResourceFactory, KindStats, EntrySnapshot, CloseReport, RegistryEvent, ResourceRegistryOptions } from './registry/index.js';

export { ConfigSchema, loadConfig, parseDocument, validateConfig, redactConfig, canonicalHash, canonicalJson, DEFAULT_MAX_DOCUMENT_BYTES, SECRET_PATHS, REDACTED } from './config/index.js';
export type { Config, ListenerConfig, RouteConfig, TracingConfig, UpstreamConfig, HealthCheckConfig, LoadedConfig, ParseOptions } from './config/index.js';

export { Reloader } from './reload/reloader.js';
export type { ReloadResult, ReloadOutcome, ReloadTrigger, ReloaderEvent, ReloaderOptions } from './reload/reloader.js';
export { Generation } from './reload/generation.js';
export type { ReleaseReport } from './reload/generation.js';
export { defaultResourceKinds, provision } from './reload/provision.js';
export type { ResourceKinds, ProvisionReport } from './reload/provision.js';

export { FileSource } from './sources/file.js';
export type { FileSourceOptions } from './sources/file.js';
export { EtcdSource, etcdClientOptions, RESYNC_REASONS } from './sources/etcd.js';
export type { EtcdSourceOptions, EtcdSourceStats, ResyncReason } from './sources/etcd.js';
export type { ConfigSource, RawDocument, SourceInfo, SourceWatchHandlers } from './sources/source.js';

export { tracerProviderFactory, TRACER_PROVIDER_KIND } from './resources/tracing.js';
export type { TracingPipeline, TracingFactoryOptions } from './resources/tracing.js';
export { listenerFactory, LISTENER_KIND } from './resources/listener.js';
export type { ListenerHandle, ListenerFactoryOptions, RequestHandler } from './resources/listener.js';
export { ForwardingTracerProvider, installGlobalTelemetry } from './resources/forwarding-tracer.js';
export { upstreamPoolFactory, upstreamPoolKey, upstreamPoolSettings, upstreamTargets, UPSTREAM_POOL_KIND } from './resources/upstream.js';
export type { UpstreamPool, UpstreamPoolSettings, UpstreamPoolFactoryOptions } from './resources/upstream.js';
export {
  HealthChecker,
  TargetHealth,
  ProbeTimeoutError,
  healthCheckerFactory,
  healthCheckerKey,
  targetHealthFactory,
  targetHealthKey,
  probeUrl,
  statusMatcher,
  HEALTH_CHECKER_KIND,
  TARGET_HEALTH_KIND,
} from './resources/health.js';
export type { HealthObserver, HealthCheckerOptions, HealthCheckerFactoryOptions } from './resources/health.js';

export { currentRequest } from './http/context.js';
export { Upstream, ProxyTarget, proxyRequest, runProxyAction, compileProxy, UpstreamTimeoutError, ClientAbortedError } from './http/proxy.js';
export type { ProxyAction, ProxyObserver, UpstreamObserver, UpstreamOptions } from './http/proxy.js';
export { Balancer } from './http/balancer.js';
export type { LoadBalancing, Balanceable } from './http/balancer.js';
export type { RequestContext } from './http/context.js';

export { Daemon, StartupError } from './daemon.js';
export type { DaemonOptions } from './daemon.js';
export { leakReport } from './admin/leaks.js';
export type { LeakReport, LeakSuspect } from './admin/leaks.js';
export { DaemonMetrics, UpstreamMetrics } from './admin/metrics.js';

export { createLogger, silentLogger } from './log.js';
export * from './errors.js';
