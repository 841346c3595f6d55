import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { sleep } from '../../harness/wait.js';
import { caddyLoad } from '../lib/caddy.js';
import { type DaemonProcess, startDaemonProcess, stopProcess } from '../lib/daemon-process.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { liveHeapAfterGc } from '../lib/inspector.js';
import { caddyBenchConfig, startBackend, startCaddy } from '../lib/procs.js';
import { percentile, progress, round } from '../lib/util.js';
import { runWrk } from '../lib/wrk.js';

/** One server and route count's numbers. */
export interface ScaleCase {
  routes: number;
  upstreams: number;
  /** The config's size: one file, the files of the directory together, or Caddy's JSON. */
  document_bytes: number;
  /** Spawn → the last route served, in ms (readiness is polled every 50 ms, then every 1 ms). */
  startup_ms: number;
  rss_after_start_bytes: number;
  /** (RSS after start − RSS of the same server on a 10-route config) per 1,000 routes. */
  rss_per_1000_routes_bytes: number;
  /** One route's body changed, then reloaded (`POST /reload`, Caddy: `/load`) → the new body served, polled on one keepalive connection. */
  change_p50_ms: number;
  change_p99_ms: number;
  changes: number;
  /** Reloads in all (the timed changes included), each a one-route change waited until served. */
  reloads: number;
  rss_after_reloads_bytes: number;
  /**
   * RSS after every reload minus RSS after the timed changes. Not a leak measure for hotconf:
   * V8's old generation fills with garbage between full collections (one every 35–45 reloads at
   * 100,000 routes), so two RSS samples say where the sawtooth was (README "RSS across reloads").
   */
  rss_growth_over_reloads_bytes: number;
  /** Highest RSS over all `reloads` (VmHWM, reset through /proc/PID/clear_refs after the start's numbers). */
  peak_rss_over_reloads_bytes: number;
  /** Main isolate's heap in use after a forced full collection (inspector), once started; null for Caddy. */
  heap_after_gc_start_bytes: number | null;
  /** The same after the timed changes; null for Caddy. */
  heap_after_gc_changes_bytes: number | null;
  /** The same after every reload; null for Caddy. */
  heap_after_gc_reloads_bytes: number | null;
  /** heap_after_gc_reloads_bytes − heap_after_gc_changes_bytes: what the later reloads kept alive; null for Caddy. */
  heap_growth_over_reloads_bytes: number | null;
  first_route_rps: number;
  last_route_rps: number;
  /** last_route_rps / first_route_rps: 1 when matching does not depend on the route's position. */
  last_to_first: number;
}

export type ScaleResult = Record<string, number | null>;

/** Timed one-route changes per case; the reloads after them are the ones the growth fields cover. */
export const SCALE_CHANGES = 20;
/** Fragments of the 100,000-route directory (1,000 routes and 100 upstreams each). */
const FRAGMENT_ROUTES = 1000;

/** Route `i` of `routes`: even ones and the last respond (the last with `last REVISION`), odd ones proxy to upstream `u(i/10)`. */
function scaleRoute(i: number, routes: number, revision: number): Record<string, unknown> {
  if (i === routes - 1) return { path_prefix: `/r${i}`, respond: { status: 200, body: `last ${revision}` } };
  if (i % 2 === 0) return { path_prefix: `/r${i}`, respond: { status: 200, body: `route ${i}` } };
  return { path_prefix: `/r${i}`, upstream: `u${Math.floor(i / 10)}` };
}

/** Upstreams `u(from/10)` up to the one of route `to - 1`, each of the two `targets`. */
function scaleUpstreams(from: number, to: number, targets: readonly string[]): Record<string, unknown> {
  const upstreams: Record<string, unknown> = {};
  for (let u = from / 10; u < to / 10; u++) upstreams[`u${u}`] = { targets };
  return upstreams;
}

/**
 * Issue 12's shape, as one file: `routes` routes on one listener, half `respond` and half
 * `upstream` (the first and the last route respond, so that their rates compare matching alone),
 * one upstream of two targets per ten routes, each upstream used by its ten routes' proxy routes.
 */
export function scaleConfig(port: number, routes: number, targets: readonly string[], revision: number): Record<string, unknown> {
  const list = Array.from({ length: routes }, (_, i) => scaleRoute(i, routes, revision));
  return { shutdown_timeout_ms: 2000, upstreams: scaleUpstreams(0, routes, targets), listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: list }] };
}

/** Fragment `f` of the directory form: routes `f × 1,000` up to the next thousand, added to listener `web`, with their upstreams. */
function scaleFragment(f: number, routes: number, targets: readonly string[], revision: number): Record<string, unknown> {
  const from = f * FRAGMENT_ROUTES;
  const to = Math.min(routes, from + FRAGMENT_ROUTES);
  const list = Array.from({ length: to - from }, (_, k) => scaleRoute(from + k, routes, revision));
  return { upstreams: scaleUpstreams(from, to, targets), listeners: [{ name: 'web', routes: list }] };
}

/** The same routes for Caddy: `/rI` and `/rI/*` in order (Caddy tries routes in order), proxies to both targets. */
function caddyScaleConfig(port: number, admin: number, routes: number, dials: readonly string[], revision: number): string {
  const list = Array.from({ length: routes }, (_, i) => {
    const route = scaleRoute(i, routes, revision);
    const respond = route.respond as { body: string } | undefined;
    const handle = respond ? [{ handler: 'static_response', body: respond.body }] : [{ handler: 'reverse_proxy', upstreams: dials.map((dial) => ({ dial })) }];
    return { match: [{ path: [`/r${i}`, `/r${i}/*`] }], handle };
  });
  return caddyBenchConfig({ port, admin, routes: list });
}

/** YAML without aliases: upstreams share one targets array, which would become an alias past the parser's alias limit. */
function yaml(value: unknown): string {
  return stringify(value, { aliasDuplicateObjects: false });
}

/** Resident set size of `pid`, in bytes (/proc/<pid>/status VmRSS). */
function rssBytes(pid: number): number {
  return procStatusBytes(pid, 'VmRSS');
}

/** Peak resident set size of `pid` since it started or since `resetPeakRss`, in bytes (/proc/<pid>/status VmHWM). */
function peakRssBytes(pid: number): number {
  return procStatusBytes(pid, 'VmHWM');
}

/** Reset `pid`'s VmHWM to its current RSS (writing 5 to /proc/<pid>/clear_refs, Linux ≥ 4.0). */
function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** A `kB` field of /proc/<pid>/status, in bytes. */
function procStatusBytes(pid: number, field: string): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field}:`));
  return Number(line?.split(/\s+/)[1]) * 1024;
}

/** A server under test, started on a config of some routes. */
interface ScaleServer {
  pid: number;
  /** Bytes of the config it was started on. */
  bytes: number;
  /**
   * Make the last route answer `last REVISION`: builds the new config (untimed: serialising
   * 10,000 routes with the bench's YAML writer alone takes about 400 ms) and returns the step that
   * applies it (write + `POST /reload`, or Caddy's `/load`), which resolves once the reload was
   * asked for. The change is timed from that step.
   */
  prepare(revision: number): () => Promise<void>;
  /** A reload closes the client connections (Caddy's `/load` replaces its servers): polling reconnects. */
  closesConnections?: boolean;
  /** Once retired generations are released, the live heap after a forced full collection, in bytes (hotconf only: Caddy has no inspector). */
  liveHeapAfterGc?(): Promise<number>;
  stop(): Promise<void>;
}

/** How to start one kind of server on `routes` routes listening on `port` (`started`: the clock start-up is timed from). */
type ScaleStarter = (port: number, routes: number) => Promise<ScaleServer>;

/** `hotconf run --config FILE`, changed by rewriting the file and `POST /reload`. */
function hotconfFile(targets: readonly string[]): ScaleStarter {
  return async (port, routes) => {
    const dir = await mkdtemp(join(tmpdir(), 'hotconf-bench-scale-'));
    const file = join(dir, 'hotconf.yaml');
    const text = yaml(scaleConfig(port, routes, targets, 0));
    await writeFile(file, text);
    // A 10,000-route file is ~0.8 MB; the default limit (1 MiB) would refuse much more.
    const inspect = await freePort();
    const daemon = await startDaemonProcess(['--config', file, '--max-document-bytes', '64m'], `127.0.0.1:${await freePort()}`, 300_000, [
      `--inspect=127.0.0.1:${inspect}`,
    ]);
    return daemonServer(daemon, inspect, dir, Buffer.byteLength(text), (revision) => {
      const next = yaml(scaleConfig(port, routes, targets, revision));
      return () => writeFile(file, next);
    });
  };
}

/** `hotconf run --config-dir DIR` over one file defining the listener and one file per 1,000 routes; a change rewrites the last file and `POST /reload`. */
function hotconfDirectory(targets: readonly string[]): ScaleStarter {
  return async (port, routes) => {
    const dir = await mkdtemp(join(tmpdir(), 'hotconf-bench-scale-dir-'));
    const config = join(dir, 'conf.d');
    await mkdir(config);
    const fragments = Math.ceil(routes / FRAGMENT_ROUTES);
    const name = (f: number) => join(config, `t${String(f).padStart(4, '0')}.yaml`);
    let bytes = 0;
    const base = yaml({ shutdown_timeout_ms: 2000, listeners: [{ name: 'web', listen: `127.0.0.1:${port}` }] });
    await writeFile(join(config, '0000-base.yaml'), base);
    bytes += Buffer.byteLength(base);
    for (let f = 0; f < fragments; f++) {
      const text = yaml(scaleFragment(f, routes, targets, 0));
      await writeFile(name(f), text);
      bytes += Buffer.byteLength(text);
    }
    const inspect = await freePort();
    const daemon = await startDaemonProcess(['--config-dir', config, '--max-total-bytes', '1g'], `127.0.0.1:${await freePort()}`, 600_000, [
      `--inspect=127.0.0.1:${inspect}`,
    ]);
    return daemonServer(daemon, inspect, dir, bytes, (revision) => {
      const next = yaml(scaleFragment(fragments - 1, routes, targets, revision));
      return () => writeFile(name(fragments - 1), next);
    });
  };
}

/** Caddy on its JSON config, changed through its admin `/load` (which answers once the new config serves). */
function caddy(dials: readonly string[]): ScaleStarter {
  return async (port, routes) => {
    const dir = await mkdtemp(join(tmpdir(), 'hotconf-bench-scale-caddy-'));
    const admin = await freePort();
    const config = caddyScaleConfig(port, admin, routes, dials, 0);
    const server = await startCaddy(dir, config, `http://127.0.0.1:${port}/r0`);
    return {
      pid: server.child.pid!,
      bytes: Buffer.byteLength(config),
      closesConnections: true,
      prepare: (revision) => {
        const next = caddyScaleConfig(port, admin, routes, dials, revision);
        return () => caddyLoad(admin, next);
      },
      async stop() {
        await server.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  };
}

/**
 * A hotconf child whose config lives in `dir` and whose inspector listens on `inspect`: a change
 * is `rewrite`'s write then `POST /reload`; stopping removes `dir`.
 */
function daemonServer(daemon: DaemonProcess, inspect: number, dir: string, bytes: number, rewrite: (revision: number) => () => Promise<void>): ScaleServer {
  return {
    pid: daemon.pid,
    bytes,
    async liveHeapAfterGc() {
      await generationsReleased(daemon.admin);
      return liveHeapAfterGc(inspect);
    },
    prepare(revision) {
      const write = rewrite(revision);
      return async () => {
        await write();
        const res = await httpRequest(`${daemon.admin}/reload`, { method: 'POST' });
        if (res.status !== 200) throw new Error(`POST /reload answered ${res.status}: ${res.body}`);
      };
    },
    async stop() {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Wait until `/leaks` on `admin` counts one live generation (the retired ones drained and
 * released; the bench's configs drain within `shutdown_timeout_ms` = 2 s), polling every 50 ms
 * for at most 30 s. Past that it warns and returns: the heap then measured holds the unreleased
 * generations, and the growth shows them.
 */
async function generationsReleased(admin: string): Promise<void> {
  let live = 0;
  for (let i = 0; i < 600; i++) {
    live = (JSON.parse((await httpRequest(`${admin}/leaks`)).body) as { generations_live: number }).generations_live;
    if (live === 1) return;
    await sleep(50);
  }
  process.stderr.write(`scale: ${live} generations still live after 30 s; heap measured with them\n`);
}

/** `servedAt`, polling again on a new connection when `server` closed the one polled on by reloading. */
async function servedAfter(server: ScaleServer, url: string, body: string, agent: Agent, started: number): Promise<number> {
  for (;;) {
    try {
      return await servedAt(url, body, agent, started, 60_000);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!server.closesConnections || (code !== 'ECONNRESET' && code !== 'ECONNREFUSED') || performance.now() - started > 60_000) throw error;
    }
  }
}

/** Start `start` on 10 routes and return its RSS: what `rss_per_1000_routes_bytes` is counted from. */
async function baselineRss(start: ScaleStarter): Promise<number> {
  const port = await freePort();
  const server = await start(port, 10);
  const agent = singleSocketAgent();
  try {
    await servedAt(`http://127.0.0.1:${port}/r9`, 'last 0', agent, performance.now(), 60_000);
    return rssBytes(server.pid);
  } finally {
    agent.destroy();
    await server.stop();
  }
}

/**
 * One server on `routes` routes: start-up, `SCALE_CHANGES` timed one-route changes, more untimed ones
 * up to `reloads`, then wrk on its first and its last route.
 */
async function scaleCase(label: string, start: ScaleStarter, routes: number, baseline: number, reloads: number, wrkSeconds: number): Promise<ScaleCase> {
  const port = await freePort();
  const last = `http://127.0.0.1:${port}/r${routes - 1}`;
  const agent: Agent = singleSocketAgent();
  const started = performance.now();
  const server = await start(port, routes);
  const tick = progress(`scale ${label}`);
  try {
    const startupMs = (await servedAt(last, 'last 0', agent, started, 600_000)) - started;
    const rssAfterStart = rssBytes(server.pid);
    // Forced collections run between timed phases only, after the RSS they would change was read.
    const heapAfterStart = (await server.liveHeapAfterGc?.()) ?? null;
    resetPeakRss(server.pid);
    const latencies: number[] = [];
    let rssAfterChanges = rssAfterStart;
    let heapAfterChanges: number | null = null;
    for (let i = 1; i <= reloads; i++) {
      const apply = server.prepare(i);
      const changed = performance.now();
      await apply();
      const served = (await servedAfter(server, last, `last ${i}`, agent, changed)) - changed;
      if (i <= SCALE_CHANGES) latencies.push(served);
      if (i === SCALE_CHANGES) {
        rssAfterChanges = rssBytes(server.pid);
        heapAfterChanges = (await server.liveHeapAfterGc?.()) ?? null;
      }
      tick(i, reloads);
    }
    const rssAfterReloads = rssBytes(server.pid);
    const peakRss = peakRssBytes(server.pid);
    const heapAfterReloads = (await server.liveHeapAfterGc?.()) ?? null;
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
      document_bytes: server.bytes,
      startup_ms: round(startupMs),
      rss_after_start_bytes: rssAfterStart,
      rss_per_1000_routes_bytes: Math.round((rssAfterStart - baseline) / (routes / 1000)),
      change_p50_ms: round(percentile(latencies, 50)),
      change_p99_ms: round(percentile(latencies, 99)),
      changes: latencies.length,
      reloads,
      rss_after_reloads_bytes: rssAfterReloads,
      rss_growth_over_reloads_bytes: rssAfterReloads - rssAfterChanges,
      peak_rss_over_reloads_bytes: peakRss,
      heap_after_gc_start_bytes: heapAfterStart,
      heap_after_gc_changes_bytes: heapAfterChanges,
      heap_after_gc_reloads_bytes: heapAfterReloads,
      heap_growth_over_reloads_bytes: heapAfterReloads !== null && heapAfterChanges !== null ? heapAfterReloads - heapAfterChanges : null,
      first_route_rps: round(first.requests_per_s),
      last_route_rps: round(lastRun.requests_per_s),
      last_to_first: round(lastRun.requests_per_s / first.requests_per_s, 3),
    };
  } finally {
    agent.destroy();
    await server.stop();
  }
}

/**
 * Issue 12's `scale` part, each case in its own server process: hotconf on 1,000 and 10,000
 * routes as one file, and (full run only) 100,000 routes as a `--config-dir` of 100 fragments of
 * 1,000 routes; Caddy on the same 10,000 routes (`/load` of its JSON config). Per case: start-up,
 * RSS (and per 1,000 routes over a 10-route start), a one-route change → served (p50/p99 over 20
 * changes), RSS, peak RSS and (hotconf, through its inspector) the live heap after a forced full
 * collection across 100 reloads (`--quick`: 30 for 10,000 routes and more), and requests/s on
 * the first and the last route (wrk, 32 keepalive connections; both `respond` routes). The
 * upstreams' two targets are two bench backends; no request is proxied, they exist so that
 * provisioning carries them. Fields are prefixed by case: `r1000_`, `r10000_`, `dir100000_`,
 * `caddy10000_`.
 */
export async function scalePart(quick: boolean): Promise<ScaleResult> {
  const backendPorts = [await freePort(), await freePort()];
  const backends = await Promise.all(backendPorts.map((p) => startBackend(p)));
  const targets = backendPorts.map((p) => `http://127.0.0.1:${p}`);
  const file = hotconfFile(targets);
  const cases: { prefix: string; start: ScaleStarter; routes: number; reloads: number }[] = [
    { prefix: 'r1000', start: file, routes: 1000, reloads: 100 },
    { prefix: 'r10000', start: file, routes: 10_000, reloads: quick ? 30 : 100 },
    { prefix: 'caddy10000', start: caddy(backendPorts.map((p) => `127.0.0.1:${p}`)), routes: 10_000, reloads: quick ? 30 : 100 },
    ...(quick ? [] : [{ prefix: 'dir100000', start: hotconfDirectory(targets), routes: 100_000, reloads: 100 }]),
  ];
  const result: ScaleResult = {};
  const baselines = new Map<ScaleStarter, number>();
  try {
    for (const { prefix, start, routes, reloads } of cases) {
      if (!baselines.has(start)) baselines.set(start, await baselineRss(start));
      const { routes: _, ...numbers } = await scaleCase(prefix, start, routes, baselines.get(start)!, reloads, quick ? 3 : 10);
      for (const [field, value] of Object.entries(numbers)) result[`${prefix}_${field}`] = value;
    }
  } finally {
    await Promise.all(backends.map((b) => stopProcess(b)));
  }
  return result;
}
