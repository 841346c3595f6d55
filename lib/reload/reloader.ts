import { SpanStatusCode } from '@opentelemetry/api';
import { type LoadedConfig, loadConfig } from '../config/parse.js';
import { DEFAULT_SHUTDOWN_TIMEOUT_MS } from '../config/schema.js';
import { ConfigInvalidError, type ConfigIssue, errorMessage, ProvisionError, SourceReadError, SourceUnavailableError } from '../errors.js';
import { type ActionRunner, createRequestHandler } from '../http/handler.js';
import type { HttpLimits } from '../http/limits.js';
import { runProxyAction, type UpstreamObserver } from '../http/proxy.js';
import type { ActionCompiler } from '../http/router.js';
import { type Logger, silentLogger } from '../log.js';
import type { ResourceRegistry } from '../registry/registry.js';
import { ForwardingTracerProvider } from '../resources/forwarding-tracer.js';
import { TRACER_NAME } from '../resources/tracing.js';
import type { ConfigSource, RawDocument } from '../sources/source.js';
import { Emitter } from '../util/emitter.js';
import { withTimeout } from '../util/timeout.js';
import { Generation, type ReleaseReport } from './generation.js';
import { defaultResourceKinds, type ProvisionReport, provision, type ResourceKinds } from './provision.js';

/**
 * `applied`: a new generation serves; `unchanged`: same canonical config; `invalid`: rejected input;
 * `failed`: provisioning failed, or the source could not be reached (`SourceUnavailableError`).
 */
export const RELOAD_OUTCOMES = ['applied', 'unchanged', 'invalid', 'failed'] as const;
export type ReloadOutcome = (typeof RELOAD_OUTCOMES)[number];

/**
 * The outcome of one reload. `generation` is the generation serving afterwards (0: none yet).
 * `errors` is set for `invalid`, `error` (and `path` when known) for `failed`.
 */
export interface ReloadResult {
  result: ReloadOutcome;
  generation: number;
  hash?: string;
  errors?: ConfigIssue[];
  error?: string;
  path?: string;
}

/** What set a reload off; a label on logs and spans. */
export type ReloadTrigger = 'start' | 'watch' | 'signal' | 'api' | (string & {});

export type ReloaderEvent =
  | { type: 'reload'; trigger: ReloadTrigger; result: ReloadResult; duration_seconds: number; provisioned: ProvisionReport }
  | { type: 'generation_released'; generation: number; report: ReleaseReport }
  | { type: 'source_error'; error: Error }
  | { type: 'background_error'; component: string; error: Error };

export interface ReloaderOptions {
  source: ConfigSource;
  registry: ResourceRegistry;
  logger?: Logger;
  /**
   * Factory builders per kind. Default: `defaultResourceKinds` with `httpLimits`, this
   * reloader's logger and `observer`, and background errors reported to `reportBackgroundError`.
   */
  kinds?: ResourceKinds;
  /** Client limits of the default listeners (ignored when `kinds` is given). */
  httpLimits?: Partial<HttpLimits>;
  /** Documents over this size are invalid, in bytes. Default 1 MiB. */
  maxDocumentBytes?: number;
  /**
   * Data-plane hooks: compile routes other than `respond` and `upstream` ones, and run actions
   * other than `respond` (default `runProxyAction`; a replacement must hand proxy actions to it).
   */
  compileAction?: ActionCompiler;
  runAction?: ActionRunner;
  /** Receives proxy attempts and health-check errors (the daemon's metrics). */
  observer?: UpstreamObserver;
}

interface PendingReload {
  /** Re-read the source (SIGHUP, API) rather than use a pushed document. */
  pull: boolean;
  doc: RawDocument | undefined;
  trigger: ReloadTrigger;
  waiters: ((result: ReloadResult) => void)[];
}

/**
 * Turns documents from a source into serving generations, one reload at a time.
 *
 * Reload = read → parse → validate → compare canonical hash (equal: `unchanged`) → provision a
 * new generation through the registry (unchanged sections reuse their resources) → swap
 * atomically → drain the old generation (bounded by its `shutdown_timeout_ms`) → release its
 * leases. Invalid input or a failed provision leaves the active generation serving. A document
 * whose version equals the active one's (same source) is `unchanged` without being parsed.
 *
 * Reloads are serialized; requests that arrive while one runs are coalesced into a single next
 * reload (latest document wins; a pull re-reads the source, which is at least as new), so a
 * burst of 1000 SIGHUPs costs two reloads.
 */
export class Reloader {
  /** Follows the active generation's tracer provider; hotconf's reload spans go through it. */
  readonly tracerProvider = new ForwardingTracerProvider();
  readonly #source: ConfigSource;
  readonly #registry: ResourceRegistry;
  readonly #log: Logger;
  readonly #rootLog: Logger;
  readonly #observer: UpstreamObserver | undefined;
  readonly #kinds: ResourceKinds;
  readonly #maxDocumentBytes: number | undefined;
  readonly #compileAction: ActionCompiler | undefined;
  readonly #runAction: ActionRunner;
  readonly #events: Emitter<ReloaderEvent>;
  readonly #retiring = new Map<Generation, Promise<void>>();
  #active: Generation | undefined;
  #running: Promise<void> | undefined;
  #pending: PendingReload | undefined;
  #stopping: Promise<void> | undefined;
  /** The generation the running reload is provisioning, if any. */
  #provisioning: Generation | undefined;

  constructor(options: ReloaderOptions) {
    this.#source = options.source;
    this.#registry = options.registry;
    this.#rootLog = options.logger ?? silentLogger();
    this.#log = this.#rootLog.child({ component: 'reload' });
    this.#observer = options.observer;
    this.#kinds =
      options.kinds ??
      defaultResourceKinds({
        onBackgroundError: (component, error) => this.reportBackgroundError(component, error),
        httpLimits: options.httpLimits,
        logger: this.#rootLog,
        observer: options.observer,
      });
    this.#maxDocumentBytes = options.maxDocumentBytes;
    this.#compileAction = options.compileAction;
    this.#runAction = options.runAction ?? runProxyAction;
    this.#events = new Emitter((err, event) => this.#log.error({ err, event: event.type }, 'reloader_listener_failed'));
  }

  /** The generation new requests are routed to; undefined before the first config and after `stop()`. */
  get active(): Generation | undefined {
    return this.#active;
  }

  /** Generations not yet released: the active one plus those draining. */
  generations(): Generation[] {
    return [...(this.#active ? [this.#active] : []), ...this.#retiring.keys()];
  }

  /**
   * Log and publish an error a resource's background work caught (see `BackgroundErrorHandler`);
   * the default kinds report here, injected kinds may too.
   */
  reportBackgroundError(component: string, error: Error): void {
    this.#log.error({ component, error: errorMessage(error) }, 'background_error');
    this.#events.emit({ type: 'background_error', component, error });
  }

  /** Observe reloads, releases and source errors (metrics). Returns the unsubscribe function. */
  subscribe(listener: (event: ReloaderEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  /** Re-read the source now and apply it (SIGHUP, `POST /reload`, start). Never rejects. */
  reload(trigger: ReloadTrigger = 'api'): Promise<ReloadResult> {
    return this.#enqueue(trigger, { pull: true });
  }

  /** Apply a document a watching source pushed. Never rejects. */
  submit(doc: RawDocument, trigger: ReloadTrigger = 'watch'): Promise<ReloadResult> {
    return this.#enqueue(trigger, { pull: false, doc });
  }

  /** Start the source's watch: every document it reports is submitted. */
  async watch(): Promise<void> {
    await this.#source.watch({
      onDocument: (doc) => void this.submit(doc, 'watch'),
      onError: (error) => {
        this.#log.warn({ error: errorMessage(error), source: this.#source.describe() }, 'source_error');
        this.#events.emit({ type: 'source_error', error });
      },
    });
  }

  /** True while a reload is running or queued. */
  get busy(): boolean {
    return this.#running !== undefined || this.#pending !== undefined;
  }

  /** Resolves when no reload is running or queued. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /**
   * Stop: refuse new reloads, let the running one finish (bounded by the active config's
   * `shutdown_timeout_ms`), stop the listeners accepting, drain every generation and release
   * all leases. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    // Before the first config, the one being provisioned sets the budget.
    const budgetMs = (this.#active ?? this.#provisioning)?.config.shutdown_timeout_ms ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
    const pending = this.#pending;
    this.#pending = undefined;
    for (const resolve of pending?.waiters ?? []) resolve(this.#stoppingResult());
    if (this.#running) {
      await withTimeout(this.#running, budgetMs, () => new Error('reload still running')).catch(() => {
        this.#log.warn({ budget_ms: budgetMs, provisioning: this.#provisioning?.id }, 'stop_gave_up_on_running_reload');
      });
      // A reload stuck provisioning (a create that hangs) is abandoned: the leases its
      // generation already holds go now, or they would outlive the stop as held references.
      // Whatever it acquires later is released when provision returns (see #apply).
      await this.#provisioning?.release();
    }
    const last = this.#active;
    this.#active = undefined;
    this.tracerProvider.setDelegate(undefined);
    if (last) {
      for (const listener of last.listeners().values()) listener.stopAccepting();
      this.#retire(last);
    }
    await Promise.all(this.#retiring.values());
  }

  #stoppingResult(): ReloadResult {
    return { result: 'failed', generation: this.#active?.id ?? 0, error: 'hotconf is stopping' };
  }

  #enqueue(trigger: ReloadTrigger, request: { pull: boolean; doc?: RawDocument }): Promise<ReloadResult> {
    if (this.#stopping) return Promise.resolve(this.#stoppingResult());
    const pending = (this.#pending ??= { pull: false, doc: undefined, trigger, waiters: [] });
    if (request.pull) pending.pull = true;
    if (request.doc) pending.doc = request.doc;
    pending.trigger = trigger;
    const result = new Promise<ReloadResult>((resolve) => pending.waiters.push(resolve));
    this.#pump();
    return result;
  }

  #pump(): void {
    if (this.#running || !this.#pending) return;
    const job = this.#pending;
    this.#pending = undefined;
    this.#running = (async () => {
      const result = await this.#run(job);
      for (const resolve of job.waiters) resolve(result);
    })().finally(() => {
      this.#running = undefined;
      this.#pump();
    });
  }

  async #run(job: PendingReload): Promise<ReloadResult> {
    const started = process.hrtime.bigint();
    const span = this.tracerProvider.getTracer(TRACER_NAME).startSpan('hotconf.reload', { attributes: { 'hotconf.reload.trigger': job.trigger } });
    let provisioned: ProvisionReport = {};
    let result: ReloadResult;
    try {
      let doc: RawDocument;
      if (job.pull || !job.doc) doc = await this.#source.read();
      else doc = job.doc;
      ({ result, provisioned } = await this.#apply(doc));
    } catch (error) {
      result = this.#resultOf(error);
    }
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    span.setAttributes({ 'hotconf.reload.result': result.result, 'hotconf.generation': result.generation });
    if (result.result === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
    span.end();
    const active = this.#active;
    const fields = {
      trigger: job.trigger,
      result: result.result,
      generation: result.generation,
      duration_ms: Math.round(durationSeconds * 1e6) / 1e3,
      hash: active?.hash.slice(0, 12),
      source: active?.source ?? this.#source.describe(),
      created: countsOf(provisioned, 'created'),
      reused: countsOf(provisioned, 'reused'),
      ...(result.errors ? { errors: result.errors } : {}),
      ...(result.error ? { error: result.error, path: result.path } : {}),
    };
    if (result.result === 'applied' || result.result === 'unchanged') this.#log.info(fields, 'reload');
    else this.#log.warn(fields, 'reload');
    this.#events.emit({ type: 'reload', trigger: job.trigger, result, duration_seconds: durationSeconds, provisioned });
    return result;
  }

  async #apply(doc: RawDocument): Promise<{ result: ReloadResult; provisioned: ProvisionReport }> {
    const active = this.#active;
    const unchanged = (): { result: ReloadResult; provisioned: ProvisionReport } => {
      // Same config: the newest document that produced it is what `/config` reports.
      active!.version = doc.version;
      active!.source = doc.source;
      return { result: { result: 'unchanged', generation: active!.id, hash: active!.hash }, provisioned: {} };
    };
    if (active && active.source.kind === doc.source.kind && active.version === doc.version) return unchanged();
    const origin = String(doc.source.path ?? doc.source.key ?? doc.source.kind);
    const loaded: LoadedConfig = loadConfig(doc.text, { origin, maxDocumentBytes: this.#maxDocumentBytes });
    if (active && active.hash === loaded.hash) return unchanged();

    const generation = new Generation((active?.id ?? 0) + 1, loaded.config, loaded.hash, doc.version, doc.source);
    this.#provisioning = generation;
    let provisioned: ProvisionReport;
    try {
      provisioned = await provision(generation, {
        registry: this.#registry,
        kinds: this.#kinds,
        compileAction: this.#compileAction,
        observer: this.#observer,
        logger: this.#rootLog,
        requestHandler: (listenKey) => createRequestHandler({ active: () => this.#active, listenKey, logger: this.#log, runAction: this.#runAction }),
      });
    } finally {
      this.#provisioning = undefined;
    }
    if (this.#stopping) {
      await generation.release();
      return { result: this.#stoppingResult(), provisioned };
    }
    generation.state = 'active';
    this.#active = generation;
    this.tracerProvider.setDelegate(generation.tracing?.provider);
    if (active) this.#retire(active);
    return { result: { result: 'applied', generation: generation.id, hash: generation.hash }, provisioned };
  }

  #retire(generation: Generation): void {
    generation.retiredAt = Date.now();
    const released = (async () => {
      const started = Date.now();
      const aborted = await generation.drain(generation.config.shutdown_timeout_ms);
      const destroyed = await generation.release();
      const report: ReleaseReport = { destroyed, aborted, drain_ms: Date.now() - started };
      this.#log.info({ generation: generation.id, ...report }, 'generation_released');
      this.#events.emit({ type: 'generation_released', generation: generation.id, report });
    })()
      .catch((err) => this.#log.error({ err, generation: generation.id }, 'generation_release_failed'))
      .finally(() => this.#retiring.delete(generation));
    this.#retiring.set(generation, released);
  }

  #resultOf(error: unknown): ReloadResult {
    const generation = this.#active?.id ?? 0;
    if (error instanceof ConfigInvalidError) return { result: 'invalid', generation, errors: [...error.issues] };
    // Nothing is known about the document: not `invalid`, and the active config keeps serving.
    if (error instanceof SourceUnavailableError) return { result: 'failed', generation, error: error.message };
    if (error instanceof SourceReadError) return { result: 'invalid', generation, errors: [{ path: '', message: error.message }] };
    if (error instanceof ProvisionError) return { result: 'failed', generation, error: error.message, path: error.path };
    this.#log.error({ err: error }, 'reload_crashed');
    return { result: 'failed', generation, error: errorMessage(error) };
  }
}

function countsOf(report: ProvisionReport, field: 'created' | 'reused'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, counts] of Object.entries(report)) if (counts[field] > 0) out[kind] = counts[field];
  return out;
}
