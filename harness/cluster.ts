import { openFds } from './handles.js';
import { httpRequest } from './http.js';

/** One worker as a cluster's `GET /config` lists it. */
export interface ClusterWorkerStatus {
  id: number;
  pid: number;
  revision: number;
  generation: number;
}

/**
 * What one process of a `hotconf run --workers N` holds: open fds (`/proc/PID/fd`) for every
 * process; for a worker also its active handles (the sum of its `/leaks` `handles` by type) and
 * its live registry resources by kind (`/leaks` `resources[kind].live`), and whether its own
 * leak report is `ok`. `name` is `primary` or `worker ID`.
 */
export interface ProcessCounts {
  name: string;
  pid: number;
  fds: number;
  handles?: number;
  live?: Record<string, number>;
  ok?: boolean;
}

interface WorkerLeaks {
  id: number;
  report?: { ok?: boolean; handles?: Record<string, number>; resources?: Record<string, { live: number }> };
}

/** `GET url` as JSON; the connection is closed after it, so counting does not leave a socket behind. */
async function getJson<T>(url: string): Promise<T> {
  const res = await httpRequest(url, { headers: { connection: 'close' } });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body) as T;
}

/**
 * Count every process of the cluster whose admin API is at `admin` (`http://HOST:PORT`): the
 * primary (its pid from `/healthz`), then each worker of `/config` with its `/leaks` report.
 * Linux only (`/proc`).
 * @throws when a process exits while it is counted, or a worker has no leak report
 */
export async function clusterCounts(admin: string): Promise<ProcessCounts[]> {
  const { pid } = await getJson<{ pid: number }>(`${admin}/healthz`);
  const { workers } = await getJson<{ workers: ClusterWorkerStatus[] }>(`${admin}/config`);
  const leaks = await getJson<{ workers: WorkerLeaks[] }>(`${admin}/leaks`);
  const counts: ProcessCounts[] = [{ name: 'primary', pid, fds: openFds(pid) }];
  for (const worker of workers) {
    const report = leaks.workers.find((w) => w.id === worker.id)?.report;
    if (!report?.handles || !report.resources) throw new Error(`worker ${worker.id} (pid ${worker.pid}) sent no leak report`);
    counts.push({
      name: `worker ${worker.id}`,
      pid: worker.pid,
      fds: openFds(worker.pid),
      handles: Object.values(report.handles).reduce((a, b) => a + b, 0),
      live: Object.fromEntries(Object.entries(report.resources).map(([kind, stats]) => [kind, stats.live])),
      ok: report.ok === true,
    });
  }
  return counts;
}

/** How much one process grew from one count to another (negative: it shrank). */
export interface ProcessGrowth {
  name: string;
  pid: number;
  fds: number;
  /** Workers only. */
  handles?: number;
}

/**
 * Per process (matched by pid), `after` minus `before` for fds and handles.
 * @throws naming the process when one counted `before` is not in `after` (it died or was re-forked)
 */
export function clusterGrowth(before: readonly ProcessCounts[], after: readonly ProcessCounts[]): ProcessGrowth[] {
  return before.map((b) => {
    const a = after.find((p) => p.pid === b.pid);
    if (!a) throw new Error(`${b.name} (pid ${b.pid}) is gone: it died or was re-forked`);
    return { name: b.name, pid: b.pid, fds: a.fds - b.fds, ...(b.handles === undefined ? {} : { handles: (a.handles ?? 0) - b.handles }) };
  });
}

/** The largest growth of fds and of handles over every process (0 when none grew). */
export function largestGrowth(growth: readonly ProcessGrowth[]): { fds: number; handles: number } {
  return {
    fds: Math.max(0, ...growth.map((g) => g.fds)),
    handles: Math.max(0, ...growth.map((g) => g.handles ?? 0)),
  };
}
