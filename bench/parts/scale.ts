import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { startDaemonProcess, stopProcess } from '../lib/daemon-process.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { startBackend } from '../lib/procs.js';
import { percentile, progress, round } from '../lib/util.js';
import { runWrk } from '../lib/wrk.js';

/** One route count's numbers. */
export interface ScaleCase {
  routes: number;
  upstreams: number;
  document_bytes: number;
  /** Spawn → the last route served, in ms (the daemon's readiness is polled every 50 ms). */
  startup_ms: number;
  rss_after_start_bytes: number;
  /** After the one-route changes. */
  rss_after_changes_bytes: number;
  /** One route's body changed in the file, then `POST /reload` → the new body served (polled on one keepalive connection). */
  change_p50_ms: number;
  change_p99_ms: number;
  changes: number;
  first_route_rps: number;
  last_route_rps: number;
  /** last_route_rps / first_route_rps: 1 when matching does not depend on the route's position. */
  last_to_first: number;
}

export type ScaleResult = Record<string, number>;

const CHANGES = 20;

/**
 * Issue 12's shape, as one file: `routes` routes on one listener, half `respond` and half
 * `upstream` (the first and the last route respond, so that their rates compare matching alone),
 * one upstream of two targets per ten routes, each upstream used by its ten routes' proxy routes.
 */
export function scaleConfig(port: number, routes: number, targets: readonly string[], revision: number): Record<string, unknown> {
  const upstreams: Record<string, unknown> = {};
  for (let u = 0; u < routes / 10; u++) upstreams[`u${u}`] = { targets };
  const list = Array.from({ length: routes }, (_, i) =>
    i % 2 === 0 || i === routes - 1
      ? { path_prefix: `/r${i}`, respond: { status: 200, body: i === routes - 1 ? `last ${revision}` : `route ${i}` } }
      : { path_prefix: `/r${i}`, upstream: `u${Math.floor(i / 10)}` },
  );
  return { shutdown_timeout_ms: 2000, upstreams, listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: list }] };
}

/** Resident set size of `pid`, in bytes (/proc/<pid>/status VmRSS). */
function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1]) * 1024;
}

/** One route count: start a `hotconf run --config FILE` child on the file, change its last route `CHANGES` times, wrk its first and last route. */
async function scaleCase(routes: number, targets: readonly string[], wrkSeconds: number): Promise<ScaleCase> {
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-bench-scale-'));
  const file = join(dir, 'hotconf.yaml');
  const [port, admin] = [await freePort(), await freePort()];
  const text = stringify(scaleConfig(port, routes, targets, 0));
  await writeFile(file, text);
  const last = `http://127.0.0.1:${port}/r${routes - 1}`;
  const agent = singleSocketAgent();
  const started = performance.now();
  const daemon = await startDaemonProcess(['--config', file], `127.0.0.1:${admin}`, 120_000);
  const tick = progress(`scale ${routes} routes`);
  try {
    const startupMs = (await servedAt(last, 'last 0', agent, started, 120_000)) - started;
    const rssAfterStart = rssBytes(daemon.pid);
    const latencies: number[] = [];
    for (let i = 1; i <= CHANGES; i++) {
      await writeFile(file, stringify(scaleConfig(port, routes, targets, i)));
      const changed = performance.now();
      const reload = await httpRequest(`${daemon.admin}/reload`, { method: 'POST' });
      if (reload.status !== 200) throw new Error(`POST /reload answered ${reload.status}: ${reload.body}`);
      latencies.push((await servedAt(last, `last ${i}`, agent, changed, 30_000)) - changed);
      tick(i, CHANGES);
    }
    const rssAfterChanges = rssBytes(daemon.pid);
    const first = await runWrk(`http://127.0.0.1:${port}/r0`, wrkSeconds);
    const lastRun = await runWrk(last, wrkSeconds);
    for (const [name, run] of [
      ['first', first],
      ['last', lastRun],
    ] as const) {
      if (run.socket_errors > 0 || run.non_2xx > 0) throw new Error(`wrk on the ${name} route: ${run.socket_errors} socket errors, ${run.non_2xx} non-2xx`);
    }
    return {
      routes,
      upstreams: routes / 10,
      document_bytes: Buffer.byteLength(text),
      startup_ms: round(startupMs),
      rss_after_start_bytes: rssAfterStart,
      rss_after_changes_bytes: rssAfterChanges,
      change_p50_ms: round(percentile(latencies, 50)),
      change_p99_ms: round(percentile(latencies, 99)),
      changes: CHANGES,
      first_route_rps: round(first.requests_per_s),
      last_route_rps: round(lastRun.requests_per_s),
      last_to_first: round(lastRun.requests_per_s / first.requests_per_s, 3),
    };
  } finally {
    agent.destroy();
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Issue 12's `scale` part for configs of one file: 1,000 and 10,000 routes (`--quick`: 1,000
 * only), each in its own daemon process: start-up time, RSS, a one-route change → served
 * (p50/p99 over 20 changes) and requests/s on the first and the last route (wrk, 32
 * keepalive connections). The upstreams' two targets are two bench backends; no request is
 * proxied (wrk hits `respond` routes), they exist so that provisioning carries them.
 * The 100,000-route case needs multi-document sources and is not here yet.
 */
export async function scalePart(quick: boolean): Promise<ScaleResult> {
  const counts = quick ? [1000] : [1000, 10_000];
  const backendPorts = [await freePort(), await freePort()];
  const backends = await Promise.all(backendPorts.map((p) => startBackend(p)));
  const result: ScaleResult = {};
  try {
    for (const routes of counts) {
      const { routes: _, ...numbers } = await scaleCase(
        routes,
        backendPorts.map((p) => `http://127.0.0.1:${p}`),
        quick ? 3 : 10,
      );
      for (const [field, value] of Object.entries(numbers)) result[`r${routes}_${field}`] = value;
    }
  } finally {
    await Promise.all(backends.map((b) => stopProcess(b)));
  }
  return result;
}
