import { stringify } from 'yaml';
import { runCleanups } from '../../harness/cleanup.js';
import { basicConfig } from '../../harness/daemon.js';
import { EtcdServer } from '../../harness/etcd.js';
import { freePort } from '../../harness/ports.js';
import { sleep } from '../../harness/wait.js';
import { startDaemonProcess } from '../lib/daemon-process.js';
import { servedAt, singleSocketAgent } from '../lib/http.js';
import { percentile, progress, requireTool, round } from '../lib/util.js';

export interface ReloadEtcdResult {
  p50_ms: number;
  p99_ms: number;
  watch_floor_p50_ms: number;
  watch_floor_p99_ms: number;
  samples: number;
}

const KEY = '/hotconf/bench';

/**
 * etcd put → served, beside the raw floor, per put: a real etcd (Debian's etcd-server) on
 * loopback, a `hotconf run --etcd` child process, and an etcd3 watcher in this process on the
 * same key. Each sample puts a new body and records when the watcher saw the put (the floor) and
 * when the listener first served the new body (polled every millisecond on one keepalive
 * connection).
 */
export async function reloadEtcdPart(quick: boolean): Promise<ReloadEtcdResult> {
  requireTool('etcd', 'apt-get install -y etcd-server etcd-client');
  const samples = quick ? 50 : 200;
  const served: number[] = [];
  const floor: number[] = [];
  const tick = progress('reload_etcd');
  try {
    const etcd = await EtcdServer.start();
    const [port, admin] = [await freePort(), await freePort()];
    await etcd.put(KEY, stringify(basicConfig({ port, body: 'v0' })));
    const daemon = await startDaemonProcess(['--etcd', etcd.clientUrl, '--key', KEY], `127.0.0.1:${admin}`);
    const agent = singleSocketAgent();
    const watcher = await etcd.client().watch().key(KEY).create();
    let seen: ((at: number) => void) | undefined;
    watcher.on('put', () => seen?.(performance.now()));
    try {
      for (let i = 1; i <= samples; i++) {
        await sleep(20);
        const body = `v${i}`;
        const watched = new Promise<number>((resolve) => (seen = resolve));
        const started = performance.now();
        await etcd.put(KEY, stringify(basicConfig({ port, body })));
        served.push((await servedAt(`http://127.0.0.1:${port}/`, body, agent, started)) - started);
        floor.push((await watched) - started);
        tick(i, samples);
      }
    } finally {
      await watcher.cancel();
      agent.destroy();
      await daemon.stop();
    }
  } finally {
    await runCleanups(); // the etcd server and its client (spec helpers register their own teardown)
  }
  return {
    p50_ms: round(percentile(served, 50)),
    p99_ms: round(percentile(served, 99)),
    watch_floor_p50_ms: round(percentile(floor, 50)),
    watch_floor_p99_ms: round(percentile(floor, 99)),
    samples,
  };
}
