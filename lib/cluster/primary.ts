import { canonicalJson } from '../config/hash.js';
import type { LoadedConfig } from '../config/parse.js';
import { Emitter } from '../core/emitter.js';
import { errorMessage } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { Once } from '../core/once.js';
import { withTimeout } from '../core/timeout.js';
import type { TlsMaterial } from '../net/tls-files.js';
import { loadDocumentWith } from '../reload/load.js';
import { ConfigParser } from '../reload/parser.js';
import { type ReloadJob, ReloadQueue, type ReloadTrigger } from '../reload/queue.js';
import { AdmissionError, type ReloaderOptions, type ReloadResult, reloadResultOf } from '../reload/reloader.js';
import type { ConfigSource, RawDocument } from '../sources/source.js';
import { type PrimaryMessage, type WorkerMessage, workerMessage } from './protocol.js';

/** One worker as the primary sees it: how to reach it, and what it serves. */
export interface WorkerLink {
  readonly id: number;
  readonly pid: number | undefined;
  send(message: PrimaryMessage): void;
}

/** A worker's state for `/config` and `/healthz`. */
export interface WorkerStatus {
  id: number;
  pid: number | undefined;
  /** The revision it serves (0: none yet). */
  revision: number;
  /** Its own generation id serving that revision. */
  generation: number;
}

/** What the cluster serves: the last committed revision and its document. */
interface Committed {
  readonly revision: number;
  readonly doc: RawDocument;
  readonly loaded: LoadedConfig;
  /** Digest of the certificate files it names, as read when it was validated ('' for none). */
  readonly tlsDigest: string;
}

export type CoordinatorEvent =
  | { type: 'reload'; trigger: ReloadTrigger; result: ReloadResult; duration_seconds: number }
  /** Every worker serves `revision` now. */
  /** `tls`: the certificate files the config names, as read for it (whose directories the primary watches). */
  | { type: 'committed'; revision: number; doc: RawDocument; loaded: LoadedConfig; tls: TlsMaterial }
  /** A worker that joined serves the committed revision. */
  | { type: 'worker_booted'; id: number }
  | { type: 'source_error'; error: Error };

export interface CoordinatorOptions {
  source: ConfigSource;
  logger: Logger;
  maxDocumentBytes?: number;
  /** How long a worker may take to answer `prepare` or `commit`, in ms. Default 60000. */
  replyTimeoutMs?: number;
  /** Parses and validates documents off the thread serving the admin API. Default: a new one, closed by `stop()`. */
  parser?: ConfigParser;
  /** As `ReloaderOptions.admit`: checks each new config before any worker provisions it. */
  admit?: ReloaderOptions['admit'];
}

interface WorkerEntry {
  readonly link: WorkerLink;
  status: WorkerStatus;
  /** Waiters for this worker's next reply of a type. */
  readonly waiting: Map<string, (message: WorkerMessage | undefined) => void>;
  ready: boolean;
}

/**
 * The primary's half of a cluster: owns the config source, parses and validates each document
 * once (`loadDocumentWith`, on a `ConfigParser`'s worker thread, so the admin API it serves never
 * stalls), and drives every worker through the two-phase reload of `protocol.ts`
 * under a monotonic revision. Reloads are serialized and coalesced (`ReloadQueue`), exactly as in
 * one process. A worker that joins (started, or re-forked after a crash) is given the committed
 * revision before it counts as serving.
 *
 * A reload's `generation` is the cluster's revision: every worker serves it once `applied` is
 * returned; on `failed` (a worker could not provision, answered too late, or died) every worker
 * released what it provisioned and the previous revision keeps serving everywhere.
 */
export class ClusterCoordinator {
  readonly #source: ConfigSource;
  readonly #log: Logger;
  readonly #maxDocumentBytes: number | undefined;
  readonly #replyTimeoutMs: number;
  readonly #parser: ConfigParser;
  readonly #ownsParser: boolean;
  readonly #admit: ReloaderOptions['admit'];
  readonly #workers = new Map<number, WorkerEntry>();
  readonly #queue: ReloadQueue<ReloadResult>;
  readonly #events: Emitter<CoordinatorEvent>;
  readonly #stop = new Once(() => this.#stopNow());
  #revision = 0;
  #requests = 0;
  #committed: Committed | undefined;
  /** Joins waiting for the running reload to end before they are booted. */
  #booting: Promise<void> = Promise.resolve();

  constructor(options: CoordinatorOptions) {
    this.#source = options.source;
    this.#log = options.logger.child({ component: 'cluster' });
    this.#maxDocumentBytes = options.maxDocumentBytes;
    this.#replyTimeoutMs = options.replyTimeoutMs ?? 60_000;
    this.#ownsParser = options.parser === undefined;
    this.#parser = options.parser ?? new ConfigParser();
    this.#admit = options.admit;
    this.#queue = new ReloadQueue((job) => this.#run(job));
    this.#events = new Emitter((err, event) => this.#log.error({ err, event: event.type }, 'coordinator_listener_failed'));
  }

  /** The committed revision (0 before the first) and its config. */
  get committed(): { revision: number; loaded: LoadedConfig; doc: RawDocument } | undefined {
    return this.#committed;
  }

  /** Send `message` to every worker (health transitions). */
  broadcast(message: PrimaryMessage): void {
    for (const entry of this.#workers.values()) entry.link.send(message);
  }

  /** Send `message` to one worker. */
  sendTo(id: number, message: PrimaryMessage): void {
    this.#workers.get(id)?.link.send(message);
  }

  /** Every worker's state, by worker id. */
  workers(): WorkerStatus[] {
    return [...this.#workers.values()].map((w) => ({ ...w.status }));
  }

  subscribe(listener: (event: CoordinatorEvent) => void): () => void {
    return this.#events.subscribe(listener);
  }

  /** A new worker process: it takes part in reloads once it said `ready` and serves the committed revision. */
  addWorker(link: WorkerLink): void {
    this.#workers.set(link.id, { link, status: { id: link.id, pid: link.pid, revision: 0, generation: 0 }, waiting: new Map(), ready: false });
  }

  /** A worker died or exited: its waiters fail (a reload in progress fails and aborts everywhere). */
  removeWorker(id: number): void {
    const entry = this.#workers.get(id);
    if (!entry) return;
    this.#workers.delete(id);
    for (const resolve of entry.waiting.values()) resolve(undefined);
  }

  /** An IPC message from worker `id`; anything that is not a worker message is ignored. */
  onWorkerMessage(id: number, raw: unknown): void {
    const message = workerMessage(raw);
    const entry = this.#workers.get(id);
    if (!message || !entry) return;
    if (message.type === 'hotconf:ready') {
      entry.ready = true;
      if (this.#committed) this.#boot(entry);
      return;
    }
    const key = message.type === 'hotconf:leaks' || message.type === 'hotconf:metrics' ? `${message.type}:${message.request}` : message.type;
    const resolve = entry.waiting.get(key);
    entry.waiting.delete(key);
    resolve?.(message);
  }

  /** Resolves once `count` workers said `ready`. */
  async ready(count: number, timeoutMs: number): Promise<void> {
    const started = Date.now();
    while ([...this.#workers.values()].filter((w) => w.ready).length < count) {
      if (Date.now() - started > timeoutMs) throw new Error(`only ${this.#readyCount()} of ${count} workers started within ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  #readyCount(): number {
    return [...this.#workers.values()].filter((w) => w.ready).length;
  }

  /** Re-read the source and apply it everywhere (start, SIGHUP, `POST /reload`). Never rejects. */
  reload(trigger: ReloadTrigger = 'api'): Promise<ReloadResult> {
    return this.#queue.enqueue(trigger, { pull: true });
  }

  /** Start watching the source: every document it reports is applied. */
  async watch(): Promise<void> {
    await this.#source.watch({
      onDocument: (doc) => void this.#queue.enqueue('watch', { pull: false, doc }),
      onError: (error) => {
        this.#log.warn({ err: error, source: this.#source.describe() }, 'source_error');
        this.#events.emit({ type: 'source_error', error });
      },
    });
  }

  /** Every worker's leak report, by worker id (a worker that does not answer in time is left out). */
  async leaks(timeoutMs = 5000): Promise<{ id: number; report: unknown }[]> {
    return (await this.#ask('hotconf:leaks', timeoutMs)).map(({ id, message }) => ({
      id,
      report: message.type === 'hotconf:leaks' ? message.report : undefined,
    }));
  }

  /** Every worker's metrics as prom-client JSON, by worker id (a worker that does not answer in time is left out). */
  async metrics(timeoutMs = 5000): Promise<{ id: number; metrics: unknown[] }[]> {
    return (await this.#ask('hotconf:metrics', timeoutMs)).map(({ id, message }) => ({
      id,
      metrics: message.type === 'hotconf:metrics' ? message.metrics : [],
    }));
  }

  async #ask(type: 'hotconf:leaks' | 'hotconf:metrics', timeoutMs: number): Promise<{ id: number; message: WorkerMessage }[]> {
    const out: { id: number; message: WorkerMessage }[] = [];
    await Promise.all(
      [...this.#workers.values()].map(async (entry) => {
        const request = this.#requests++;
        const reply = this.#await(entry, `${type}:${request}`, timeoutMs);
        entry.link.send({ type, request });
        const message = await reply;
        if (message) out.push({ id: entry.link.id, message });
      }),
    );
    return out.sort((a, b) => a.id - b.id);
  }

  /**
   * Refuse new reloads, let the running one finish, stop the source, then stop every worker
   * gracefully and collect their final leak reports. Idempotent.
   */
  stop(timeoutMs: number): Promise<{ id: number; report: unknown }[]> {
    this.#stopTimeoutMs = timeoutMs;
    return this.#stop.call();
  }

  #stopTimeoutMs = 10_000;

  async #stopNow(): Promise<{ id: number; report: unknown }[]> {
    this.#queue.close(() => ({ result: 'failed', generation: this.#committed?.revision ?? 0, error: 'hotconf is stopping' }));
    await this.#source.close().catch((err) => this.#log.error({ err }, 'source_close_failed'));
    const running = this.#queue.running;
    if (running) await withTimeout(running, this.#stopTimeoutMs, () => new Error('reload still running')).catch(() => undefined);
    if (this.#ownsParser) await this.#parser.close();
    const reports: { id: number; report: unknown }[] = [];
    await Promise.all(
      [...this.#workers.values()].map(async (entry) => {
        const reply = this.#await(entry, 'hotconf:stopped', this.#stopTimeoutMs + 5000);
        entry.link.send({ type: 'hotconf:stop' });
        const message = await reply;
        if (message?.type === 'hotconf:stopped') reports.push({ id: entry.link.id, report: message.report });
      }),
    );
    return reports.sort((a, b) => a.id - b.id);
  }

  async #run(job: ReloadJob): Promise<ReloadResult> {
    const started = process.hrtime.bigint();
    let result: ReloadResult;
    try {
      const doc = job.pull || !job.doc ? await this.#source.read() : job.doc;
      result = await this.#apply(doc);
    } catch (error) {
      result = this.#resultOf(error);
    }
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const fields = {
      trigger: job.trigger,
      result: result.result,
      revision: result.generation,
      workers: this.#workers.size,
      duration_ms: Math.round(durationSeconds * 1e6) / 1e3,
      ...(result.errors ? { errors: result.errors } : {}),
      ...(result.error ? { error: result.error, path: result.path } : {}),
      ...(result.warnings ? { warnings: result.warnings } : {}),
    };
    if ((result.result === 'applied' || result.result === 'unchanged') && !result.warnings) this.#log.info(fields, 'reload');
    else this.#log.warn(fields, 'reload');
    this.#events.emit({ type: 'reload', trigger: job.trigger, result, duration_seconds: durationSeconds });
    return result;
  }

  async #apply(doc: RawDocument): Promise<ReloadResult> {
    const committed = this.#committed;
    const served = committed && {
      hash: committed.loaded.hash,
      version: committed.doc.version,
      source: committed.doc.source,
      tls: { digest: committed.tlsDigest },
      references: committed.loaded.references,
    };
    const outcome = await loadDocumentWith((text, options) => this.#parser.parse(text, options), doc, served, { maxDocumentBytes: this.#maxDocumentBytes });
    if (outcome.kind === 'unchanged') {
      this.#committed = { ...committed!, doc };
      return { result: 'unchanged', generation: committed!.revision, hash: committed!.loaded.hash };
    }
    const admit = this.#admit;
    const warnings = admit
      ? await (async () => admit(outcome.loaded.config))().catch((error: unknown) => {
          throw new AdmissionError(error);
        })
      : [];
    const revision = this.#revision + 1;
    this.#revision = revision;
    const entries = [...this.#workers.values()].filter((w) => w.ready);
    if (entries.length === 0) return { result: 'failed', generation: committed?.revision ?? 0, error: 'no worker is running' };
    const failure = await this.#twoPhase(entries, revision, doc, outcome.loaded);
    if (failure) return { ...failure, generation: committed?.revision ?? 0 };
    this.#committed = { revision, doc, loaded: outcome.loaded, tlsDigest: outcome.tls.digest };
    this.#events.emit({ type: 'committed', revision, doc, loaded: outcome.loaded, tls: outcome.tls });
    return { result: 'applied', generation: revision, hash: outcome.loaded.hash, ...(warnings.length > 0 ? { warnings } : {}) };
  }

  /** Prepare on every worker, then commit on all or abort on all. Resolves with the failure, or undefined once all committed. */
  async #twoPhase(entries: WorkerEntry[], revision: number, doc: RawDocument, loaded: LoadedConfig): Promise<Omit<ReloadResult, 'generation'> | undefined> {
    const prepare: PrimaryMessage = {
      type: 'hotconf:prepare',
      revision,
      doc,
      config: JSON.parse(canonicalJson(loaded.config)),
      hash: loaded.hash,
      ...(loaded.references ? { references: [...loaded.references] } : {}),
    };
    const replies = entries.map((entry) => {
      const reply = this.#await(entry, 'hotconf:prepared', this.#replyTimeoutMs);
      entry.link.send(prepare);
      return reply;
    });
    const prepared = await Promise.all(replies);
    const failed = prepared.findIndex((m) => m?.type !== 'hotconf:prepared' || !m.ok);
    if (failed >= 0) {
      for (const entry of entries) entry.link.send({ type: 'hotconf:abort', revision });
      const reply = prepared[failed];
      if (reply?.type === 'hotconf:prepared') {
        if (reply.errors) return { result: 'invalid', errors: reply.errors };
        return { result: 'failed', error: `worker ${entries[failed]!.link.id}: ${reply.error ?? 'provision failed'}`, path: reply.path };
      }
      return { result: 'failed', error: `worker ${entries[failed]!.link.id} did not answer prepare (died or timed out)` };
    }
    const commits = entries.map((entry) => {
      const reply = this.#await(entry, 'hotconf:committed', this.#replyTimeoutMs);
      entry.link.send({ type: 'hotconf:commit', revision });
      return reply.then((message) => {
        if (message?.type === 'hotconf:committed') entry.status = { ...entry.status, revision, generation: message.generation };
      });
    });
    await Promise.all(commits);
    return undefined;
  }

  /** Give a worker that joined the committed revision, after any reload in progress. */
  #boot(entry: WorkerEntry): void {
    this.#booting = this.#booting.then(async () => {
      await this.#queue.idle();
      const committed = this.#committed;
      if (!committed || !this.#workers.has(entry.link.id)) return;
      const failure = await this.#twoPhase([entry], committed.revision, committed.doc, committed.loaded);
      if (failure) this.#log.error({ worker: entry.link.id, ...failure }, 'worker_boot_failed');
      else {
        this.#log.info({ worker: entry.link.id, revision: committed.revision }, 'worker_booted');
        this.#events.emit({ type: 'worker_booted', id: entry.link.id });
      }
    });
  }

  #await(entry: WorkerEntry, key: string, timeoutMs: number): Promise<WorkerMessage | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        entry.waiting.delete(key);
        resolve(undefined);
      }, timeoutMs);
      timer.unref();
      entry.waiting.set(key, (message) => {
        clearTimeout(timer);
        resolve(message);
      });
    });
  }

  #resultOf(error: unknown): ReloadResult {
    const generation = this.#committed?.revision ?? 0;
    const result = reloadResultOf(error, generation);
    if (result) return result;
    this.#log.error({ err: error }, 'reload_crashed');
    return { result: 'failed', generation, error: errorMessage(error) };
  }
}
