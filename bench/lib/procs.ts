import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopProcess, waitServing } from './daemon-process.js';
import { requireTool } from './util.js';

/** Start the bench backend (bench/lib/backend.ts) in its own process on `port`; resolves once it listens. */
export async function startBackend(port: number): Promise<ChildProcess> {
  const child = fork(fileURLToPath(new URL('./backend.ts', import.meta.url)), [String(port)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`backend exited with ${code}`)));
  });
  return child;
}

/** A server process the bench started, with its stop. */
export interface BenchServer {
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Caddy (Debian's package) on a JSON config written into `dir`, its state dirs kept there too;
 * resolves once `readyUrl` answers 200.
 */
export async function startCaddy(dir: string, config: string, readyUrl: string): Promise<BenchServer> {
  const bin = requireTool('caddy', 'apt-get install -y caddy');
  const file = join(dir, 'caddy.json');
  await writeFile(file, config);
  const child = spawn(bin, ['run', '--config', file], {
    stdio: ['ignore', 'ignore', 'ignore'],
    env: { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') },
  });
  await waitServing(child, 'caddy', readyUrl);
  return { child, stop: () => stopProcess(child) };
}

/**
 * nginx (Debian's package) in the foreground with `workers` worker processes, proxying every path
 * on 127.0.0.1:`port` to `backendPort` over keepalive upstream connections (`keepalive 32`, HTTP/1.1),
 * its prefix, pid and temp paths in `dir`. No access log unless `accessLog` names a file (nginx's
 * default `combined` format, unbuffered: one write per request, as nginx ships it).
 */
export async function startNginx(dir: string, port: number, backendPort: number, workers: number, accessLog?: string): Promise<BenchServer> {
  const bin = requireTool('nginx', 'apt-get install -y nginx');
  const conf = `worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log ${accessLog ?? 'off'};
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 32; }
  server {
    listen 127.0.0.1:${port};
    location = /ready { return 200 "ok\\n"; }
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  await writeFile(file, conf);
  const child = spawn(bin, ['-p', dir, '-c', file, '-e', join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitServing(child, 'nginx', `http://127.0.0.1:${port}/ready`);
  return { child, stop: () => stopProcess(child) };
}

let clockTicks: number | undefined;

/** CPU time (user + system) of `pid` and every descendant, in seconds, from /proc/<pid>/stat. */
export function treeCpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  let ticks = 0;
  for (const p of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command (which may contain spaces) start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
    } catch {
      // The process exited between listing and reading.
    }
  }
  return ticks / clockTicks;
}

/** `pid` and its descendants (read from every /proc/<n>/stat's parent field). */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const child of parents.get(p) ?? []) walk(child);
  };
  walk(pid);
  return out;
}

/**
 * Caddy's JSON config for the benches: the admin API on 127.0.0.1:`admin`, one server `bench` on
 * 127.0.0.1:`port` without automatic HTTPS, serving `routes` in order. `server` adds fields to the
 * server (protocols, TLS policies, `logs`), `apps` apps beside `http` (tls), and `logging` is
 * Caddy's top-level logging section (where access logs are written).
 */
export function caddyBenchConfig(options: {
  port: number;
  admin: number;
  routes: readonly unknown[];
  server?: Record<string, unknown>;
  apps?: Record<string, unknown>;
  logging?: Record<string, unknown>;
}): string {
  return JSON.stringify({
    admin: { listen: `127.0.0.1:${options.admin}` },
    ...(options.logging ? { logging: options.logging } : {}),
    apps: {
      http: {
        servers: {
          bench: { listen: [`127.0.0.1:${options.port}`], ...options.server, automatic_https: { disable: true }, routes: options.routes },
        },
      },
      ...options.apps,
    },
  });
}

/** A Caddy route proxying to `dial` (`host:port`), for paths matching `path` (every path without one). */
export function caddyProxyRoute(dial: string, path?: string): unknown {
  const handle = [{ handler: 'reverse_proxy', upstreams: [{ dial }] }];
  return path === undefined ? { handle } : { match: [{ path: [path] }], handle };
}

/** A Caddy route answering `body` on `path`. */
export function caddyRespondRoute(path: string, body: string): unknown {
  return { match: [{ path: [path] }], handle: [{ handler: 'static_response', body }] };
}
