import http from 'node:http';
import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { holding, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { validateConfig } from '../../lib/config/parse.js';
import { silentLogger } from '../../lib/core/log.js';
import { ProxyAction, Upstream } from '../../lib/dataplane/proxy/proxy.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { Generation } from '../../lib/reload/generation.js';
import { type ProvisionContext, provision } from '../../lib/reload/provision.js';
import type { ResourceKind, ResourceKinds } from '../../lib/resources/kind.js';
import { UPSTREAM_POOL_KIND, upstreamPoolKind } from '../../lib/resources/upstream.js';

interface ScaleOptions {
  routes: number;
  /** Upstream sections by name; route `i` (odd) proxies to upstream `i / 10` (modulo their count). */
  upstreams: Record<string, Record<string, unknown>>;
  /** Body of the last route (a respond route). */
  last?: string;
  listener?: Record<string, unknown>;
  extra?: Record<string, unknown>;
}

/** One listener of `routes` routes, even ones answering `route i`, odd ones proxying. */
function scaleConfig(port: number, options: ScaleOptions): Record<string, unknown> {
  const names = Object.keys(options.upstreams);
  const routes = Array.from({ length: options.routes }, (_, i) =>
    i % 2 === 0 || i === options.routes - 1
      ? { path_prefix: `/r${i}`, respond: { status: 200, body: i === options.routes - 1 ? (options.last ?? 'last') : `route ${i}` } }
      : { path_prefix: `/r${i}`, upstream: names[Math.floor(i / 10) % names.length] },
  );
  return {
    shutdown_timeout_ms: 2000,
    upstreams: options.upstreams,
    listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes, ...options.listener }],
    ...options.extra,
  };
}

/** The upstream pool kind, its key derivation and factory counted. */
function countedPools(): { kinds: ResourceKinds; key: sinon.SinonSpy; factory: sinon.SinonSpy } {
  const key = sinon.spy(upstreamPoolKind.key);
  const factory = sinon.spy(upstreamPoolKind.factory);
  const kind: ResourceKind<never, unknown> = { kind: UPSTREAM_POOL_KIND, key, factory } as unknown as ResourceKind<never, unknown>;
  return { kinds: { [UPSTREAM_POOL_KIND]: kind }, key, factory };
}

function onlyRouter(generation: Generation) {
  const [listener] = [...generation.listeners().values()];
  return listener!.router;
}

/**
 * What makes a reused table safe, checked for `generation`: every proxy route's action points at
 * the very `Upstream` the generation serves under that name, and every pool that upstream's
 * targets use is the value of a lease the generation holds and has not released. A table reused
 * from the previous generation with a stale upstream fails this.
 */
function expectOwnResourcesOnly(generation: Generation): void {
  for (const route of onlyRouter(generation).routes) {
    if (!(route.action instanceof ProxyAction)) continue;
    const upstream = route.action.upstream;
    expect(upstream, `route ${route.index}'s upstream`).to.equal(generation.upstreams().get(upstream.name));
    const held = new Set((generation.upstreamLeases(upstream.name) ?? []).filter((lease) => !lease.released).map((lease) => lease.value));
    for (const target of upstream.targets) expect(held.has(target.pool), `route ${route.index}: a held lease on ${target.origin}'s pool`).to.equal(true);
  }
}

/** Route positions whose compiled route is not the one `before` had there. */
function recompiled(before: Generation, after: Generation): number[] {
  const old = onlyRouter(before).routes;
  return onlyRouter(after)
    .routes.filter((route, i) => route !== old[i])
    .map((route) => route.index);
}

async function released(d: TestDaemon): Promise<void> {
  await waitFor('the replaced generation to be released', () => d.daemon.reloader.generations().length === 1);
}

describe('incremental provisioning', () => {
  it('compiles one route, derives no pool key and takes the 100 upstreams over as one table, with no registry call, for a one-route change among 1,000 routes', async () => {
    const [a, b] = [await TestUpstream.start(), await TestUpstream.start()];
    const upstreams = Object.fromEntries(Array.from({ length: 100 }, (_, u) => [`u${u}`, { targets: [a.origin, b.origin] }]));
    const port = await freePort();
    const { kinds, key, factory } = countedPools();
    const d = await startDaemon(scaleConfig(port, { routes: 1000, upstreams }), { kinds });
    const first = d.daemon.reloader.active!;
    const pools = d.daemon.registry.stats()[UPSTREAM_POOL_KIND]!;
    key.resetHistory();
    factory.resetHistory();
    const share = sinon.spy(d.daemon.registry, 'share');
    const acquire = sinon.spy(d.daemon.registry, 'acquire');
    const countReused = sinon.spy(d.daemon.registry, 'countReused');

    expect(await d.apply(scaleConfig(port, { routes: 1000, upstreams, last: 'changed' }))).to.include({ result: 'applied', generation: 2 });
    const second = d.daemon.reloader.active!;
    expect(key.callCount, 'pool keys derived').to.equal(0);
    expect(factory.callCount, 'pool factories').to.equal(0);
    expect(share.callCount, 'leases shared').to.equal(0);
    expect(
      acquire.args.filter(([kind]) => kind === UPSTREAM_POOL_KIND),
      'pools acquired',
    ).to.deep.equal([]);
    expect(countReused.args, 'reuses counted per kind').to.deep.equal([[UPSTREAM_POOL_KIND, 200]]);
    expect(second.upstreamTable, 'the upstream table').to.equal(first.upstreamTable);
    expect(recompiled(first, second)).to.deep.equal([999]);
    expect(onlyRouter(second).sharesIndexWith(onlyRouter(first))).to.equal(true);
    for (const [name, upstream] of first.upstreams()) expect(second.upstreams().get(name), name).to.equal(upstream);
    expect(d.daemon.registry.stats()[UPSTREAM_POOL_KIND]).to.include({ created: pools.created, reused: pools.reused + 200 });
    expect(await getText(`http://127.0.0.1:${port}/r999`)).to.equal('changed');
    expect((await httpRequest(`http://127.0.0.1:${port}/r1`)).status).to.equal(200);

    await released(d);
    expectOwnResourcesOnly(second);
    expect(d.daemon.registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 200, destroyed: 0 });
  });

  it('compiles again the proxy routes of an upstream whose targets changed, so none points at its released pool', async () => {
    const [a, b] = [await TestUpstream.start(), await TestUpstream.start()];
    const port = await freePort();
    // u0's pool settings are its own: its pool to `a` goes once the first generation is released.
    const config = (target: string) =>
      scaleConfig(port, { routes: 40, upstreams: { u0: { targets: [target], pool: { connections: 7 } }, u1: { targets: [a.origin] } } });
    const d = await startDaemon(config(a.origin));
    const first = d.daemon.reloader.active!;
    expect((await httpRequest(`http://127.0.0.1:${port}/r1`)).status).to.equal(200);

    expect(await d.apply(config(b.origin))).to.include({ result: 'applied' });
    const second = d.daemon.reloader.active!;
    expect(second.upstreams().get('u0')).to.not.equal(first.upstreams().get('u0'));
    expect(second.upstreams().get('u1')).to.equal(first.upstreams().get('u1'));
    // Routes 1..9 and 21..29 proxy to u0, 11..19 and 31..37 to u1.
    expect(recompiled(first, second)).to.deep.equal([1, 3, 5, 7, 9, 21, 23, 25, 27, 29]);
    await released(d);
    expect(d.daemon.registry.stats()[UPSTREAM_POOL_KIND]).to.include({ destroyed: 1, live: 2 });
    expectOwnResourcesOnly(second);
    const before = b.requests.length;
    expect((await httpRequest(`http://127.0.0.1:${port}/r1`)).status).to.equal(200);
    expect(b.requests.length - before).to.equal(1);
    expect((await httpRequest(`http://127.0.0.1:${port}/r11`)).status).to.equal(200);
  });

  it('builds the upstreams and their proxy routes again when the sample ratio changes, keeping the respond routes', async () => {
    const a = await TestUpstream.start();
    const port = await freePort();
    const config = (ratio: number, last = 'last') =>
      scaleConfig(port, { routes: 20, last, upstreams: { u0: { targets: [a.origin] } }, extra: { tracing: { exporter: 'none', sample_ratio: ratio } } });
    const d = await startDaemon(config(1));
    const first = d.daemon.reloader.active!;

    expect(await d.apply(config(1, 'changed'))).to.include({ result: 'applied' });
    const second = d.daemon.reloader.active!;
    expect(second.tracing).to.equal(first.tracing);
    expect(second.upstreams().get('u0')).to.equal(first.upstreams().get('u0'));

    expect(await d.apply(config(0.5, 'changed'))).to.include({ result: 'applied' });
    const third = d.daemon.reloader.active!;
    expect(third.tracing!.pipeline).to.equal(second.tracing!.pipeline);
    expect(third.tracer).to.not.equal(second.tracer);
    expect(third.upstreams().get('u0')!.tracer).to.equal(third.tracer);
    expect(recompiled(second, third)).to.deep.equal([1, 3, 5, 7, 9, 11, 13, 15, 17]);
    await released(d);
    expectOwnResourcesOnly(third);
  });

  it('compiles the proxy routes again when the listener trusts other proxies, keeping the respond routes', async () => {
    const a = await TestUpstream.start();
    const port = await freePort();
    const config = (trusted: string[]) => scaleConfig(port, { routes: 10, upstreams: { u0: { targets: [a.origin] } }, listener: { trusted_proxies: trusted } });
    const d = await startDaemon(config([]));
    const first = d.daemon.reloader.active!;
    expect(await d.apply(config(['127.0.0.1']))).to.include({ result: 'applied' });
    const second = d.daemon.reloader.active!;
    expect(recompiled(first, second)).to.deep.equal([1, 3, 5, 7]);
    expect(second.upstreams().get('u0')).to.equal(first.upstreams().get('u0'));
    const proxied = onlyRouter(second).routes[1]!.action as ProxyAction;
    expect(proxied.trustedProxies).to.equal([...second.listeners().values()][0]!.trustedProxies);
  });

  it('holds one lease per pool and one generation after 20 one-route changes, every shared lease counted as a reuse', async () => {
    const a = await TestUpstream.start();
    const port = await freePort();
    const upstreams = Object.fromEntries(Array.from({ length: 10 }, (_, u) => [`u${u}`, { targets: [a.origin], pool: { connections: u + 1 } }]));
    const d = await startDaemon(scaleConfig(port, { routes: 100, upstreams }));
    const start = d.daemon.registry.stats()[UPSTREAM_POOL_KIND]!;
    for (let i = 1; i <= 20; i += 1) {
      expect(await d.apply(scaleConfig(port, { routes: 100, upstreams, last: `change ${i}` }))).to.include({ result: 'applied' });
    }
    expect(await getText(`http://127.0.0.1:${port}/r99`)).to.equal('change 20');
    await released(d);
    expect(d.daemon.registry.stats()[UPSTREAM_POOL_KIND]).to.include({ created: 10, destroyed: 0, live: 10, refs: 10, reused: start.reused + 200 });
    expect(d.daemon.reloader.active!.holds().filter((h) => h.kind === UPSTREAM_POOL_KIND)).to.have.length(10);
    expectOwnResourcesOnly(d.daemon.reloader.active!);
  });

  it('acquires only the changed upstream and takes the other entries over when one upstream of 10 changes', async () => {
    const a = await TestUpstream.start();
    const port = await freePort();
    const upstreams = Object.fromEntries(Array.from({ length: 10 }, (_, u) => [`u${u}`, { targets: [a.origin], pool: { connections: u + 1 } }]));
    const d = await startDaemon(scaleConfig(port, { routes: 100, upstreams }));
    const first = d.daemon.reloader.active!;
    const start = d.daemon.registry.stats()[UPSTREAM_POOL_KIND]!;
    const acquire = sinon.spy(d.daemon.registry, 'acquire');
    const hold = sinon.spy(Upstream.prototype, 'hold');
    onCleanup(() => hold.restore());
    const changed = { ...upstreams, u3: { targets: [a.origin], pool: { connections: 33 } } };
    expect(await d.apply(scaleConfig(port, { routes: 100, upstreams: changed }))).to.include({ result: 'applied' });
    const second = d.daemon.reloader.active!;
    expect(
      acquire.args.filter(([kind]) => kind === UPSTREAM_POOL_KIND),
      'pools acquired',
    ).to.have.length(1);
    expect(hold.callCount, 'upstreams held').to.equal(1);
    expect(second.upstreamTable).to.not.equal(first.upstreamTable);
    expect([...second.upstreams().keys()]).to.deep.equal(Object.keys(changed));
    for (const [name, upstream] of first.upstreams()) {
      if (name === 'u3') expect(second.upstreams().get(name), name).to.not.equal(upstream);
      else {
        expect(second.upstreams().get(name), name).to.equal(upstream);
        expect(second.upstreamTable!.entries.get(name), name).to.equal(first.upstreamTable!.entries.get(name));
      }
    }
    await released(d);
    expect(d.daemon.registry.stats()[UPSTREAM_POOL_KIND]).to.include({ created: 11, destroyed: 1, live: 10, refs: 10, reused: start.reused + 9 });
    expectOwnResourcesOnly(second);
    expect((await httpRequest(`http://127.0.0.1:${port}/r31`)).status).to.equal(200);
  });

  it('keeps timing out requests through an upstream taken over after the generation that built it is released', async () => {
    // Headers at once, then a byte every 50 ms: undici's own header and idle-body timeouts never
    // fire, so only the upstream's timeout_ms sweep can end this exchange.
    let ended = 0;
    const trickle = await TestUpstream.start({
      handler: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const timer = setInterval(() => res.write('x'), 50);
        res.on('close', () => {
          clearInterval(timer);
          ended += 1;
        });
      },
    });
    const held = holding();
    const keeper = await TestUpstream.start({ handler: held.handler });
    const port = await freePort();
    // r1 proxies to u0 (trickling), r11 to u1 (held), r13 is the respond route that changes.
    const upstreams = { u0: { targets: [trickle.origin], timeout_ms: 300 }, u1: { targets: [keeper.origin] } };
    const config = (last: string) => scaleConfig(port, { routes: 14, upstreams, last });
    const d = await startDaemon(config('one'));
    const first = d.daemon.reloader.active!;
    // A request held on the first generation keeps it draining after the reload.
    const pinned = httpRequest(`http://127.0.0.1:${port}/r11`);
    await waitFor('the first generation to hold a request', () => held.held.length === 1);
    expect(await d.apply(config('two'))).to.include({ result: 'applied' });
    expect(d.daemon.reloader.active!.upstreams().get('u0'), 'taken over').to.equal(first.upstreams().get('u0'));
    const client = http.get(`http://127.0.0.1:${port}/r1`, (res) => res.resume());
    client.on('error', () => {});
    try {
      await waitFor('the request to reach the upstream', () => trickle.requests.length === 1);
      // The first generation goes while the second one's request is in flight through the
      // upstream they share: its release must not drop that request's deadline.
      held.held[0]!.end('done');
      expect((await pinned).status).to.equal(200);
      await released(d);
      await waitFor('timeout_ms to end the trickling exchange', () => ended === 1);
    } finally {
      client.destroy();
    }
  });
});

describe('provisioning against the very upstreams record of the previous generation', () => {
  it('takes 1,000 upstreams over as one table with no registry call, no hold and no walk of the record, and the previous generation releases destroying nothing', async () => {
    const targets = ['http://127.0.0.1:1', 'http://127.0.0.1:2'];
    const config = validateConfig({ listeners: [], upstreams: Object.fromEntries(Array.from({ length: 1000 }, (_, u) => [`u${u}`, { targets }])) });
    const registry = new ResourceRegistry();
    const ctx: ProvisionContext = {
      registry,
      deps: { onBackgroundError: () => {}, logger: silentLogger() },
      serving: () => {
        throw new Error('no listener here');
      },
    };
    const source = { kind: 'file', path: '/x' } as const;
    const first = new Generation(1, config, 'h1', 'v1', source);
    await provision(first, ctx);
    first.activate();
    // What a fragment merge hands over when no upstream changed: a new config, the same upstreams record.
    const second = new Generation(2, Object.freeze({ ...config }), 'h2', 'v2', source);
    const entries = sinon.spy(Object, 'entries');
    const keys = sinon.spy(Object, 'keys');
    const acquire = sinon.spy(registry, 'acquire');
    const share = sinon.spy(registry, 'share');
    const countReused = sinon.spy(registry, 'countReused');
    const hold = sinon.spy(Upstream.prototype, 'hold');
    let report: Awaited<ReturnType<typeof provision>>;
    try {
      report = await provision(second, ctx, first);
    } finally {
      entries.restore();
      keys.restore();
      hold.restore();
    }
    expect(entries.calledWith(config.upstreams) || keys.calledWith(config.upstreams), 'the record walked').to.equal(false);
    expect(acquire.callCount, 'acquires').to.equal(0);
    expect(share.callCount, 'shares').to.equal(0);
    expect(countReused.args, 'reuses counted per kind').to.deep.equal([[UPSTREAM_POOL_KIND, 2000]]);
    expect(hold.callCount, 'upstreams held').to.equal(0);
    expect(second.upstreamTable).to.equal(first.upstreamTable);
    expect(report[UPSTREAM_POOL_KIND]).to.deep.equal({ created: 0, reused: 2000 });
    expect([...second.upstreams().keys()]).to.deep.equal(Object.keys(config.upstreams));
    for (const [name, upstream] of first.upstreams()) expect(second.upstreams().get(name), name).to.equal(upstream);
    second.activate();
    await first.drain(0);
    expect(await first.release()).to.deep.equal({});
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 2000, leakedLeases: 0 });
    expect(second.holds().filter((held) => held.kind === UPSTREAM_POOL_KIND)).to.have.length(2000);
    expect(await second.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0 });
    await registry.close();
  });
});
