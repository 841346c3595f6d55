import { createHash, timingSafeEqual } from 'node:crypto';
import { resolve } from 'node:path';
import { AdminTokenError, errorMessage, FileReadError } from '../core/errors.js';
import { readRegularFile } from '../core/regular-file.js';

/** The environment variable the daemon and the CLI read the admin token from. */
export const ADMIN_TOKEN_ENV = 'HOTCONF_ADMIN_TOKEN';

/** Shortest admin token accepted, in characters: a guessable token protects nothing. */
export const MIN_ADMIN_TOKEN_LENGTH = 16;

/**
 * `token` without surrounding whitespace (a token file usually ends with a newline), checked:
 * at least `MIN_ADMIN_TOKEN_LENGTH` visible ASCII characters, no spaces (RFC 6750 bearer
 * tokens are sent verbatim in one header).
 *
 * @throws AdminTokenError naming `origin` (a file path or `HOTCONF_ADMIN_TOKEN`), never the token
 */
export function checkAdminToken(token: string, origin: string): string {
  const trimmed = token.trim();
  if (!/^[\x21-\x7e]+$/.test(trimmed)) throw new AdminTokenError(origin, 'the admin token must be visible ASCII characters without spaces');
  if (trimmed.length < MIN_ADMIN_TOKEN_LENGTH) throw new AdminTokenError(origin, `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  return trimmed;
}

/** Largest admin token file read, in bytes: a token is a line, not a document. */
export const MAX_ADMIN_TOKEN_FILE_BYTES = 4096;

/**
 * Read and check the admin token in `file` (relative paths resolve against the working
 * directory) with `readRegularFile`: a FIFO, a device or a file over `MAX_ADMIN_TOKEN_FILE_BYTES`
 * is refused without blocking.
 * @throws AdminTokenError naming the file (once) when it is unreadable or its token unusable
 */
export async function readAdminTokenFile(file: string): Promise<string> {
  const path = resolve(file);
  let bytes: Buffer;
  try {
    bytes = await readRegularFile(path, { maxBytes: MAX_ADMIN_TOKEN_FILE_BYTES });
  } catch (error) {
    const reason = error instanceof FileReadError ? error.reason : errorMessage(error);
    throw new AdminTokenError(path, `cannot read the admin token file: ${reason}`, { cause: error });
  }
  return checkAdminToken(bytes.toString('utf8'), path);
}

/**
 * Checks `Authorization: Bearer <token>` headers (RFC 6750; the scheme is case-insensitive) in
 * constant time: both tokens are hashed with SHA-256 and the equal-length digests compared with
 * `crypto.timingSafeEqual`, so neither the token's length nor its content leaks through timing.
 */
export class BearerAuth {
  readonly #expected: Buffer;

  constructor(token: string) {
    this.#expected = digest(token);
  }

  /** True when `header` carries the expected token. */
  verify(header: string | undefined): boolean {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
    // Compare even when the header is malformed, so that case costs the same as a wrong token.
    const equal = timingSafeEqual(digest(match?.[1] ?? ''), this.#expected);
    return equal && match !== null;
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}
