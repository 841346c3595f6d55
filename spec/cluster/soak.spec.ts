import { expect } from 'chai';
import { clusterCounts, clusterGrowth, type ProcessCounts } from '../../harness/cluster.js';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { clusterConfig, freshGet, startCluster } from './processes.js';

/** Reloads before the starting count, so everything the churn creates lazily exists in it. */
const WARMUP = 20;
/** Reloads counted; a multiple of the churn's period (20), so the last config has the first's shape. */
const RELOADS = 100;
/** How far a process's fds or a worker's handles may be above its starting count after the soak. */
const BOUND = 3;

describe('cluster soak: hotconf run --workers 2', function () {
  this.timeout(300_000);

  it(`returns every process to its starting fds, and every worker to its handles and live resources, after ${RELOADS} reloads with route, upstream and listener churn under requests`, async () => {
    const [a, b] = [await TestUpstream.start(), await TestUpstream.start()];
    const [port, second] = [await freePort(), await freePort()];
    // Reload i's config. Every part churns with a period dividing 20: the api upstream's targets
    // (4), an extra upstream and its route (5), a second listener (10), and a respond route's body
    // (every reload). Short pool keepalive, so idle upstream connections close and a settled
    // count has none.
    const config = (i: number): Record<string, unknown> => {
      const pool = { keep_alive_timeout_ms: 100 };
      const upstreams: Record<string, unknown> = { api: { targets: [[a.origin], [a.origin, b.origin], [b.origin], [b.origin, a.origin]][i % 4], pool } };
      const routes: Record<string, unknown>[] = [
        { path_prefix: '/api', upstream: 'api' },
        { path_prefix: '/r', respond: { status: 200, body: `r${i}` } },
      ];
      if (i % 5 < 2) {
        upstreams.extra = { targets: [b.origin], pool };
        routes.push({ path_prefix: '/extra', upstream: 'extra' });
      }
      const listeners: Record<string, unknown>[] = [{ name: 'web', listen: `127.0.0.1:${port}`, routes }];
      if (i % 10 < 5)
        listeners.push({ name: 'second', listen: `127.0.0.1:${second}`, routes: [{ path_prefix: '/', respond: { status: 200, body: 'second' } }] });
      return { shutdown_timeout_ms: 2000, upstreams, listeners };
    };
    const { p, file, admin } = await startCluster(config(0), ['--no-watch']);
    const reload = async (i: number) => {
      await writeConfigAtomic(file, config(i));
      const res = await httpRequest(`${admin}/reload`, { method: 'POST' });
      expect(res.status, `reload ${i}: ${res.body}`).to.equal(200);
    };
    // Settled: no upstream connection open (pools idle-closed), every worker down to one
    // generation with a clean leak report.
    const settled = () =>
      waitFor(
        'the cluster to settle',
        async () => {
          if (a.openConnections + b.openConnections > 0) return undefined;
          const counts = await clusterCounts(admin);
          return counts.every((c) => c.ok !== false) ? counts : undefined;
        },
        30_000,
      );

    for (let i = 1; i <= WARMUP; i += 1) await reload(i);
    const before = await settled();
    expect(before.map((c) => c.name)).to.have.members(['primary', 'worker 1', 'worker 2']);

    let stop = false;
    const statuses: number[] = [];
    const client = (async () => {
      for (let n = 0; !stop; n += 1) statuses.push((await freshGet(`http://127.0.0.1:${port}/${n % 2 === 0 ? 'api' : 'r'}`)).status);
    })();
    for (let i = WARMUP + 1; i <= WARMUP + RELOADS; i += 1) await reload(i);
    stop = true;
    await client;
    expect(statuses.length).to.be.greaterThan(0);
    expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
    expect(a.requests.length + b.requests.length).to.be.greaterThan(0);

    const body = await clusterConfig(admin);
    expect(body.revision).to.equal(1 + WARMUP + RELOADS);
    expect(body.workers.map((w) => w.revision)).to.deep.equal([body.revision, body.revision]);
    expect(await metricValue(admin, 'hotconf_worker_restarts_total', { worker: 'primary' })).to.equal(0);

    // Back within BOUND of the start, per process; live resources exactly as at the start (the
    // config has the same shape). Polled: retired generations release after their drain.
    let after: ProcessCounts[] = [];
    await waitFor(
      `every process within ${BOUND} of its starting counts`,
      async () => {
        after = await settled();
        const over = clusterGrowth(before, after).filter((g) => g.fds > BOUND || (g.handles ?? 0) > BOUND);
        if (over.length > 0) throw new Error(`grew: ${JSON.stringify(over)}`);
        for (const b of before.filter((c) => c.live)) {
          const now = after.find((c) => c.pid === b.pid)!;
          if (JSON.stringify(now.live) !== JSON.stringify(b.live)) throw new Error(`${b.name} live ${JSON.stringify(now.live)}, was ${JSON.stringify(b.live)}`);
        }
        return true;
      },
      60_000,
    );
    for (const worker of after.filter((c) => c.name !== 'primary')) {
      expect(worker.ok, worker.name).to.equal(true);
      expect(worker.live?.listener, worker.name).to.equal(2);
    }

    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });
});
