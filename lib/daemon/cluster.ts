import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { UpstreamMetrics } from '../admin/metrics.js';
import { restartWarnings } from '../admin/restart-warnings.js';
import { type AdminBackend, type AdminHealth, AdminServer } from '../admin/server.js';
import { checkAdminToken, readAdminTokenFile } from '../admin/token.js';
import { HealthPlane } from '../cluster/health-plane.js';
import { ClusterCoordinator } from '../cluster/primary.js';
import type { WorkerMessage } from '../cluster/protocol.js';
import { WorkerAgent } from '../cluster/worker.js';
import { redactConfig, SECRET_PATHS } from '../config/redact.js';
import type { Config } from '../config/schema.js';
import type { ConfigIssue } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import type { HttpLimits } from '../net/limits.js';
import { RELOAD_OUTCOMES, type ReloadResult } from '../reload/reloader.js';
import { HEALTH_CHECKER_KIND } from '../resources/health.js';
import { HealthFeed, remoteHealthCheckerKind } from '../resources/health-feed.js';
import type { ConfigSource, RawDocument, SourceInfo, SourceWatchHandlers } from '../sources/source.js';
import { Daemon, type DaemonOptions, StartupError } from './daemon.js';
import { handleProcessSignals } from './signals.js';

/** Environment variable that tells a forked process which worker it is (1-based), for logs and metric labels. */
const WORKER_ENV = 'HOTCONF_WORKER_ID';

export interface ClusterPrimaryOptions {
  source: ConfigSource;
  /** How many worker processes serve traffic (each with its own registry, listeners, pools and tracing). */
  workers: number;
  logger?: Logger;
  /** Admin API address; default: the first config's `admin.listen`. */
  adminListen?: string;
  adminToken?: string;
  watch?: boolean;
  httpLimits?: Partial<HttpLimits>;
  maxDocumentBytes?: number;
  /** As `DaemonOptions.maxTotalBytes`. */
  maxTotalBytes?: number;
  /** How long a worker has to start and say `ready`, in ms. Default 30000. */
  workerStartTimeoutMs?: number;
}

/**
 * `hotconf run --workers N` (N ≥ 2), the primary process: forks N node:cluster workers
 * (round-robin connection scheduling, the Linux default), owns the config source and parses and
 * validates each document once (`ClusterCoordinator`), drives every worker through the
 * two-phase reload, re-forks a worker that dies (with the committed config), serves the admin
 * API with `/metrics` aggregated over its own registry and every worker's (each worker's series
 * carry a `worker` label) and `/leaks` per worker, and stops every worker gracefully on
 * SIGTERM. It binds no listener and holds no resource of its own.
 */
export class ClusterPrimary implements AdminBackend {
  readonly coordinator: ClusterCoordinator;
  readonly #options: ClusterPrimaryOptions;
  readonly #log: Logger;
  readonly #admin: AdminServer;
  /** The first config's admin section: what the admin API started with. */
  #adminAtStart: Config['admin'] | undefined;
  /** Why the admin API could not start with the first config, thrown by `start()`. */
  #admitFailure: unknown;
  readonly #register = new Registry();
  readonly #restarts: Counter;
  readonly #stop = new Once(() => this.#stopNow());
  readonly #health: HealthPlane;
  #state: 'new' | 'starting' | 'running' | 'stopping' | 'stopped' = 'new';

  constructor(options: ClusterPrimaryOptions) {
    this.#options = options;
    const logger = options.logger ?? silentLogger();
    this.#log = logger.child({ component: 'primary' });
    this.coordinator = new ClusterCoordinator({
      source: options.source,
      logger,
      maxDocumentBytes: options.maxDocumentBytes,
      maxTotalBytes: options.maxTotalBytes,
      admit: (config) => this.#admit(config),
    });
    this.#admin = new AdminServer(this, logger, { limits: options.httpLimits });
    this.#register.setDefaultLabels({ worker: 'primary' });
    collectDefaultMetrics({ register: this.#register });
    options.source.registerMetrics?.(this.#register);
    this.#restarts = new Counter({ name: 'hotconf_worker_restarts_total', help: 'Workers re-forked after they died.', registers: [this.#register] });
    const coordinator = this.coordinator;
    this.#health = new HealthPlane({
      logger,
      observer: new UpstreamMetrics(this.#register),
      broadcast: (t) => coordinator.broadcast({ type: 'hotconf:health', upstream: t.upstream, target: t.target, healthy: t.healthy }),
      // Certificate files and files secret references name are watched here, where reloads run, while the source is watched.
      requestReload: (trigger) => {
        if (options.watch ?? true) void coordinator.reload(trigger);
      },
    });
    new Gauge({
      name: 'hotconf_config_revision',
      help: 'Revision of the config every worker serves (0 before the first).',
      registers: [this.#register],
      collect() {
        this.set(coordinator.committed?.revision ?? 0);
      },
    });
    const reloads = new Counter({
      name: 'hotconf_cluster_reloads_total',
      help: 'Cluster-wide reloads by result.',
      labelNames: ['result'],
      registers: [this.#register],
    });
    for (const result of RELOAD_OUTCOMES) reloads.inc({ result }, 0);
    coordinator.subscribe((event) => {
      if (event.type === 'reload') reloads.inc({ result: event.result.result });
      // Probes start (or change) once every worker serves the config that names them.
      else if (event.type === 'committed') {
        void this.#health.apply(event.loaded, event.doc, event.tls);
        this.#admin.setAllowedHosts(event.loaded.config.admin.allowed_hosts);
      } else if (event.type === 'worker_booted') {
        for (const t of this.#health.snapshot())
          coordinator.sendTo(event.id, { type: 'hotconf:health', upstream: t.upstream, target: t.target, healthy: t.healthy });
      }
    });
  }

  /**
   * Fork the workers, apply the first config everywhere, bind the admin API, start watching.
   * @throws StartupError when the first config is invalid or a worker cannot provision it
   */
  async start(): Promise<ReloadResult> {
    this.#state = 'starting';
    try {
      cluster.schedulingPolicy = cluster.SCHED_RR;
      cluster.on('message', (worker, message) => this.coordinator.onWorkerMessage(worker.id, message));
      cluster.on('exit', (worker, code, signal) => this.#onExit(worker, code, signal));
      for (let i = 0; i < this.#options.workers; i += 1) this.#fork();
      await this.coordinator.ready(this.#options.workers, this.#options.workerStartTimeoutMs ?? 30_000);
      const result = await this.coordinator.reload('start');
      // The admin API could not start with the first config (`#admit`): that error, as it was.
      if (this.#admitFailure) throw this.#admitFailure;
      if (result.result !== 'applied') throw new StartupError(result);
      if (this.#options.watch ?? true) await this.coordinator.watch();
      this.#state = 'running';
      return result;
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /**
   * The coordinator's `admit` hook, as the single-process daemon's: the first config starts the
   * admin API before any worker provisions it; later ones warn about admin settings read only at
   * start.
   */
  async #admit(config: Config): Promise<ConfigIssue[]> {
    const first = this.#adminAtStart;
    if (first) return restartWarnings(first, config, this.#admin.address);
    try {
      const optionToken = this.#options.adminToken === undefined ? undefined : checkAdminToken(this.#options.adminToken, 'HOTCONF_ADMIN_TOKEN');
      const token = optionToken ?? (config.admin.token_file === undefined ? undefined : await readAdminTokenFile(config.admin.token_file));
      this.#admin.setAllowedHosts(config.admin.allowed_hosts);
      await this.#admin.start(this.#options.adminListen ?? config.admin.listen, token);
    } catch (error) {
      this.#admitFailure = error;
      throw error;
    }
    this.#adminAtStart = config.admin;
    return [];
  }

  get adminAddress(): AddressInfo | undefined {
    return this.#admin.address;
  }

  #fork(): void {
    const id = Object.keys(cluster.workers ?? {}).length + 1;
    const worker = cluster.fork({ [WORKER_ENV]: String(id) });
    this.coordinator.addWorker({ id: worker.id, pid: worker.process.pid, send: (message) => worker.isConnected() && worker.send(message) });
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    this.coordinator.removeWorker(worker.id);
    if (this.#stop.called) return;
    this.#restarts.inc();
    this.#log.error({ worker: worker.id, pid: worker.process.pid, code, signal }, 'worker_died');
    this.#fork();
  }

  health(): AdminHealth {
    const generation = this.coordinator.committed?.revision ?? 0;
    const { pid } = process;
    if (this.#state === 'stopping' || this.#state === 'stopped') return { status: 'stopping', generation, pid };
    return { status: generation > 0 ? 'ok' : 'starting', generation, pid };
  }

  config(): unknown {
    const committed = this.coordinator.committed;
    if (!committed) return undefined;
    const fragments = this.coordinator.fragments();
    return {
      generation: committed.revision,
      revision: committed.revision,
      hash: committed.loaded.hash,
      source: committed.doc.source,
      workers: this.coordinator.workers(),
      ...(fragments ? { fragments } : {}),
      config: redactConfig(committed.loaded.config, SECRET_PATHS, committed.loaded.references),
    };
  }

  reload(): Promise<ReloadResult> {
    return this.coordinator.reload('api');
  }

  /** Every worker's leak report and the total: `ok` only when every worker's is. */
  async leaks(): Promise<unknown> {
    const workers = await this.coordinator.leaks();
    const ok = workers.length === this.coordinator.workers().length && workers.every((w) => (w.report as { ok?: boolean } | undefined)?.ok === true);
    return { ok, workers };
  }

  async renderMetrics(): Promise<{ contentType: string; body: string }> {
    const workers = await this.coordinator.metrics();
    const all = [await this.#register.getMetricsAsJSON(), ...workers.map((w) => w.metrics)];
    const aggregated = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
    return { contentType: aggregated.contentType, body: await aggregated.metrics() };
  }

  /** Stop every worker gracefully (each drains within its `shutdown_timeout_ms`), then the admin API. Idempotent. */
  stop(): Promise<void> {
    return this.#stop.call();
  }

  async #stopNow(): Promise<void> {
    this.#state = 'stopping';
    const budget = this.coordinator.committed?.loaded.config.shutdown_timeout_ms ?? 10_000;
    const reports = await this.coordinator.stop(budget);
    await this.#workersExited(5000);
    await this.#health.stop();
    await this.#admin.close();
    this.#state = 'stopped';
    const ok = reports.every((r) => (r.report as { ok?: boolean } | undefined)?.ok === true);
    this.#log.info({ ok, workers: reports.length }, 'final_leak_report');
  }

  /** Resolves once every worker process has exited; one still alive after `timeoutMs` is killed (SIGKILL). */
  async #workersExited(timeoutMs: number): Promise<void> {
    const alive = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
    await Promise.all(
      alive.map(
        (worker) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => worker.process.kill('SIGKILL'), timeoutMs);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }

  /**
   * SIGHUP reloads every worker; SIGUSR1 is passed on to every worker, each reopening its access
   * log files (`reopenWorkerLogs`); SIGTERM/SIGINT stop gracefully and exit 0 (1 on a second
   * signal). Returns the remover.
   */
  handleSignals(exit: (code: number) => void = (code) => process.exit(code)): () => void {
    return handleProcessSignals({
      log: this.#log,
      reload: () => void this.coordinator.reload('signal'),
      reopen: () => this.reopenWorkerLogs(),
      stop: () => this.stop(),
      exit,
    });
  }

  /**
   * Send SIGUSR1 to every live worker (each reopens its access log files: the primary writes
   * none). Returns how many were signalled. `systemctl kill -s USR1` reaches the workers
   * directly too; a second reopen in a row is harmless.
   */
  reopenWorkerLogs(): number {
    let signalled = 0;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (!worker || worker.isDead()) continue;
      worker.process.kill('SIGUSR1');
      signalled += 1;
    }
    return signalled;
  }
}

/** A worker's source: the documents the primary sends. `read()` returns the latest one. */
class PrimarySource implements ConfigSource {
  readonly kind = 'primary';
  #latest: RawDocument | undefined;

  set latest(doc: RawDocument) {
    this.#latest = doc;
  }

  async read(): Promise<RawDocument> {
    if (!this.#latest) throw new Error('no document from the primary yet');
    return this.#latest;
  }

  async watch(_handlers: SourceWatchHandlers): Promise<void> {}

  describe(): SourceInfo {
    return this.#latest?.source ?? { kind: 'primary' };
  }

  async close(): Promise<void> {}
}

/**
 * A cluster worker process: a `Daemon` without admin API or source of its own (documents come
 * from the primary, already validated), whose listeners share their ports with the other
 * workers, driven by a `WorkerAgent`. Exits 0 after a graceful stop the primary asked for, and
 * when the primary goes away (IPC disconnect), so no worker outlives it.
 */
export function runClusterWorker(options: Pick<DaemonOptions, 'logger' | 'httpLimits' | 'kinds' | 'registryOptions'> = {}): void {
  const workerId = process.env[WORKER_ENV] ?? String(cluster.worker?.id ?? 0);
  const logger = (options.logger ?? silentLogger()).child({ worker: workerId });
  const source = new PrimarySource();
  const feed = new HealthFeed();
  const agent = new WorkerAgent(
    (message: WorkerMessage) => process.send?.(message),
    (upstream, target, healthy) => feed.update(upstream, target, healthy),
  );
  const daemon = new Daemon({
    ...options,
    // The primary probes for every worker; a worker applies what it broadcasts.
    kinds: { ...options.kinds, [HEALTH_CHECKER_KIND]: remoteHealthCheckerKind(feed) },
    source,
    logger,
    admin: false,
    watch: false,
    installGlobalTelemetry: true,
    sharedListeners: true,
    commitGate: agent.commitGate,
    preloaded: agent.preloaded,
  });
  daemon.metrics.register.setDefaultLabels({ worker: workerId });
  let started = false;
  agent.attach({
    async apply(doc) {
      source.latest = doc;
      if (started) return daemon.reloader.submit(doc, 'primary');
      started = true;
      try {
        return await daemon.start();
      } catch (error) {
        if (error instanceof StartupError) return error.result;
        throw error;
      }
    },
    leaks: () => daemon.leaks(),
    metrics: () => daemon.metrics.register.getMetricsAsJSON(),
    async stop() {
      const report = await daemon.stop();
      setImmediate(() => process.exit(0));
      return report;
    },
  });
  process.on('message', (message) => void agent.onMessage(message));
  // The primary handles signals for the whole cluster; a worker stops when told to, or when the primary is gone.
  process.on('SIGHUP', () => {});
  process.on('SIGINT', () => {});
  // The primary passes SIGUSR1 on: each worker reopens the access log files it writes.
  process.on('SIGUSR1', () => void daemon.reopenLogs());
  process.on('SIGTERM', () => void daemon.stop().then(() => process.exit(0)));
  process.on('disconnect', () => void daemon.destroy().then(() => process.exit(0)));
}
