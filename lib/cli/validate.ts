import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { loadConfig } from '../config/parse.js';
import { ConfigInvalidError, errorMessage } from '../errors.js';

/**
 * `hotconf validate FILE`: parse and validate without starting anything. Exit 0 when valid;
 * exit 1 with one `FILE: PATH: MESSAGE` line per error on stderr otherwise.
 */
export async function validateCommand(file: string, io: { out: (s: string) => void; err: (s: string) => void }): Promise<number> {
  const path = resolve(file);
  let text: Buffer;
  try {
    text = await readFile(path);
  } catch (error) {
    io.err(`${path}: cannot read config file: ${errorMessage(error)}\n`);
    return 1;
  }
  try {
    const { hash } = loadConfig(text, { origin: path });
    io.out(`${path}: valid (hash ${hash.slice(0, 12)})\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    for (const issue of error.issues) io.err(`${path}: ${issue.path || '(document)'}: ${issue.message}\n`);
    return 1;
  }
}
