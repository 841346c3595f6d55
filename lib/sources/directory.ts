import { createHash } from 'node:crypto';
import { type FSWatcher, type Stats, watch } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import { decodeDocument } from '../config/decode.js';
import { DEFAULT_MAX_TOTAL_BYTES } from '../config/fragments.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../config/parse.js';
import { ConfigInvalidError, errorCode, errorMessage, FileReadError, formatIssues, SourceReadError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { DEFAULT_READ_TIMEOUT_MS, readRegularFile } from '../core/regular-file.js';
import type { ConfigSource, RawDocument, RawFragment, SourceInfo, SourceWatchHandlers } from './source.js';
import { reportIfChanged } from './watch.js';

/** The file extensions of fragments; other files (and hidden ones, `..data` included) are not config. */
export const FRAGMENT_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json'];

/** Files read at once by a scan. */
const READ_CONCURRENCY = 16;

/**
 * A file whose status changed this recently before it was read may change again within the
 * file system's timestamp granularity without its status showing it (git's "racily clean"
 * entries): it is read again rather than trusted from its status, in ms.
 */
const RACY_WINDOW_MS = 1000;

export interface DirectorySourceOptions {
  /** The config directory. Relative paths resolve against the working directory. */
  path: string;
  /** Quiet period after the last file-system event before the changed files are re-read, in ms. Default 10. */
  debounceMs?: number;
  /** Files larger than this are refused (as invalid fragments) without being read, in bytes. Default `DEFAULT_MAX_DOCUMENT_BYTES` (1 MiB). */
  maxFragmentBytes?: number;
  /** A directory whose fragment files are larger together is refused as a whole, in bytes. Default `DEFAULT_MAX_TOTAL_BYTES` (64 MiB). */
  maxTotalBytes?: number;
  /** One file's read (stat, open, read) that takes longer fails, in ms. Default `DEFAULT_READ_TIMEOUT_MS` (5000). */
  readTimeoutMs?: number;
  logger?: Logger;
}

/** A file as last read, with the status it was read under. */
interface Entry {
  readonly fragment: RawFragment;
  readonly sizeBytes: number;
  readonly status: string;
  readonly changedMs: number;
  readonly readMs: number;
}

/**
 * Config from a directory: every `*.yaml`, `*.yml` and `*.json` file directly in it (not in
 * subdirectories; hidden files, Kubernetes' `..data` included, are skipped) is a fragment named
 * by its path, and the document is their set (`RawDocument.fragments`, in name order; `version`
 * is the SHA-256 of every fragment's name and version). A fragment's version is the SHA-256 of
 * its bytes. A file that cannot be used (over `maxFragmentBytes`, not UTF-8, not a regular file,
 * unreadable) is a fragment with `error` set, so the merge refuses that one fragment only.
 *
 * `read()` lists the directory and reads the files whose status (inode, size, times) changed
 * since they were last read (or that changed within `RACY_WINDOW_MS` of it), so a reload of a
 * directory of 1,000 files reads the one that changed. `watch()` watches the directory itself
 * (`fs.watch`: one inotify watch on Linux, whose events name the entry that changed: in-place
 * writes, editor rename-saves, delete + recreate, the Kubernetes ConfigMap `..data` symlink swap);
 * an event naming a fragment file reads that file again, one naming a `..` entry (`..data`) or
 * none re-reads the directory. Not chokidar, as `FileSource` uses: chokidar lists the whole
 * directory again (an `lstat` per entry) on every event in it, which for a directory of 100
 * fragments cost more than the reload the event asked for. A document is reported when the
 * set's version changed.
 */
export class DirectorySource implements ConfigSource {
  readonly kind = 'directory';
  readonly path: string;
  readonly #debounceMs: number;
  readonly #maxFragmentBytes: number;
  readonly #maxTotalBytes: number;
  readonly #readTimeoutMs: number;
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** File names that changed since the last check, or 'all' when the directory must be listed again. */
  #dirty: Set<string> | 'all' = new Set();
  #lastVersion: string | undefined;
  /** Reads and checks run one at a time, in order. */
  #serial: Promise<unknown> = Promise.resolve();
  readonly #closing = new Once(() => this.#close());

  constructor(options: DirectorySourceOptions) {
    this.path = resolve(options.path);
    this.#debounceMs = options.debounceMs ?? 10;
    this.#maxFragmentBytes = options.maxFragmentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
    this.#maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES;
    this.#readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'source', source: 'directory' });
  }

  describe(): SourceInfo {
    return { kind: 'directory', path: this.path };
  }

  /**
   * List the directory and read the fragment files that changed.
   * @throws SourceReadError when the directory cannot be listed, or its fragment files are larger
   *   together than `maxTotalBytes`
   */
  read(): Promise<RawDocument> {
    return this.#run(() => this.#scan('all'));
  }

  #run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#serial.then(task, task);
    this.#serial = next.catch(() => undefined);
    return next;
  }

  async #scan(dirty: Set<string> | 'all'): Promise<RawDocument> {
    const names = dirty === 'all' ? await this.#list() : [...dirty];
    const statuses = await mapLimited(names, READ_CONCURRENCY, (name) => statOf(join(this.path, name)));
    if (dirty === 'all') {
      const listed = new Set(names);
      for (const name of this.#entries.keys()) if (!listed.has(name)) this.#entries.delete(name);
    }
    let total = 0;
    const stale: { name: string; stats: Stats | Error }[] = [];
    names.forEach((name, i) => {
      const stats = statuses[i];
      if (!stats) {
        this.#entries.delete(name); // gone since it was listed or reported
        return;
      }
      if (!(stats instanceof Error)) {
        if (stats.isFile()) total += stats.size;
        const entry = this.#entries.get(name);
        if (entry && entry.status === statusKey(stats) && entry.changedMs + RACY_WINDOW_MS < entry.readMs) return;
      }
      stale.push({ name, stats });
    });
    if (dirty !== 'all') for (const [name, entry] of this.#entries) if (!dirty.has(name)) total += entry.sizeBytes;
    if (total > this.#maxTotalBytes) {
      throw new SourceReadError(this.path, `the fragment files are ${total} bytes together; the limit is ${this.#maxTotalBytes} bytes (--max-total-bytes)`);
    }
    await mapLimited(stale, READ_CONCURRENCY, async ({ name, stats }) => {
      const readMs = Date.now();
      const fragment = await this.#readFragment(join(this.path, name));
      // A file whose stat failed is read again next time (its read named why it failed).
      const status = stats instanceof Error ? '' : statusKey(stats);
      const sizeBytes = stats instanceof Error ? 0 : stats.size;
      const changedMs = stats instanceof Error ? readMs : Math.max(stats.ctimeMs, stats.mtimeMs);
      this.#entries.set(name, { fragment, sizeBytes, status, changedMs, readMs });
    });
    const fragments = [...this.#entries.keys()].sort().map((name) => this.#entries.get(name)!.fragment);
    const version = createHash('sha256');
    for (const fragment of fragments) version.update(fragment.name).update('\0').update(fragment.version).update('\n');
    const doc: RawDocument = { text: '', version: version.digest('hex'), source: this.describe(), fragments };
    this.#lastVersion = doc.version;
    return doc;
  }

  /** The fragment files' names in the directory. */
  async #list(): Promise<string[]> {
    try {
      return (await readdir(this.path)).filter(isFragmentName);
    } catch (error) {
      throw new SourceReadError(this.path, `cannot read config directory: ${errorMessage(error)}`, { cause: error });
    }
  }

  async #readFragment(path: string): Promise<RawFragment> {
    try {
      const bytes = await readRegularFile(path, { maxBytes: this.#maxFragmentBytes, timeoutMs: this.#readTimeoutMs });
      const text = decodeDocument(bytes, path);
      return { name: path, text, version: createHash('sha256').update(bytes).digest('hex') };
    } catch (error) {
      let reason: string;
      if (error instanceof FileReadError) reason = `cannot read fragment file: ${error.reason}`;
      else if (error instanceof ConfigInvalidError) reason = formatIssues(error.issues);
      else reason = `cannot read fragment file: ${errorMessage(error)}`;
      return { name: path, text: '', version: `error:${createHash('sha256').update(reason).digest('hex')}`, error: reason };
    }
  }

  async watch(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#watcher) throw new Error('DirectorySource.watch() called twice');
    let watcher: FSWatcher;
    try {
      watcher = watch(this.path, { encoding: 'utf8' }, (event, name) => {
        this.#log.debug({ event, name }, 'file_event');
        this.#changed(name ?? undefined, handlers);
      });
    } catch (error) {
      // Reported, not thrown (as a watcher's later errors are): reads (SIGHUP, POST /reload) still serve.
      handlers.onError(new SourceReadError(this.path, `cannot watch config directory: ${errorMessage(error)}`, { cause: error }));
      return;
    }
    watcher.on('error', (error) => handlers.onError(error));
    this.#watcher = watcher;
    // A write between the caller's last read() and the watch being ready produced no event.
    this.#dirty = 'all';
    this.#schedule(handlers);
  }

  /**
   * The entry `name` of the directory changed (undefined: the event did not say which): read that
   * file again, or the whole directory when it is not a fragment file.
   */
  #changed(name: string | undefined, handlers: SourceWatchHandlers): void {
    if (this.#dirty !== 'all') {
      if (name === undefined) this.#dirty = 'all';
      else if (isFragmentName(name)) this.#dirty.add(name);
      else if (name.startsWith('..')) this.#dirty = 'all';
      else return; // editor swap files, other hidden files: not config
    }
    this.#schedule(handlers);
  }

  #schedule(handlers: SourceWatchHandlers): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#run(() => this.#check(handlers)), this.#debounceMs);
    this.#timer.unref();
  }

  async #check(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#closing.called) return;
    const dirty = this.#dirty;
    this.#dirty = new Set();
    await reportIfChanged(
      () => this.#scan(dirty),
      this.#lastVersion,
      () => this.#closing.called,
      handlers,
    );
  }

  /** Stop watching. Idempotent: every caller, concurrent or later, returns once the watcher is closed. */
  close(): Promise<void> {
    return this.#closing.call();
  }

  async #close(): Promise<void> {
    clearTimeout(this.#timer);
    const watcher = this.#watcher;
    this.#watcher = undefined;
    watcher?.close();
  }
}

/** A fragment file: a visible `*.yaml`, `*.yml` or `*.json` name. */
export function isFragmentName(name: string): boolean {
  return !name.startsWith('.') && FRAGMENT_EXTENSIONS.includes(extname(name).toLowerCase());
}

/** What identifies a file's content for the read cache: device, inode, size, modification and change times (ns). */
function statusKey(stats: Stats): string {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}

/** The status of `path`, following symlinks; undefined when it does not exist (any more), the error when it cannot be had. */
async function statOf(path: string): Promise<Stats | Error | undefined> {
  try {
    return await stat(path);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** `map` with at most `limit` calls of `fn` running at once; results in order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  return out;
}
