import { expect } from 'chai';
import sinon from 'sinon';
import { memoryLogger } from '../../harness/daemon.js';
import { rejectionOf, waitForCollection } from '../../harness/wait.js';
import { LeaseReleasedError, RegistryClosedError } from '../../lib/core/errors.js';
import { sectionKey } from '../../lib/registry/key.js';
import { type ResourceFactory, ResourceRegistry } from '../../lib/registry/registry.js';

/**
 * A factory whose values are numbered objects, with create/destroy counted by sinon spies. With
 * a gate, create (destroy) does not finish before the gate opens, so the spec decides when.
 */
function countingFactory(options: { createGate?: Promise<void>; destroyGate?: Promise<void> } = {}) {
  let n = 0;
  const factory = {
    create: sinon.spy(async () => {
      await options.createGate;
      n += 1;
      return { id: n, destroyed: false };
    }),
    destroy: sinon.spy(async (value: { id: number; destroyed: boolean }) => {
      await options.destroyGate;
      value.destroyed = true;
    }),
  } satisfies ResourceFactory<{ id: number; destroyed: boolean }>;
  return factory;
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('ResourceRegistry', () => {
  let registry: ResourceRegistry;
  beforeEach(() => {
    registry = new ResourceRegistry({ destroyTimeoutMs: 200 });
  });
  afterEach(async () => {
    await registry.close();
  });

  describe('acquire', () => {
    it('creates the value once on first acquire and hands it out', async () => {
      const factory = countingFactory();
      const lease = await registry.acquire('thing', 'a', factory);
      expect(lease.value.id).to.equal(1);
      expect(lease.created).to.equal(true);
      expect(factory.create.callCount).to.equal(1);
      expect(registry.refs('thing', 'a')).to.equal(1);
      await lease.release();
    });

    it('reuses a live value without calling create, and counts the reuse', async () => {
      const first = countingFactory();
      const second = countingFactory();
      const a = await registry.acquire('thing', 'a', first);
      const b = await registry.acquire('thing', 'a', second);
      expect(b.value).to.equal(a.value);
      expect(b.created).to.equal(false);
      expect(second.create.called).to.equal(false);
      expect(registry.refs('thing', 'a')).to.equal(2);
      expect(registry.stats().thing).to.include({ created: 1, reused: 1, live: 1, refs: 2 });
      await a.release();
      await b.release();
    });

    it('creates once for 100 concurrent acquires of one key and shares the value', async () => {
      const gate = deferred<void>();
      const factory = countingFactory({ createGate: gate.promise });
      const acquiring = Promise.all(Array.from({ length: 100 }, () => registry.acquire('thing', 'k', factory)));
      gate.resolve(); // every acquire arrived while the create was in progress
      const leases = await acquiring;
      expect(factory.create.callCount).to.equal(1);
      expect(new Set(leases.map((l) => l.value)).size).to.equal(1);
      expect(registry.refs('thing', 'k')).to.equal(100);
      expect(registry.stats().thing).to.include({ created: 1, reused: 99, refs: 100 });
      expect(leases.filter((l) => l.created)).to.have.length(1);
      await Promise.all(leases.map((l) => l.release()));
      expect(factory.destroy.callCount).to.equal(1);
    });

    it('rejects every waiter of a failed create with the same error and stores nothing', async () => {
      const boom = new Error('bind failed');
      const gate = deferred<void>();
      const factory: ResourceFactory<number> = {
        create: sinon.spy(async () => {
          await gate.promise;
          throw boom;
        }),
        destroy: sinon.spy(),
      };
      const settling = Promise.allSettled(Array.from({ length: 5 }, () => registry.acquire('thing', 'k', factory)));
      gate.resolve(); // all five wait on the one create
      const results = await settling;
      for (const r of results) {
        expect(r.status).to.equal('rejected');
        expect((r as PromiseRejectedResult).reason).to.equal(boom);
      }
      expect((factory.create as sinon.SinonSpy).callCount).to.equal(1);
      expect(registry.refs('thing', 'k')).to.equal(0);
      expect(registry.stats().thing).to.include({ live: 0, refs: 0, created: 0, createFailures: 1 });
      expect((factory.destroy as sinon.SinonSpy).called).to.equal(false);
    });

    it('tries create again on the next acquire after a failure', async () => {
      let fail = true;
      const factory: ResourceFactory<string> = {
        create: () => {
          if (fail) throw new Error('first attempt fails');
          return 'ok';
        },
        destroy: () => {},
      };
      expect((await rejectionOf(registry.acquire('thing', 'k', factory))).message).to.equal('first attempt fails');
      fail = false;
      const lease = await registry.acquire('thing', 'k', factory);
      expect(lease.value).to.equal('ok');
      await lease.release();
    });

    it('treats a synchronous throw in create like a rejection', async () => {
      const factory: ResourceFactory<string> = {
        create: () => {
          throw new Error('sync');
        },
        destroy: () => {},
      };
      expect((await rejectionOf(registry.acquire('thing', 'k', factory))).message).to.equal('sync');
      expect(registry.stats().thing?.createFailures).to.equal(1);
    });

    it('never blocks one key on a slow create of another', async () => {
      const gate = deferred<string>();
      const slow: ResourceFactory<string> = { create: () => gate.promise, destroy: () => {} };
      const slowLease = registry.acquire('thing', 'slow', slow);
      const fast = await registry.acquire('thing', 'fast', { create: () => 'fast', destroy: () => {} });
      expect(fast.value).to.equal('fast');
      expect(registry.refs('thing', 'slow')).to.equal(0);
      gate.resolve('slow');
      await (await slowLease).release();
      await fast.release();
    });

    it('waits for an in-progress destroy, then creates a fresh value (never two live values per key)', async () => {
      const gate = deferred<void>();
      const destroyStarted = deferred<void>();
      let live = 0;
      let maxLive = 0;
      let n = 0;
      let destroying = false;
      /** Creates called while the destroy had not finished (witnessed by create itself). */
      let createsDuringDestroy = 0;
      const factory: ResourceFactory<number> = {
        create: () => {
          if (destroying) createsDuringDestroy += 1;
          live += 1;
          maxLive = Math.max(maxLive, live);
          return ++n;
        },
        destroy: async () => {
          destroying = true;
          destroyStarted.resolve();
          await gate.promise;
          live -= 1;
          destroying = false;
        },
      };
      const first = await registry.acquire('thing', 'k', factory);
      const releasing = first.release();
      await destroyStarted.promise;
      const second = registry.acquire('thing', 'k', factory);
      expect(n).to.equal(1); // still waiting for the destroy
      gate.resolve();
      expect(await releasing).to.equal(true);
      const lease = await second;
      expect(lease.value).to.equal(2);
      expect(createsDuringDestroy).to.equal(0);
      expect(maxLive).to.equal(1);
      await lease.release();
    });

    it('keeps kinds apart: the same key under two kinds is two resources', async () => {
      const a = await registry.acquire('kind_a', 'k', { create: () => 'a', destroy: () => {} });
      const b = await registry.acquire('kind_b', 'k', { create: () => 'b', destroy: () => {} });
      expect([a.value, b.value]).to.deep.equal(['a', 'b']);
      await a.release();
      await b.release();
    });
  });

  describe('release', () => {
    it('destroys the value on the last release only, and says so', async () => {
      const factory = countingFactory();
      const a = await registry.acquire('thing', 'k', factory);
      const b = await registry.acquire('thing', 'k', factory);
      const value = a.value;
      expect(await a.release()).to.equal(false);
      expect(factory.destroy.called).to.equal(false);
      expect(await b.release()).to.equal(true);
      expect(factory.destroy.calledOnceWithExactly(value)).to.equal(true);
      expect(value.destroyed).to.equal(true);
      expect(registry.stats().thing).to.include({ live: 0, refs: 0, destroyed: 1 });
    });

    it('is idempotent: a second release is a no-op that never drops another lease', async () => {
      const factory = countingFactory();
      const a = await registry.acquire('thing', 'k', factory);
      const b = await registry.acquire('thing', 'k', factory);
      expect(await a.release()).to.equal(false);
      expect(await a.release()).to.equal(false);
      expect(await a.release()).to.equal(false);
      expect(registry.refs('thing', 'k')).to.equal(1);
      expect(b.value.destroyed).to.equal(false);
      expect(await b.release()).to.equal(true);
    });

    it('destroys once when the last two leases are released concurrently', async () => {
      const gate = deferred<void>();
      const factory = countingFactory({ destroyGate: gate.promise });
      const leases = await Promise.all(Array.from({ length: 50 }, () => registry.acquire('thing', 'k', factory)));
      const releasing = Promise.all(leases.map((l) => l.release()));
      gate.resolve(); // every release was made while the destroy was in progress
      const results = await releasing;
      expect(factory.destroy.callCount).to.equal(1);
      expect(results.filter(Boolean)).to.have.length(1);
    });

    it('makes the value unreadable once released', async () => {
      const lease = await registry.acquire('thing', 'k', countingFactory());
      await lease.release();
      expect(() => lease.value)
        .to.throw(LeaseReleasedError)
        .with.property('code', 'E_LEASE_RELEASED');
      expect(lease.released).to.equal(true);
    });

    it('releases at scope exit with await using', async () => {
      const factory = countingFactory();
      {
        await using lease = await registry.acquire('thing', 'k', factory);
        expect(lease.value.id).to.equal(1);
      }
      expect(factory.destroy.callCount).to.equal(1);
      expect(registry.refs('thing', 'k')).to.equal(0);
    });

    it('bounds a hanging destroy by destroyTimeoutMs, counts it and removes the entry', async () => {
      const { logger, lines } = memoryLogger();
      const reg = new ResourceRegistry({ destroyTimeoutMs: 50, logger });
      const lease = await reg.acquire('thing', 'k', { create: () => 1, destroy: () => new Promise<void>(() => {}) });
      expect(await lease.release()).to.equal(true);
      expect(reg.stats().thing).to.include({ live: 0, destroyFailures: 1, destroyed: 1 });
      expect(lines().some((l) => l.msg === 'resource_destroy_failed' && l.kind === 'thing' && l.key === 'k')).to.equal(true);
      const fresh = await reg.acquire('thing', 'k', { create: () => 2, destroy: () => {} });
      expect(fresh.value).to.equal(2);
      await fresh.release();
      await reg.close();
    });

    it('counts a throwing destroy and never hands the dead value out again', async () => {
      let n = 0;
      const factory: ResourceFactory<number> = {
        create: () => ++n,
        destroy: () => {
          throw new Error('close failed');
        },
      };
      const lease = await registry.acquire('thing', 'k', factory);
      await lease.release();
      expect(registry.stats().thing?.destroyFailures).to.equal(1);
      const again = await registry.acquire('thing', 'k', factory);
      expect(again.value).to.equal(2);
      await again.release();
    });
  });

  describe('leaked leases', () => {
    it('counts and logs a lease garbage-collected without release, and reclaims its reference', async () => {
      const { logger, lines } = memoryLogger();
      const reg = new ResourceRegistry({ logger });
      const factory = countingFactory();
      const kept = await reg.acquire('thing', 'k', factory);
      await (async () => {
        await reg.acquire('thing', 'k', factory); // dropped on the floor
      })();
      expect(reg.refs('thing', 'k')).to.equal(2);
      await waitForCollection('the dropped lease to be collected', () => reg.stats().thing!.leakedLeases === 1);
      expect(lines().some((l) => l.msg === 'lease_leaked' && l.kind === 'thing' && l.key === 'k')).to.equal(true);
      expect(reg.refs('thing', 'k')).to.equal(1);
      await kept.release();
      expect(reg.stats().thing).to.include({ live: 0, leakedLeases: 1 });
      await reg.close();
    });

    it('does not count a released lease as leaked when it is collected', async () => {
      const reg = new ResourceRegistry();
      // Witnesses: our own finalizer sees the released lease collected, and a lease dropped
      // without release (another kind) shows that the registry's finalizers have run by then.
      let collected = false;
      const witness = new FinalizationRegistry<string>(() => (collected = true));
      await (async () => {
        const lease = await reg.acquire('thing', 'k', countingFactory());
        witness.register(lease, 'released lease');
        await lease.release();
        await reg.acquire('control', 'dropped', countingFactory()); // dropped on the floor
      })();
      await waitForCollection('both leases to be collected', () => collected && reg.stats().control!.leakedLeases === 1);
      expect(reg.stats().thing!.leakedLeases).to.equal(0);
      await reg.close();
    });
  });

  describe('share', () => {
    it('hands another owner a lease on the same value, counted as a reuse, which keeps it alive after the first is released', async () => {
      const factory = countingFactory();
      const first = await registry.acquire('thing', 'a', factory);
      const events: string[] = [];
      registry.subscribe((event) => events.push(event.type));
      const second = registry.share(first)!;
      expect(second.value).to.equal(first.value);
      expect(second).to.include({ kind: 'thing', key: 'a', created: false });
      expect(registry.refs('thing', 'a')).to.equal(2);
      expect(registry.stats().thing).to.include({ created: 1, reused: 1 });
      expect(events).to.deep.equal(['reused']);
      expect(await first.release()).to.equal(false);
      expect(second.value.destroyed).to.equal(false);
      expect(await second.release()).to.equal(true);
      expect(factory.create.callCount).to.equal(1);
      expect(factory.destroy.callCount).to.equal(1);
    });

    it('takes no reference for a released lease, a lease of another registry, or after close', async () => {
      const released = await registry.acquire('thing', 'a', countingFactory());
      const kept = await registry.acquire('thing', 'a', countingFactory());
      await released.release();
      expect(registry.share(released)).to.equal(undefined);
      const other = new ResourceRegistry();
      const foreign = await other.acquire('thing', 'a', countingFactory());
      expect(registry.share(foreign)).to.equal(undefined);
      expect(registry.refs('thing', 'a')).to.equal(1);
      await other.close();
      await registry.close();
      expect(registry.share(kept)).to.equal(undefined);
    });
  });

  describe('countReused', () => {
    it('adds reuses of a kind taken over outside the registry to its reused count, taking no reference and emitting no event', async () => {
      const lease = await registry.acquire('thing', 'a', countingFactory());
      const events: string[] = [];
      registry.subscribe((event) => events.push(event.type));
      registry.countReused('thing', 2000);
      registry.countReused('other', 0);
      expect(registry.stats().thing).to.include({ created: 1, reused: 2000, refs: 1, live: 1 });
      expect(registry.stats()).to.not.have.property('other');
      expect(events).to.deep.equal([]);
      await lease.release();
    });
  });

  it('says whether it is closed', async () => {
    expect(registry.closed).to.equal(false);
    await registry.close();
    expect(registry.closed).to.equal(true);
  });

  describe('stats, refs and close', () => {
    it('reports zero refs for unknown keys and keeps per-kind counters', async () => {
      expect(registry.refs('nothing', 'here')).to.equal(0);
      const a = await registry.acquire('one', 'x', countingFactory());
      const b = await registry.acquire('two', 'y', countingFactory());
      await b.release();
      expect(registry.stats()).to.deep.equal({
        one: { live: 1, refs: 1, created: 1, destroyed: 0, reused: 0, createFailures: 0, destroyFailures: 0, leakedLeases: 0 },
        two: { live: 0, refs: 0, created: 1, destroyed: 1, reused: 0, createFailures: 0, destroyFailures: 0, leakedLeases: 0 },
      });
      await a.release();
    });

    it('close destroys what is left, reports leases still held and refuses new acquires', async () => {
      const factory = countingFactory();
      const held = await registry.acquire('thing', 'k', factory);
      const report = await registry.close();
      expect(report.held).to.deep.equal([{ kind: 'thing', key: 'k', refs: 1 }]);
      expect(factory.destroy.callCount).to.equal(1);
      expect(await held.release()).to.equal(false);
      expect(await rejectionOf(registry.acquire('thing', 'k', factory))).to.be.instanceOf(RegistryClosedError);
      expect(await registry.close()).to.equal(report);
    });

    it('close destroys a value whose create finishes after close started', async () => {
      const gate = deferred<string>();
      const destroy = sinon.spy();
      const pending = registry.acquire('thing', 'late', { create: () => gate.promise, destroy });
      const closing = registry.close();
      gate.resolve('late value');
      expect(await rejectionOf(pending)).to.be.instanceOf(RegistryClosedError);
      await closing;
      expect(destroy.calledOnceWithExactly('late value')).to.equal(true);
    });

    it('emits lifecycle events to subscribers', async () => {
      const events: string[] = [];
      const unsubscribe = registry.subscribe((e) => events.push(`${e.type}:${e.kind}:${e.key}`));
      const a = await registry.acquire('thing', 'k', countingFactory());
      const b = await registry.acquire('thing', 'k', countingFactory());
      await a.release();
      await b.release();
      unsubscribe();
      await (await registry.acquire('thing', 'k', countingFactory())).release();
      expect(events).to.deep.equal(['created:thing:k', 'reused:thing:k', 'destroyed:thing:k']);
    });
  });
});

describe('sectionKey', () => {
  it('is equal for deeply equal sections whatever their key order', () => {
    expect(sectionKey({ a: 1, b: { c: [1, 2], d: 'x' } })).to.equal(sectionKey({ b: { d: 'x', c: [1, 2] }, a: 1 }));
  });

  it('changes when any value changes, including inside arrays', () => {
    const base = { a: 1, b: { c: [1, 2] } };
    const keys = new Set([
      sectionKey(base),
      sectionKey({ a: 2, b: { c: [1, 2] } }),
      sectionKey({ a: 1, b: { c: [2, 1] } }),
      sectionKey({ a: 1, b: { c: [1, 2], e: null } }),
    ]);
    expect(keys.size).to.equal(4);
  });

  it('rejects cycles instead of producing a key', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => sectionKey(cyclic)).to.throw(TypeError);
  });
});
