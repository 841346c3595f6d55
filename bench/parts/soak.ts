import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
 * Drive `reloads` config changes through `POST {admin}/reload`, each writing a new body to the
 * config file first, sampling fds, active handles, heap after GC and exporter connections every
 * SAMPLE_EVERY reloads (after WARMUP).
 */
async function drive(label: string, reloads: number, admin: string, file: string, port: number, receiver: OtlpReceiver): Promise<SoakRun> {
  const agent = singleSocketAgent();
  const samples: SoakSample[] = [];
  const tick = progress(label);
  try {
    for (let i = 1; i <= WARMUP + reloads; i++) {
      await writeConfigAtomic(file, config(port, receiver.url, `v${i}`));
      const res = await httpRequest(`${admin}/reload`, { method: 'POST', agent });
      if (res.status !== 200) throw new Error(`${label}: reload ${i} answered ${res.status} ${res.body}`);
      const done = i - WARMUP;
      if (done >= 0 && done % SAMPLE_EVERY === 0) {
        await sleep(20); // let released generations finish their destroys
        samples.push(sample(done, receiver));
        tick(done, reloads);
      }
    }
  } finally {
    agent.destroy();
  }
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
  const dir = await mkdtemp(join(tmpdir(), 'hotconf-soak-'));
  const receiver = await OtlpReceiver.start({ autoClose: false, retainSpans: false });
  try {
    const file = join(dir, 'hotconf.yaml');
    const port = await freePort();
    await writeConfigAtomic(file, config(port, receiver.url, 'v0'));
    const controller = await start(file);
    try {
      const run = await drive(label, reloads, controller.admin, file, port, receiver);
      return controller.trend ? { ...run, daemon_growing: growing(controller.trend()) } : run;
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
