import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { DEFAULT_MAX_DOCUMENT_BYTES, loadConfig } from '../config/parse.js';
import { ConfigInvalidError, errorMessage, FileReadError, FileTooLargeError, SourceReadError } from '../core/errors.js';
import { readRegularFile } from '../core/regular-file.js';
import { FragmentLoader } from '../reload/fragments.js';
import { DirectorySource } from '../sources/directory.js';
import type { Io } from './io.js';

/**
 * `hotconf validate FILE`: parse and validate without starting anything. Exit 0 when valid;
 * exit 1 with one `FILE: PATH: MESSAGE` line per error on stderr otherwise. A directory is
 * validated as `run --config-dir` reads it: each fragment, then their merge; every refused
 * fragment is an error (the daemon would serve the others).
 */
export async function validateCommand(file: string, io: Io): Promise<number> {
  const path = resolve(file);
  if ((await stat(path).catch(() => undefined))?.isDirectory()) return validateDirectory(path, io);
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

/** `validate DIR`: the fragments of a config directory, each and merged, with the daemon's default limits. */
async function validateDirectory(path: string, io: Io): Promise<number> {
  const source = new DirectorySource({ path });
  let plan: Awaited<ReturnType<FragmentLoader['plan']>>;
  let count: number;
  try {
    const doc = await source.read();
    count = doc.fragments?.length ?? 0;
    plan = await new FragmentLoader().plan(doc.fragments ?? [], path);
  } catch (error) {
    if (!(error instanceof SourceReadError || error instanceof ConfigInvalidError)) throw error;
    io.err(`${path}: ${error instanceof ConfigInvalidError ? error.issues.map((i) => i.message).join('; ') : error.message}\n`);
    return 1;
  } finally {
    await source.close();
  }
  for (const issue of plan.issues) io.err(`${issue.origin ?? path}: ${issue.path || '(document)'}: ${issue.message}\n`);
  if (!plan.loaded) io.err(`${path}: no valid fragment among ${count}\n`);
  if (!plan.loaded || plan.issues.length > 0) return 1;
  io.out(`${path}: valid (${count} fragments, hash ${plan.loaded.hash.slice(0, 12)})\n`);
  return 0;
}
