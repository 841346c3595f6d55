import type { KindStats, ResourceRegistry } from '../registry/registry.js';
import { heldLeases } from '../reload/generation.js';
import type { Reloader } from '../reload/reloader.js';
import type { HttpStack } from '../resources/http-stack.js';
import type { ListenerHandle } from '../resources/listener.js';

/** One reason to think something leaked. */
export interface LeakSuspect {
  reason: 'leaked_leases' | 'generation_not_released' | 'unowned_resource' | 'refs_mismatch' | 'growing';
  kind?: string;
  key?: string;
  generation?: number;
  /** `growing`: the trend series that grows (`fds`, `handles:TCPSocketWrap`, `live:listener`). */
  resource?: string;
  detail: string;
}

/** The body of `GET /leaks` and the final report logged at shutdown. `ok` = no suspects. */
export interface LeakReport {
  ok: boolean;
  resources: Record<string, KindStats>;
  generations_live: number;
  generations: { id: number; state: string; inflight: number; retired_ms_ago: number | null }[];
  /**
   * `process.getActiveResourcesInfo()` counted by type (TCPServerWrap, TCPSocketWrap, Timeout,
   * ...), plus `Tunnel` (open WebSocket tunnels) and `Http2Session` (open HTTP/2 sessions) of
   * every live listener and stack.
   */
  handles: Record<string, number>;
  suspects: LeakSuspect[];
  /** Growth over the last reloads (when the daemon records it); its suspects are in `suspects` too. */
  trend?: LeakTrend;
}

/** How long past its drain timeout a retired generation may take to release (destroy time). */
const RELEASE_GRACE_MS = 1000;

/**
 * Compare what the registry holds with what the live generations hold. Suspects: leases that
 * were garbage-collected unreleased; a retired generation still live after its drain timeout
 * (plus a grace for destroys); a live resource no live generation holds; a resource whose refs
 * differ from the leases the generations hold (skipped while a reload is in progress, when the
 * new generation's leases are not yet counted).
 */
export function leakReport(registry: ResourceRegistry, reloader: Reloader, now: number = Date.now(), trend?: LeakTrend): LeakReport {
  const resources = registry.stats();
  const suspects: LeakSuspect[] = [];
  for (const [kind, stats] of Object.entries(resources)) {
    if (stats.leakedLeases > 0) suspects.push({ reason: 'leaked_leases', kind, detail: `${stats.leakedLeases} lease(s) garbage-collected without release()` });
  }

  const generations = reloader.generations();
  for (const g of generations) {
    if (g.retiredAt !== undefined && now - g.retiredAt > g.config.shutdown_timeout_ms + RELEASE_GRACE_MS) {
      suspects.push({
        reason: 'generation_not_released',
        generation: g.id,
        detail: `retired ${now - g.retiredAt} ms ago, drain timeout ${g.config.shutdown_timeout_ms} ms`,
      });
    }
  }

  const held = new Map<string, number>();
  // Each lease once, though generations share an upstream table (or tables an entry): one registry ref each.
  for (const { kind, key } of heldLeases(generations)) held.set(`${kind}\0${key}`, (held.get(`${kind}\0${key}`) ?? 0) + 1);
  if (!reloader.busy) {
    for (const entry of registry.entries()) {
      if (entry.state !== 'live') continue;
      const count = held.get(`${entry.kind}\0${entry.key}`) ?? 0;
      if (count === 0)
        suspects.push({
          reason: 'unowned_resource',
          kind: entry.kind,
          key: entry.key,
          detail: `live with ${entry.refs} ref(s) but held by no live generation`,
        });
      else if (count !== entry.refs)
        suspects.push({ reason: 'refs_mismatch', kind: entry.kind, key: entry.key, detail: `${entry.refs} ref(s), ${count} held by live generations` });
    }
  }

  if (trend) suspects.push(...trend.suspects);
  return {
    ok: suspects.length === 0,
    resources,
    generations_live: generations.length,
    generations: generations.map((g) => ({
      id: g.id,
      state: g.state,
      inflight: g.inflight,
      retired_ms_ago: g.retiredAt === undefined ? null : now - g.retiredAt,
    })),
    handles: { ...activeHandles(), ...edgeHandles(reloader) },
    suspects,
    ...(trend ? { trend } : {}),
  };
}

/** Active libuv handles and requests by type. */
export function activeHandles(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) out[type] = (out[type] ?? 0) + 1;
  return out;
}

/** Open tunnels and HTTP/2 sessions of every live listener and stack, each counted once. */
function edgeHandles(reloader: Reloader): { Tunnel: number; Http2Session: number } {
  const handles = new Set<ListenerHandle>();
  const stacks = new Set<HttpStack>();
  for (const generation of reloader.generations()) {
    for (const { handle, stack } of generation.listeners().values()) {
      handles.add(handle);
      stacks.add(stack);
    }
  }
  let tunnels = 0;
  let sessions = 0;
  for (const handle of handles) tunnels += handle.tunnels.size;
  for (const stack of stacks) sessions += stack.sessions;
  return { Tunnel: tunnels, Http2Session: sessions };
}

/**
 * What was counted after one reload: `reload` is the reload count so far (the trend's x axis);
 * `values` holds one number per series: `handles` (active handles and requests), `handles:TYPE`
 * (by `process.getActiveResourcesInfo()` type), `fds` (open file descriptors, where
 * `/proc/self/fd` exists) and `live:KIND` (live registry resources of a kind).
 */
export interface LeakSample {
  reload: number;
  values: Readonly<Record<string, number>>;
}

export interface LeakTrendOptions {
  /** How many of the latest reloads the trend covers; suspects are named only once it is full. */
  window: number;
  /** A series growing faster than this per reload, by least squares, is a suspect. */
  threshold_per_reload: number;
}

/** 50 reloads, 0.5 per reload: a handle or fd left behind by every other reload is found within 50. */
export const DEFAULT_LEAK_TREND: Readonly<LeakTrendOptions> = Object.freeze({ window: 50, threshold_per_reload: 0.5 });

/** The trend part of the leak report (`GET /leaks` `trend`). */
export interface LeakTrend {
  window: number;
  threshold_per_reload: number;
  /** Reloads in the window so far (at most `window`). */
  reloads: number;
  /** Least-squares slope per series, in units per reload. */
  slopes: Record<string, number>;
  /** `growing` suspects, one per series over the threshold (only once `reloads` = `window`). */
  suspects: LeakSuspect[];
}

/**
 * The least-squares slope of `points` (`[x, y]`): Σ(x − x̄)(y − ȳ) / Σ(x − x̄)². 0 for fewer than
 * two points or when every x is equal.
 */
export function leastSquaresSlope(points: readonly (readonly [number, number])[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let sumX = 0;
  let sumY = 0;
  for (const [x, y] of points) {
    sumX += x;
    sumY += y;
  }
  const meanX = sumX / n;
  const meanY = sumY / n;
  let covariance = 0;
  let variance = 0;
  for (const [x, y] of points) {
    covariance += (x - meanX) * (y - meanY);
    variance += (x - meanX) ** 2;
  }
  return variance === 0 ? 0 : covariance / variance;
}

/**
 * Leaks found by trend rather than by snapshot (the pattern behind Traefik #13584, one goroutine
 * per applied config, found by comparing pods by uptime): over the last `window` samples, the
 * least-squares slope of every series against the reload count; a slope above
 * `threshold_per_reload` in a full window is a `growing` suspect named by its series. A series
 * missing from a sample counts 0 there (a handle type not present, a kind with nothing live).
 * Handles are named by type; the total `handles` is a suspect only when no single type is.
 */
export function leakTrend(samples: readonly LeakSample[], options: LeakTrendOptions): LeakTrend {
  const recent = samples.slice(-options.window);
  const names = new Set<string>();
  for (const sample of recent) for (const name of Object.keys(sample.values)) names.add(name);
  const slopes: Record<string, number> = {};
  for (const name of [...names].sort()) slopes[name] = leastSquaresSlope(recent.map((s) => [s.reload, s.values[name] ?? 0]));
  const suspects: LeakSuspect[] = [];
  if (recent.length >= options.window) {
    const growing = Object.keys(slopes).filter((name) => (slopes[name] ?? 0) > options.threshold_per_reload);
    const byType = growing.some((name) => name.startsWith('handles:'));
    for (const name of growing) {
      if (name === 'handles' && byType) continue;
      suspects.push({
        reason: 'growing',
        resource: name,
        ...(name.startsWith('live:') ? { kind: name.slice('live:'.length) } : {}),
        detail: `grows ${slopes[name]!.toFixed(2)} per reload over the last ${recent.length} reloads (threshold ${options.threshold_per_reload})`,
      });
    }
  }
  return { window: options.window, threshold_per_reload: options.threshold_per_reload, reloads: recent.length, slopes, suspects };
}
