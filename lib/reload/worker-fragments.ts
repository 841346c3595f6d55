import { createHash } from 'node:crypto';
import { FRAGMENT_DOCUMENT, type FragmentConfig, loadFragment } from '../config/fragments.js';
import { IncrementalLoader } from '../config/incremental.js';
import type { ParseOptions } from '../config/parse.js';
import { ConfigInvalidError } from '../core/errors.js';
import { IncrementalDocument } from './incremental-document.js';
import type { FragmentOutcome, FragmentsRequest } from './parse-protocol.js';

/**
 * Fragments whose incremental state the parser's worker keeps, the most recently changed: a
 * fragment of 1,000 routes keeps about 1.6 MB (its text, parsed data, the JSON of its sections,
 * its config), so that 100 fragments of 100,000 routes do not keep 160 MB; an edit session
 * touches a few files at a time.
 */
export const KEPT_FRAGMENTS = 8;

/** What the worker keeps to load the next version of one fragment at the cost of what changed (its last version sent: the one `ConfigParser` keeps for this name). */
type Kept = IncrementalDocument<FragmentConfig>;

/**
 * The parser worker's side of fragments (`FragmentsRequest`): `loadFragment` of each fragment, its
 * outcome exactly `loadFragment`'s, at the cost of what changed for the fragments that changed
 * recently.
 *
 * A fragment seen for the first time (by name: every fragment at start-up) is loaded whole and
 * nothing is kept of it but a digest of its text. A fragment seen again with another text (a new
 * version; the same text, sent again to resolve its secret references, is loaded whole again and
 * takes no place) gets a `SpliceParser` and an `IncrementalLoader` of its own, kept for the `capacity` (default `KEPT_FRAGMENTS`) most recently
 * changed fragments, least recently changed dropped first: its next versions are read and
 * validated by what changed, and each valid one after the first is sent as its differences
 * (`configDelta`) from the last one sent for that name, so that `ConfigParser` rebuilds it on the
 * frozen fragment config it kept, sharing every unchanged section. A fragment's state is dropped
 * when it is removed (`removed`), and for every fragment of a request that threw anything but
 * `ConfigInvalidError` (its `sent` may then not be what `ConfigParser` kept).
 *
 * Not safe for concurrent use: the worker answers one request at a time.
 */
export class WorkerFragments {
  readonly #capacity: number;
  /** By name, least recently changed first. */
  readonly #kept = new Map<string, Kept>();
  /** The fragments loaded once at least (not removed since) and not kept: the SHA-256 of the text last loaded, by name. */
  readonly #seen = new Map<string, string>();

  constructor(capacity = KEPT_FRAGMENTS) {
    this.#capacity = capacity;
  }

  /** How many fragments have incremental state kept (at most `capacity`). */
  get kept(): number {
    return this.#kept.size;
  }

  /**
   * The outcome of each fragment of `request`, in its order: a valid one whole (`config`) or as
   * its differences from the last one sent of its name (`delta`), an invalid one's issues.
   * @throws whatever loading throws but `ConfigInvalidError` (a bug), the state of every fragment of the request dropped
   */
  answer({ id, fragments, maxDocumentBytes, removed = [] }: FragmentsRequest): FragmentOutcome[] {
    for (const name of removed) {
      this.#kept.delete(name);
      this.#seen.delete(name);
    }
    try {
      return fragments.map(({ name, text }) => this.#answer(id, name, text, { origin: name, maxDocumentBytes }));
    } catch (error) {
      for (const { name } of fragments) this.#kept.delete(name);
      throw error;
    }
  }

  #answer(id: number, name: string, text: string, options: ParseOptions): FragmentOutcome {
    const kept = this.#state(name, text);
    try {
      if (kept === undefined) {
        const { config, hash, references } = loadFragment(text, options);
        return { ok: true, config, hash, ...(references ? { references: [...references] } : {}) };
      }
      return { ok: true, ...kept.load(id, text, options) };
    } catch (error) {
      if (error instanceof ConfigInvalidError) return { ok: false, issues: [...error.issues] };
      throw error;
    }
  }

  /**
   * The state of fragment `name`, whose text is now `text`, made the most recent; made for a
   * fragment seen before with another text; undefined for one seen the first time or with the same text.
   */
  #state(name: string, text: string): Kept | undefined {
    let kept = this.#kept.get(name);
    if (kept !== undefined) this.#kept.delete(name);
    else {
      const digest = createHash('sha256').update(text).digest('base64');
      const seen = this.#seen.get(name);
      this.#seen.set(name, digest);
      if (seen === undefined || seen === digest) return undefined;
      kept = new IncrementalDocument(new IncrementalLoader(FRAGMENT_DOCUMENT));
    }
    this.#kept.set(name, kept);
    if (this.#kept.size > this.#capacity) this.#kept.delete(this.#kept.keys().next().value!);
    return kept;
  }
}
