import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fetchText } from './http.js';
import { sleep } from './util.js';

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
 * Start `node bin/hotconf.js ...args` and wait until `/healthz` answers 200 on `admin`
 * (`HOST:PORT`). The compiled CLI must exist (`npm ci` or `npm run build`).
 */
export async function startDaemonProcess(args: string[], admin: string, timeoutMs = 30_000): Promise<DaemonProcess> {
  if (!existsSync(DIST)) throw new Error('dist/ is missing: run npm run build first');
  const child = spawn(process.execPath, [BIN, 'run', ...args, '--admin', admin, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`hotconf exited with ${child.exitCode} during start`);
    const ok = await fetchText(`http://${admin}/healthz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('hotconf did not become healthy');
    }
    await sleep(50);
  }
  return {
    child,
    pid: child.pid!,
    admin: `http://${admin}`,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
