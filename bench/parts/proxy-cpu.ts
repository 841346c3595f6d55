import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { freePort } from '../../harness/ports.js';
import { startDaemonProcess, stopProcess } from '../lib/daemon-process.js';
import { type BenchServer, caddyBenchConfig, caddyProxyRoute, caddyRespondRoute, startBackend, startCaddy, startNginx, treeCpuSeconds } from '../lib/procs.js';
import { requireTool, round } from '../lib/util.js';
import { runWrk } from '../lib/wrk.js';

/** One proxy measured alone: throughput and CPU per request of the proxy (all its processes) and of the backend. */
export interface ProxyCpuRow {
  proxy: string;
  requests_per_s: number;
  proxy_cpu_us_per_request: number;
  backend_cpu_us_per_request: number;
  errors: number;
}

/** Flat, for the results table: per proxy `<slug>_rps`, `<slug>_cpu_us`, `<slug>_backend_cpu_us`, `<slug>_errors`, then the ratios. */
export interface ProxyCpuResult {
  [field: string]: number;
  duration_s: number;
}

interface Subject {
  name: string;
  /** Field prefix in the results. */
  slug: string;
  /** The access log file it writes in its temp dir (checked to have one line per request), if any. */
  accessLog?: string;
  start(dir: string, port: number, backendPort: number): Promise<BenchServer & { pid: number }>;
}

/**
 * hotconf with `--workers workers`; its access log off unless `accessLog` is set (`file`: to a
 * file in the subject's temp dir), so that the rows without it compare with Caddy and nginx,
 * which log nothing here either.
 */
function hotconf(name: string, slug: string, workers: number, options: { tracing?: { sample_ratio: number }; accessLog?: 'file' } = {}): Subject {
  return {
    name,
    slug,
    accessLog: options.accessLog === 'file' ? 'access.log' : undefined,
    async start(dir, port, backendPort) {
      const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
      const accessLog = options.accessLog === 'file' ? { path: join(dir, 'access.log') } : { enabled: false };
      await writeConfigAtomic(file, {
        ...(options.tracing ? { tracing: { exporter: 'none', sample_ratio: options.tracing.sample_ratio } } : {}),
        upstreams: { api: { targets: [`http://127.0.0.1:${backendPort}`] } },
        listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, access_log: accessLog, routes: [{ path_prefix: '/', upstream: 'api' }] }],
      });
      const admin = await freePort();
      const daemon = await startDaemonProcess(['--config', file, '--no-watch', '--workers', String(workers)], `127.0.0.1:${admin}`);
      return { child: daemon.child, pid: daemon.pid, stop: () => daemon.stop() };
    },
  };
}

/** Caddy without a `log` directive (no access log, its default), or with its JSON access log to a file. */
function caddy(name: string, slug: string, accessLog: boolean): Subject {
  return {
    name,
    slug,
    accessLog: accessLog ? 'access.log' : undefined,
    async start(dir, port, backendPort) {
      const admin = await freePort();
      const logging = {
        logs: {
          default: { exclude: ['http.log.access'] },
          access: { writer: { output: 'file', filename: join(dir, 'access.log') }, encoder: { format: 'json' }, include: ['http.log.access'] },
        },
      };
      const config = caddyBenchConfig({
        port,
        admin,
        routes: [caddyRespondRoute('/ready', 'ok'), caddyProxyRoute(`127.0.0.1:${backendPort}`)],
        ...(accessLog ? { server: { logs: {} }, logging } : {}),
      });
      const server = await startCaddy(dir, config, `http://127.0.0.1:${port}/ready`);
      return { ...server, pid: server.child.pid! };
    },
  };
}

/** nginx with 2 workers, `access_log off` or its default access log to a file. */
function nginx(name: string, slug: string, accessLog: boolean): Subject {
  return {
    name,
    slug,
    accessLog: accessLog ? 'access.log' : undefined,
    async start(dir, port, backendPort) {
      const server = await startNginx(dir, port, backendPort, 2, accessLog ? join(dir, 'access.log') : undefined);
      return { ...server, pid: server.child.pid! };
    },
  };
}

/**
 * Proxy CPU per request, side by side in one run: wrk -t1 -c32 through each proxy alone to the
 * same Node backend (a process of its own) answering 3 bytes, after a warm-up; CPU read from
 * /proc/<pid>/stat (utime + stime of the proxy's whole process tree, and of the backend) before
 * and after the measured run. hotconf with `--workers 1` and `--workers 2`, tracing off, and on
 * (exporter none: spans are made, not shipped) with sample_ratio 1 and 0.01; Caddy (Debian) and
 * nginx (Debian, 2 workers, upstream keepalive). Access logs are off in these rows for all three
 * (hotconf's `access_log.enabled: false`, Caddy without `log`, nginx `access_log off`); three
 * more rows write one to a file (hotconf's JSON lines, Caddy's JSON encoder, nginx's `combined`).
 */
export async function proxyCpuPart(quick: boolean): Promise<ProxyCpuResult> {
  const durationS = quick ? 3 : 8;
  const warmupS = quick ? 1 : 3;
  requireTool('wrk', 'apt-get install -y wrk');
  const subjects: Subject[] = [
    hotconf('hotconf --workers 1', 'hotconf_w1', 1),
    hotconf('hotconf --workers 2', 'hotconf_w2', 2),
    hotconf('hotconf --workers 1, tracing sample_ratio 1', 'hotconf_w1_traced', 1, { tracing: { sample_ratio: 1 } }),
    hotconf('hotconf --workers 1, tracing sample_ratio 0.01', 'hotconf_w1_sampled_1pct', 1, { tracing: { sample_ratio: 0.01 } }),
    hotconf('hotconf --workers 1, access log to a file', 'hotconf_w1_access_log', 1, { accessLog: 'file' }),
    caddy('caddy', 'caddy', false),
    caddy('caddy, access log to a file', 'caddy_access_log', true),
    nginx('nginx (2 workers)', 'nginx', false),
    nginx('nginx (2 workers), access log to a file', 'nginx_access_log', true),
  ];
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-proxy-cpu-'));
  const backendPort = await freePort();
  const backend = await startBackend(backendPort);
  const rows: (ProxyCpuRow & { slug: string })[] = [];
  try {
    for (const subject of subjects) {
      const port = await freePort();
      const subjectDir = await mkdtemp(join(dir, 'p-'));
      const server = await subject.start(subjectDir, port, backendPort);
      let requests = 0;
      try {
        const url = `http://127.0.0.1:${port}/`;
        await runWrk(url, warmupS);
        const proxyBefore = treeCpuSeconds(server.pid);
        const backendBefore = treeCpuSeconds(backend.pid!);
        const result = await runWrk(url, durationS);
        const proxyCpu = treeCpuSeconds(server.pid) - proxyBefore;
        const backendCpu = treeCpuSeconds(backend.pid!) - backendBefore;
        requests = Math.max(1, result.requests);
        rows.push({
          slug: subject.slug,
          proxy: subject.name,
          requests_per_s: Math.round(result.requests_per_s),
          proxy_cpu_us_per_request: round((proxyCpu / requests) * 1e6, 1),
          backend_cpu_us_per_request: round((backendCpu / requests) * 1e6, 1),
          errors: result.socket_errors + result.non_2xx,
        });
        process.stderr.write(`  proxy_cpu ${subject.name}: ${rows.at(-1)!.requests_per_s} rps, ${rows.at(-1)!.proxy_cpu_us_per_request} µs/req\n`);
      } finally {
        await server.stop();
      }
      if (subject.accessLog) {
        // After the stop, so every buffered line is written: the row measured what it claims.
        const lines = (await readFile(join(subjectDir, subject.accessLog), 'utf8').catch(() => '')).split('\n').length - 1;
        if (lines < requests) throw new Error(`${subject.name}: ${lines} access log lines for at least ${requests} requests`);
      }
    }
  } finally {
    await stopProcess(backend);
    await rm(dir, { recursive: true, force: true });
  }
  const out: ProxyCpuResult = { duration_s: durationS };
  for (const r of rows) {
    out[`${r.slug}_rps`] = r.requests_per_s;
    out[`${r.slug}_cpu_us`] = r.proxy_cpu_us_per_request;
    out[`${r.slug}_backend_cpu_us`] = r.backend_cpu_us_per_request;
    out[`${r.slug}_errors`] = r.errors;
  }
  out.cpu_ratio_workers1_to_caddy = round(out.hotconf_w1_cpu_us! / out.caddy_cpu_us!, 3);
  out.rps_ratio_workers2_to_caddy = round(out.hotconf_w2_rps! / out.caddy_rps!, 3);
  // What writing the access log to a file costs each proxy, in µs of CPU per request.
  for (const slug of ['hotconf_w1', 'caddy', 'nginx']) out[`${slug}_access_log_cost_us`] = round(out[`${slug}_access_log_cpu_us`]! - out[`${slug}_cpu_us`]!, 1);
  return out;
}
