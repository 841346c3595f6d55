import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterCounts, clusterGrowth, largestGrowth, type ProcessCounts } from '../../harness/cluster.js';
import { basicConfig, writeConfigAtomic } from '../../harness/daemon.js';
import { handleCount, openFds } from '../../harness/handles.js';
import { httpRequest } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { sleep } from '../../harness/wait.js';
import { DEFAULT_LEAK_TREND, type LeakTrend, leakTrend } from '../../lib/admin/leaks.js';
import { silentLogger } from '../../lib/core/log.js';
import { Daemon } from '../../lib/daemon/daemon.js';
import { FileSource } from '../../lib/sources/file.js';
import { EagerTracingController } from '../eager/eager-tracing.js';
import { startDaemonProcess } from '../lib/daemon-process.js';
import { singleSocketAgent } from '../lib/http.js';
import { openFileLimit, progress } from '../lib/util.js';

/** One sample, taken after a forced GC. */
export interface SoakSample {
  reloads: number;
  fds: number;
  handles: number;
  heap_bytes: number;
  /** Exporter connections open at the OTLP receiver. */
  exporter_connections: number;
}

export interface SoakRun {
  reloads: number;
  samples: SoakSample[];
  fd_delta: number;
  handles_delta: number;
  heap_delta_bytes: number;
  sockets_leaked: number;
  /** Least-squares growth per reload over every sample (`leakTrend`, the daemon's own trend function). */
  fds_per_reload: number;
  handles_per_reload: number;
  exporter_connections_per_reload: number;
  /** The series growing faster than the daemon's threshold (0.5 per reload), comma-separated; '' for none. */
  growing: string;
  /** hotconf only: the `growing` suspects the daemon's own `/leaks` named after the last reload (its last 50 reloads). */
  daemon_growing?: string;
}

const SAMPLE_EVERY = 100;
/** Reloads before the first sample, so lazily opened things exist in the baseline. */
const WARMUP = 300;

function config(port: number, endpoint: string, body: string): Record<string, unknown> {
  return basicConfig({ port, body, tracing: { exporter: 'otlp-http', endpoint, batch: { scheduled_delay_ms: 200 } } });
}

function sample(reloads: number, receiver: OtlpReceiver): SoakSample {
  if (typeof global.gc !== 'function') throw new Error('run the bench with node --expose-gc (npm run bench does)');
  global.gc();
  return {
    reloads,
    fds: openFds(),
    handles: handleCount(),
    heap_bytes: process.memoryUsage().heapUsed,
    exporter_connections: receiver.openConnections,
  };
}

/**
 * Drive `warmup` + `reloads` config changes through `POST {admin}/reload`, each writing a new
 * body to the config file first; every SAMPLE_EVERY reloads after the warm-up (the first at 0),
 * wait a moment for released generations to finish their destroys and call `take(done)`.
 */
async function reloadAndSample(
  label: string,
  warmup: number,
  reloads: number,
  target: { admin: string; file: string; port: number; receiver: OtlpReceiver },
  take: (done: number) => unknown,
): Promise<void> {
  const agent = singleSocketAgent();
  const tick = progress(label);
  try {
    for (let i = 1; i <= warmup + reloads; i++) {
      await writeConfigAtomic(target.file, config(target.port, target.receiver.url, `v${i}`));
      const res = await httpRequest(`${target.admin}/reload`, { method: 'POST', agent });
      if (res.status !== 200) throw new Error(`${label}: reload ${i} answered ${res.status} ${res.body}`);
      const done = i - warmup;
      if (done >= 0 && done % SAMPLE_EVERY === 0) {
        await sleep(20);
        await take(done);
        tick(done, reloads);
      }
    }
  } finally {
    agent.destroy();
  }
}

/**
 * `reloadAndSample` of this process: fds, active handles, heap after GC and exporter
 * connections every SAMPLE_EVERY reloads (after WARMUP), and what they did over the run.
 */
async function drive(label: string, reloads: number, admin: string, file: string, port: number, receiver: OtlpReceiver): Promise<SoakRun> {
  const samples: SoakSample[] = [];
  await reloadAndSample(label, WARMUP, reloads, { admin, file, port, receiver }, (done) => samples.push(sample(done, receiver)));
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const trend = soakTrend(samples);
  return {
    reloads,
    samples,
    fd_delta: last.fds - first.fds,
    handles_delta: last.handles - first.handles,
    heap_delta_bytes: last.heap_bytes - first.heap_bytes,
    sockets_leaked: last.exporter_connections - first.exporter_connections,
    fds_per_reload: round(trend.slopes.fds ?? 0),
    handles_per_reload: round(trend.slopes.handles ?? 0),
    exporter_connections_per_reload: round(trend.slopes.exporter_connections ?? 0),
    growing: growing(trend),
  };
}

/**
 * The samples through the daemon's own trend function (`leakTrend`, threshold 0.5 per reload),
 * every sample in the window: the same slope for both sides, from the same GC'd samples.
 */
function soakTrend(samples: readonly SoakSample[]): LeakTrend {
  const points = samples.map((s) => ({ reload: s.reloads, values: { fds: s.fds, handles: s.handles, exporter_connections: s.exporter_connections } }));
  return leakTrend(points, { window: points.length, threshold_per_reload: DEFAULT_LEAK_TREND.threshold_per_reload });
}

function growing(trend: LeakTrend | undefined): string {
  return (trend?.suspects ?? []).map((s) => s.resource).join(',');
}

function round(value: number): number {
  return Math.round(value * 1e4) / 1e4;
}

/**
 * Soak what `start` starts on a config file in a temp dir (tracing to an OTLP receiver of this
 * process): `drive` it through `reloads` reloads, then close it and clean up.
 */
interface SoakController {
  admin: string;
  close(): Promise<unknown>;
  /** The controller's own leak trend after the last reload, if it keeps one (hotconf). */
  trend?(): LeakTrend | undefined;
}

async function soak(label: string, reloads: number, start: (file: string) => Promise<SoakController>): Promise<SoakRun> {
  return soakSetup(start, async (controller, file, port, receiver) => {
    const run = await drive(label, reloads, controller.admin, file, port, receiver);
    return controller.trend ? { ...run, daemon_growing: growing(controller.trend()) } : run;
  });
}

/** A temp dir, an OTLP receiver and a config file on a free port; `start` the controller on it, `run`, then close and clean up. */
async function soakSetup<R>(
  start: (file: string) => Promise<SoakController>,
  run: (controller: SoakController, file: string, port: number, receiver: OtlpReceiver) => Promise<R>,
): Promise<R> {
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-soak-'));
  const receiver = await OtlpReceiver.start({ autoClose: false, retainSpans: false });
  try {
    const file = join(dir, 'hotconf.yaml');
    const port = await freePort();
    await writeConfigAtomic(file, config(port, receiver.url, 'v0'));
    const controller = await start(file);
    try {
      return await run(controller, file, port, receiver);
    } finally {
      await controller.close();
    }
  } finally {
    await receiver.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** hotconf: an in-process daemon (so GC can be forced), reloaded through its admin API. */
export function soakPart(reloads: number): Promise<SoakRun> {
  return soak('soak (hotconf)', reloads, async (file) => {
    const admin = `127.0.0.1:${await freePort()}`;
    const daemon = new Daemon({ source: new FileSource({ path: file }), logger: silentLogger(), adminListen: admin, watch: false, defaultMetrics: false });
    await daemon.start(); // a failed start stops what it started
    return { admin: `http://${admin}`, close: () => daemon.stop(), trend: () => daemon.leaks().trend };
  });
}

/**
 * The eager counterfactual under the same reloads. Each leaked exporter connection costs two
 * fds in this process (client and receiver ends), so the count is capped below the open-file
 * limit; the cap is reported.
 */
export async function eagerPart(reloads: number): Promise<SoakRun & { capped_by_fd_limit: boolean }> {
  const budget = Math.floor((openFileLimit() - 400) / 2) - WARMUP;
  const count = Math.max(SAMPLE_EVERY, Math.min(reloads, Math.floor(budget / SAMPLE_EVERY) * SAMPLE_EVERY));
  const run = await soak('eager counterfactual', count, async (file) => {
    const controller = new EagerTracingController(() => readFile(file, 'utf8'));
    return { admin: await controller.listen(), close: () => controller.close() };
  });
  return { ...run, capped_by_fd_limit: count < reloads };
}

/** Reloads before the first sample of a cluster soak. */
const CLUSTER_WARMUP = 100;

/**
 * `hotconf run --workers N` under the soak, flat for the results table (`w<N>_` fields): per
 * process the growth from the first sample to the last of its open fds (`/proc/PID/fd`) and,
 * for a worker, of its active handles (from its `/leaks`), as `w2_primary_fd_delta`,
 * `w2_worker1_fd_delta`, `w2_worker1_handles_delta`, …; the largest of them (`w2_fd_delta`,
 * `w2_handles_delta`), the steepest least-squares slope per reload, what grows past 0.5 per
 * reload, exporter connections left at the receiver, and whether the cluster's `/leaks` was
 * `ok` after the last reload.
 */
export type ClusterSoakResult = Record<string, number | string | boolean>;

/**
 * The soak through a cluster: a `hotconf run --workers N` child process, reloaded through its
 * admin API `reloads` times after CLUSTER_WARMUP, every process counted every SAMPLE_EVERY
 * reloads (`clusterCounts`: no forced GC across processes; fds and handles need none).
 * @throws when a process dies or is re-forked during the run
 */
export function soakClusterPart(workers: number, reloads: number): Promise<ClusterSoakResult> {
  const prefix = `w${workers}_`;
  const label = `soak (hotconf --workers ${workers})`;
  const start = async (file: string): Promise<SoakController> => {
    const admin = `127.0.0.1:${await freePort()}`;
    const daemon = await startDaemonProcess(['--config', file, '--no-watch', '--workers', String(workers)], admin);
    return { admin: daemon.admin, close: () => daemon.stop() };
  };
  return soakSetup(start, async (controller, file, port, receiver) => {
    const samples: { reloads: number; counts: ProcessCounts[]; exporter_connections: number }[] = [];
    await reloadAndSample(label, CLUSTER_WARMUP, reloads, { admin: controller.admin, file, port, receiver }, async (done) => {
      samples.push({ reloads: done, counts: await clusterCounts(controller.admin), exporter_connections: receiver.openConnections });
    });
    const leaksOk = (JSON.parse((await httpRequest(`${controller.admin}/leaks`)).body) as { ok: boolean }).ok;
    const first = samples[0]!;
    const last = samples.at(-1)!;
    const growth = clusterGrowth(first.counts, last.counts);
    const out: ClusterSoakResult = { [`${prefix}reloads`]: reloads };
    for (const g of growth) {
      const name = g.name.replace(/\s+/g, '');
      out[`${prefix}${name}_fd_delta`] = g.fds;
      if (g.handles !== undefined) out[`${prefix}${name}_handles_delta`] = g.handles;
    }
    const largest = largestGrowth(growth);
    // Every process's series through the daemon's own trend function, as for the single process.
    const points = samples.map((s) => ({
      reload: s.reloads,
      values: Object.fromEntries(
        s.counts.flatMap((c) => [[`fds@${c.name}`, c.fds], ...(c.handles === undefined ? [] : [[`handles@${c.name}`, c.handles]])]),
      ) as Record<string, number>,
    }));
    const trend = leakTrend(points, { window: points.length, threshold_per_reload: DEFAULT_LEAK_TREND.threshold_per_reload });
    const slopes = (series: string) => Math.max(0, ...Object.entries(trend.slopes).flatMap(([name, slope]) => (name.startsWith(`${series}@`) ? [slope] : [])));
    return {
      ...out,
      [`${prefix}fd_delta`]: largest.fds,
      [`${prefix}handles_delta`]: largest.handles,
      [`${prefix}fds_per_reload`]: round(slopes('fds')),
      [`${prefix}handles_per_reload`]: round(slopes('handles')),
      [`${prefix}growing`]: growing(trend),
      [`${prefix}sockets_leaked`]: last.exporter_connections - first.exporter_connections,
      [`${prefix}leaks_ok`]: leaksOk,
    };
  });
}
