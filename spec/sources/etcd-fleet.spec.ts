import { Agent } from 'node:http';
import { performance } from 'node:perf_hooks';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { basicConfig } from '../../harness/daemon.js';
import { type EtcdDaemon, EtcdServer, servedSource, startEtcdDaemon } from '../../harness/etcd.js';
import { getText } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

const KEY = '/hotconf/config';

/** The port a daemon's `web` listener got (the config asks for port 0). */
function listenerPort(daemon: EtcdDaemon): number {
  return [...daemon.daemon.reloader.active!.listeners().values()][0]!.handle.address.port;
}

function summary(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(2);
  return `median ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${sorted.at(-1)!.toFixed(2)} ms (n=${samples.length})`;
}

describe('a fleet of daemons on one etcd key', function () {
  this.timeout(120_000);
  let etcd: EtcdServer;
  beforeEach(async () => {
    etcd = await EtcdServer.start();
  });

  it('converges three daemons to the same revision in /config after every put', async () => {
    // Port 0: each daemon of the fleet binds its own listener from the same document.
    await etcd.put(KEY, stringify(basicConfig({ port: 0, body: 'v0' })));
    const fleet = await Promise.all([1, 2, 3].map(() => startEtcdDaemon(etcd, KEY)));
    for (let i = 1; i <= 5; i += 1) {
      const revision = await etcd.put(KEY, stringify(basicConfig({ port: 0, body: `v${i}` })));
      await waitFor(
        `all three daemons at revision ${revision}`,
        async () => (await Promise.all(fleet.map((d) => servedSource(d.admin)))).every((s) => s.revision === revision),
        20_000,
      );
      const bodies = await Promise.all(fleet.map((d) => getText(`http://127.0.0.1:${listenerPort(d)}/`)));
      expect(bodies).to.deep.equal([`v${i}`, `v${i}`, `v${i}`]);
    }
  });

  it('measures put → served against the raw etcd watch round trip (printed, not asserted)', async () => {
    const samples = 30;
    // Floor: how long etcd itself takes from a put to a watcher on the same machine seeing it.
    const raw: number[] = [];
    const watcher = await etcd.client().watch().key('/latency/raw').create();
    try {
      for (let i = 0; i < samples; i += 1) {
        const seen = new Promise<void>((resolve) => watcher.once('put', () => resolve()));
        const started = performance.now();
        await Promise.all([etcd.put('/latency/raw', String(i)), seen]);
        raw.push(performance.now() - started);
      }
    } finally {
      await watcher.cancel();
    }

    const port = await freePort();
    await etcd.put(KEY, stringify(basicConfig({ port, body: 'start' })));
    const daemon = await startEtcdDaemon(etcd, KEY);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const served: number[] = [];
    const applied: number[] = [];
    let appliedAt = 0;
    const unsubscribe = daemon.daemon.reloader.subscribe((event) => {
      if (event.type === 'reload' && event.result.result === 'applied') appliedAt = performance.now();
    });
    try {
      for (let i = 0; i < samples; i += 1) {
        const started = performance.now();
        await etcd.put(KEY, stringify(basicConfig({ port, body: `sample-${i}` })));
        // Poll the listener over one keepalive connection: served means a client got the new body.
        await waitFor(`sample ${i} to be served`, async () => (await getText(`http://127.0.0.1:${port}/`, agent)) === `sample-${i}`, 10_000, 0);
        served.push(performance.now() - started);
        applied.push(appliedAt - started);
      }
    } finally {
      unsubscribe();
      agent.destroy();
    }
    console.log(`      etcd watch round trip (put -> watcher): ${summary(raw)}`);
    console.log(`      hotconf put -> reload applied:          ${summary(applied)}`);
    console.log(`      hotconf put -> served to a client:      ${summary(served)}`);
    expect(served).to.have.length(samples);
    expect(raw).to.have.length(samples);
  });
});
