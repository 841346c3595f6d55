import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { onCleanup } from './cleanup.js';
import { sleep } from './wait.js';

/** The repository root (specs run from anywhere). */
export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
/** The real CLI, running the compiled `dist/` (built by `npm test`'s pretest). */
export const HOTCONF_BIN = fileURLToPath(new URL('../bin/hotconf.js', import.meta.url));

/** A child process whose output is kept: stdout as pino JSON lines, stderr as text. */
export interface HotconfChild {
  readonly process: ChildProcess;
  /** Every stdout line that parsed as JSON (pino log lines), in order. */
  logs(): Record<string, unknown>[];
  /** Everything written to stdout and stderr so far, raw. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Wait for the first log line matching `match`, return it (throws after `timeoutMs`). */
  waitForLog(what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Send an IPC message (only with `ipc: true`). */
  send(message: unknown): void;
}

/**
 * `setpriv` (util-linux) arguments that run a command as root without CAP_DAC_OVERRIDE and
 * CAP_DAC_READ_SEARCH: file modes then apply to it as to any user, while it stays root and reads
 * the checkout wherever it is (switching to `nobody` fails when the checkout sits under a
 * directory `nobody` cannot traverse, such as /root).
 */
const FILE_MODES_APPLY = ['setpriv', '--inh-caps=-dac_override,-dac_read_search', '--bounding-set=-dac_override,-dac_read_search', '--'];

/**
 * Spawn `node [nodeArgs] script args` with stdout/stderr captured (and an IPC channel with
 * `ipc: true`). With `fileModesApply`, a child of a root process runs without root's bypass of
 * file permissions (see `FILE_MODES_APPLY`; nothing changes for other users, to whom modes
 * apply anyway). Killed with SIGKILL after the test if it is still running.
 */
export function spawnNode(
  script: string,
  args: readonly string[],
  options: { nodeArgs?: readonly string[]; env?: NodeJS.ProcessEnv; ipc?: boolean; fileModesApply?: boolean; cwd?: string } = {},
): HotconfChild {
  const spawnOptions: SpawnOptions = {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  };
  const command = [process.execPath, ...(options.nodeArgs ?? []), script, ...args];
  // setpriv execs node in its own process: signals sent to the child reach node.
  const [file, ...argv] = options.fileModesApply && process.getuid?.() === 0 ? [...FILE_MODES_APPLY, ...command] : command;
  const child = spawn(file!, argv, spawnOptions);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT'); // a spec may have frozen it (SIGSTOP)
      child.kill('SIGKILL');
    }
    await exited;
  });
  const logs = () =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return []; // a line still being written
        }
      });
  return {
    process: child,
    logs,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForLog(what, match, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = logs().find(match);
        if (found) return found;
        const ended = child.exitCode !== null || child.signalCode !== null;
        if (ended || Date.now() > deadline) {
          throw new Error(
            `${ended ? `the child exited (${child.exitCode ?? child.signalCode})` : 'timed out'} waiting for ${what}; stderr: ${err.slice(-1000)}`,
          );
        }
        await sleep(20);
      }
    },
    send: (message) => {
      child.send!(message as Parameters<NonNullable<ChildProcess['send']>>[0]);
    },
  };
}

/** `hotconf ARGS` as a child process (the compiled CLI). */
export function spawnHotconf(args: readonly string[], options: Parameters<typeof spawnNode>[2] = {}): HotconfChild {
  return spawnNode(HOTCONF_BIN, args, options);
}

/** Run `hotconf ARGS` to completion: its exit code (null when a signal ended it) and output. */
export async function runHotconfToEnd(
  args: readonly string[],
  options: Parameters<typeof spawnNode>[2] = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = spawnHotconf(args, options);
  const { code, signal } = await child.exited;
  return { code, signal, stdout: child.stdout(), stderr: child.stderr() };
}

/** A `waitForLog` matcher: the log line with this `msg` whose fields equal `fields` (JSON-equal). */
export function event(msg: string, fields: Record<string, unknown> = {}): (line: Record<string, unknown>) => boolean {
  return (line) => line.msg === msg && Object.entries(fields).every(([k, v]) => JSON.stringify(line[k]) === JSON.stringify(v));
}
