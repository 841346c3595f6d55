import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { httpRequest } from '../../harness/http.js';
import { sleep } from '../../harness/wait.js';

/** Lines node writes to stderr for `--inspect` and its sessions. */
const INSPECTOR_NOTICE = /^(Debugger (listening on|attached|ending on)|For help, see: https:\/\/nodejs\.org)/;
const BIN = fileURLToPath(new URL('../../bin/hotconf.js', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** A `hotconf run` child process, as an operator runs it. */
export interface DaemonProcess {
  child: ChildProcess;
  pid: number;
  admin: string;
  stop(): Promise<void>;
}

/**
 * Start `node ...nodeOptions bin/hotconf.js ...args` and wait until `/healthz` answers 200 on
 * `admin` (`HOST:PORT`). `nodeOptions` are node's own flags (e.g. `--inspect=127.0.0.1:PORT`);
 * with any, the child's stderr is passed on without node's inspector notices ("Debugger
 * listening on ...", "For help, see ...", "Debugger attached."). The compiled CLI must exist
 * (`npm ci` or `npm run build`).
 */
export async function startDaemonProcess(args: string[], admin: string, timeoutMs = 30_000, nodeOptions: readonly string[] = []): Promise<DaemonProcess> {
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run npm run build first');
  const child = spawn(process.execPath, [...nodeOptions, BIN, 'run', ...args, '--admin', admin, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', nodeOptions.length > 0 ? 'pipe' : 'inherit'],
  });
  if (child.stderr) {
    createInterface({ input: child.stderr }).on('line', (line) => {
      if (!INSPECTOR_NOTICE.test(line)) process.stderr.write(`${line}\n`);
    });
  }
  try {
    await waitServing(child, 'hotconf', `http://${admin}/healthz`, timeoutMs);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return { child, pid: child.pid!, admin: `http://${admin}`, stop: () => stopProcess(child) };
}

/**
 * Poll `url` until it answers 200 (a server `child` runs has started).
 * @throws Error naming `name` when `child` exits first or `timeoutMs` passes
 */
export async function waitServing(child: ChildProcess, name: string, url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${name} exited with ${child.exitCode ?? child.signalCode} during start`);
    if (
      await httpRequest(url).then(
        (r) => r.status === 200,
        () => false,
      )
    )
      return;
    if (Date.now() > deadline) throw new Error(`${name} did not answer ${url} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** SIGTERM `child` unless it has exited, and wait for its exit. */
export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}
