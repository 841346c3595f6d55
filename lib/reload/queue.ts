import type { RawDocument } from '../sources/source.js';

/** What set a reload off; a label on logs and spans. */
export type ReloadTrigger = 'start' | 'watch' | 'signal' | 'api' | (string & {});

/** One coalesced reload: what the requests that piled up while another ran asked for. */
export interface ReloadJob {
  /** Re-read the source (SIGHUP, API) rather than use a pushed document. */
  readonly pull: boolean;
  /** The newest document a watch pushed, if any. */
  readonly doc: RawDocument | undefined;
  /** The trigger of the newest request. */
  readonly trigger: ReloadTrigger;
}

interface Pending<R> {
  pull: boolean;
  doc: RawDocument | undefined;
  trigger: ReloadTrigger;
  waiters: ((result: R) => void)[];
}

/**
 * Runs reloads one at a time and coalesces the requests that arrive while one runs into a single
 * next job (latest document wins; a pull re-reads the source, which is at least as new), so a
 * burst of 1000 SIGHUPs costs two reloads. Every request's promise resolves with the result of
 * the job that covered it; `run` must not reject.
 *
 * After `close(result)`, queued and new requests resolve with `result` at once; the running job
 * finishes on its own (`running` is its completion).
 */
export class ReloadQueue<R> {
  readonly #run: (job: ReloadJob) => Promise<R>;
  #pending: Pending<R> | undefined;
  #running: Promise<void> | undefined;
  #closed: (() => R) | undefined;

  constructor(run: (job: ReloadJob) => Promise<R>) {
    this.#run = run;
  }

  /** Ask for a reload; resolves with the result of the job that covers this request. */
  enqueue(trigger: ReloadTrigger, request: { pull: boolean; doc?: RawDocument }): Promise<R> {
    if (this.#closed) return Promise.resolve(this.#closed());
    const pending = (this.#pending ??= { pull: false, doc: undefined, trigger, waiters: [] });
    if (request.pull) pending.pull = true;
    if (request.doc) pending.doc = request.doc;
    pending.trigger = trigger;
    const result = new Promise<R>((resolve) => pending.waiters.push(resolve));
    this.#pump();
    return result;
  }

  /** True while a job is running or queued. */
  get busy(): boolean {
    return this.#running !== undefined || this.#pending !== undefined;
  }

  /** The running job's completion, if one runs. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  /** Resolves when no job is running or queued. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Refuse new requests and answer queued ones with `result()`. Idempotent. */
  close(result: () => R): void {
    this.#closed ??= result;
    const pending = this.#pending;
    this.#pending = undefined;
    for (const resolve of pending?.waiters ?? []) resolve(result());
  }

  #pump(): void {
    if (this.#running || !this.#pending) return;
    const { waiters, ...job } = this.#pending;
    this.#pending = undefined;
    this.#running = (async () => {
      const result = await this.#run(job);
      for (const resolve of waiters) resolve(result);
    })().finally(() => {
      this.#running = undefined;
      this.#pump();
    });
  }
}
