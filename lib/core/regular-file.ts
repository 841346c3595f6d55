import { closeSync, constants, fstatSync, openSync, readSync, type Stats, statSync } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
import { getSystemErrorMap } from 'node:util';
import { FileReadError, FileTooLargeError } from './errors.js';
import { withTimeout } from './timeout.js';

/** Time a whole read (stat, open, read, close) may take by default, in ms. */
export const DEFAULT_READ_TIMEOUT_MS = 5000;

/** Bytes asked of the kernel per `read`, in bytes. */
const CHUNK_BYTES = 64 * 1024;

/**
 * `O_NONBLOCK`: a FIFO swapped in between the `stat` and the `open` opens at once instead of
 * waiting for a writer (a blocked `open` holds a libuv thread for good and makes the process
 * unkillable but by SIGKILL). `O_NOCTTY`: a terminal never becomes the controlling one.
 */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

export interface ReadRegularFileOptions {
  /** Largest file accepted, in bytes: larger ones are refused before reading, and a read stops past it. */
  maxBytes: number;
  /** Budget for the whole read, in ms. Default `DEFAULT_READ_TIMEOUT_MS`. */
  timeoutMs?: number;
}

/**
 * Read a file hotconf is configured with (a config file, a token file, a PEM file), refusing
 * anything that is not a regular file. Symlinks are followed; the target must be a regular
 * file. In order:
 *
 * 1. `stat` the path: a directory, FIFO, socket or device (a symlink to `/dev/zero`, whose size
 *    `stat` reports as 0) is refused before it is opened, and so is a file over `maxBytes`;
 * 2. `open` it with `O_NONBLOCK`, so the open never waits for anything, and check the opened
 *    file again (`fstat`): it may have been replaced since step 1;
 * 3. read it in chunks, stopping as soon as more than `maxBytes` arrived (a file that grows while
 *    read cannot make the read unbounded).
 *
 * The whole read is bounded by `timeoutMs` (a hung network file system): on timeout the caller
 * gets the error at once; the read still running in libuv's pool closes its file when it ends.
 *
 * @throws FileTooLargeError over `maxBytes`
 * @throws FileReadError for any other reason, `reason` naming it without the path
 */
export function readRegularFile(path: string, options: ReadRegularFileOptions): Promise<Buffer> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  return withTimeout(readChecked(path, options.maxBytes), timeoutMs, () => new FileReadError(path, `the read did not finish within ${timeoutMs} ms`));
}

async function readChecked(path: string, maxBytes: number): Promise<Buffer> {
  try {
    checkStats(path, await stat(path), maxBytes);
    const handle = await open(path, OPEN_FLAGS);
    try {
      const stats = await handle.stat();
      checkStats(path, stats, maxBytes);
      return await readBounded(path, handle, maxBytes);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof FileReadError) throw error;
    throw new FileReadError(path, systemReason(error), { cause: error });
  }
}

/**
 * `readRegularFile` without the promise, for a thread that may block: the config parser's worker
 * thread reads the files a config references (`${file:/path}`) while it parses, never the thread
 * serving requests. The same checks in the same order (stat, open with `O_NONBLOCK`, fstat, a
 * bounded read); there is no timeout, as a blocked synchronous read cannot be abandoned.
 *
 * @throws FileTooLargeError over `maxBytes`
 * @throws FileReadError for any other reason, `reason` naming it without the path
 */
export function readRegularFileSync(path: string, options: ReadRegularFileOptions): Buffer {
  try {
    checkStats(path, statSync(path), options.maxBytes);
    const fd = openSync(path, OPEN_FLAGS);
    try {
      checkStats(path, fstatSync(fd), options.maxBytes);
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, options.maxBytes + 1 - total));
        const bytesRead = readSync(fd, chunk, 0, chunk.byteLength, null);
        if (bytesRead === 0) return Buffer.concat(chunks, total);
        chunks.push(chunk.subarray(0, bytesRead));
        total += bytesRead;
        if (total > options.maxBytes) throw new FileTooLargeError(path, total, options.maxBytes, true);
      }
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (error instanceof FileReadError) throw error;
    throw new FileReadError(path, systemReason(error), { cause: error });
  }
}

function checkStats(path: string, stats: Stats, maxBytes: number): void {
  if (!stats.isFile()) throw new FileReadError(path, `is ${fileType(stats)}, not a regular file`);
  if (stats.size > maxBytes) throw new FileTooLargeError(path, stats.size, maxBytes, false);
}

async function readBounded(path: string, handle: FileHandle, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    // Never ask for more than one byte past the limit: that byte is enough to know it was passed.
    const chunk = Buffer.allocUnsafe(Math.min(CHUNK_BYTES, maxBytes + 1 - total));
    const { bytesRead } = await handle.read(chunk, 0, chunk.byteLength, null);
    if (bytesRead === 0) return Buffer.concat(chunks, total);
    chunks.push(chunk.subarray(0, bytesRead));
    total += bytesRead;
    if (total > maxBytes) throw new FileTooLargeError(path, total, maxBytes, true);
  }
}

/** What `stats` describes, with its article: `a directory`, `a FIFO (named pipe)`. */
function fileType(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isSocket()) return 'a socket';
  if (stats.isCharacterDevice()) return 'a character device (such as /dev/zero)';
  if (stats.isBlockDevice()) return 'a block device';
  return 'of an unknown type';
}

/**
 * A system error as `no such file or directory (ENOENT)`: Node's own message repeats the path
 * (`ENOENT: no such file or directory, open '/x'`), which every caller already names.
 */
function systemReason(error: unknown): string {
  const { errno, code } = error as NodeJS.ErrnoException;
  const known = typeof errno === 'number' ? getSystemErrorMap().get(errno) : undefined;
  if (known) return `${known[1]} (${known[0]})`;
  return code ? `${(error as Error).message.split(',')[0]} (${code})` : String((error as Error)?.message ?? error);
}
