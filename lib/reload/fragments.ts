import { type FragmentInput, FragmentMerger, type FragmentStatus, type MergePlan } from '../config/fragment-merge.js';
import { DEFAULT_MAX_TOTAL_BYTES, loadFragment } from '../config/fragments.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../config/parse.js';
import { ConfigInvalidError } from '../core/errors.js';
import type { RawFragment } from '../sources/source.js';
import type { FragmentParse } from './parser.js';

export type { FragmentState, FragmentStatus, MergePlan } from '../config/fragment-merge.js';

/**
 * Parses fragments each on its own, in order (a `ConfigParser`'s `parseFragments`, or
 * `parseFragmentsHere`); `removed` names the fragments gone since the last call, for a parser
 * that keeps state per fragment to drop.
 */
export type ParseFragments = (
  fragments: readonly { name: string; text: string }[],
  options: { maxDocumentBytes?: number; removed?: readonly string[] },
) => Promise<FragmentParse[]>;

/** Most bytes of fragment text sent to the parser in one message: bounds the parser's heap when a whole directory is new. */
const BATCH_BYTES = 4 * 1024 * 1024;

export interface FragmentLoaderOptions {
  /** Default: `parseFragmentsHere`, on the calling thread. The daemon passes its `ConfigParser`'s. */
  parse?: ParseFragments;
  /** Size limit of one fragment, in bytes. Default `DEFAULT_MAX_DOCUMENT_BYTES` (1 MiB). */
  maxFragmentBytes?: number;
  /** Size limit of all fragments together, in bytes. Default `DEFAULT_MAX_TOTAL_BYTES` (64 MiB). */
  maxTotalBytes?: number;
}

interface Cached {
  readonly version: string;
  readonly bytes: number;
  readonly parsed: FragmentParse;
  /** Its text may hold a secret reference (`${`): parsed again at every plan, as the values may have changed under the same version. */
  readonly resolves: boolean;
}

/** `loadFragment` of each fragment on the calling thread: for `hotconf validate` and specs. */
export const parseFragmentsHere: ParseFragments = async (fragments, options) =>
  fragments.map(({ name, text }) => {
    try {
      return { ok: true, loaded: loadFragment(text, { origin: name, maxDocumentBytes: options.maxDocumentBytes }) };
    } catch (error) {
      if (error instanceof ConfigInvalidError) return { ok: false, issues: error.issues };
      throw error;
    }
  });

/**
 * The reload layer's side of a multi-document config (`RawDocument.fragments`, from any source:
 * the files of `--config-dir`, the keys under an etcd `--prefix`): parses, resolves and validates
 * only the fragments whose version it has not seen, and again those that may hold a secret
 * reference (each on its own, through `parse`, in batches), keeps
 * the outcome per fragment, and plans the merge with last-good-per-fragment (`FragmentMerger`).
 *
 * Lifecycle per reload: `plan(fragments)`, then `commit(plan)` once the plan's config serves or
 * equals what serves, or when it is refused as a whole but its fragment states should show
 * (`/config`); a plan not committed (provisioning failed) changes nothing. One plan at a time:
 * the caller's reload queue serializes them.
 */
export class FragmentLoader {
  readonly #parse: ParseFragments;
  readonly #maxFragmentBytes: number;
  readonly #maxTotalBytes: number;
  readonly #cache = new Map<string, Cached>();
  readonly #merger = new FragmentMerger();

  constructor(options: FragmentLoaderOptions = {}) {
    this.#parse = options.parse ?? parseFragmentsHere;
    this.#maxFragmentBytes = options.maxFragmentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
    this.#maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
  }

  /**
   * Parse what changed and plan the merge of `fragments` (every fragment's current version; names
   * unique). A fragment with `error` set (its source could not read it) is refused with that
   * message, like one that does not parse.
   *
   * @throws ConfigInvalidError (naming `origin`) when the fragments together exceed the total
   *   size limit: the set is refused as a whole, and every fragment's last good version stays
   * @throws whatever `parse` throws (the parser closed or crashed)
   */
  async plan(fragments: readonly RawFragment[], origin?: string): Promise<MergePlan> {
    const fresh: RawFragment[] = [];
    const seen = new Set<string>();
    let total = 0;
    for (const fragment of fragments) {
      seen.add(fragment.name);
      const cached = this.#cache.get(fragment.name);
      if (cached?.version === fragment.version && !cached.resolves) total += cached.bytes;
      else {
        total += Buffer.byteLength(fragment.text);
        fresh.push(fragment);
      }
    }
    if (total > this.#maxTotalBytes) {
      throw new ConfigInvalidError(
        [{ path: '', message: `the ${fragments.length} fragments are ${total} bytes together; the limit is ${this.#maxTotalBytes} bytes (--max-total-bytes)` }],
        origin,
      );
    }
    const removed = [...this.#cache.keys()].filter((name) => !seen.has(name));
    for (const name of removed) this.#cache.delete(name);
    await this.#parseFresh(fresh, removed);
    const inputs: FragmentInput[] = fragments.map(({ name, version }) => ({ name, version, parsed: this.#cache.get(name)!.parsed }));
    return this.#merger.plan(inputs);
  }

  /**
   * Some fragment last planned may hold a secret reference: the same fragment versions may make
   * another config (a variable set, a file rotated), so a document of the served version is planned again.
   */
  get resolves(): boolean {
    for (const cached of this.#cache.values()) if (cached.resolves) return true;
    return false;
  }

  /** Make `plan` the merged state (see the class). */
  commit(plan: MergePlan): void {
    this.#merger.commit(plan);
  }

  /** Every fragment's state after the last commit, in name order (`/config`). */
  statuses(): FragmentStatus[] {
    return this.#merger.statuses();
  }

  /** Parse `fresh`, in batches; the first (empty if need be) tells the parser the `removed` fragments. */
  async #parseFresh(fresh: readonly RawFragment[], removed: readonly string[]): Promise<void> {
    let batch: RawFragment[] = [];
    let bytes = 0;
    let told = removed.length === 0;
    const flush = async () => {
      if (batch.length === 0 && told) return;
      const sent = batch;
      batch = [];
      bytes = 0;
      const results = await this.#parse(sent, { maxDocumentBytes: this.#maxFragmentBytes, ...(told ? {} : { removed }) });
      told = true;
      sent.forEach((fragment, i) => {
        const resolves = fragment.text.includes('${');
        this.#cache.set(fragment.name, { version: fragment.version, bytes: Buffer.byteLength(fragment.text), parsed: results[i]!, resolves });
      });
    };
    for (const fragment of fresh) {
      if (fragment.error !== undefined) {
        const parsed: FragmentParse = { ok: false, issues: [{ path: '', message: fragment.error }] };
        this.#cache.set(fragment.name, { version: fragment.version, bytes: 0, parsed, resolves: false });
        continue;
      }
      batch.push(fragment);
      bytes += fragment.text.length;
      if (bytes >= BATCH_BYTES) await flush();
    }
    await flush();
  }
}
