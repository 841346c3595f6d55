import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup } from './cleanup.js';

/** A fresh temp directory, removed after the test. */
export async function tempDir(prefix = 'hotconf-spec-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  onCleanup(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Make a real named pipe at `path` (`mkfifo`); nothing writes to it, so an open for reading without O_NONBLOCK would block. */
export function mkfifo(path: string): string {
  execFileSync('mkfifo', [path]);
  return path;
}
