import type { Registry } from 'prom-client';

/**
 * What a config source hands the reloader: raw text plus where and which version it is. Sources
 * never parse; parsing and validation happen in the reloader, identically for every source.
 */
export interface RawDocument {
  /** The document as read (YAML or JSON), decoded from UTF-8 by `decodeDocument` (which refuses other encodings). */
  text: string;
  /**
   * Identifies this content at its source: the SHA-256 of the bytes for a file,
   * `MOD_REVISION:SHA256-PREFIX` for etcd (a mod revision alone repeats once a cluster's history
   * is rebuilt). Equal versions from the same source mean equal text.
   */
  version: string;
  /** Source facts for `/config` and logs, e.g. `{kind: 'file', path}`. Never holds secrets. */
  source: SourceInfo;
  /**
   * Set by multi-document sources (`--config-dir`, etcd `--prefix`): the config is the merge of
   * these fragments (in `name` order), `text` is empty, and `version` identifies the whole set
   * (equal versions mean equal fragments). Unset for the single-file and single-key sources: a
   * single document is a config of one fragment.
   */
  fragments?: readonly RawFragment[];
}

/** One fragment of a multi-document source: a file of a config directory, a key under an etcd prefix. */
export interface RawFragment {
  /** Stable name that errors and `/config` show: the file's path, the etcd key. Fragments merge in name order. */
  name: string;
  /** The fragment as read (YAML or JSON), decoded from UTF-8. */
  text: string;
  /** Identifies this fragment's content, as `RawDocument.version` does a document's. */
  version: string;
  /**
   * Set when the source could not read this fragment (over the per-fragment size limit, not
   * UTF-8, unreadable): why, naming no path (`name` does). `text` is then empty; the fragment is
   * refused like one that does not parse, and its last good version stays merged.
   */
  error?: string;
}

/** `{kind, ...}`: shown as `source` in `/config`. */
export type SourceInfo = { kind: string } & Record<string, unknown>;

/** Callbacks a watching source reports to. Both are called outside any reload. */
export interface SourceWatchHandlers {
  /** A new document is available (not yet validated). */
  onDocument(doc: RawDocument): void;
  /** A background problem (unreadable file, lost connection) that did not produce a document. */
  onError(error: Error): void;
}

/**
 * A place config documents come from. Lifecycle: `read()` any number of times, `watch()` at most
 * once, `close()` once (idempotent) to stop watching and release every handle it opened.
 */
export interface ConfigSource {
  /** `file`, `etcd`. */
  readonly kind: string;
  /**
   * Read the current document now, bypassing any cache (SIGHUP, `POST /reload`, start).
   * @throws SourceReadError when the source cannot produce a document
   */
  read(): Promise<RawDocument>;
  /** Start watching; resolves once the watch is established. */
  watch(handlers: SourceWatchHandlers): Promise<void>;
  /** Source facts for `/config` before any document was read. */
  describe(): SourceInfo;
  close(): Promise<void>;
  /**
   * Optional: add the source's own metrics (connection state, revision, ...) to the daemon's
   * prom-client registry. Called once per registry by `DaemonMetrics`; the metrics read the
   * source's state at scrape time, so the metrics module needs to know nothing of the source.
   */
  registerMetrics?(register: Registry): void;
  /**
   * Optional: the reloader reports each document of this source that it serves (applied, or
   * unchanged from the config serving), so the source's own logs can tell the serving version
   * from the newest one it delivered, which may have been rejected.
   */
  served?(doc: RawDocument): void;
}
