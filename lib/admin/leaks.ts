import type { KindStats, ResourceRegistry } from '../registry/registry.js';
import type { Reloader } from '../reload/reloader.js';
import type { HttpStack } from '../resources/http-stack.js';
import type { ListenerHandle } from '../resources/listener.js';

/** One reason to think something leaked. */
export interface LeakSuspect {
  reason: 'leaked_leases' | 'generation_not_released' | 'unowned_resource' | 'refs_mismatch';
  kind?: string;
  key?: string;
  generation?: number;
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
export function leakReport(registry: ResourceRegistry, reloader: Reloader, now: number = Date.now()): LeakReport {
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
  for (const g of generations) for (const { kind, key } of g.holds()) held.set(`${kind}\0${key}`, (held.get(`${kind}\0${key}`) ?? 0) + 1);
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
