import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { rejectionOf, turnsUntil } from '../../harness/wait.js';
import { loadConfig } from '../../lib/config/parse.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { Generation, GenerationStateError, type ServedListener } from '../../lib/reload/generation.js';
import { UpstreamTable } from '../../lib/reload/upstream-table.js';
import type { GenerationTracing } from '../../lib/resources/tracing.js';

/** A generation of an empty config, activated unless `provisioning`. */
function generation(state: 'active' | 'provisioning' = 'active'): Generation {
  const { config, hash } = loadConfig('listeners: []\n');
  const g = new Generation(7, config, hash, 'v1', { kind: 'file', path: '/x' });
  if (state === 'active') g.activate();
  return g;
}

/** Fake `setTimeout` and `Date` for this test (the drain timer); restored after it. */
function fakeClock(): sinon.SinonFakeTimers {
  const clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  onCleanup(() => clock.restore());
  return clock;
}

describe('Generation', () => {
  it('drains at once when no request is pinned', async () => {
    const g = generation();
    expect(await g.drain(10_000)).to.equal(0);
    expect(g.state).to.equal('draining');
  });

  it('waits for pinned requests to finish before the drain resolves', async () => {
    const clock = fakeClock();
    const g = generation();
    const unpin = g.pin(() => {
      throw new Error('must not be aborted');
    });
    let drained = false;
    const draining = g.drain(10_000).then((aborted) => {
      drained = true;
      return aborted;
    });
    await clock.tickAsync(9_999); // up to a millisecond before the drain timeout
    expect(drained).to.equal(false);
    expect(g.inflight).to.equal(1);
    unpin();
    unpin(); // idempotent
    expect(await draining).to.equal(0);
    expect(g.inflight).to.equal(0);
  });

  it('aborts the requests still pinned when the drain timeout passes, and counts them', async () => {
    const clock = fakeClock();
    const g = generation();
    const aborted: number[] = [];
    g.pin(() => aborted.push(1));
    g.pin(() => aborted.push(2));
    const draining = g.drain(20);
    await clock.tickAsync(19);
    expect(aborted).to.deep.equal([]);
    await clock.tickAsync(1);
    expect(await draining).to.equal(2);
    expect(aborted).to.have.members([1, 2]);
  });

  it('releases its leases once, reporting what it destroyed per kind; a second release is the same completion', async () => {
    const registry = new ResourceRegistry();
    const g = generation('provisioning');
    const destroyed: string[] = [];
    const other = await registry.acquire('thing', 'shared', { create: () => 'shared', destroy: (v) => void destroyed.push(v) });
    g.hold(await registry.acquire('thing', 'shared', { create: () => 'unused', destroy: (v) => void destroyed.push(v) }));
    g.hold(await registry.acquire('thing', 'own', { create: () => 'own', destroy: (v) => void destroyed.push(v) }));
    expect(g.holds()).to.deep.equal([
      { kind: 'thing', key: 'shared' },
      { kind: 'thing', key: 'own' },
    ]);
    const first = g.release();
    const second = g.release();
    expect(second).to.equal(first);
    expect(await first).to.deep.equal({ thing: 1 });
    expect(await g.release()).to.deep.equal({ thing: 1 });
    expect(destroyed).to.deep.equal(['own']);
    expect(g.holds()).to.deep.equal([]);
    expect(registry.refs('thing', 'shared')).to.equal(1);
    await other.release();
    await registry.close();
  });

  describe('state transitions', () => {
    it('goes provisioning → active → draining → released through its own methods', async () => {
      const clock = fakeClock();
      const g = generation('provisioning');
      expect(g.state).to.equal('provisioning');
      g.activate();
      expect(g.state).to.equal('active');
      expect(g.retiredAt).to.equal(undefined);
      clock.tick(1234);
      await g.drain(0);
      expect(g.state).to.equal('draining');
      expect(g.retiredAt).to.equal(1234);
      await g.release();
      expect(g.state).to.equal('released');
    });

    it('goes straight from provisioning to released (a failed provision)', async () => {
      const g = generation('provisioning');
      await g.release();
      expect(g.state).to.equal('released');
    });

    it('refuses transitions out of order with GenerationStateError naming the generation, the action and the state', async () => {
      const g = generation('provisioning');
      expect(await rejectionOf(g.drain(0)))
        .to.be.instanceOf(GenerationStateError)
        .with.property('message', 'generation 7: cannot drain in state provisioning');
      g.activate();
      expect(() => g.activate())
        .to.throw(GenerationStateError)
        .with.property('message', 'generation 7: cannot activate in state active');
      await g.drain(0);
      expect(await rejectionOf(g.drain(0))).to.have.property('message', 'generation 7: cannot drain in state draining');
      await g.release();
      expect(() => g.activate()).to.throw(GenerationStateError, 'generation 7: cannot activate in state released');
      expect(g.state).to.equal('released');
    });

    it('takes what it serves while provisioning only', () => {
      const g = generation('active');
      const listener = { handle: {}, router: { match: () => undefined, allowedMethods: () => undefined } } as unknown as ServedListener;
      expect(() => g.addListener('127.0.0.1:1', listener)).to.throw(GenerationStateError, 'generation 7: cannot add a listener in state active');
      const table = new UpstreamTable({
        registry: new ResourceRegistry(),
        record: {},
        serving: true,
        tracer: g.tracer,
        observer: undefined,
        logger: undefined,
      });
      expect(() => g.holdUpstreams(table)).to.throw(GenerationStateError, 'cannot hold an upstream table in state active');
      expect(() => g.setTracing({} as GenerationTracing)).to.throw(GenerationStateError, 'cannot set its tracing in state active');
      expect(g.listeners().size).to.equal(0);
      expect(g.upstreams().size).to.equal(0);
      expect(g.tracing).to.equal(undefined);
    });

    it('refuses a lease once active, and releases at once a lease handed to it after its release', async () => {
      const registry = new ResourceRegistry();
      onCleanup(() => registry.close());
      const active = generation('active');
      const early = await registry.acquire('thing', 'early', { create: () => 1, destroy: () => {} });
      expect(() => active.hold(early)).to.throw(GenerationStateError, 'cannot hold a lease in state active');
      expect(early.released).to.equal(false);
      await early.release();

      const released = generation('provisioning');
      await released.release();
      const late = await registry.acquire('thing', 'late', { create: () => 2, destroy: () => {} });
      expect(() => released.hold(late)).to.throw(GenerationStateError, 'cannot hold a lease in state released');
      expect(late.released).to.equal(true);
      expect(registry.refs('thing', 'late')).to.equal(0);
    });

    it('reports the newest document that produced its config', () => {
      const g = generation();
      g.sawDocument('v2', { kind: 'etcd', key: '/k' });
      expect([g.version, g.source]).to.deep.equal(['v2', { kind: 'etcd', key: '/k' }]);
    });
  });

  describe('cutDrain', () => {
    it('ends a drain that is waiting: requests still pinned are aborted now', async () => {
      fakeClock(); // the drain timeout never fires: only the cut ends the wait
      const g = generation();
      const aborted: string[] = [];
      g.pin(() => aborted.push('request'));
      const draining = g.drain(60_000);
      g.cutDrain();
      expect(await draining).to.equal(1);
      expect(aborted).to.deep.equal(['request']);
    });

    it('makes a later drain abort at once', async () => {
      fakeClock();
      const g = generation();
      const aborted: string[] = [];
      g.pin(() => aborted.push('request'));
      g.cutDrain();
      expect(await g.drain(60_000)).to.equal(1);
      expect(aborted).to.deep.equal(['request']);
    });
  });

  describe('onRelease', () => {
    it('runs hooks after the leases, each newest first', async () => {
      const registry = new ResourceRegistry();
      onCleanup(() => registry.close());
      const events: string[] = [];
      const factory = (name: string) => ({ create: () => name, destroy: () => void events.push(`destroy ${name}`) });
      const g = generation('provisioning');
      g.onRelease(() => events.push('hook 1'));
      g.hold(await registry.acquire('thing', 'a', factory('a')));
      g.onRelease(() => events.push('hook 2'));
      g.hold(await registry.acquire('thing', 'b', factory('b')));
      await g.release();
      expect(events).to.deep.equal(['destroy b', 'destroy a', 'hook 2', 'hook 1']);
    });

    it('awaits each hook before the next, and the release resolves after the last', async () => {
      const events: string[] = [];
      let finishSlow!: () => void;
      const g = generation('provisioning');
      g.onRelease(() => events.push('older hook'));
      g.onRelease(async () => {
        events.push('slow hook started');
        await new Promise<void>((resolve) => (finishSlow = resolve));
        events.push('slow hook finished');
      });
      const releasing = g.release().then(() => events.push('released'));
      await turnsUntil('the slow hook to start', () => events.includes('slow hook started'));
      expect(events).to.deep.equal(['slow hook started']);
      finishSlow();
      await releasing;
      expect(events).to.deep.equal(['slow hook started', 'slow hook finished', 'older hook', 'released']);
    });

    it('runs each hook once, however often release is called', async () => {
      const hook = sinon.spy();
      const g = generation('provisioning');
      g.onRelease(hook);
      await Promise.all([g.release(), g.release()]);
      await g.release();
      expect(hook.callCount).to.equal(1);
    });

    it('runs a hook registered after the release began, on its own', async () => {
      const g = generation('provisioning');
      await g.release();
      const ran = new Promise<string>((resolve) => g.onRelease(() => resolve('ran')));
      expect(await ran).to.equal('ran');
    });
  });
});
