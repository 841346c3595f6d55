import { resolve } from 'node:path';
import { DEFAULT_MAX_DOCUMENT_BYTES, loadConfig } from '../config/parse.js';
import { ConfigInvalidError, errorMessage, FileReadError, FileTooLargeError } from '../core/errors.js';
import { readRegularFile } from '../core/regular-file.js';
import type { Io } from './io.js';

/**
 * `hotconf validate FILE`: parse and validate without starting anything. Exit 0 when valid;
 * exit 1 with one `FILE: PATH: MESSAGE` line per error on stderr otherwise.
 */
export async function validateCommand(file: string, io: Io): Promise<number> {
  const path = resolve(file);
  const text = await readConfigFile(path, io);
  const hash = text && checkConfig(path, text, io);
  if (!hash) return 1;
  io.out(`${path}: valid (hash ${hash.slice(0, 12)})\n`);
  return 0;
}

/**
 * Read a config file as the daemon does (`readRegularFile`: regular files only, at most
 * `DEFAULT_MAX_DOCUMENT_BYTES`); on failure print `FILE: cannot read config file: REASON` (or
 * `tooLarge(size)` for a file over the limit, when given) and return undefined.
 */
export async function readConfigFile(path: string, io: Io, tooLarge?: (sizeBytes: number) => string): Promise<Buffer | undefined> {
  try {
    return await readRegularFile(path, { maxBytes: DEFAULT_MAX_DOCUMENT_BYTES });
  } catch (error) {
    if (error instanceof FileTooLargeError && tooLarge) io.err(`${path}: ${tooLarge(error.sizeBytes)}\n`);
    else io.err(`${path}: cannot read config file: ${error instanceof FileReadError ? error.reason : errorMessage(error)}\n`);
    return undefined;
  }
}

/**
 * Validate a document with the daemon's schema. Returns its canonical hash, or undefined after
 * printing one `FILE: PATH: MESSAGE` line per error.
 */
export function checkConfig(path: string, text: Buffer, io: Io): string | undefined {
  try {
    return loadConfig(text, { origin: path }).hash;
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    for (const issue of error.issues) io.err(`${path}: ${issue.path || '(document)'}: ${issue.message}\n`);
    return undefined;
  }
}
