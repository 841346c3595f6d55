import { createHash } from 'node:crypto';
import { realpath } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import type { FSWatcher } from 'chokidar';
import { decodeDocument } from '../config/decode.js';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../config/parse.js';
import { errorMessage, FileReadError, SourceReadError } from '../core/errors.js';
import { type Logger, silentLogger } from '../core/log.js';
import { Once } from '../core/once.js';
import { DEFAULT_READ_TIMEOUT_MS, readRegularFile } from '../core/regular-file.js';
import type { ConfigSource, RawDocument, SourceInfo, SourceWatchHandlers } from './source.js';
import { reportIfChanged, watchConfigDirs, whenReady } from './watch.js';

export interface FileSourceOptions {
  /** The config file (YAML or JSON). Relative paths resolve against the working directory. */
  path: string;
  /** Quiet period after the last file-system event before the file is re-read, in ms. Default 25. */
  debounceMs?: number;
  /** Files larger than this are refused without being read, in bytes. Default `DEFAULT_MAX_DOCUMENT_BYTES` (1 MiB). */
  maxDocumentBytes?: number;
  /** A read (stat, open, read) that takes longer fails, in ms. Default `DEFAULT_READ_TIMEOUT_MS` (5000). */
  readTimeoutMs?: number;
  logger?: Logger;
}

/**
 * Kubernetes mounts a ConfigMap as `file -> ..data/file` and swaps the `..data` symlink
 * atomically; watching that name catches the swap.
 */
const KUBERNETES_DATA_LINK = '..data';

/**
 * Config from a file. `read()` reads and hashes the bytes (`version` is their SHA-256).
 * `watch()` watches the file's directory with chokidar, which catches in-place writes, editor
 * rename-saves, delete + recreate and Kubernetes ConfigMap `..data` symlink swaps; events are
 * debounced, the file is re-read, and a document is reported only when its bytes changed since
 * the last read. A file that is missing or unreadable while watched is reported to `onError` and
 * the last document stays in force.
 */
export class FileSource implements ConfigSource {
  readonly kind = 'file';
  readonly path: string;
  readonly #debounceMs: number;
  readonly #maxBytes: number;
  readonly #readTimeoutMs: number;
  readonly #log: Logger;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastVersion: string | undefined;
  readonly #closing = new Once(() => this.#close());

  constructor(options: FileSourceOptions) {
    this.path = resolve(options.path);
    this.#debounceMs = options.debounceMs ?? 25;
    this.#maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
    this.#readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    this.#log = (options.logger ?? silentLogger()).child({ component: 'source', source: 'file' });
  }

  describe(): SourceInfo {
    return { kind: 'file', path: this.path };
  }

  /**
   * Read the file with `readRegularFile`: anything but a regular file (a directory, a FIFO, a
   * symlink to a device) is refused before it is opened, the open never blocks, and the read
   * stops past `maxDocumentBytes` and gives up after `readTimeoutMs`.
   * @throws SourceReadError naming the file and why it cannot be read
   * @throws ConfigInvalidError when it is not UTF-8 text (`decodeDocument`)
   */
  async read(): Promise<RawDocument> {
    let bytes: Buffer;
    try {
      bytes = await readRegularFile(this.path, { maxBytes: this.#maxBytes, timeoutMs: this.#readTimeoutMs });
    } catch (error) {
      const reason = error instanceof FileReadError ? error.reason : errorMessage(error);
      throw new SourceReadError(this.path, `cannot read config file: ${reason}`, { cause: error });
    }
    const version = createHash('sha256').update(bytes).digest('hex');
    this.#lastVersion = version;
    return { text: decodeDocument(bytes, this.path), version, source: this.describe() };
  }

  async watch(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#watcher) throw new Error('FileSource.watch() called twice');
    const dirs = new Set([dirname(this.path)]);
    const names = new Set([basename(this.path), KUBERNETES_DATA_LINK]);
    // When the file is a symlink into another directory, edits there must be seen too.
    const target = await realpath(this.path).catch(() => undefined);
    if (target && target !== this.path) {
      dirs.add(dirname(target));
      names.add(basename(target));
    }
    const watcher = watchConfigDirs([...dirs], {
      accept: (path) => dirs.has(path) || names.has(basename(path)),
      log: this.#log,
      onEvent: () => this.#schedule(handlers),
      onRaw: (name) => {
        if (names.has(basename(String(name)))) this.#schedule(handlers);
      },
      onError: (error) => handlers.onError(error),
    });
    this.#watcher = watcher;
    await whenReady(watcher);
    // A write between the caller's last read() and the watch being ready produced no event:
    // compare once now, so it is not lost.
    this.#schedule(handlers);
  }

  #schedule(handlers: SourceWatchHandlers): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#check(handlers), this.#debounceMs);
    this.#timer.unref();
  }

  async #check(handlers: SourceWatchHandlers): Promise<void> {
    if (this.#closing.called) return;
    await reportIfChanged(
      () => this.read(),
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
    await watcher?.close();
  }
}
