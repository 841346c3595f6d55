import type { Agent } from 'node:http';
import { stringify } from 'yaml';
import { runCleanups } from '../../harness/cleanup.js';
import { basicConfig } from '../../harness/daemon.js';
import { type EtcdDaemon, EtcdServer, startEtcdDaemon } from '../../harness/etcd.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { percentile, progress, requireTool, round } from '../lib/util.js';

export interface EtcdFleetResult {
  fleet: number;
  /** put → the last daemon of the fleet served the new body. */
  served_all_p50_ms: number;
  served_all_p99_ms: number;
  /** put → the last daemon of the fleet applied the reload. */
  applied_all_p50_ms: number;
  applied_all_p99_ms: number;
  /** put → an etcd3 watcher in this process saw it: etcd's own round trip. */
  watch_floor_p50_ms: number;
  watch_floor_p99_ms: number;
  samples: number;
}

const KEY = '/hotconf/fleet';
const FLEET = 3;

/** The port a daemon's only listener got (the config asks for port 0). */
function listenerPort(daemon: EtcdDaemon): number {
  return [...daemon.daemon.reloader.active!.listeners().values()][0]!.handle.address.port;
}

/**
 * A fleet on one key: a real etcd on loopback and three in-process daemons (`startEtcdDaemon`,
 * each binding its own port from the same document, which asks for port 0), plus an etcd3
 * watcher on the key. Per put: when the watcher saw it (the floor), when the last daemon applied
 * it (its reloader's `reload` event), and when the last daemon served the new body (each polled
 * every millisecond on its own keepalive connection). Everything shares this process, so the
 * numbers include the fleet competing for one event loop.
 */
export async function etcdFleetPart(quick: boolean): Promise<EtcdFleetResult> {
  requireTool('etcd', 'apt-get install -y etcd-server etcd-client');
  const samples = quick ? 20 : 100;
  const served: number[] = [];
  const applied: number[] = [];
  const floor: number[] = [];
  const tick = progress('etcd_fleet');
  try {
    const etcd = await EtcdServer.start();
    await etcd.put(KEY, stringify(basicConfig({ port: 0, body: 'v0' })));
    const fleet = await Promise.all(Array.from({ length: FLEET }, () => startEtcdDaemon(etcd, KEY)));
    // The next `applied` reload of each daemon resolves its waiter (the event follows the swap,
    // so it can come after the daemon already served the new body).
    const nextApplied: (((at: number) => void) | undefined)[] = fleet.map(() => undefined);
    const unsubscribe = fleet.map((d, i) =>
      d.daemon.reloader.subscribe((event) => {
        if (event.type === 'reload' && event.result.result === 'applied') nextApplied[i]?.(performance.now());
      }),
    );
    const agents: Agent[] = fleet.map(() => singleSocketAgent());
    const urls = fleet.map((d) => `http://127.0.0.1:${listenerPort(d)}/`);
    const watcher = await etcd.client().watch().key(KEY).create();
    let seen: ((at: number) => void) | undefined;
    watcher.on('put', () => seen?.(performance.now()));
    try {
      for (let i = 1; i <= samples; i++) {
        const body = `v${i}`;
        const watched = new Promise<number>((resolve) => (seen = resolve));
        const appliedBy = Promise.all(fleet.map((_, d) => new Promise<number>((resolve) => (nextApplied[d] = resolve))));
        const started = performance.now();
        await etcd.put(KEY, stringify(basicConfig({ port: 0, body })));
        const servedBy = await Promise.all(urls.map((url, d) => servedAt(url, body, agents[d]!, started)));
        served.push(Math.max(...servedBy) - started);
        applied.push(Math.max(...(await appliedBy)) - started);
        floor.push((await watched) - started);
        tick(i, samples);
      }
    } finally {
      await watcher.cancel();
      for (const agent of agents) agent.destroy();
      for (const stop of unsubscribe) stop();
    }
  } finally {
    await runCleanups(); // the daemons, the etcd server and its client (harness helpers register their own teardown)
  }
  return {
    fleet: FLEET,
    served_all_p50_ms: round(percentile(served, 50)),
    served_all_p99_ms: round(percentile(served, 99)),
    applied_all_p50_ms: round(percentile(applied, 50)),
    applied_all_p99_ms: round(percentile(applied, 99)),
    watch_floor_p50_ms: round(percentile(floor, 50)),
    watch_floor_p99_ms: round(percentile(floor, 99)),
    samples,
  };
}
