import { expect } from 'chai';
import { sleep } from '../../harness/wait.js';
import { loadConfig } from '../../lib/config/parse.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { Generation } from '../../lib/reload/generation.js';

/** A generation of an empty config, activated unless `provisioning`. */
function generation(state: 'active' | 'provisioning' = 'active'): Generation {
  const { config, hash } = loadConfig('listeners: []\n');
  const g = new Generation(7, config, hash, 'v1', { kind: 'file', path: '/x' });
  if (state === 'active') g.activate();
  return g;
}

describe('Generation', () => {
  it('drains at once when no request is pinned', async () => {
    const g = generation();
    expect(await g.drain(10_000)).to.equal(0);
    expect(g.state).to.equal('draining');
  });

  it('waits for pinned requests to finish before the drain resolves', async () => {
    const g = generation();
    const unpin = g.pin(() => {
      throw new Error('must not be aborted');
    });
    let drained = false;
    const draining = g.drain(10_000).then((aborted) => {
      drained = true;
      return aborted;
    });
    await sleep(30);
    expect(drained).to.equal(false);
    expect(g.inflight).to.equal(1);
    unpin();
    unpin(); // idempotent
    expect(await draining).to.equal(0);
    expect(g.inflight).to.equal(0);
  });

  it('aborts the requests still pinned when the drain timeout passes, and counts them', async () => {
    const g = generation();
    const aborted: number[] = [];
    g.pin(() => aborted.push(1));
    g.pin(() => aborted.push(2));
    expect(await g.drain(20)).to.equal(2);
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
});
