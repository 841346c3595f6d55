import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.js';
import { waitFor } from './wait.js';

/** The CLI shim users run; it loads the compiled `dist/` (built by `npm test`'s pretest). */
export const HOTCONF_BIN = fileURLToPath(new URL('../../bin/hotconf.js', import.meta.url));

export interface CliProcess {
  child: ChildProcess;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** stdout parsed as JSON log lines (non-JSON lines skipped). */
  logs(): Record<string, unknown>[];
  /** Wait for a log line with this `msg` (and fields), returning it. */
  waitForLog(msg: string, fields?: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (or the signal name) once the process ended. */
  exited: Promise<number | string>;
}

/**
 * Run `node bin/hotconf.js ...args` as a real child process. A process still running after the
 * test is killed (SIGKILL) in cleanup.
 */
export function runHotconf(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [HOTCONF_BIN, ...args], { env: { ...process.env, ...options.env }, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.once('close', (code, signal) => resolve(code ?? signal ?? -1)));
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  const logs = () =>
    out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs,
    exited,
    waitForLog: (msg, fields = {}, timeoutMs = 15_000) =>
      waitFor(
        `log "${msg}" ${JSON.stringify(fields)} (stderr: ${err.slice(-300)})`,
        () => logs().find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => JSON.stringify(l[k]) === JSON.stringify(v))),
        timeoutMs,
      ),
  };
}

/** Run a short CLI command to completion: its exit code and output. */
export async function runHotconfToEnd(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const p = runHotconf(args, options);
  const code = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}
