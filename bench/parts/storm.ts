import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { caddyLoad } from '../lib/caddy.js';
import { startDaemonProcess, stopProcess } from '../lib/daemon-process.js';
import { singleSocketAgent } from '../lib/http.js';
import { measure } from '../lib/load.js';
import { caddyBenchConfig, caddyProxyRoute, caddyRespondRoute, startBackend, startCaddy } from '../lib/procs.js';
import { requireTool } from '../lib/util.js';
import { runWrk } from '../lib/wrk.js';

export interface StormResult {
  /** hotconf, one process (`--workers 1`). */
  baseline_rps: number;
  storm_rps: number;
  errors: number;
  storm_reloads: number;
  /** hotconf `--workers 2` under the same storm (each reload two-phase across both workers). */
  w2_baseline_rps: number;
  w2_storm_rps: number;
  w2_errors: number;
  w2_storm_reloads: number;
  caddy_baseline_rps: number;
  caddy_storm_rps: number;
  caddy_errors: number;
  caddy_storm_reloads: number;
  duration_s: number;
}

function hotconfConfig(port: number, backend: number, revision: number): Record<string, unknown> {
  return {
    upstreams: { api: { targets: [`http://127.0.0.1:${backend}`] } },
    listeners: [
      {
        name: 'web',
        listen: `127.0.0.1:${port}`,
        routes: [
          { path_prefix: '/api', upstream: 'api' },
          // The part of the config each storm reload changes: routes, not the upstream or listener.
          { path_prefix: '/revision', respond: { status: 200, body: `r${revision}` } },
        ],
      },
    ],
  };
}

function caddyConfig(port: number, admin: number, backend: number, revision: number): string {
  return caddyBenchConfig({
    port,
    admin,
    routes: [caddyProxyRoute(`127.0.0.1:${backend}`, '/api*'), caddyRespondRoute('/revision', `r${revision}`)],
  });
}

type Measured = Awaited<ReturnType<typeof measure>>;

/** Socket errors + non-2xx responses over both phases. */
function errorsOf(m: Measured): number {
  return m.storm.socket_errors + m.storm.non_2xx + m.baseline.socket_errors + m.baseline.non_2xx;
}

/**
 * hotconf (`hotconf run --workers N` as a child process, reloaded through `POST /reload`, which
 * answers once every worker has swapped) through `measure`'s baseline and storm.
 */
async function hotconfStorm(dir: string, workers: number, backendPort: number, durationS: number): Promise<Measured> {
  const [port, admin] = [await freePort(), await freePort()];
  const file = join(dir, `hotconf-w${workers}.yaml`);
  await writeConfigAtomic(file, hotconfConfig(port, backendPort, 0));
  const daemon = await startDaemonProcess(['--config', file, '--no-watch', '--workers', String(workers)], `127.0.0.1:${admin}`);
  const agent = singleSocketAgent();
  try {
    return await measure(
      `http://127.0.0.1:${port}/api`,
      durationS,
      async (i) => {
        await writeConfigAtomic(file, hotconfConfig(port, backendPort, i));
        const res = await httpRequest(`${daemon.admin}/reload`, { method: 'POST', agent });
        if (res.status !== 200) throw new Error(`hotconf --workers ${workers} reload ${i}: ${res.status} ${res.body}`);
      },
      runWrk,
      durationS, // warm-up: see stormPart
    );
  } finally {
    agent.destroy();
    await daemon.stop();
  }
}

/**
 * Reload storm: after a warm-up as long as a phase, wrk keepalive load through a proxy route for `durationS`
 * seconds without reloads, then with 10 reloads per second; for hotconf with `--workers 1` and
 * `--workers 2`, and for Caddy (reverse_proxy to the same backend, reloads through its admin
 * `/load`), each alone. Errors = socket errors + non-2xx responses.
 */
export async function stormPart(quick: boolean): Promise<StormResult> {
  // Every proxy warms up for as long as a measured phase: a freshly started Node process (each
  // --workers 2 worker too) runs at a fraction of its later rate for its first seconds on a
  // loaded machine, and wrk's 2 s timeouts there are not reload errors.
  const durationS = quick ? 5 : 15;
  requireTool('wrk', 'apt-get install -y wrk');
  requireTool('caddy', 'apt-get install -y caddy');
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-storm-'));
  const [backendPort, caddyPort, caddyAdmin] = [await freePort(), await freePort(), await freePort()];
  const backend = await startBackend(backendPort);
  try {
    const hot = await hotconfStorm(dir, 1, backendPort, durationS);
    const w2 = await hotconfStorm(dir, 2, backendPort, durationS);

    const caddy = await startCaddy(dir, caddyConfig(caddyPort, caddyAdmin, backendPort, 0), `http://127.0.0.1:${caddyPort}/revision`);
    let cad: Measured;
    try {
      cad = await measure(
        `http://127.0.0.1:${caddyPort}/api`,
        durationS,
        (i) => caddyLoad(caddyAdmin, caddyConfig(caddyPort, caddyAdmin, backendPort, i)),
        runWrk,
        durationS, // warm-up: see stormPart
      );
    } finally {
      await caddy.stop();
    }
    return {
      baseline_rps: Math.round(hot.baseline.requests_per_s),
      storm_rps: Math.round(hot.storm.requests_per_s),
      errors: errorsOf(hot),
      storm_reloads: hot.reloads,
      w2_baseline_rps: Math.round(w2.baseline.requests_per_s),
      w2_storm_rps: Math.round(w2.storm.requests_per_s),
      w2_errors: errorsOf(w2),
      w2_storm_reloads: w2.reloads,
      caddy_baseline_rps: Math.round(cad.baseline.requests_per_s),
      caddy_storm_rps: Math.round(cad.storm.requests_per_s),
      caddy_errors: errorsOf(cad),
      caddy_storm_reloads: cad.reloads,
      duration_s: durationS,
    };
  } finally {
    await stopProcess(backend);
    await rm(dir, { recursive: true, force: true });
  }
}
