import type { AddressInfo } from 'node:net';
import { Registry as MetricsRegistry } from 'prom-client';
import { LeakTrendRecorder } from '../admin/leak-trend.js';
import { type LeakReport, type LeakTrendOptions, leakReport } from '../admin/leaks.js';
import { DaemonMetrics, EdgeMetrics, UpstreamMetrics } from '../admin/metrics.js';
import { restartWarnings } from '../admin/restart-warnings.js';
import { type AdminBackend, type AdminHealth, AdminServer } from '../admin/server.js';
import { checkAdminToken, readAdminTokenFile } from '../admin/token.js';
import { isLoopbackAddress } from '../config/address.js';
import { redactConfig, SECRET_PATHS } from '../config/redact.js';
import type { Config } from '../config/schema.js';
import { type ConfigIssue, formatIssues, HotconfError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { createListenerServing } from '../dataplane/serve/serving.js';
import type { HttpLimits } from '../net/limits.js';
import { ResourceRegistry, type ResourceRegistryOptions } from '../registry/registry.js';
import type { ConfigParser } from '../reload/parser.js';
import { Reloader, type ReloaderOptions, type ReloadResult, type ReloadTrigger } from '../reload/reloader.js';
import { AccessLogFiles } from '../resources/access-log.js';
import type { ResourceKinds } from '../resources/kind.js';
import { listenerKey } from '../resources/listener.js';
import type { ConfigSource } from '../sources/source.js';
import { ForwardingTracerProvider, installGlobalTelemetry } from '../telemetry/forwarding-tracer.js';
import { handleProcessSignals } from './signals.js';

export interface DaemonOptions {
  source: ConfigSource;
  logger?: Logger;
  /**
   * Admin API address (`HOST:PORT`, port 0 for any). Overrides `admin.listen` from the config and
   * binds before the first config is read, so `/healthz` answers 503 while a source is still
   * unreachable. Without it, the admin API binds the first config's `admin.listen`.
   */
  adminListen?: string;
  /** Serve the admin API at all. Default true. */
  admin?: boolean;
  /**
   * Bearer token the admin API requires (the CLI passes `$HOTCONF_ADMIN_TOKEN`); takes
   * precedence over the config's `admin.token_file`. Checked with `checkAdminToken`.
   */
  adminToken?: string;
  /** Timeouts and size limits for clients of the listeners and the admin API. */
  httpLimits?: Partial<HttpLimits>;
  /** Watch the source for changes. Default true. */
  watch?: boolean;
  /** Registry to provision from. Default: a new one (closed by `stop()`). */
  registry?: ResourceRegistry;
  /** Options of the registry the daemon creates (create/destroy timeouts); ignored with `registry`. */
  registryOptions?: Omit<ResourceRegistryOptions, 'logger'>;
  /** Resource kinds by name replacing the defaults (tests inject faults here). */
  kinds?: ResourceKinds;
  /** Register the OpenTelemetry globals (once per process). Default false; the CLI sets it. */
  installGlobalTelemetry?: boolean;
  /** Node's default process metrics on `/metrics`. Default true. */
  defaultMetrics?: boolean;
  /**
   * Documents over this size are invalid, in bytes. Default 1 MiB. A `FileSource` refuses files
   * over its own `maxDocumentBytes` (default 1 MiB) before this limit is applied: raise both.
   */
  maxDocumentBytes?: number;
  /** With a multi-document source (`DirectorySource`), the limit of all fragments together, in bytes (see `ReloaderOptions.maxTotalBytes`). */
  maxTotalBytes?: number;
  /**
   * Parses and validates documents on a worker thread (see `ConfigParser`). Default: one of its
   * own, terminated by `stop()`; one passed in is left open for its owner to close (specs share
   * one across daemons).
   */
  parser?: ConfigParser;
  /** Cluster workers: share listener ports with the other workers (see `KindDeps.sharedListeners`). */
  sharedListeners?: boolean;
  /** Cluster workers: the two-phase commit gate (see `ReloaderOptions.commitGate`). */
  commitGate?: ReloaderOptions['commitGate'];
  /** Cluster workers: the config the primary validated for a document (see `ReloaderOptions.preloaded`). */
  preloaded?: ReloaderOptions['preloaded'];
  /** The leak report's trend: how many reloads it covers and the growth per reload that is a suspect. Default `DEFAULT_LEAK_TREND` (50, 0.5). */
  leakTrend?: Partial<LeakTrendOptions>;
}

/** The first config could not be applied: the daemon does not start. `result` says why. */
export class StartupError extends HotconfError {
  readonly result: ReloadResult;
  constructor(result: ReloadResult) {
    const detail = result.errors ? formatIssues(result.errors) : (result.error ?? result.result);
    super('E_STARTUP_FAILED', `cannot start: ${result.result} config: ${detail}`);
    this.result = result;
  }
}

/**
 * hotconf as a process: a source, a registry, a reloader, the admin API and metrics, wired
 * together with an explicit lifecycle (`start` → serve → `stop`), after Caddy's `Run`/`Stop`.
 *
 * `stop()` drains and releases every generation, closes the registry and returns the final leak
 * report; it is idempotent. Signals are opt-in (`handleSignals`), so library users keep control
 * of their process.
 */
export class Daemon implements AdminBackend {
  readonly registry: ResourceRegistry;
  readonly reloader: Reloader;
  readonly metrics: DaemonMetrics;
  /** The access log files open now (every generation's), reopened by `reopenLogs` (SIGUSR1). */
  readonly logFiles = new AccessLogFiles();
  readonly #leakTrend: LeakTrendRecorder;
  readonly #source: ConfigSource;
  /** Follows the active generation's tracer provider; hotconf's reload spans go through it. */
  readonly tracerProvider = new ForwardingTracerProvider();
  readonly #rootLog: Logger;
  readonly #log: Logger;
  readonly #options: DaemonOptions;
  readonly #admin: AdminServer | undefined;
  readonly #ownsRegistry: boolean;
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';
  readonly #stop = new Once(() => this.#stopNow());
  /** `adminToken`, checked (at start). */
  #optionToken: string | undefined;
  /** The first config's admin section: what the admin API started with. */
  #adminAtStart: Config['admin'] | undefined;
  /** Why the admin API could not start with the first config, thrown by `start()`. */
  #admitFailure: unknown;
  /** `stop()` was called from outside (a signal, a caller), not by a failed `start()` cleaning up. */
  #stopRequested = false;

  constructor(options: DaemonOptions) {
    this.#options = options;
    this.#source = options.source;
    this.#rootLog = options.logger ?? silentLogger();
    this.#log = this.#rootLog.child({ component: 'daemon' });
    this.#ownsRegistry = options.registry === undefined;
    this.registry = options.registry ?? new ResourceRegistry({ ...options.registryOptions, logger: this.#rootLog });
    // One prom-client registry for the daemon: the data plane's metrics are registered first so
    // the proxy and checkers get them injected through the reloader.
    const register = new MetricsRegistry();
    const serveLog = this.#rootLog.child({ component: 'serve' });
    const edge = new EdgeMetrics(register, (listenKey) => this.#listenerName(listenKey));
    const upstreamMetrics = new UpstreamMetrics(register);
    this.reloader = new Reloader({
      source: options.source,
      registry: this.registry,
      logger: this.#rootLog,
      kinds: options.kinds,
      maxDocumentBytes: options.maxDocumentBytes,
      maxTotalBytes: options.maxTotalBytes,
      parser: options.parser,
      httpLimits: options.httpLimits,
      sharedListeners: options.sharedListeners,
      logFiles: this.logFiles,
      commitGate: options.commitGate,
      preloaded: options.preloaded,
      admit: (config) => this.#admit(config),
      observer: upstreamMetrics,
      tracerProvider: this.tracerProvider,
      // The data plane routes each request by the generation active at its arrival.
      serving: (listenKey) => createListenerServing({ active: () => this.reloader.active, listenKey, logger: serveLog, observer: edge }),
      onSwap: (active) => {
        this.tracerProvider.setDelegate(active?.tracing?.provider);
        if (active) this.#admin?.setAllowedHosts(active.config.admin.allowed_hosts);
      },
    });
    this.#leakTrend = new LeakTrendRecorder({ ...options.leakTrend, registry: this.registry, reloader: this.reloader });
    this.metrics = new DaemonMetrics({
      registry: this.registry,
      reloader: this.reloader,
      leakTrend: () => this.#leakTrend.trend(),
      upstreamMetrics,
      source: options.source,
      defaultMetrics: options.defaultMetrics,
      register,
    });
    this.#admin = options.admin === false ? undefined : new AdminServer(this, this.#rootLog, { limits: options.httpLimits });
    if (options.installGlobalTelemetry && !installGlobalTelemetry(this.tracerProvider)) {
      this.#log.warn('otel_globals_already_installed');
    }
  }

  /**
   * Read and apply the first config, bind the admin API and start watching.
   *
   * The admin token is `adminToken`, else the first config's `admin.token_file` (read once).
   * `adminListen` is bound before the first config when that needs no token from the config
   * (it is loopback, or `adminToken` is set), otherwise once the first config validated and
   * before anything is provisioned for it, so a missing or unusable token fails the start with
   * nothing bound; a token from the config applies from that moment on.
   *
   * @throws StartupError when the first config is invalid or cannot be provisioned (everything
   *   started so far is stopped again)
   * @throws AdminTokenRequiredError when the admin address is not loopback and there is no token
   * @throws AdminTokenError when the token (or its file) is unusable
   * @throws the admin bind error (`EADDRINUSE`)
   */
  async start(): Promise<ReloadResult> {
    if (this.#state !== 'new') throw new Error(`Daemon.start() called in state ${this.#state}`);
    this.#state = 'starting';
    try {
      const { adminListen } = this.#options;
      this.#optionToken =
        this.#options.adminToken === undefined ? undefined : checkAdminToken(this.#options.adminToken, 'the adminToken option (HOTCONF_ADMIN_TOKEN)');
      if (this.#admin && adminListen && (this.#optionToken !== undefined || isLoopbackAddress(adminListen)))
        await this.#admin.start(adminListen, this.#optionToken);
      const result = await this.reloader.reload('start');
      // The admin API could not start with the first config (`#admit`): that error, as it was.
      if (this.#admitFailure) throw this.#admitFailure;
      if (result.result !== 'applied') throw new StartupError(result);
      if (this.#options.watch ?? true) await this.reloader.watch();
      if (this.#stop.called) throw new Error('stopped during start');
      this.#state = 'running';
      return result;
    } catch (error) {
      await this.#stop.call();
      throw error;
    }
  }

  /**
   * The reloader's `admit` hook, run on every new config before anything is provisioned for it.
   * The first config starts the admin API (token read, address bound), so a start that cannot
   * have one fails before any listener is bound. Later ones get a warning for each admin setting
   * read only at start that they change.
   */
  async #admit(config: Config): Promise<ConfigIssue[]> {
    const first = this.#adminAtStart;
    if (first) return this.#admin ? restartWarnings(first, config, this.#admin.address) : [];
    try {
      if (this.#admin) await this.#startAdmin(config, this.#optionToken);
    } catch (error) {
      this.#admitFailure = error;
      throw error;
    }
    this.#adminAtStart = config.admin;
    return [];
  }

  /** A listener's name in the active config (its metric label), else its key. */
  #listenerName(listenKey: string): string {
    return this.reloader.active?.config.listeners.find((l) => listenerKey(l.listen) === listenKey)?.name ?? listenKey;
  }

  /** Bind the admin API if not yet bound, with the token from the option or the config. */
  async #startAdmin(config: Config, optionToken: string | undefined): Promise<void> {
    const admin = this.#admin!;
    const listen = this.#options.adminListen ?? config.admin.listen;
    const token = optionToken ?? (config.admin.token_file === undefined ? undefined : await readAdminTokenFile(config.admin.token_file));
    if (!admin.address) await admin.start(listen, token);
    else if (token !== undefined && !admin.authenticated) admin.setToken(token);
  }

  /** Bound admin address, once the admin API is up. */
  get adminAddress(): AddressInfo | undefined {
    return this.#admin?.address;
  }

  /** Re-read the source and apply it. Never rejects. */
  reload(trigger: ReloadTrigger = 'api'): Promise<ReloadResult> {
    return this.reloader.reload(trigger);
  }

  /**
   * True once `stop()` was called (by a signal or a caller), also while it is still running.
   * A failed `start()` stops what it started without setting this: that is a failed start, not
   * a requested stop.
   */
  get stopRequested(): boolean {
    return this.#stopRequested;
  }

  health(): AdminHealth {
    const generation = this.reloader.active?.id ?? 0;
    if (this.#state === 'stopping' || this.#state === 'stopped') return { status: 'stopping', generation, pid: process.pid };
    return { status: generation > 0 ? 'ok' : 'starting', generation, pid: process.pid };
  }

  /** What the first config is waiting for while the daemon starts (see `AdminBackend.waitingFor`). */
  waitingFor(): string | undefined {
    if (this.#state !== 'starting' || this.reloader.active) return undefined;
    const source = this.#source.describe();
    if (source.kind === 'etcd') {
      const where = source.prefix !== undefined ? `prefix ${String(source.prefix)}` : `key ${String(source.key)}`;
      return `its first config from etcd ${where} at ${[source.endpoints].flat().join(',')}`;
    }
    if (source.kind === 'file') return `its first config from ${String(source.path)}`;
    if (source.kind === 'directory') return `its first config from the directory ${String(source.path)}`;
    return `its first config from its ${source.kind} source`;
  }

  config(): unknown {
    const active = this.reloader.active;
    if (!active) return undefined;
    const fragments = this.reloader.fragments();
    return {
      generation: active.id,
      hash: active.hash,
      loaded_at: active.loadedAt.toISOString(),
      source: active.source,
      ...(fragments ? { fragments } : {}),
      config: redactConfig(active.config, SECRET_PATHS, active.references),
    };
  }

  leaks(): LeakReport {
    return leakReport(this.registry, this.reloader, Date.now(), this.#leakTrend.trend());
  }

  renderMetrics(): Promise<{ contentType: string; body: string }> {
    return this.metrics.render();
  }

  /**
   * Graceful stop: stop watching, stop the listeners accepting, let requests in flight finish
   * (bounded by `shutdown_timeout_ms`), release every generation, close the registry and the
   * admin API. Resolves with the final leak report (also logged as `final_leak_report`).
   * Idempotent: every caller, concurrent or later, gets the same completion.
   */
  stop(): Promise<LeakReport> {
    this.#stopRequested = true;
    return this.#stop.call();
  }

  /**
   * Immediate stop, as undici's `destroy()` beside `close()`: the same teardown as `stop()`, but
   * requests still in flight are cut at once instead of drained (also when a `stop()` is already
   * draining). Resolves with the same final leak report as `stop()`.
   */
  destroy(): Promise<LeakReport> {
    const stopped = this.stop();
    void this.reloader.destroy();
    return stopped;
  }

  async #stopNow(): Promise<LeakReport> {
    this.#state = 'stopping';
    await this.#source.close().catch((err) => this.#log.error({ err }, 'source_close_failed'));
    await this.reloader.stop();
    this.metrics.close();
    this.#leakTrend.close();
    const closed = this.#ownsRegistry ? await this.registry.close() : { held: [], destroyFailures: 0 };
    const report = this.leaks();
    for (const held of closed.held) {
      report.suspects.push({ reason: 'refs_mismatch', kind: held.kind, key: held.key, detail: `${held.refs} lease(s) still held at close` });
    }
    report.ok = report.suspects.length === 0;
    await this.#admin?.close();
    this.#state = 'stopped';
    this.#log.info({ ok: report.ok, resources: report.resources, suspects: report.suspects }, 'final_leak_report');
    return report;
  }

  /**
   * Reopen every access log file (logrotate's `postrotate`, as nginx on SIGUSR1): what is pending
   * goes to the file open now, later lines to a file opened at the same path. Returns how many
   * files were reopened; each logs `access_log_reopened` once it is open again.
   */
  reopenLogs(): number {
    const files = this.logFiles.reopen();
    this.#log.info({ files }, 'reopen_logs');
    return files;
  }

  /**
   * Install process signal handlers: SIGHUP reloads; SIGUSR1 reopens the access log files
   * (`reopenLogs`); SIGTERM and SIGINT stop and then call
   * `exit(0)` (1 if the stop itself failed); a second SIGTERM/SIGINT during the stop exits 1 at
   * once. Returns a function that removes the handlers.
   */
  handleSignals(exit: (code: number) => void = (code) => process.exit(code)): () => void {
    return handleProcessSignals({ log: this.#log, reload: () => void this.reload('signal'), reopen: () => this.reopenLogs(), stop: () => this.stop(), exit });
  }
}
