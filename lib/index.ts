// The public API of hotconf: re-exports only.

export type { LeakReport, LeakSuspect } from './admin/leaks.js';
export { leakReport } from './admin/leaks.js';
export { DaemonMetrics, UpstreamMetrics } from './admin/metrics.js';
export type { Config, HealthCheckConfig, ListenerConfig, LoadedConfig, ParseOptions, RouteConfig, TracingConfig, UpstreamConfig } from './config/index.js';
export {
  ConfigSchema,
  canonicalHash,
  canonicalJson,
  DEFAULT_MAX_DOCUMENT_BYTES,
  loadConfig,
  parseDocument,
  REDACTED,
  redactConfig,
  SECRET_PATHS,
  validateConfig,
} from './config/index.js';
export type { DaemonOptions } from './daemon.js';
export { Daemon, StartupError } from './daemon.js';
export * from './errors.js';
export type { Balanceable, LoadBalancing } from './http/balancer.js';
export { Balancer } from './http/balancer.js';
export type { RequestContext } from './http/context.js';
export { currentRequest } from './http/context.js';
export type { ProxyAction, ProxyObserver, UpstreamObserver, UpstreamOptions } from './http/proxy.js';
export { ClientAbortedError, compileProxy, ProxyTarget, proxyRequest, runProxyAction, Upstream, UpstreamTimeoutError } from './http/proxy.js';
export { createLogger, silentLogger } from './log.js';
export type { CloseReport, EntrySnapshot, KindStats, RegistryEvent, ResourceFactory, ResourceRegistryOptions } from './registry/index.js';
export { Lease, ResourceRegistry, sectionKey } from './registry/index.js';
export type { ReleaseReport } from './reload/generation.js';
export { Generation } from './reload/generation.js';
export type { ProvisionReport, ResourceKinds } from './reload/provision.js';
export { defaultResourceKinds, provision } from './reload/provision.js';
export type { ReloaderEvent, ReloaderOptions, ReloadOutcome, ReloadResult, ReloadTrigger } from './reload/reloader.js';
export { Reloader } from './reload/reloader.js';
export { ForwardingTracerProvider, installGlobalTelemetry } from './resources/forwarding-tracer.js';
export type { HealthCheckerFactoryOptions, HealthCheckerOptions, HealthObserver } from './resources/health.js';
export {
  HEALTH_CHECKER_KIND,
  HealthChecker,
  healthCheckerFactory,
  healthCheckerKey,
  ProbeTimeoutError,
  probeUrl,
  statusMatcher,
  TARGET_HEALTH_KIND,
  TargetHealth,
  targetHealthFactory,
  targetHealthKey,
} from './resources/health.js';
export type { ListenerFactoryOptions, ListenerHandle, RequestHandler } from './resources/listener.js';
export { LISTENER_KIND, listenerFactory } from './resources/listener.js';
export type { TracingFactoryOptions, TracingPipeline } from './resources/tracing.js';
export { TRACER_PROVIDER_KIND, tracerProviderFactory } from './resources/tracing.js';
export type { UpstreamPool, UpstreamPoolFactoryOptions, UpstreamPoolSettings } from './resources/upstream.js';
export { UPSTREAM_POOL_KIND, upstreamPoolFactory, upstreamPoolKey, upstreamPoolSettings, upstreamTargets } from './resources/upstream.js';
export type { EtcdSourceOptions, EtcdSourceStats, ResyncReason } from './sources/etcd.js';
export { EtcdSource, etcdClientOptions, RESYNC_REASONS } from './sources/etcd.js';
export type { FileSourceOptions } from './sources/file.js';
export { FileSource } from './sources/file.js';
export type { ConfigSource, RawDocument, SourceInfo, SourceWatchHandlers } from './sources/source.js';
