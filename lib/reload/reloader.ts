import { SpanStatusCode, type TracerProvider } from '@opentelemetry/api';
import type { LoadedConfig } from '../config/parse.js';
import { scrubError } from '../config/redact.js';
import type { Config } from '../config/schema.js';
import { Emitter } from '../core/emitter.js';
import {
  ConfigInvalidError,
  type ConfigIssue,
  errorCode,
  errorMessage,
  HotconfError,
  ProvisionError,
  SourceReadError,
  SourceUnavailableError,
} from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { RepeatLimiter } from '../core/repeat-limiter.js';
import { withTimeout } from '../core/timeout.js';
import type { ProxyObserver } from '../dataplane/proxy/proxy.js';
import type { HttpLimits } from '../net/limits.js';
import type { ResourceRegistry } from '../registry/registry.js';
import type { StackServing } from '../resources/http-stack.js';
import type { HealthObserver, KindDeps, ResourceKinds } from '../resources/kind.js';
import { TRACER_NAME } from '../resources/tracing.js';
import type { ConfigSource, RawDocument } from '../sources/source.js';
import { Applier } from './applier.js';
import { FragmentLoader, type FragmentStatus } from './fragments.js';
import type { Generation, ReleaseReport } from './generation.js';
import { type LoadOutcome, loadDocument, loadDocumentWith, loadFragments } from './load.js';
import { ConfigParser, ParserClosedError } from './parser.js';
import type { ProvisionReport } from './provision.js';
import { type ReloadJob, ReloadQueue, type ReloadTrigger } from './queue.js';

export type { ReloadTrigger } from './queue.js';

/** Identical background errors of a component are logged at most once per this interval, in ms. */
const BACKGROUND_ERROR_LOG_INTERVAL_MS = 60_000;

/** The `error` of a reload refused or cut because hotconf is stopping. */
const STOPPING = 'hotconf is stopping';

/**
 * `applied`: a new generation serves; `unchanged`: same canonical config; `invalid`: rejected input;
 * `failed`: provisioning failed, or the source could not be reached (`SourceUnavailableError`).
 */
export const RELOAD_OUTCOMES = ['applied', 'unchanged', 'invalid', 'failed'] as const;
export type ReloadOutcome = (typeof RELOAD_OUTCOMES)[number];

/**
 * The outcome of one reload. `generation` is the generation serving afterwards (0: none yet).
 * `errors` is set for `invalid`, and for an `applied` config of several fragments of which some
 * are refused (each issue's `origin` names its fragment, which keeps its last good version);
 * `error` (and `path` when known) for `failed`; `warnings` (only
 * when there are some) for an applied config with settings that do not take effect, such as
 * `admin.listen`, read once at start.
 */
export interface ReloadResult {
  result: ReloadOutcome;
  generation: number;
  hash?: string;
  errors?: ConfigIssue[];
  error?: string;
  path?: string;
  warnings?: ConfigIssue[];
}

/**
 * A new config the reloader's `admit` hook refused before anything was provisioned (the first
 * config's admin API cannot start, say): the reload is `failed` with this message.
 */
export class AdmissionError extends HotconfError {
  constructor(cause: unknown) {
    super('E_ADMISSION_REFUSED', errorMessage(cause), { cause });
  }
}

export type ReloaderEvent =
  | { type: 'reload'; trigger: ReloadTrigger; result: ReloadResult; duration_seconds: number; provisioned: ProvisionReport }
  | { type: 'generation_released'; generation: number; report: ReleaseReport }
  | { type: 'source_error'; error: Error }
  | { type: 'background_error'; component: string; error: Error };

export interface ReloaderOptions {
  source: ConfigSource;
  registry: ResourceRegistry;
  logger?: Logger;
  /** What the stack of the listener with this registry key calls: the daemon's wiring routes it by `reloader.active`. */
  serving: (listenKey: string) => StackServing;
  /** Kinds by name replacing the defaults (specs inject faults here). */
  kinds?: ResourceKinds;
  /** Client limits of the listeners. */
  httpLimits?: Partial<HttpLimits>;
  /** Listeners share their ports with the other workers of a node:cluster. */
  sharedListeners?: boolean;
  /** Where open access log files register, for SIGUSR1 (see `KindDeps.logFiles`). */
  logFiles?: KindDeps['logFiles'];
  /** Documents over this size are invalid, in bytes; with a multi-document source, the limit of each fragment. Default 1 MiB. */
  maxDocumentBytes?: number;
  /** With a multi-document source, the limit of all fragments together, in bytes. Default `DEFAULT_MAX_TOTAL_BYTES` (64 MiB). */
  maxTotalBytes?: number;
  /**
   * Parses and validates documents off the serving thread. Default: a new `ConfigParser`, closed
   * by `stop()`; one passed in is left open (whoever made it closes it).
   */
  parser?: ConfigParser;
  /** Receives proxy attempts and health-check errors (the daemon's metrics). */
  observer?: ProxyObserver & HealthObserver;
  /** Where hotconf's own reload spans go. Default: none. */
  tracerProvider?: TracerProvider;
  /** Called after every swap with the generation now active (undefined once stopping). */
  onSwap?: (active: Generation | undefined) => void;
  /**
   * Two-phase reloads (cluster workers): called with each provisioned generation before it is
   * swapped in; resolves true to commit (swap), false to abort (release it, `failed`).
   */
  commitGate?: (generation: Generation) => Promise<boolean>;
  /** The config already validated for a document (a cluster worker gets it from the primary), so it is not parsed again. */
  preloaded?: (doc: RawDocument) => LoadedConfig | undefined;
  /**
   * Called with each new config after it validated and before anything is provisioned for it:
   * returns the warnings the result and the log carry, or throws to refuse it (the reload is
   * `failed`, see `AdmissionError`). The daemon checks here what its admin API needs.
   */
  admit?: (config: Config) => ConfigIssue[] | Promise<ConfigIssue[]>;
}

/**
 * Turns documents from a source into serving generations, one reload at a time: a
 * `ReloadQueue` (serialize, coalesce) in front of the primary's half, `loadDocument` (read →
 * parse → validate → compare canonical hash: equal is `unchanged`; parsing and validation run on
 * a `ConfigParser`'s worker thread, never on the serving one), and the worker's half, an
 * `Applier` (provision → swap → drain and release the old generation). Invalid input or a
 * failed provision leaves the active generation serving. This class adds what spans both: the
 * reload's result, span, log line and event.
 */
export class Reloader {
  readonly #source: ConfigSource;
  readonly #log: Logger;
  readonly #maxDocumentBytes: number | undefined;
  readonly #parser: ConfigParser;
  /** Parses and merges the fragments of a multi-document source (made on its first such document). */
  #fragments: FragmentLoader | undefined;
  readonly #maxTotalBytes: number | undefined;
  readonly #ownsParser: boolean;
  readonly #events: Emitter<ReloaderEvent>;
  readonly #queue: ReloadQueue<ReloadResult>;
  readonly #applier: Applier;
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #stop = new Once(() => this.#stopNow());
  #watching = false;
  readonly #commitGate: ReloaderOptions['commitGate'];
  readonly #preloaded: ReloaderOptions['preloaded'];
  readonly #admit: ReloaderOptions['admit'];
  readonly #backgroundErrors = new RepeatLimiter(BACKGROUND_ERROR_LOG_INTERVAL_MS);

  constructor(options: ReloaderOptions) {
    this.#source = options.source;
    const rootLog = options.logger ?? silentLogger();
    this.#log = rootLog.child({ component: 'reload' });
    this.#maxDocumentBytes = options.maxDocumentBytes;
    this.#maxTotalBytes = options.maxTotalBytes;
    this.#ownsParser = options.parser === undefined;
    this.#parser = options.parser ?? new ConfigParser();
    this.#tracerProvider = options.tracerProvider;
    this.#commitGate = options.commitGate;
    this.#preloaded = options.preloaded;
    this.#admit = options.admit;
    this.#events = new Emitter((err, event) => this.#log.error({ err, event: event.type }, 'reloader_listener_failed'));
    const deps: KindDeps = {
      onBackgroundError: (component, error) => this.reportBackgroundError(component, error),
      logger: rootLog,
      observer: options.observer,
      httpLimits: options.httpLimits,
      // Certificate files are watched only while the config source is (`watch()`).
      requestReload: (trigger) => {
        if (this.#watching) void this.reload(trigger);
      },
      sharedListeners: options.sharedListeners,
      logFiles: options.logFiles,
    };
    this.#applier = new Applier({
      registry: options.registry,
      kinds: options.kinds,
      deps,
      serving: options.serving,
      observer: options.observer,
      logger: rootLog,
      log: this.#log,
      onSwap: options.onSwap,
      onReleased: (generation, report) => this.#events.emit({ type: 'generation_released', generation: generation.id, report }),
    });
    this.#queue = new ReloadQueue((job) => this.#run(job));
  }

  /** The generation new requests are routed to; undefined before the first config and after `stop()`. */
  get active(): Generation | undefined {
    return this.#applier.active;
  }

  /** Generations not yet released: the active one plus those draining. */
  generations(): Generation[] {
    return this.#applier.generations();
  }

  /** Every fragment's state, for a multi-document source (`/config`); undefined for a single document. */
  fragments(): FragmentStatus[] | undefined {
    return this.#fragments?.statuses();
  }

  /**
   * Log and publish an error a resource's background work caught (see `BackgroundErrorHandler`);
   * the default kinds report here, injected kinds may too. The error is first scrubbed of the
   * secrets of every live generation (`Generation.secrets`). Each is published (and counted in
   * metrics); the log goes through a `RepeatLimiter` per component: a new error at once, the same
   * one again at most once a minute, with the number `suppressed` since.
   */
  reportBackgroundError(component: string, error: Error): void {
    // An exporter or checker error may quote what it was configured with.
    for (const generation of this.generations()) scrubError(error, generation.secrets);
    // Every one is counted (the event); a collector that stays down must not flood the log.
    const { log, suppressed } = this.#backgroundErrors.check(component, `${errorCode(error) ?? ''} ${error.message}`);
    if (log) this.#log.warn({ background: component, err: error, suppressed }, 'background_error');
    this.#events.emit({ type: 'background_error', component, error });
  }

  /** Observe reloads, releases and source errors (metrics). Returns the unsubscribe function. */
  subscribe(listener: (event: ReloaderEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  /** Re-read the source now and apply it (SIGHUP, `POST /reload`, start). Never rejects. */
  reload(trigger: ReloadTrigger = 'api'): Promise<ReloadResult> {
    return this.#queue.enqueue(trigger, { pull: true });
  }

  /** Apply a document a watching source pushed. Never rejects. */
  submit(doc: RawDocument, trigger: ReloadTrigger = 'watch'): Promise<ReloadResult> {
    return this.#queue.enqueue(trigger, { pull: false, doc });
  }

  /** Start the source's watch: every document it reports is submitted; from now on a change of a certificate file reloads too. */
  async watch(): Promise<void> {
    this.#watching = true;
    await this.#source.watch({
      onDocument: (doc) => void this.submit(doc, 'watch'),
      onError: (error) => {
        this.#log.warn({ err: error, source: this.#source.describe() }, 'source_error');
        this.#events.emit({ type: 'source_error', error });
      },
    });
  }

  /** True while a reload is running or queued. */
  get busy(): boolean {
    return this.#queue.busy;
  }

  /** Resolves when no reload is running or queued. */
  idle(): Promise<void> {
    return this.#queue.idle();
  }

  /**
   * Stop: refuse new reloads, let the running one finish (bounded by the active config's
   * `shutdown_timeout_ms`), stop the listeners accepting, drain every generation and release
   * all leases. Idempotent: every caller gets the same completion.
   */
  stop(): Promise<void> {
    return this.#stop.call();
  }

  /**
   * Immediate stop: as `stop()`, but requests in flight are aborted at once instead of drained
   * (also when a `stop()` is already draining). Same completion as `stop()`.
   */
  destroy(): Promise<void> {
    const stopped = this.stop();
    this.#applier.cutDrains();
    return stopped;
  }

  async #stopNow(): Promise<void> {
    // Before the first config, the one being provisioned sets the budget.
    const budgetMs = this.#applier.shutdownBudgetMs;
    this.#queue.close(() => this.#stoppingResult());
    this.#applier.beginStop();
    const running = this.#queue.running;
    if (running) {
      await withTimeout(running, budgetMs, () => new Error('reload still running')).catch(() => {
        this.#log.warn({ budget_ms: budgetMs }, 'stop_gave_up_on_running_reload');
      });
      await this.#applier.abandonProvisioning();
    }
    if (this.#ownsParser) await this.#parser.close();
    await this.#applier.retireAll();
  }

  #stoppingResult(): ReloadResult {
    return { result: 'failed', generation: this.active?.id ?? 0, error: STOPPING };
  }

  async #run(job: ReloadJob): Promise<ReloadResult> {
    const started = process.hrtime.bigint();
    const span = this.#tracerProvider?.getTracer(TRACER_NAME).startSpan('hotconf.reload', { attributes: { 'hotconf.reload.trigger': job.trigger } });
    let provisioned: ProvisionReport = {};
    let result: ReloadResult;
    try {
      const doc = job.pull || !job.doc ? await this.#source.read() : job.doc;
      ({ result, provisioned } = await this.#apply(doc));
    } catch (error) {
      result = this.#resultOf(error);
    }
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (span) {
      span.setAttributes({ 'hotconf.reload.result': result.result, 'hotconf.generation': result.generation });
      if (result.result === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
      span.end();
    }
    const active = this.active;
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
      ...(result.warnings ? { warnings: result.warnings } : {}),
    };
    if ((result.result === 'applied' || result.result === 'unchanged') && !result.warnings && !result.errors) this.#log.info(fields, 'reload');
    else this.#log.warn(fields, 'reload');
    this.#events.emit({ type: 'reload', trigger: job.trigger, result, duration_seconds: durationSeconds, provisioned });
    return result;
  }

  async #apply(doc: RawDocument): Promise<{ result: ReloadResult; provisioned: ProvisionReport }> {
    const active = this.active;
    const preloaded = this.#preloaded?.(doc);
    let outcome: LoadOutcome;
    if (preloaded) outcome = await loadDocument(doc, active, { preloaded });
    else if (doc.fragments) {
      this.#fragments ??= fragmentLoader(this.#parser, this.#maxDocumentBytes, this.#maxTotalBytes);
      outcome = await loadFragments(this.#fragments, doc, active);
    } else {
      outcome = await loadDocumentWith((text, options) => this.#parser.parse(text, options), doc, active, { maxDocumentBytes: this.#maxDocumentBytes });
    }
    if (outcome.kind === 'unchanged') {
      // Same config: the newest document that produced it is what `/config` reports.
      if (outcome.plan) this.#fragments?.commit(outcome.plan);
      this.#applier.sawDocument(doc);
      this.#source.served?.(doc);
      return { result: { result: 'unchanged', generation: active!.id, hash: active!.hash }, provisioned: {} };
    }
    const admit = this.#admit;
    const warnings = admit
      ? await (async () => admit(outcome.loaded.config))().catch((error: unknown) => {
          throw new AdmissionError(error);
        })
      : [];
    const prepared = await this.#applier.prepare(outcome.loaded, doc, outcome.tls);
    if (prepared.kind === 'stopped') return { result: this.#stoppingResult(), provisioned: prepared.provisioned };
    const { generation, provisioned } = prepared;
    if (this.#commitGate && !(await this.#commitGate(generation))) {
      await this.#applier.abort(generation);
      return { result: { result: 'failed', generation: active?.id ?? 0, error: 'aborted: another worker failed to provision it' }, provisioned };
    }
    if (!this.#applier.commit(generation)) return { result: this.#stoppingResult(), provisioned };
    if (outcome.plan) this.#fragments?.commit(outcome.plan);
    this.#source.served?.(doc);
    const errors = outcome.plan && outcome.plan.issues.length > 0 ? { errors: [...outcome.plan.issues] } : {};
    return {
      result: { result: 'applied', generation: generation.id, hash: generation.hash, ...errors, ...(warnings.length > 0 ? { warnings } : {}) },
      provisioned,
    };
  }

  #resultOf(error: unknown): ReloadResult {
    const generation = this.active?.id ?? 0;
    const result = reloadResultOf(error, generation);
    if (result) return result;
    this.#log.error({ err: error }, 'reload_crashed');
    return { result: 'failed', generation, error: errorMessage(error) };
  }
}

/**
 * The result of a reload that threw `error`, with `generation` still serving: `invalid` for
 * rejected input (`ConfigInvalidError`, an unreadable document), `failed` for an unreachable
 * source or a failed provision (with its config path). Undefined for any other error: a bug,
 * which the caller logs as `reload_crashed`.
 */
export function reloadResultOf(error: unknown, generation: number): ReloadResult | undefined {
  if (error instanceof ConfigInvalidError) return { result: 'invalid', generation, errors: [...error.issues] };
  // Nothing is known about the document: not `invalid`, and the active config keeps serving.
  if (error instanceof SourceUnavailableError) return { result: 'failed', generation, error: error.message };
  if (error instanceof SourceReadError) return { result: 'invalid', generation, errors: [{ path: '', message: error.message }] };
  if (error instanceof ProvisionError) return { result: 'failed', generation, error: error.message, path: error.path };
  if (error instanceof AdmissionError) return { result: 'failed', generation, error: error.message };
  // The parser was closed under a reload: hotconf is stopping.
  if (error instanceof ParserClosedError) return { result: 'failed', generation, error: STOPPING };
  return undefined;
}

/** The `FragmentLoader` of a reloader or cluster primary: fragments parsed on `parser`'s worker thread. */
export function fragmentLoader(parser: ConfigParser, maxFragmentBytes: number | undefined, maxTotalBytes: number | undefined): FragmentLoader {
  return new FragmentLoader({ parse: (fragments, options) => parser.parseFragments(fragments, options), maxFragmentBytes, maxTotalBytes });
}

function countsOf(report: ProvisionReport, field: 'created' | 'reused'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, counts] of Object.entries(report)) if (counts[field] > 0) out[kind] = counts[field];
  return out;
}
