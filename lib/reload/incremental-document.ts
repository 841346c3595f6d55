import type { IncrementalLoader, Sectioned } from '../config/incremental.js';
import type { ParseOptions } from '../config/parse.js';
import type { ConfigReference } from '../config/references.js';
import { SpliceParser } from '../config/splice.js';
import { configDelta } from './config-delta.js';
import type { ConfigDelta } from './parse-protocol.js';

/** A valid document as the parser's worker sends it: whole (`config`), or as its differences from the last one sent (`delta`). */
export type SentDocument<C> = { hash: string; references?: ConfigReference[] } & ({ config: C } | { delta: ConfigDelta });

/**
 * The versions of one document (the single config, or one fragment) as the parser's worker loads
 * and sends them: read by a `SpliceParser` (a one-route edit re-reads that route alone), loaded by
 * an `IncrementalLoader` of `kind` (what did not change is not validated or hashed again), and
 * each valid one after the first sent as its differences (`configDelta`) from the last one sent,
 * which the serving thread keeps (`receivedConfig`). Not safe for concurrent use.
 */
export class IncrementalDocument<C extends Sectioned> {
  readonly #parser = new SpliceParser();
  readonly #loader: IncrementalLoader<C>;
  /** The config of the last valid version sent, and the id of the reply it went in. */
  #sent: { readonly id: number; readonly config: C } | undefined;

  constructor(loader: IncrementalLoader<C>) {
    this.#loader = loader;
  }

  /**
   * `text` loaded, to be sent in reply `id`: whole the first time, else as a delta.
   * @throws ConfigInvalidError as `IncrementalLoader.loadParsed` (the last version sent stays the base)
   */
  load(id: number, text: string, options: ParseOptions): SentDocument<C> {
    const { config, hash, references } = this.#loader.loadParsed(this.#parser.parse(text, options), options);
    const base = this.#sent;
    this.#sent = { id, config };
    const refs = references ? { references: [...references] } : {};
    if (base === undefined) return { config, hash, ...refs };
    return { delta: configDelta(base.config, config, base.id), hash, ...refs };
  }
}
