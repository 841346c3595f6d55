import { resolve } from 'node:path';
import { type Logger, pino } from 'pino';
import type { ResourceFactory } from '../registry/registry.js';
import type { ReopenableFile, ResourceKind } from './kind.js';

/** Registry kind (and metric label) of access log files. */
export const ACCESS_LOG_FILE_KIND = 'access_log_file';

/** Pending lines a file may hold while the disk is slower than the requests (sonic-boom's `maxLength`); more are dropped. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

type Destination = ReturnType<typeof pino.destination>;

/** An open access log file: an asynchronous pino destination (sonic-boom). */
export interface AccessLogFile extends ReopenableFile {
  /** Absolute path of the file. */
  readonly path: string;
  /** Append one line (newline included); dropped once the file is closed. */
  write(line: string): void;
  /** How many times the file was opened: 1, plus one per `reopen`. */
  readonly opens: number;
  /** Lines dropped: more than 16 MiB were waiting for the disk, or the file had closed. */
  readonly dropped: number;
  /** Resolves once every line written so far reached the file (sonic-boom's `flush`). */
  flush(): Promise<void>;
}

export interface AccessLogFileOptions {
  /** Errors of the file after it opened (a failed write or reopen): never thrown, reported here. */
  onError: (error: Error) => void;
  /** `access_log_reopened` and `access_log_dropped` events. */
  log?: Logger;
  /** Joined while the file is open, so that SIGUSR1 reopens it. */
  files?: { add(file: ReopenableFile): () => void };
}

/**
 * The registry factory for an access log file (key: its absolute path, so a reload that keeps
 * the path keeps the open file, and every listener logging to one path shares it).
 *
 * Lines are written asynchronously (pino's sonic-boom destination, appending): a request never
 * waits for the disk, and lines written meanwhile are batched into the next write; past 16 MiB
 * waiting, lines are dropped and counted (`access_log_dropped`, at most once a second) instead of
 * growing the heap without bound. `create` resolves once the file is open and rejects with the
 * open error (`ENOENT` for a missing directory, `EACCES`). `reopen` (SIGUSR1, after logrotate
 * renamed the file) writes what is pending to the old file, then opens the path again, as nginx
 * does; lines logged meanwhile wait and go to the new one, so none is lost. `destroy` flushes and
 * closes the file; pino flushes it synchronously if the process exits first.
 */
export function accessLogFileFactory(path: string, options: AccessLogFileOptions): ResourceFactory<AccessLogFile> {
  return {
    async create() {
      // Buffer mode: in text mode sonic-boom measures the UTF-8 length of its whole pending chunk
      // (up to 16 KiB) on every write, which costs more than building the line.
      const destination = pino.destination({ dest: path, sync: false, append: true, mkdir: false, maxLength: MAX_BUFFERED_BYTES, contentMode: 'buffer' });
      await new Promise<void>((ready, fail) => {
        const opened = () => {
          destination.off('error', failed);
          ready();
        };
        const failed = (error: Error) => {
          destination.off('ready', opened);
          // pino flushes its destinations at exit until they emit 'close': one that never opened must not.
          destination.emit('close');
          fail(error);
        };
        destination.once('ready', opened);
        destination.once('error', failed);
      });
      return new OpenAccessLog(path, destination, options);
    },
    async destroy(file) {
      await (file as OpenAccessLog).close();
    },
  };
}

class OpenAccessLog implements AccessLogFile {
  readonly path: string;
  #opens = 1;
  #dropped = 0;
  #lastDropLog = 0;
  readonly #destination: Destination;
  readonly #leave: () => void;
  #closing: Promise<void> | undefined;
  #ended = false;

  constructor(path: string, destination: Destination, options: AccessLogFileOptions) {
    this.path = path;
    this.#destination = destination;
    destination.on('error', (error: Error) => options.onError(error));
    destination.on('ready', () => {
      // Every 'ready' after the first open is a reopen that completed.
      this.#opens += 1;
      options.log?.info({ path }, 'access_log_reopened');
    });
    destination.on('drop', () => {
      this.#dropped += 1;
      const now = Date.now();
      if (now - this.#lastDropLog < 1000) return;
      this.#lastDropLog = now;
      options.log?.warn({ path, dropped: this.#dropped }, 'access_log_dropped');
    });
    this.#leave = options.files?.add(this) ?? (() => {});
  }

  write(line: string): void {
    // Lines of requests that end after the file closed (cut by a drain timeout, as their
    // generation is released) are counted as dropped: sonic-boom throws on a write after `end`.
    if (this.#ended) this.#dropped += 1;
    else this.#destination.write(Buffer.from(line) as unknown as string);
  }

  get opens(): number {
    return this.#opens;
  }

  get dropped(): number {
    return this.#dropped;
  }

  reopen(): void {
    if (!this.#closing) this.#destination.reopen();
  }

  flush(): Promise<void> {
    return new Promise((done) => {
      if (this.#closing) done();
      // The callback gets an error when there is nothing to flush to (a reopen in progress): done either way.
      else this.#destination.flush(() => done());
    });
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#leave();
    const destination = this.#destination;
    this.#closing = new Promise((done) => {
      destination.once('close', () => done());
      // After the sockets a drain cut have closed (their responses' lines come then), not before.
      setImmediate(() => {
        this.#ended = true;
        destination.end();
      });
    });
    return this.#closing;
  }
}

/**
 * The access log files open in this process, for SIGUSR1: each file joins when it opens and
 * leaves when it is destroyed, so `reopen` reaches exactly the files some generation still uses.
 */
export class AccessLogFiles {
  readonly #open = new Set<ReopenableFile>();

  add(file: ReopenableFile): () => void {
    this.#open.add(file);
    return () => void this.#open.delete(file);
  }

  /** Reopen every open file (logrotate's `postrotate`); returns how many. */
  reopen(): number {
    for (const file of this.#open) file.reopen();
    return this.#open.size;
  }

  get size(): number {
    return this.#open.size;
  }
}

/** What an access log file is built from: its path as configured (relative: against the working directory). */
export interface AccessLogFileInput {
  readonly path: string;
}

/** The `access_log_file` kind: one open file per absolute path, shared by every listener and generation writing to it. */
export const accessLogFileKind: ResourceKind<AccessLogFileInput, AccessLogFile> = {
  kind: ACCESS_LOG_FILE_KIND,
  key: (input) => resolve(input.path),
  factory: (input, deps) =>
    accessLogFileFactory(resolve(input.path), {
      onError: (error) => deps.onBackgroundError('access_log', error),
      log: deps.logger.child({ component: 'access_log' }),
      files: deps.logFiles,
    }),
};
