import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.js';

/** The CLI shim, running the compiled JavaScript in dist/ (`npm test` builds it first). */
export const HOTCONF_BIN = fileURLToPath(new URL('../../bin/hotconf.js', import.meta.url));

export interface HotconfProcess {
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** stdout parsed as pino JSON lines (other lines skipped). */
  logLines(): Record<string, unknown>[];
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | NodeJS.Signals>;
}

/**
 * Run `node bin/hotconf.js ...args` as a real child process with its output captured. A process
 * still running after the test is resumed (if stopped) and killed.
 */
export function spawnHotconf(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): HotconfProcess {
  const child = spawn(process.execPath, [HOTCONF_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal!)));
  onCleanup(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await exited;
  });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logLines: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    exited,
  };
}

/** Run a short-lived command to completion: exit code, stdout and stderr. */
export async function runHotconf(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | NodeJS.Signals; stdout: string; stderr: string }> {
  const proc = spawnHotconf(args, options);
  const code = await proc.exited;
  return { code, stdout: proc.stdout(), stderr: proc.stderr() };
}
