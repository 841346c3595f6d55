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

export interface StormResult {
  baseline_rps: number;
  storm_rps: number;
  errors: number;
  storm_reloads: number;
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

/**
 * Reload storm: after a short warm-up, wrk keepalive load through a proxy route for `durationS`
 * seconds without reloads, then with 10 reloads per second; the same for Caddy (reverse_proxy to the same
 * backend, reloads through its admin `/load`). Errors = socket errors + non-2xx responses.
 */
export async function stormPart(quick: boolean): Promise<StormResult> {
  const durationS = quick ? 5 : 15;
  requireTool('wrk', 'apt-get install -y wrk');
  requireTool('caddy', 'apt-get install -y caddy');
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-storm-'));
  const [backendPort, port, admin, caddyPort, caddyAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const backend = await startBackend(backendPort);
  try {
    const file = join(dir, 'hotconf.yaml');
    await writeConfigAtomic(file, hotconfConfig(port, backendPort, 0));
    const daemon = await startDaemonProcess(['--config', file, '--no-watch'], `127.0.0.1:${admin}`);
    const agent = singleSocketAgent();
    let hot: Awaited<ReturnType<typeof measure>>;
    try {
      hot = await measure(`http://127.0.0.1:${port}/api`, durationS, async (i) => {
        await writeConfigAtomic(file, hotconfConfig(port, backendPort, i));
        const res = await httpRequest(`${daemon.admin}/reload`, { method: 'POST', agent });
        if (res.status !== 200) throw new Error(`hotconf reload ${i}: ${res.status} ${res.body}`);
      });
    } finally {
      agent.destroy();
      await daemon.stop();
    }

    const caddy = await startCaddy(dir, caddyConfig(caddyPort, caddyAdmin, backendPort, 0), `http://127.0.0.1:${caddyPort}/revision`);
    let cad: Awaited<ReturnType<typeof measure>>;
    try {
      cad = await measure(`http://127.0.0.1:${caddyPort}/api`, durationS, (i) => caddyLoad(caddyAdmin, caddyConfig(caddyPort, caddyAdmin, backendPort, i)));
    } finally {
      await caddy.stop();
    }
    return {
      baseline_rps: Math.round(hot.baseline.requests_per_s),
      storm_rps: Math.round(hot.storm.requests_per_s),
      errors: hot.storm.socket_errors + hot.storm.non_2xx + hot.baseline.socket_errors + hot.baseline.non_2xx,
      storm_reloads: hot.reloads,
      caddy_baseline_rps: Math.round(cad.baseline.requests_per_s),
      caddy_storm_rps: Math.round(cad.storm.requests_per_s),
      caddy_errors: cad.storm.socket_errors + cad.storm.non_2xx + cad.baseline.socket_errors + cad.baseline.non_2xx,
      caddy_storm_reloads: cad.reloads,
      duration_s: durationS,
    };
  } finally {
    await stopProcess(backend);
    await rm(dir, { recursive: true, force: true });
  }
}
