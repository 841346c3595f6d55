import { expect } from 'chai';
import sinon from 'sinon';
import { waitFor, waitForCollection } from '../../harness/wait.js';
import { validateConfig } from '../../lib/config/parse.js';
import type { Config } from '../../lib/config/schema.js';
import { silentLogger } from '../../lib/core/log.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { Generation, heldLeases } from '../../lib/reload/generation.js';
import { HEALTH_CHECK_STEPS, PROVISION_STEPS, type ProvisionContext, type ProvisionStep, provision } from '../../lib/reload/provision.js';
import { UpstreamReleasedError } from '../../lib/reload/upstream-table.js';
import { HEALTH_CHECKER_KIND, TARGET_HEALTH_KIND } from '../../lib/resources/health.js';
import type { ResourceKind, ResourceKinds } from '../../lib/resources/kind.js';
import { UPSTREAM_POOL_KIND, type UpstreamPoolSettings, upstreamPoolKind } from '../../lib/resources/upstream.js';

const SOURCE = { kind: 'file', path: '/x' } as const;

/** `count` upstreams of two targets each (ports 1 and 2), none of them reachable (a pool connects on first use only). */
function upstreamsConfig(count: number, extra: Record<string, Record<string, unknown>> = {}): Config {
  const targets = ['http://127.0.0.1:1', 'http://127.0.0.1:2'];
  return validateConfig({ listeners: [], upstreams: { ...Object.fromEntries(Array.from({ length: count }, (_, u) => [`u${u}`, { targets }])), ...extra } });
}

function context(registry: ResourceRegistry, options: Partial<ProvisionContext> = {}): ProvisionContext {
  return {
    registry,
    deps: { onBackgroundError: () => {}, logger: silentLogger() },
    serving: () => {
      throw new Error('no listener here');
    },
    ...options,
  };
}

/** The config of `config` in a new object, its `upstreams` record the very same: what a fragment merge hands over when no upstream changed. */
function sameUpstreams(config: Config): Config {
  return Object.freeze({ ...config });
}

/** Provision generation `id` of `config` (over `previous`) and activate it. */
async function provisioned(id: number, config: Config, ctx: ProvisionContext, previous?: Generation): Promise<Generation> {
  const generation = new Generation(id, config, `h${id}`, `v${id}`, SOURCE);
  await provision(generation, ctx, previous);
  generation.activate();
  return generation;
}

/** The pool kind, whose factory fails to create the pool to `origin` with these settings. */
function failingPools(origin: string, connections: number): ResourceKinds {
  const kind: ResourceKind<UpstreamPoolSettings, unknown> = {
    kind: UPSTREAM_POOL_KIND,
    key: upstreamPoolKind.key,
    factory: (input, deps) =>
      input.origin === origin && input.connections === connections
        ? {
            create: () => {
              throw new Error('no pool today');
            },
            destroy: () => {},
          }
        : upstreamPoolKind.factory(input, deps),
  };
  return { [UPSTREAM_POOL_KIND]: kind as unknown as ResourceKind<never, unknown> };
}

describe('upstream tables', () => {
  for (const order of ['older first', 'newer first'] as const) {
    it(`destroys a pool two generations share only when both are released (${order})`, async () => {
      const registry = new ResourceRegistry();
      const ctx = context(registry);
      const config = upstreamsConfig(3);
      const first = await provisioned(1, config, ctx);
      const second = await provisioned(2, sameUpstreams(config), ctx, first);
      expect(second.upstreamTable).to.equal(first.upstreamTable);
      const pool = second.upstreams().get('u0')!.targets[0]!.pool;
      const [one, other] = order === 'older first' ? [first, second] : [second, first];
      if (one === first) await first.drain(0);
      expect(await one.release()).to.deep.equal({});
      expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 6, destroyed: 0 });
      expect(other.upstreams().get('u0')!.targets[0]!.pool).to.equal(pool);
      expect(other.holds().filter((held) => held.kind === UPSTREAM_POOL_KIND)).to.have.length(6);
      expect(await other.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
      expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0, destroyed: 2 });
      await registry.close();
    });
  }

  it('keeps the pool of an entry a newer table took over after the table that built it is released, and destroys a dropped one with it', async () => {
    const registry = new ResourceRegistry();
    const ctx = context(registry);
    const config = upstreamsConfig(2, { solo: { targets: ['http://127.0.0.1:3'] } });
    const first = await provisioned(1, config, ctx);
    const { solo: _dropped, ...rest } = config.upstreams;
    const second = await provisioned(2, validateConfig({ listeners: [], upstreams: rest }), ctx, first);
    expect(second.upstreamTable).to.not.equal(first.upstreamTable);
    expect(second.upstreamTable!.entries.get('u1')).to.equal(first.upstreamTable!.entries.get('u1'));
    await first.drain(0);
    expect(await first.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 1 });
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 4 });
    expect(await second.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
    await registry.close();
  });

  it('counts each lease once in heldLeases when generations share a table or entries, as the registry counts refs', async () => {
    const registry = new ResourceRegistry();
    const ctx = context(registry);
    const config = upstreamsConfig(4);
    const first = await provisioned(1, config, ctx);
    const second = await provisioned(2, sameUpstreams(config), ctx, first);
    const third = await provisioned(3, upstreamsConfig(4, { more: { targets: ['http://127.0.0.1:3'] } }), ctx, second);
    expect(third.upstreamTable).to.not.equal(second.upstreamTable);
    const pools = heldLeases([first, second, third]).filter((held) => held.kind === UPSTREAM_POOL_KIND);
    expect(pools).to.have.length(registry.stats()[UPSTREAM_POOL_KIND]!.refs);
    expect(pools).to.have.length(9);
    for (const g of [first, second, third]) await g.release();
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0 });
    await registry.close();
  });

  it('releases the table it took over when a later step fails, leaving it to the previous generation', async () => {
    const registry = new ResourceRegistry();
    const config = upstreamsConfig(3);
    const first = await provisioned(1, config, context(registry));
    const failing: ProvisionStep = async () => {
      throw new Error('a later step failed');
    };
    const second = new Generation(2, sameUpstreams(config), 'h2', 'v2', SOURCE);
    const error = await provision(second, context(registry, { steps: [...PROVISION_STEPS, failing] }), first).catch((e: unknown) => e);
    expect(error).to.have.property('message', 'a later step failed');
    expect(second.state).to.equal('released');
    expect(second.holds()).to.deep.equal([]);
    expect(first.upstreamTable!.released).to.equal(false);
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 6, destroyed: 0 });
    // Had the failed generation kept its reference, the table would outlive the last generation.
    expect(await first.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
    expect(first.upstreamTable!.released).to.equal(true);
    await registry.close();
  });

  it('releases exactly what it took when an upstream fails after others were taken over: shared entries live on, its own leases go', async () => {
    const registry = new ResourceRegistry();
    const config = upstreamsConfig(3);
    const first = await provisioned(1, config, context(registry));
    const changed = validateConfig({
      listeners: [],
      upstreams: { ...config.upstreams, u1: { targets: ['http://127.0.0.1:3', 'http://127.0.0.1:4'], pool: { connections: 5 } } },
    });
    const second = new Generation(2, changed, 'h2', 'v2', SOURCE);
    const before = registry.stats()[UPSTREAM_POOL_KIND]!;
    const error = await provision(second, context(registry, { kinds: failingPools('http://127.0.0.1:4', 5) }), first).catch((e: unknown) => e);
    expect(error).to.have.property('path', 'upstreams.u1.targets.1');
    // u0 was taken over (2 reuses), u1's first pool created and released again; u2 never reached.
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 6, created: before.created + 1, destroyed: 1, reused: before.reused + 2 });
    for (const entry of first.upstreamTable!.entries.values()) expect(entry.released, entry.name).to.equal(false);
    expect(await first.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0 });
    await registry.close();
  });

  it('releases at once a pool whose create finishes after a stop released the generation being provisioned', async () => {
    const registry = new ResourceRegistry();
    const config = upstreamsConfig(3);
    const first = await provisioned(1, config, context(registry));
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let creating = false;
    const kind: ResourceKind<UpstreamPoolSettings, unknown> = {
      kind: UPSTREAM_POOL_KIND,
      key: upstreamPoolKind.key,
      factory: (input, deps) => {
        const real = upstreamPoolKind.factory(input, deps);
        if (input.origin !== 'http://127.0.0.1:3') return real;
        return {
          create: async () => {
            creating = true;
            await gate;
            return real.create();
          },
          destroy: (value) => real.destroy(value as never),
        };
      },
    };
    const changed = validateConfig({ listeners: [], upstreams: { ...config.upstreams, u1: { targets: ['http://127.0.0.1:3'] } } });
    const second = new Generation(2, changed, 'h2', 'v2', SOURCE);
    const kinds = { [UPSTREAM_POOL_KIND]: kind as unknown as ResourceKind<never, unknown> };
    const provisioning = provision(second, context(registry, { kinds }), first).catch((e: unknown) => e);
    await waitFor('the pool create to start', () => creating);
    expect(await second.release()).to.deep.equal({});
    open();
    expect(await provisioning).to.be.instanceOf(UpstreamReleasedError);
    await waitFor('the late pool to be destroyed', () => registry.stats()[UPSTREAM_POOL_KIND]!.destroyed === 1);
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 2, refs: 6 });
    expect(await first.release()).to.deep.equal({ [UPSTREAM_POOL_KIND]: 2 });
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0 });
    await registry.close();
  });

  it('builds every upstream afresh, acquiring by key, when the previous generation released its table already', async () => {
    const registry = new ResourceRegistry();
    const ctx = context(registry);
    const config = upstreamsConfig(2);
    const first = await provisioned(1, config, ctx);
    const upstream = first.upstreams().get('u0');
    const keep = await registry.acquire(UPSTREAM_POOL_KIND, first.upstreamLeases('u0')![0]!.key, { create: () => undefined, destroy: () => {} });
    await first.release();
    const second = new Generation(2, sameUpstreams(config), 'h2', 'v2', SOURCE);
    expect(await provision(second, ctx, first)).to.deep.equal({ [UPSTREAM_POOL_KIND]: { created: 1, reused: 3 } });
    expect(second.upstreamTable).to.not.equal(first.upstreamTable);
    expect(second.upstreams().get('u0')).to.not.equal(upstream);
    await second.release();
    await keep.release();
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ live: 0, refs: 0 });
    await registry.close();
  });

  it('reports a shared table per kind as reused, and a partly changed one as created and reused', async () => {
    const registry = new ResourceRegistry();
    const ctx = context(registry);
    const config = upstreamsConfig(5);
    const first = await provisioned(1, config, ctx);
    const second = new Generation(2, sameUpstreams(config), 'h2', 'v2', SOURCE);
    expect(await provision(second, ctx, first)).to.deep.equal({ [UPSTREAM_POOL_KIND]: { created: 0, reused: 10 } });
    second.activate();
    const third = new Generation(3, upstreamsConfig(5, { u2: { targets: ['http://127.0.0.1:1', 'http://127.0.0.1:3'] } }), 'h3', 'v3', SOURCE);
    expect(await provision(third, ctx, second)).to.deep.equal({ [UPSTREAM_POOL_KIND]: { created: 1, reused: 9 } });
    expect(third.upstreamTable!.counts).to.deep.equal({ [UPSTREAM_POOL_KIND]: 10 });
    for (const g of [first, second, third]) await g.release();
    await registry.close();
  });

  it('shares the health-only table of a cluster primary whole when the upstreams record is the same', async () => {
    const registry = new ResourceRegistry();
    const ctx = context(registry, { steps: HEALTH_CHECK_STEPS });
    const targets = ['http://127.0.0.1:1', 'http://127.0.0.1:2'];
    const config = validateConfig({ listeners: [], upstreams: { api: { targets, health_check: { interval_ms: 60_000 } }, plain: { targets } } });
    const first = await provisioned(1, config, ctx);
    const acquire = sinon.spy(registry, 'acquire');
    const second = new Generation(2, sameUpstreams(config), 'h2', 'v2', SOURCE);
    expect(await provision(second, ctx, first)).to.deep.equal({
      [TARGET_HEALTH_KIND]: { created: 0, reused: 2 },
      [HEALTH_CHECKER_KIND]: { created: 0, reused: 1 },
    });
    expect(acquire.callCount).to.equal(0);
    expect(second.upstreamTable).to.equal(first.upstreamTable);
    expect(second.upstreams().size).to.equal(0);
    await first.release();
    expect(registry.stats()[HEALTH_CHECKER_KIND]).to.include({ live: 1, destroyed: 0 });
    expect(await second.release()).to.deep.equal({ [TARGET_HEALTH_KIND]: 2, [HEALTH_CHECKER_KIND]: 1 });
    await registry.close();
  });

  it('reports the leases of a generation dropped without release as leaked, though its table holds them', async () => {
    const registry = new ResourceRegistry();
    await (async () => {
      await provisioned(1, upstreamsConfig(2), context(registry)); // dropped on the floor
    })();
    await waitForCollection('the dropped table to be collected', () => registry.stats()[UPSTREAM_POOL_KIND]!.leakedLeases === 4);
    expect(registry.stats()[UPSTREAM_POOL_KIND]).to.include({ refs: 0 });
    await registry.close();
  });
});
