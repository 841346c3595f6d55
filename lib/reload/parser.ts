import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import type { FragmentConfig, LoadedFragment } from '../config/fragments.js';
import { deepFreeze, type LoadedConfig, type ParseOptions } from '../config/parse.js';
import type { ConfigReference } from '../config/references.js';
import type { Config } from '../config/schema.js';
import { ConfigInvalidError, type ConfigIssue, errorCode, errorMessage, HotconfError } from '../core/errors.js';
import { Once } from '../core/once.js';
import { receivedConfig } from './config-delta.js';
import { type FragmentOutcome, type ParseReply, ParseReplySchema } from './parse-protocol.js';

/** Heap a parse may use, in MiB: far above what the document limits allow (a 1 MiB document at every limit needs about 100). */
export const DEFAULT_PARSER_HEAP_MB = 512;

/** A parse was asked of a closed `ConfigParser`, or was still running when it closed. */
export class ParserClosedError extends HotconfError {
  constructor() {
    super('E_PARSER_CLOSED', 'the config parser is closed: hotconf is stopping');
  }
}

export interface ConfigParserOptions {
  /** Old-generation heap limit of the worker, in MiB (`resourceLimits.maxOldGenerationSizeMb`). Default `DEFAULT_PARSER_HEAP_MB`. */
  maxHeapMb?: number;
}

/** One fragment parsed and validated on its own: the fragment and its hash, or why it is refused. */
export type FragmentParse = { readonly ok: true; readonly loaded: LoadedFragment } | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

interface Pending {
  resolve(value: LoadedConfig | FragmentParse[]): void;
  reject(error: Error): void;
  origin: string | undefined;
  /** A `parseFragments`: the names of its fragments, in order, and the fragments it removed. */
  fragments?: { readonly names: readonly string[]; readonly removed: readonly string[] };
}

/**
 * `loadConfig` (parse, resolve references, validate, canonical hash) on a worker thread, so that no document, valid
 * or not, stalls the thread that serves requests and the admin API: a reload costs that thread
 * only posting the text and freezing the config that comes back.
 *
 * Lifecycle: the worker is created by the first `parse` and kept for the next ones (one worker,
 * documents parsed one after another in arrival order); `close()` terminates it and rejects what
 * is pending with `ParserClosedError`. A worker that dies (a bug, or its heap limit) rejects the
 * parses it had (`ConfigInvalidError` for the one whose heap it exhausted) and is replaced by
 * the next `parse`. Concurrency: any number of `parse` calls may be pending.
 *
 * Messages both ways are zod schemas (`parse-protocol.ts`). The worker loads one document after
 * another incrementally (`IncrementalLoader`: what did not change is not validated or hashed
 * again) and sends a config as its differences from the last one it sent (`configDelta`), which
 * this side keeps and rebuilds on: unchanged listeners, routes and upstreams are the last
 * config's frozen objects, so only what changed crosses threads and is frozen, and provisioning
 * can tell unchanged sections by identity. Fragments likewise, per name: a valid fragment comes
 * whole or as its differences from the last valid version of that name this side got (kept
 * until the fragment is removed), which the worker tells for the fragments it changed last
 * (`WorkerFragments`).
 */
export class ConfigParser {
  readonly #maxHeapMb: number;
  readonly #pending = new Map<number, Pending>();
  readonly #close = new Once(() => this.#closeNow());
  #worker: Worker | undefined;
  #lastId = 0;
  /** The config of the worker's last `loaded` or `changed` reply, which its next `changed` reply is told against. */
  #base: { id: number; config: Config } | undefined;
  /** The fragment configs the worker's next deltas are told against. */
  readonly #fragmentBases = new FragmentBases();

  constructor(options: ConfigParserOptions = {}) {
    this.#maxHeapMb = options.maxHeapMb ?? DEFAULT_PARSER_HEAP_MB;
  }

  /**
   * Parse, validate and hash `text` on the worker thread; the config comes back deeply frozen.
   * @throws ConfigInvalidError as `loadConfig` does, naming `options.origin`
   * @throws ParserClosedError once `close()` was called
   */
  parse(text: string, options: ParseOptions = {}): Promise<LoadedConfig> {
    if (this.#close.called) return Promise.reject(new ParserClosedError());
    const worker = (this.#worker ??= this.#spawn());
    const id = ++this.#lastId;
    return new Promise<LoadedConfig>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as Pending['resolve'], reject, origin: options.origin });
      worker.postMessage({ id, text, origin: options.origin, maxDocumentBytes: options.maxDocumentBytes });
    });
  }

  /**
   * `loadFragment` (parse, resolve references, validate, canonical hash) of each fragment on the worker thread, in one
   * message; each outcome comes back in order, the valid fragments deeply frozen. `maxDocumentBytes`
   * is the limit of one fragment. Fragment names are unique within a config; `removed` names
   * the fragments gone from it since (none of `fragments`), which the worker and this side forget.
   * A valid fragment's unchanged sections (listeners, routes, upstreams, top-level values) are
   * the objects of the last valid version of its name this parser gave, when the worker kept that
   * fragment's state (`KEPT_FRAGMENTS`).
   * @throws ParserClosedError once `close()` was called
   * @throws Error when the worker dies meanwhile (its heap limit, `ConfigInvalidError` then, for every fragment of the batch)
   */
  parseFragments(
    fragments: readonly { name: string; text: string }[],
    options: { maxDocumentBytes?: number; removed?: readonly string[] } = {},
  ): Promise<FragmentParse[]> {
    if (this.#close.called) return Promise.reject(new ParserClosedError());
    const worker = (this.#worker ??= this.#spawn());
    const id = ++this.#lastId;
    const names = fragments.map(({ name }) => name);
    const removed = options.removed ?? [];
    return new Promise<FragmentParse[]>((resolve, reject) => {
      const origin = fragments.length === 1 ? fragments[0]!.name : undefined;
      this.#pending.set(id, { resolve: resolve as Pending['resolve'], reject, origin, fragments: { names, removed } });
      worker.postMessage({
        id,
        fragments: fragments.map(({ name, text }) => ({ name, text })),
        maxDocumentBytes: options.maxDocumentBytes,
        ...(removed.length > 0 ? { removed: [...removed] } : {}),
      });
    });
  }

  /** Parses sent to the worker and not answered yet. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Terminate the worker; pending parses reject with `ParserClosedError`. Idempotent. */
  close(): Promise<void> {
    return this.#close.call();
  }

  #spawn(): Worker {
    const worker = parseWorker({ maxOldGenerationSizeMb: this.#maxHeapMb });
    worker.on('message', (message: unknown) => this.#settle(worker, message));
    worker.on('error', (error) => this.#lost(worker, error));
    worker.on('exit', (code) => this.#lost(worker, new Error(`the config parser's worker exited with code ${code}`)));
    return worker;
  }

  #settle(worker: Worker, message: unknown): void {
    if (this.#worker !== worker) return; // a replaced worker's late reply: its parses were rejected
    const parsed = ParseReplySchema.safeParse(message);
    if (!parsed.success) {
      void worker.terminate();
      this.#lost(worker, new Error(`the config parser's worker sent a malformed reply: ${parsed.error.message}`));
      return;
    }
    const reply = parsed.data;
    const pending = this.#pending.get(reply.id);
    let config: Config | undefined;
    let fragments: FragmentParse[] | undefined;
    try {
      config = this.#configOf(reply);
      if (reply.kind === 'fragments') {
        const asked = pending?.fragments;
        if (asked?.names.length !== reply.results.length) {
          throw new Error(
            `the config parser's worker sent ${reply.results.length} fragments for parse ${reply.id}, which had ${asked?.names.length ?? 'none'}`,
          );
        }
        fragments = this.#fragmentBases.take(reply.id, asked.names, reply.results, asked.removed);
      }
    } catch (error) {
      void worker.terminate();
      this.#lost(worker, error as Error);
      return;
    }
    if (!pending) return;
    this.#pending.delete(reply.id);
    if (reply.kind === 'loaded' || reply.kind === 'changed') {
      pending.resolve(frozen(config!, reply));
    } else if (reply.kind === 'fragments') {
      pending.resolve(fragments!);
    } else if (reply.kind === 'invalid') pending.reject(new ConfigInvalidError(reply.issues, reply.origin));
    else pending.reject(new Error(`the config parser failed: ${reply.message}`));
  }

  /**
   * The config of a `loaded` or `changed` reply (kept as the base of the next `changed` one), else undefined.
   * @throws Error when a `changed` reply is not told against the kept config
   */
  #configOf(reply: ParseReply): Config | undefined {
    if (reply.kind !== 'loaded' && reply.kind !== 'changed') return undefined;
    const config = receivedConfig(this.#base, reply, 'a config');
    this.#base = { id: reply.id, config };
    return config;
  }

  /** `worker` died or misbehaved: reject what it had; the next `parse` starts a new one. */
  #lost(worker: Worker, error: Error): void {
    if (this.#worker !== worker) return; // replaced or closed already: its parses are settled
    this.#worker = undefined;
    this.#base = undefined; // the next worker sends its first config whole
    this.#fragmentBases.clear(); // and every fragment whole
    const exhausted = errorCode(error) === 'ERR_WORKER_OUT_OF_MEMORY';
    for (const { reject, origin } of this.#pending.values()) {
      if (exhausted) {
        reject(new ConfigInvalidError([{ path: '', message: `parsing the document exhausted the parser's memory limit of ${this.#maxHeapMb} MiB` }], origin));
      } else reject(new Error(`the config parser's worker failed: ${errorMessage(error)}`, { cause: error }));
    }
    this.#pending.clear();
  }

  async #closeNow(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    this.#base = undefined;
    this.#fragmentBases.clear();
    for (const { reject } of this.#pending.values()) reject(new ParserClosedError());
    this.#pending.clear();
    await worker?.terminate();
  }
}

/**
 * The serving thread's side of the fragments the parser's worker sends as deltas: by name, the
 * fragment config of the worker's last reply that held that fragment valid, and the reply's id,
 * which the worker's next `delta` of that name is told against (`WorkerFragments` keeps the same
 * on its side). Every valid outcome replaces its name's, used or not by the caller; a removed
 * fragment's is dropped; all are dropped with the worker.
 */
export class FragmentBases {
  readonly #bases = new Map<string, { id: number; config: FragmentConfig }>();

  /**
   * The fragments of reply `id`'s `results` (of fragments `names`, in order), deeply frozen, each
   * valid one rebuilt on the kept one of its name if told as a delta, and kept; then the
   * `removed` fragments are forgotten.
   * @throws Error when a `delta` is not told against the kept fragment of its name, or names what it does not have
   */
  take(id: number, names: readonly string[], results: readonly FragmentOutcome[], removed: readonly string[] = []): FragmentParse[] {
    const out = results.map((result, i): FragmentParse => {
      if (!result.ok) return result;
      const name = names[i]!;
      const config = receivedConfig(this.#bases.get(name), result, `fragment ${name}`);
      this.#bases.set(name, { id, config });
      return { ok: true, loaded: frozen(config, result) };
    });
    for (const name of removed) this.#bases.delete(name);
    return out;
  }

  /** Forget every fragment: the next worker sends each whole. */
  clear(): void {
    this.#bases.clear();
  }
}

/** A config (or fragment) the worker sent, with its hash and references, deeply frozen. */
function frozen<C>(config: C, reply: { hash: string; references?: ConfigReference[] }): { config: C; hash: string; references?: readonly ConfigReference[] } {
  const references = reply.references && deepFreeze(reply.references);
  return { config: deepFreeze(config), hash: reply.hash, ...(references ? { references } : {}) };
}

/**
 * The worker running `parse-worker`, next to this module. Compiled (`dist/`), that is a plain
 * `.js` file. Run from the TypeScript sources under tsx (specs, benches), a worker does not get
 * the hooks tsx registered in the main thread (Node 20), so it registers tsx itself first; this
 * branch never runs from `dist/`.
 */
function parseWorker(resourceLimits: Worker['resourceLimits']): Worker {
  const extension = extname(fileURLToPath(import.meta.url));
  const entry = new URL(`./parse-worker${extension}`, import.meta.url);
  // SHARE_ENV: `${env:NAME}` references read the process's environment as it is now, not a copy
  // taken when the worker started.
  if (extension !== '.ts') return new Worker(entry, { resourceLimits, env: SHARE_ENV });
  const bootstrap = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
  // execArgv: [] rather than the parent's `--import tsx`, which would only start another hooks thread.
  return new Worker(bootstrap, { eval: true, resourceLimits, execArgv: [], env: SHARE_ENV });
}
