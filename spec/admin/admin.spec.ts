import { expect } from 'chai';
import { stringify } from 'yaml';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, memoryLogger, startDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { waitFor, waitForCollection } from '../../harness/wait.js';
import { leakReport } from '../../lib/admin/leaks.js';
import { Daemon } from '../../lib/daemon/daemon.js';
import type { ConfigSource, RawDocument } from '../../lib/sources/source.js';

async function json(
  url: string,
  method = 'GET',
  body?: string,
  headers?: Record<string, string>,
): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }> {
  const res = await httpRequest(url, { method, body, headers });
  return { status: res.status, body: JSON.parse(res.body) as Record<string, unknown>, headers: res.headers };
}

/** A source whose first read waits until `open()`: a config store that is not reachable yet. */
class GatedSource implements ConfigSource {
  readonly kind = 'gated';
  #open!: () => void;
  readonly #ready = new Promise<void>((resolve) => (this.#open = resolve));
  constructor(readonly text: string) {}
  open(): void {
    this.#open();
  }
  async read(): Promise<RawDocument> {
    await this.#ready;
    return { text: this.text, version: '1', source: this.describe() };
  }
  async watch(): Promise<void> {}
  describe() {
    return { kind: 'gated' };
  }
  async close(): Promise<void> {
    this.#open();
  }
}

describe('admin API', () => {
  it('answers /healthz 503 "starting" until the first config is active, then 200 with the generation', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const source = new GatedSource(stringify(basicConfig({ port })));
    const daemon = new Daemon({ source, adminListen: `127.0.0.1:${adminPort}`, defaultMetrics: false, logger: memoryLogger().logger });
    onCleanup(() => daemon.stop());
    const starting = daemon.start();
    const url = `http://127.0.0.1:${adminPort}/healthz`;
    await waitFor('the admin API', () => httpRequest(url).then(() => true));
    expect(await json(url)).to.deep.include({ status: 503, body: { status: 'starting', generation: 0, pid: process.pid } });
    expect((await json(`http://127.0.0.1:${adminPort}/config`)).status).to.equal(503);
    source.open();
    await starting;
    expect(await json(url)).to.deep.include({ status: 200, body: { status: 'ok', generation: 1, pid: process.pid } });
  });

  it('shows the active config with its source and secrets redacted', async () => {
    const port = await freePort();
    const t = await startDaemon(basicConfig({ port, tracing: { exporter: 'none', headers: { authorization: 'Bearer super-secret-value' } } }));
    const res = await httpRequest(`${t.admin}/config`);
    expect(res.body).to.not.contain('super-secret-value');
    const body = JSON.parse(res.body);
    expect(body).to.include({ generation: 1, hash: t.daemon.reloader.active!.hash });
    expect(body.source).to.deep.equal({ kind: 'file', path: t.file });
    expect(body.config.tracing.headers).to.deep.equal({ authorization: '[REDACTED]' });
    expect(new Date(body.loaded_at).getTime()).to.be.closeTo(Date.now(), 60_000);
  });

  it('reloads on POST /reload with 200, 422 and 500 for applied/unchanged, invalid and failed', async () => {
    const [port, taken] = [await freePort(), await freePort()];
    const t = await startDaemon(basicConfig({ port }));
    await t.write(basicConfig({ port, body: 'new' }));
    expect(await json(`${t.admin}/reload`, 'POST')).to.deep.include({
      status: 200,
      body: { result: 'applied', generation: 2, hash: t.daemon.reloader.active!.hash },
    });
    expect((await json(`${t.admin}/reload`, 'POST')).body).to.include({ result: 'unchanged', generation: 2 });

    await t.write('listeners: [{name: web}]\n');
    const invalid = await json(`${t.admin}/reload`, 'POST');
    expect(invalid.status).to.equal(422);
    expect(invalid.body).to.deep.include({ result: 'invalid', generation: 2, errors: [{ path: 'listeners.0.listen', message: 'required (string)' }] });

    await occupyPort(taken);
    await t.write(basicConfig({ port: taken }));
    const failed = await json(`${t.admin}/reload`, 'POST');
    expect(failed.status).to.equal(500);
    expect(failed.body).to.include({ result: 'failed', generation: 2, path: 'listeners.0.listen' });
    expect(String(failed.body.error)).to.contain('EADDRINUSE');
    expect((await httpRequest(`http://127.0.0.1:${port}/`)).body).to.equal('new');
  });

  it('rejects wrong methods, unknown paths and oversized bodies', async () => {
    const t = await startDaemon(basicConfig({ port: await freePort() }));
    const wrong = await json(`${t.admin}/reload`);
    expect(wrong.status).to.equal(405);
    expect(wrong.headers.allow).to.equal('POST');
    expect((await json(`${t.admin}/nope`)).status).to.equal(404);
    expect((await json(`${t.admin}/reload`, 'POST', 'x'.repeat(100 * 1024))).status).to.equal(413);
    expect(t.daemon.reloader.active!.id).to.equal(1);
  });

  it('takes its body limit from httpLimits.maxBodyBytes', async () => {
    const t = await startDaemon(basicConfig({ port: await freePort() }), { httpLimits: { maxBodyBytes: 1024 } });
    expect((await json(`${t.admin}/reload`, 'POST', 'x'.repeat(2048))).status).to.equal(413);
    // A body needs a JSON content type since issue 14 (cross-site requests cannot send one): 415 without it.
    expect((await json(`${t.admin}/reload`, 'POST', 'x'.repeat(1024), { 'content-type': 'application/json' })).status).to.equal(200);
  });

  it('serves Prometheus metrics that follow reloads and resources', async () => {
    const port = await freePort();
    const t = await startDaemon(basicConfig({ port, tracing: { exporter: 'none' } }), { defaultMetrics: true });
    await t.apply(basicConfig({ port, body: 'b', tracing: { exporter: 'none' } }));
    await t.apply('broken: [');
    await waitFor('release of generation 1', () => t.daemon.reloader.generations().length === 1);
    const res = await httpRequest(`${t.admin}/metrics`);
    expect(res.headers['content-type']).to.contain('text/plain');
    const metric = (line: string) => res.body.split('\n').find((l) => l.startsWith(line));
    expect(metric('hotconf_config_generation ')).to.equal('hotconf_config_generation 2');
    expect(metric('hotconf_generations_live ')).to.equal('hotconf_generations_live 1');
    expect(metric('hotconf_reloads_total{result="applied"}')).to.equal('hotconf_reloads_total{result="applied"} 2');
    expect(metric('hotconf_reloads_total{result="invalid"}')).to.equal('hotconf_reloads_total{result="invalid"} 1');
    expect(metric('hotconf_reloads_total{result="failed"}')).to.equal('hotconf_reloads_total{result="failed"} 0');
    expect(metric('hotconf_resources_live{kind="listener"}')).to.equal('hotconf_resources_live{kind="listener"} 1');
    expect(metric('hotconf_resources_created_total{kind="listener"}')).to.equal('hotconf_resources_created_total{kind="listener"} 1');
    expect(metric('hotconf_resources_reused_total{kind="tracer_provider"}')).to.equal('hotconf_resources_reused_total{kind="tracer_provider"} 1');
    expect(metric('hotconf_resource_refs{kind="tracer_provider"}')).to.equal('hotconf_resource_refs{kind="tracer_provider"} 1');
    expect(metric('hotconf_leases_leaked_total{kind="listener"}')).to.equal('hotconf_leases_leaked_total{kind="listener"} 0');
    expect(metric('hotconf_reload_duration_seconds_count')).to.equal('hotconf_reload_duration_seconds_count 3');
    expect(Number(metric('hotconf_last_reload_success_timestamp_seconds ')!.split(' ')[1])).to.be.closeTo(Date.now() / 1000, 60);
    expect(metric('process_open_fds')).to.match(/^process_open_fds \d+$/);
  });

  describe('/leaks', () => {
    it('is ok for a daemon that only provisioned through generations', async () => {
      const t = await startDaemon(basicConfig({ port: await freePort() }));
      const report = await json(`${t.admin}/leaks`);
      expect(report.body).to.include({ ok: true, generations_live: 1 });
      expect(report.body.suspects).to.deep.equal([]);
      expect((report.body.handles as Record<string, number>).TCPServerWrap).to.be.at.least(2);
      expect((report.body.resources as Record<string, unknown>).listener).to.deep.include({ live: 1, refs: 1 });
    });

    it('suspects a live resource no generation holds, and refs that generations do not account for', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port }));
      const stray = await t.daemon.registry.acquire('cache', 'x', { create: () => 1, destroy: () => {} });
      const extra = await t.daemon.registry.acquire('listener', `127.0.0.1:${port}`, { create: () => undefined as never, destroy: () => {} });
      const report = t.daemon.leaks();
      expect(report.ok).to.equal(false);
      expect(report.suspects.map((s) => [s.reason, s.kind])).to.have.deep.members([
        ['unowned_resource', 'cache'],
        ['refs_mismatch', 'listener'],
      ]);
      await stray.release();
      await extra.release();
      expect(t.daemon.leaks().ok).to.equal(true);
    });

    it('suspects leaked leases', async () => {
      const t = await startDaemon(basicConfig({ port: await freePort() }));
      await (async () => {
        await t.daemon.registry.acquire('cache', 'dropped', { create: () => 1, destroy: () => {} });
      })();
      await waitForCollection('the dropped lease to be collected', () => t.daemon.registry.stats().cache?.leakedLeases === 1);
      const report = await json(`${t.admin}/leaks`);
      expect(report.body.ok).to.equal(false);
      expect(report.body.suspects).to.deep.include({ reason: 'leaked_leases', kind: 'cache', detail: '1 lease(s) garbage-collected without release()' });
    });

    it('suspects nothing while a draining generation and the active one share an upstream table', async () => {
      const port = await freePort();
      const extra = { shutdown_timeout_ms: 60_000, upstreams: { api: { targets: ['http://127.0.0.1:1', 'http://127.0.0.1:2'] } } };
      const t = await startDaemon(basicConfig({ port, extra }));
      const first = t.daemon.reloader.active!;
      const unpin = first.pin(() => {});
      await t.apply(basicConfig({ port, body: 'next', extra }));
      const second = t.daemon.reloader.active!;
      expect(second.upstreamTable, 'the upstream table').to.equal(first.upstreamTable);
      expect(t.daemon.reloader.generations()).to.have.length(2);
      expect(t.daemon.registry.stats().upstream_pool).to.include({ live: 2, refs: 2 });
      const report = t.daemon.leaks();
      expect(report.suspects).to.deep.equal([]);
      unpin();
      await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
      expect(t.daemon.registry.stats().upstream_pool).to.include({ live: 2, refs: 2, destroyed: 0 });
      expect(t.daemon.leaks().suspects).to.deep.equal([]);
    });

    it('suspects a retired generation still live after its drain timeout', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, extra: { shutdown_timeout_ms: 60_000 } }));
      const unpin = t.daemon.reloader.active!.pin(() => {});
      await t.apply(basicConfig({ port, body: 'next', extra: { shutdown_timeout_ms: 60_000 } }));
      expect(t.daemon.leaks().ok, 'draining within its timeout is not a leak').to.equal(true);
      const later = leakReport(t.daemon.registry, t.daemon.reloader, Date.now() + 62_000);
      expect(later.generations_live).to.equal(2);
      expect(later.suspects.map((s) => [s.reason, s.generation])).to.deep.equal([['generation_not_released', 1]]);
      unpin();
      await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
    });
  });
});
