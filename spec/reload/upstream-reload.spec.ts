import { Agent } from 'node:http';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { hang, holding, proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { upstreamPoolKind } from '../../lib/resources/upstream.js';

/** Two upstreams behind one health-checked upstream `api`; `dead` fails its health checks. */
async function twoTargets(healthCheck: Record<string, unknown>, options: { routes?: (i: number) => Record<string, unknown>[] } = {}) {
  const good = await TestUpstream.start();
  const dead = await TestUpstream.start();
  dead.healthStatus = 503;
  const port = await freePort();
  const config = (i: number, hc: Record<string, unknown> = healthCheck) =>
    proxyConfig({ port, upstreams: { api: { targets: [good.origin, dead.origin], health_check: hc } }, routes: options.routes?.(i) });
  const d = await startDaemon(config(0));
  return { good, dead, port, d, config, base: `http://127.0.0.1:${port}` };
}

/** An unrelated change: a static route whose body says which reload this is. */
function withStaticRoute(i: number): Record<string, unknown>[] {
  return [
    { path_prefix: '/static', respond: { status: 200, body: `reload ${i}` } },
    { path_prefix: '/', upstream: 'api' },
  ];
}

function healthy(d: TestDaemon, origin: string): boolean | undefined {
  return d.daemon.reloader
    .active!.upstreams()
    .get('api')!
    .targets.find((t) => t.origin === origin)?.healthy;
}

function stats(d: TestDaemon, kind: string) {
  return d.daemon.registry.stats()[kind]!;
}

describe('upstreams across reloads', () => {
  // unhealthy_threshold 2 at 100 ms: a reset state would need >= 100 ms of failed probes to find
  // the dead target again, so requests sent right after a swap would reach it.
  const HC = { interval_ms: 100, unhealthy_threshold: 2, healthy_threshold: 2 };

  it('sends no traffic to a target its health check found unhealthy', async () => {
    const { good, dead, d, base } = await twoTargets(HC);
    await waitFor('dead target unhealthy', () => healthy(d, dead.origin) === false);
    for (let i = 0; i < 20; i += 1) expect((await httpRequest(`${base}/x`)).status).to.equal(200);
    expect(good.requests).to.have.length(20);
    expect(dead.requests).to.have.length(0);
    expect(await metricValue(d.admin, 'hotconf_upstream_target_healthy', { target: dead.origin })).to.equal(0);
    expect(await metricValue(d.admin, 'hotconf_upstream_target_healthy', { target: good.origin })).to.equal(1);
  });

  it('keeps health state through 10 unrelated reloads: zero requests to the dead target right after each swap', async () => {
    const { good, dead, d, base, config } = await twoTargets(HC, { routes: withStaticRoute });
    await waitFor('dead target unhealthy', () => healthy(d, dead.origin) === false);
    for (let i = 1; i <= 10; i += 1) {
      const result = await d.apply(config(i));
      expect(result.result).to.equal('applied');
      for (let j = 0; j < 4; j += 1) expect((await httpRequest(`${base}/after-swap`)).status).to.equal(200);
      expect((await httpRequest(`${base}/static`)).body).to.equal(`reload ${i}`);
    }
    expect(dead.requests).to.have.length(0);
    expect(good.requests).to.have.length(40);
    expect(stats(d, 'health_checker')).to.include({ created: 1, reused: 10, destroyed: 0 });
    expect(stats(d, 'target_health')).to.include({ created: 2, destroyed: 0 });
    expect(stats(d, 'upstream_pool')).to.include({ created: 2, destroyed: 0 });
  });

  it('builds exactly one new checker on a health_check change, destroys the old one, and the new one inherits the state', async () => {
    const { good, dead, d, base, config } = await twoTargets(HC);
    await waitFor('dead target unhealthy', () => healthy(d, dead.origin) === false);
    const result = await d.apply(config(1, { ...HC, interval_ms: 150 }));
    expect(result.result).to.equal('applied');
    for (let j = 0; j < 4; j += 1) await httpRequest(`${base}/after-swap`);
    expect(dead.requests).to.have.length(0);
    expect(good.requests).to.have.length(4);
    await waitFor('the old checker destroyed', () => stats(d, 'health_checker').destroyed === 1);
    expect(stats(d, 'health_checker')).to.include({ created: 2, destroyed: 1, live: 1 });
    expect(stats(d, 'target_health')).to.include({ created: 2, destroyed: 0 });
    const [checker] = d.daemon.registry.entries().filter((e) => e.kind === 'health_checker');
    expect(checker!.refs).to.equal(1);
  });

  it('sends traffic to a target again once it recovers', async () => {
    const { good, dead, d, base } = await twoTargets(HC);
    await waitFor('dead target unhealthy', () => healthy(d, dead.origin) === false);
    dead.healthStatus = 200;
    await waitFor('dead target healthy again', () => healthy(d, dead.origin) === true);
    for (let i = 0; i < 10; i += 1) await httpRequest(`${base}/y`);
    expect(dead.requests).to.have.length(5);
    expect(good.requests).to.have.length(5);
    expect(await metricValue(d.admin, 'hotconf_upstream_target_healthy', { target: dead.origin })).to.equal(1);
  });

  it('keeps pools and their keepalive connections across unrelated reloads', async () => {
    const upstream = await TestUpstream.start();
    const port = await freePort();
    const config = (i: number) => proxyConfig({ port, upstreams: { api: { targets: [upstream.origin] } }, routes: withStaticRoute(i) });
    const d = await startDaemon(config(0));
    for (let i = 1; i <= 5; i += 1) {
      await httpRequest(`http://127.0.0.1:${port}/k`);
      expect((await d.apply(config(i))).result).to.equal('applied');
    }
    await httpRequest(`http://127.0.0.1:${port}/k`);
    expect(upstream.requests).to.have.length(6);
    expect(upstream.connectionsOpened).to.equal(1);
    expect(stats(d, 'upstream_pool')).to.include({ created: 1, reused: 5 });
  });

  it("logs a target's repeated attempt error once, also across reloads", async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    const port = await freePort();
    const config = (i: number) => proxyConfig({ port, upstreams: { api: { targets: [refused], retries: 0 } }, routes: withStaticRoute(i) });
    const d = await startDaemon(config(0));
    for (let i = 1; i <= 5; i += 1) {
      expect((await httpRequest(`http://127.0.0.1:${port}/x`)).status).to.equal(502);
      expect((await d.apply(config(i))).result).to.equal('applied');
    }
    expect((await httpRequest(`http://127.0.0.1:${port}/x`)).status).to.equal(502);
    const failures = d.logs.lines().filter((l) => l.msg === 'upstream_attempt_failed');
    expect(failures).to.have.length(1);
    expect(failures[0]).to.include({ upstream: 'api', target: refused, code: 'ECONNREFUSED', suppressed: 0 });
  });

  it('serves an in-flight request entirely on its old generation, then closes the removed target pool', async () => {
    const { handler, held } = holding();
    const oldTarget = await TestUpstream.start({ handler });
    const newTarget = await TestUpstream.start();
    const port = await freePort();
    const d = await startDaemon(proxyConfig({ port, upstreams: { api: { targets: [oldTarget.origin] } } }));
    const inflight = httpRequest(`http://127.0.0.1:${port}/long`);
    await waitFor('the request held at the old target', () => held.length === 1);

    expect((await d.apply(proxyConfig({ port, upstreams: { api: { targets: [newTarget.origin] } } }))).result).to.equal('applied');
    const fresh = await httpRequest(`http://127.0.0.1:${port}/fresh`);
    expect(JSON.parse(fresh.body)).to.include({ url: '/fresh' });
    expect(d.daemon.reloader.generations()).to.have.length(2);
    expect(stats(d, 'upstream_pool')).to.include({ live: 2, destroyed: 0 });

    held[0]!.writeHead(200, { 'content-type': 'text/plain' });
    held[0]!.end('from the old target');
    const res = await inflight;
    expect(res.status).to.equal(200);
    expect(res.body).to.equal('from the old target');
    await waitFor('the old generation released', () => d.daemon.reloader.generations().length === 1);
    await waitFor('the old pool destroyed', () => stats(d, 'upstream_pool').destroyed === 1);
    await waitFor('the old pool connection closed', () => oldTarget.openConnections === 0);
    expect(oldTarget.requests.map((r) => r.url)).to.deep.equal(['/long']);
    expect(newTarget.requests.map((r) => r.url)).to.deep.equal(['/fresh']);
  });

  it('aborts a request still running at the drain timeout, upstream included, and counts it', async () => {
    const slow = await TestUpstream.start({ handler: hang });
    const port = await freePort();
    const config = (i: number) => ({
      ...proxyConfig({ port, upstreams: { api: { targets: [slow.origin] } }, routes: withStaticRoute(i) }),
      shutdown_timeout_ms: 100,
    });
    const d = await startDaemon(config(0));
    const inflight = httpRequest(`http://127.0.0.1:${port}/stuck`).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    await waitFor('the request at the upstream', () => slow.requests.length === 1);
    expect((await d.apply(config(1))).result).to.equal('applied');
    expect(await inflight).to.equal('socket hang up');
    await waitFor('the upstream request aborted', () => slow.requests[0]!.aborted);
    await waitFor('the old generation released', () => d.daemon.reloader.generations().length === 1);
    expect(await metricValue(d.admin, 'hotconf_requests_aborted_total')).to.equal(1);
  });

  it('keeps a keepalive client connection across a reload and serves its next request with the new targets', async () => {
    const first = await TestUpstream.start();
    const second = await TestUpstream.start();
    const port = await freePort();
    const d = await startDaemon(proxyConfig({ port, upstreams: { api: { targets: [first.origin] } } }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    const before = await httpRequest(`http://127.0.0.1:${port}/one`, { agent });
    expect((await d.apply(proxyConfig({ port, upstreams: { api: { targets: [second.origin] } } }))).result).to.equal('applied');
    const after = await httpRequest(`http://127.0.0.1:${port}/two`, { agent });
    expect(after.reusedSocket).to.equal(true);
    expect(after.localPort).to.equal(before.localPort);
    expect(first.requests.map((r) => r.url)).to.deep.equal(['/one']);
    expect(second.requests.map((r) => r.url)).to.deep.equal(['/two']);
  });

  it('releases exactly what a failed provision acquired: the old checker keeps the state and the old pools keep serving', async () => {
    const good = await TestUpstream.start();
    const dead = await TestUpstream.start();
    dead.healthStatus = 503;
    const broken = await TestUpstream.start();
    const port = await freePort();
    const factory: typeof upstreamPoolKind.factory = (settings, deps) =>
      settings.origin === broken.origin
        ? {
            create: () => {
              throw new Error('injected pool failure');
            },
            destroy: () => {},
          }
        : upstreamPoolKind.factory(settings, deps);
    const kinds = { upstream_pool: { ...upstreamPoolKind, factory } };
    const config = (targets: string[], hc: Record<string, unknown>) => proxyConfig({ port, upstreams: { api: { targets, health_check: hc } } });
    const d = await startDaemon(config([good.origin, dead.origin], HC), { kinds });
    await waitFor('dead target unhealthy', () => healthy(d, dead.origin) === false);

    const result = await d.apply(config([good.origin, dead.origin, broken.origin], { ...HC, interval_ms: 150 }));
    expect(result).to.include({ result: 'failed', path: 'upstreams.api.targets.2' });
    expect(stats(d, 'health_checker')).to.include({ created: 2, destroyed: 1, live: 1 });
    expect(stats(d, 'target_health')).to.include({ live: 2, created: 3, destroyed: 1 });

    // The surviving (old) checker owns the states again: a recovery is still noticed.
    dead.healthStatus = 200;
    await waitFor('dead target healthy again', () => healthy(d, dead.origin) === true);
    for (let i = 0; i < 4; i += 1) expect((await httpRequest(`http://127.0.0.1:${port}/z`)).status).to.equal(200);
    expect(dead.requests).to.have.length(2);
    expect(d.daemon.leaks().suspects).to.deep.equal([]);
  });
});
