import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig, writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { clusterConfig, freshGet, startCluster } from './processes.js';

describe('cluster: hotconf run --workers 2', function () {
  this.timeout(120_000);

  it('serves from two workers, applies an edit on both, and SIGTERM stops every worker with a clean leak report', async () => {
    const port = await freePort();
    const { p, file, admin } = await startCluster(basicConfig({ port, body: 'one' }));
    const url = `http://127.0.0.1:${port}/`;
    const started = await clusterConfig(admin);
    expect(started.revision).to.equal(1);
    expect(started.workers).to.have.length(2);
    expect(started.workers.map((w) => w.revision)).to.deep.equal([1, 1]);
    expect(new Set(started.workers.map((w) => w.pid)).size).to.equal(2);

    for (let i = 0; i < 10; i += 1) expect(await freshGet(url)).to.deep.equal({ status: 200, body: 'one' });
    await writeConfigAtomic(file, basicConfig({ port, body: 'two' }));
    await p.waitForLog('the cluster reload', event('reload', { component: 'cluster', trigger: 'watch', result: 'applied', revision: 2 }));
    // Once the primary reports applied, every worker has swapped: no request sees the old body.
    for (let i = 0; i < 10; i += 1) expect(await freshGet(url)).to.deep.equal({ status: 200, body: 'two' });
    expect((await clusterConfig(admin)).workers.map((w) => w.revision)).to.deep.equal([2, 2]);

    const leaks = JSON.parse((await httpRequest(`${admin}/leaks`)).body) as { ok: boolean; workers: unknown[] };
    expect(leaks.ok).to.equal(true);
    expect(leaks.workers).to.have.length(2);
    expect(await metricValue(admin, 'hotconf_config_generation', { worker: '1' })).to.equal(2);
    expect(await metricValue(admin, 'hotconf_config_generation', { worker: '2' })).to.equal(2);

    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
    const reports = p.logs().filter((l) => l.msg === 'final_leak_report');
    // One per worker and the primary's summary: every one clean.
    expect(reports).to.have.length(3);
    for (const report of reports) expect(report.ok).to.equal(true);
    for (const worker of started.workers) expect(() => process.kill(worker.pid, 0)).to.throw(/ESRCH/);
  });

  it('keeps every request answered through a storm of 30 reloads, each applied on both workers', async () => {
    const port = await freePort();
    const { p, file, admin } = await startCluster(basicConfig({ port, body: 'v0' }));
    const url = `http://127.0.0.1:${port}/`;
    let stop = false;
    const statuses: number[] = [];
    const client = (async () => {
      while (!stop) statuses.push((await freshGet(url)).status);
    })();
    for (let i = 1; i <= 30; i += 1) {
      await writeConfigAtomic(file, basicConfig({ port, body: `v${i}` }));
      const res = await httpRequest(`${admin}/reload`, { method: 'POST' });
      expect(res.status).to.equal(200);
    }
    stop = true;
    await client;
    expect(statuses.length).to.be.greaterThan(0);
    expect(statuses.filter((s) => s !== 200)).to.deep.equal([]);
    const body = await clusterConfig(admin);
    expect(body.workers.map((w) => w.revision)).to.deep.equal([body.revision, body.revision]);
    for (let i = 0; i < 6; i += 1) expect((await freshGet(url)).body).to.equal('v30');
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });

  it('aborts a reload that one worker cannot provision: every worker keeps the old config', async () => {
    const [port, taken] = [await freePort(), await freePort()];
    const { p, file, admin } = await startCluster(basicConfig({ port, body: 'old' }));
    const holder = await occupyPort(taken);
    const next = basicConfig({ port, body: 'new' });
    (next.listeners as unknown[]).push({ name: 'second', listen: `127.0.0.1:${taken}`, routes: [{ path_prefix: '/', respond: { status: 200, body: 'x' } }] });
    await writeConfigAtomic(file, next);
    const res = await httpRequest(`${admin}/reload`, { method: 'POST' });
    expect(res.status).to.equal(500);
    expect(JSON.parse(res.body)).to.include({ result: 'failed', generation: 1, path: 'listeners.1.listen' });
    const body = await clusterConfig(admin);
    expect(body.revision).to.equal(1);
    expect(body.workers.map((w) => w.revision)).to.deep.equal([1, 1]);
    for (let i = 0; i < 6; i += 1) expect((await freshGet(`http://127.0.0.1:${port}/`)).body).to.equal('old');
    expect(await metricValue(admin, 'hotconf_worker_restarts_total', { worker: 'primary' })).to.equal(0);
    await holder.release();
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });

  it('re-forks a worker that dies, gives it the committed config, and counts the restart', async () => {
    const port = await freePort();
    const { p, file, admin } = await startCluster(basicConfig({ port, body: 'a' }));
    await writeConfigAtomic(file, basicConfig({ port, body: 'b' }));
    await p.waitForLog('revision 2', event('reload', { component: 'cluster', result: 'applied', revision: 2 }));
    const before = await clusterConfig(admin);
    const victim = before.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await waitFor('a new worker serving revision 2', async () => {
      const now = await clusterConfig(admin);
      return now.workers.length === 2 && !now.workers.some((w) => w.pid === victim.pid) && now.workers.every((w) => w.revision === 2);
    });
    expect(await metricValue(admin, 'hotconf_worker_restarts_total', { worker: 'primary' })).to.equal(1);
    for (let i = 0; i < 6; i += 1) expect(await freshGet(`http://127.0.0.1:${port}/`)).to.deep.equal({ status: 200, body: 'b' });
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });

  it('probes each target once for all workers, and every worker follows the health transitions', async () => {
    const [good, flaky] = [await TestUpstream.start(), await TestUpstream.start()];
    const port = await freePort();
    const health_check = { path: '/healthz', interval_ms: 100, timeout_ms: 1000, unhealthy_threshold: 1, healthy_threshold: 1 };
    const { p } = await startCluster(proxyConfig({ port, upstreams: { api: { targets: [good.origin, flaky.origin], health_check } } }));
    const url = `http://127.0.0.1:${port}/`;

    flaky.healthStatus = 503;
    await p.waitForLog('flaky unhealthy', event('target_health_changed', { target: flaky.origin, healthy: false }));
    // The primary's transition reaches both workers before the next requests (IPC is ordered).
    await waitFor('no worker sends to flaky', async () => {
      const before = flaky.requests.length;
      for (let i = 0; i < 8; i += 1) expect((await freshGet(url)).status).to.equal(200);
      return flaky.requests.length === before;
    });

    flaky.healthStatus = 200;
    await p.waitForLog('flaky healthy', event('target_health_changed', { target: flaky.origin, healthy: true }));
    await waitFor('both workers send to flaky again', async () => {
      const before = flaky.requests.length;
      for (let i = 0; i < 8; i += 1) expect((await freshGet(url)).status).to.equal(200);
      return flaky.requests.length >= before + 4;
    });
    // One checker (the primary's), not one per worker: each target saw one probe connection.
    expect(flaky.healthCheckPorts.size).to.equal(1);
    expect(good.healthCheckPorts.size).to.equal(1);
    expect(
      p
        .logs()
        .filter((l) => l.msg === 'target_health_changed')
        .every((l) => l.component === 'health' && l.worker === undefined),
    ).to.equal(true);
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });

  it('refuses --workers that is not a number or auto', async () => {
    const file = join(await tempDir(), 'hotconf.yaml');
    await writeFile(file, stringify(basicConfig({ port: await freePort() })));
    const p = spawnHotconf(['run', '--config', file, '--workers', 'many']);
    const { code } = await p.exited;
    expect(code).to.equal(64);
    expect(p.stderr()).to.contain('--workers many');
  });
});
