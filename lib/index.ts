// The public API of hotconf: re-exports only.

export type { Refusal } from './admin/guard.js';
export { AdminRequestGuard, contentTypeRefusal } from './admin/guard.js';
export type { LeakTrendRecorderOptions } from './admin/leak-trend.js';
export { LeakTrendRecorder } from './admin/leak-trend.js';
export type { LeakReport, LeakSample, LeakSuspect, LeakTrend, LeakTrendOptions } from './admin/leaks.js';
export { DEFAULT_LEAK_TREND, leakReport, leakTrend, leastSquaresSlope } from './admin/leaks.js';
export { DaemonMetrics, EdgeMetrics, UpstreamMetrics } from './admin/metrics.js';
export type {
  Config,
  ConfigReference,
  FragmentConfig,
  FragmentInput,
  HealthCheckConfig,
  ListenerConfig,
  LoadedConfig,
  ParseOptions,
  RedirectConfig,
  ReferenceReader,
  RouteConfig,
  TlsCertificateConfig,
  TlsConfig,
  TracingConfig,
  UpstreamConfig,
} from './config/index.js';
export {
  BindPlan,
  ConfigSchema,
  canonicalHash,
  canonicalJson,
  DEFAULT_MAX_DOCUMENT_BYTES,
  DEFAULT_MAX_TOTAL_BYTES,
  decodeDocument,
  FragmentMerger,
  fragmentFacts,
  loadConfig,
  loadFragment,
  MAX_DOCUMENT_NODES,
  MAX_MAP_KEYS,
  MAX_NESTING_DEPTH,
  PROCESS_READER,
  parseDocument,
  REDACTED,
  redactConfig,
  resolveReferences,
  SECRET_PATHS,
  SINGLE_SECTIONS,
  validateConfig,
  validateFragment,
} from './config/index.js';
export * from './core/errors.js';
export { createLogger, silentLogger } from './core/log.js';
export { Once } from './core/once.js';
export type { ReadRegularFileOptions } from './core/regular-file.js';
export { readRegularFile, readRegularFileSync } from './core/regular-file.js';
export type { DaemonOptions } from './daemon/daemon.js';
export { Daemon, StartupError } from './daemon/daemon.js';
export type {
  AccessEnded,
  CompiledRoute,
  ConnectionByteCounter,
  RequestContext,
  RequestLog,
  RequestOutcome,
  RequestTarget,
  RouteAction,
  RouteTable,
  ServingGeneration,
  TunnelAccess,
} from './dataplane/ports.js';
export type { Balanceable, LoadBalancing } from './dataplane/proxy/balancer.js';
export { Balancer } from './dataplane/proxy/balancer.js';
export { downstreamResponseHeaders, upstreamPath, upstreamRequestHeaders } from './dataplane/proxy/headers.js';
export type { ProxyObserver, UpstreamObserver, UpstreamOptions } from './dataplane/proxy/proxy.js';
export { ClientAbortedError, compileProxy, ProxyAction, ProxyTarget, proxyRequest, Upstream, UpstreamTimeoutError } from './dataplane/proxy/proxy.js';
export { normalizeHost, normalizePath, normalizeTarget } from './dataplane/route/normalize.js';
export { compileRedirect, RedirectAction } from './dataplane/route/redirect.js';
export { compileRespond, RespondAction } from './dataplane/route/respond.js';
export { Router } from './dataplane/route/router.js';
export type { AccessLogOptions } from './dataplane/serve/access-log.js';
export { AccessLog, ConnectionBytes } from './dataplane/serve/access-log.js';
export { currentRequest } from './dataplane/serve/context.js';
export { createRequestHandler } from './dataplane/serve/handler.js';
export type { EdgeObserver, ListenerServingOptions } from './dataplane/serve/serving.js';
export { createListenerServing } from './dataplane/serve/serving.js';
export { namesCover, SniTable } from './dataplane/serve/sni.js';
export { keepsTunnel } from './dataplane/tunnel/binding.js';
export { closeFrame, FrameCursor, GOING_AWAY } from './dataplane/tunnel/frames.js';
export type { TunnelObserver } from './dataplane/tunnel/tunnel.js';
export { Tunnel } from './dataplane/tunnel/tunnel.js';
export type { UpgradeRequest } from './dataplane/tunnel/upgrade.js';
export { isWebSocketUpgrade, proxyUpgrade } from './dataplane/tunnel/upgrade.js';
export type { CertificateMaterial, TlsMaterial } from './net/tls-files.js';
export { dnsNames, loadTlsMaterial, NO_TLS_MATERIAL } from './net/tls-files.js';
export type { CloseReport, EntrySnapshot, KindStats, RegistryEvent, ResourceFactory, ResourceRegistryOptions } from './registry/index.js';
export { Lease, ResourceRegistry, sectionKey } from './registry/index.js';
export type { ApplierOptions, ApplyOutcome } from './reload/applier.js';
export { Applier } from './reload/applier.js';
export type { FragmentLoaderOptions, FragmentState, FragmentStatus, MergePlan, ParseFragments } from './reload/fragments.js';
export { FragmentLoader, parseFragmentsHere } from './reload/fragments.js';
export type { GenerationState, ReleaseReport } from './reload/generation.js';
export { Generation, GenerationStateError, heldLeases } from './reload/generation.js';
export type { LoadOutcome, ParseConfig, ServedConfig } from './reload/load.js';
export { loadDocument, loadDocumentWith, loadFragments } from './reload/load.js';
export type { ConfigParserOptions, FragmentParse } from './reload/parser.js';
export { ConfigParser, ParserClosedError } from './reload/parser.js';
export type { ProvisionContext, ProvisionReport } from './reload/provision.js';
export { provision } from './reload/provision.js';
export type { ReloadJob } from './reload/queue.js';
export { ReloadQueue } from './reload/queue.js';
export type { ReloaderEvent, ReloaderOptions, ReloadOutcome, ReloadResult, ReloadTrigger } from './reload/reloader.js';
export { AdmissionError, Reloader } from './reload/reloader.js';
export type { UpstreamEntry, UpstreamTable, UpstreamTableBasis } from './reload/upstream-table.js';
export type { AccessLogFile, AccessLogFileInput, AccessLogFileOptions } from './resources/access-log.js';
export { ACCESS_LOG_FILE_KIND, AccessLogFiles, accessLogFileFactory, accessLogFileKind } from './resources/access-log.js';
export type { FileWatch, FileWatchFactoryOptions, FileWatchInput } from './resources/file-watch.js';
export { FILE_WATCH_KIND, fileWatchFactory, fileWatchKind } from './resources/file-watch.js';
export type { HealthCheckerFactoryOptions, HealthCheckerInput, HealthCheckerOptions, TargetHealthInput } from './resources/health.js';
export {
  HEALTH_CHECKER_KIND,
  HealthChecker,
  healthCheckerFactory,
  healthCheckerKey,
  healthCheckerKind,
  ProbeTimeoutError,
  probeUrl,
  statusMatcher,
  TARGET_HEALTH_KIND,
  TargetHealth,
  targetHealthFactory,
  targetHealthKey,
  targetHealthKind,
} from './resources/health.js';
export type {
  DefaultCertificate,
  HttpStack,
  HttpStackFactoryOptions,
  HttpStackInput,
  StackPolicy,
  StackServing,
  StackTlsPolicy,
} from './resources/http-stack.js';
export { HTTP_STACK_KIND, httpStackFactory, httpStackKey, httpStackKind } from './resources/http-stack.js';
export type { BackgroundErrorHandler, HealthObserver, KindDeps, ResourceKind, ResourceKinds } from './resources/kind.js';
export { resolveKind } from './resources/kind.js';
export { defaultResourceKinds, RESOURCE_KINDS } from './resources/kinds.js';
export type {
  ConnectionAcceptor,
  ListenerFactoryOptions,
  ListenerHandle,
  ListenerInput,
  OpenTunnel,
  TunnelBinding,
  TunnelCloseReason,
} from './resources/listener.js';
export { LISTENER_KIND, listenerFactory, listenerKind, TunnelSet } from './resources/listener.js';
export type { TlsCertificate, TlsCertificateInput } from './resources/tls-certificate.js';
export { TLS_CERTIFICATE_KIND, tlsCertificateFactory, tlsCertificateKey, tlsCertificateKind } from './resources/tls-certificate.js';
export type { GenerationTracing, TracingFactoryOptions, TracingPipeline } from './resources/tracing.js';
export {
  createSpanExporter,
  generationTracing,
  TRACER_PROVIDER_KIND,
  tracerProviderFactory,
  tracerProviderKind,
  tracingPipelineKey,
} from './resources/tracing.js';
export type { UpstreamPool, UpstreamPoolFactoryOptions, UpstreamPoolSettings } from './resources/upstream.js';
export { UPSTREAM_POOL_KIND, upstreamPoolFactory, upstreamPoolKey, upstreamPoolKind, upstreamPoolSettings, upstreamTargets } from './resources/upstream.js';
export type { DirectorySourceOptions } from './sources/directory.js';
export { DirectorySource, FRAGMENT_EXTENSIONS, isFragmentName } from './sources/directory.js';
export type { EtcdSourceOptions } from './sources/etcd/etcd.js';
export { EtcdSource, etcdClientOptions } from './sources/etcd/etcd.js';
export type { EtcdSourceStats, ResyncReason } from './sources/etcd/stats.js';
export { RESYNC_REASONS } from './sources/etcd/stats.js';
export type { FileSourceOptions } from './sources/file.js';
export { FileSource } from './sources/file.js';
export type { ConfigSource, RawDocument, RawFragment, SourceInfo, SourceWatchHandlers } from './sources/source.js';
export { ForwardingTracerProvider, installGlobalTelemetry } from './telemetry/forwarding-tracer.js';
export type { Environment, ResolvedTracing, TracingExporter } from './telemetry/otel-env.js';
export { OtelEnvError, resolveTracing } from './telemetry/otel-env.js';
