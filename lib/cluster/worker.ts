import { deepFreeze, type LoadedConfig } from '../config/parse.js';
import type { Config } from '../config/schema.js';
import type { Generation } from '../reload/generation.js';
import type { ReloadResult } from '../reload/reloader.js';
import type { RawDocument } from '../sources/source.js';
import { type PrimaryMessage, primaryMessage, type WorkerMessage } from './protocol.js';

/** What a worker agent drives: the worker's daemon. */
export interface WorkerHost {
  /** Apply a document (the first one starts serving); resolves with the reload's result, never rejects. */
  apply(doc: RawDocument): Promise<ReloadResult>;
  /** The worker's leak report. */
  leaks(): unknown;
  /** The worker's metrics registry as JSON (`Registry.getMetricsAsJSON()`). */
  metrics(): Promise<unknown[]>;
  /** Graceful stop; resolves with the final leak report. */
  stop(): Promise<unknown>;
}

interface PendingRevision {
  readonly revision: number;
  /** Set once the primary decided (commit: true). */
  decision: boolean | undefined;
  /** Resolves the wait for the decision. */
  decide: ((commit: boolean) => void) | undefined;
  /** The gate ran: this worker provisioned a generation for the revision. */
  gated: boolean;
}

/**
 * A cluster worker's side of the two-phase reload (see `protocol.ts`): turns the primary's
 * `prepare` into a reload of the worker's daemon whose commit gate (`commitGate`) reports
 * `prepared` and waits for `commit` or `abort`; reports failures (invalid, failed provision) as
 * `prepared` not ok; answers `leaks` and `stop`. Messages are handled one revision at a time, as
 * the primary sends them.
 *
 * Give the daemon `commitGate` and `preloaded` (the config the primary validated, so the worker
 * does not parse it again).
 */
export class WorkerAgent {
  readonly #send: (message: WorkerMessage) => void;
  #host: WorkerHost | undefined;
  #pending: PendingRevision | undefined;
  /** Configs the primary validated, by document version, while their reload runs. */
  readonly #configs = new Map<string, LoadedConfig>();

  readonly #onHealth: ((upstream: string, target: string, healthy: boolean) => void) | undefined;

  /** `onHealth` receives the primary's health transitions (a `HealthFeed`'s `update`). */
  constructor(send: (message: WorkerMessage) => void, onHealth?: (upstream: string, target: string, healthy: boolean) => void) {
    this.#send = send;
    this.#onHealth = onHealth;
  }

  /** Start taking messages for `host`; tells the primary this worker is ready. */
  attach(host: WorkerHost): void {
    this.#host = host;
    this.#send({ type: 'hotconf:ready' });
  }

  /** The daemon's commit gate: report `prepared`, then wait for the primary's decision. */
  readonly commitGate = (_generation: Generation): Promise<boolean> => {
    const pending = this.#pending;
    if (!pending) return Promise.resolve(true);
    pending.gated = true;
    this.#send({ type: 'hotconf:prepared', revision: pending.revision, ok: true });
    return this.#decision(pending);
  };

  /** The daemon's `preloaded`: the config the primary sent with `doc`. */
  readonly preloaded = (doc: RawDocument): LoadedConfig | undefined => this.#configs.get(doc.version);

  /** Handle one IPC message; anything that is not a primary message is ignored. */
  async onMessage(raw: unknown): Promise<void> {
    const message = primaryMessage(raw);
    const host = this.#host;
    if (!message || !host) return;
    switch (message.type) {
      case 'hotconf:prepare':
        await this.#prepare(host, message);
        return;
      case 'hotconf:commit':
      case 'hotconf:abort': {
        const pending = this.#pending;
        if (pending?.revision !== message.revision) return;
        pending.decision = message.type === 'hotconf:commit';
        pending.decide?.(pending.decision);
        return;
      }
      case 'hotconf:leaks':
        this.#send({ type: 'hotconf:leaks', request: message.request, report: host.leaks() });
        return;
      case 'hotconf:metrics':
        this.#send({ type: 'hotconf:metrics', request: message.request, metrics: await host.metrics() });
        return;
      case 'hotconf:health':
        this.#onHealth?.(message.upstream, message.target, message.healthy);
        return;
      case 'hotconf:stop':
        this.#send({ type: 'hotconf:stopped', report: await host.stop() });
        return;
    }
  }

  async #prepare(host: WorkerHost, message: Extract<PrimaryMessage, { type: 'hotconf:prepare' }>): Promise<void> {
    const pending: PendingRevision = { revision: message.revision, decision: undefined, decide: undefined, gated: false };
    this.#pending = pending;
    const doc: RawDocument = { text: message.doc.text, version: message.doc.version, source: message.doc.source };
    const references = message.references && deepFreeze(message.references);
    this.#configs.set(doc.version, { config: deepFreeze(message.config as Config), hash: message.hash, ...(references ? { references } : {}) });
    let result: ReloadResult;
    try {
      result = await host.apply(doc);
    } finally {
      this.#configs.delete(doc.version);
    }
    if (!pending.gated) {
      // No generation was provisioned: the config is the one already served, or it failed.
      if (result.result === 'unchanged') {
        this.#send({ type: 'hotconf:prepared', revision: pending.revision, ok: true });
        await this.#decision(pending);
      } else {
        this.#send({ type: 'hotconf:prepared', revision: pending.revision, ok: false, error: result.error, path: result.path, errors: result.errors });
        this.#pending = undefined;
        return;
      }
    }
    this.#pending = undefined;
    if (pending.decision && (result.result === 'applied' || result.result === 'unchanged')) {
      this.#send({ type: 'hotconf:committed', revision: pending.revision, generation: result.generation });
    }
  }

  #decision(pending: PendingRevision): Promise<boolean> {
    if (pending.decision !== undefined) return Promise.resolve(pending.decision);
    return new Promise((resolve) => {
      pending.decide = resolve;
    });
  }
}
