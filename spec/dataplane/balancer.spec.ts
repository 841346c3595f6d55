import { expect } from 'chai';
import fc from 'fast-check';
import sinon from 'sinon';
import { Balancer, type LoadBalancing } from '../../lib/dataplane/proxy/balancer.js';

interface Target {
  name: string;
  healthy: boolean;
  inflight: number;
}

function targets(...names: string[]): Target[] {
  return names.map((name) => ({ name, healthy: true, inflight: 0 }));
}

/** Names of `count` successive picks. */
function picks(balancer: Balancer<Target>, count: number, exclude?: ReadonlySet<Target>): (string | undefined)[] {
  return Array.from({ length: count }, () => balancer.pick(exclude)?.name);
}

describe('Balancer', () => {
  describe('round_robin', () => {
    it('cycles through the targets in config order', () => {
      expect(picks(new Balancer('round_robin', targets('a', 'b', 'c')), 7)).to.deep.equal(['a', 'b', 'c', 'a', 'b', 'c', 'a']);
    });

    it('skips unhealthy targets, reading health at pick time', () => {
      const [a, b, c] = targets('a', 'b', 'c') as [Target, Target, Target];
      const balancer = new Balancer('round_robin', [a, b, c]);
      b.healthy = false;
      expect(picks(balancer, 4)).to.deep.equal(['a', 'c', 'a', 'c']);
      b.healthy = true;
      expect(picks(balancer, 3)).to.deep.equal(['a', 'b', 'c']);
    });

    it('skips excluded targets (tried by an earlier attempt), and continues after the pick', () => {
      const [a, b, c] = targets('a', 'b', 'c') as [Target, Target, Target];
      const balancer = new Balancer('round_robin', [a, b, c]);
      expect(balancer.pick(new Set([a]))?.name).to.equal('b');
      expect(balancer.pick()?.name).to.equal('c');
    });

    it('returns undefined when nothing is eligible, without moving on', () => {
      const [a, b] = targets('a', 'b') as [Target, Target];
      const balancer = new Balancer('round_robin', [a, b]);
      expect(balancer.pick()?.name).to.equal('a');
      a.healthy = false;
      expect(balancer.pick(new Set([b]))).to.equal(undefined);
      a.healthy = true;
      expect(picks(balancer, 2)).to.deep.equal(['b', 'a']);
      expect(new Balancer('round_robin', []).pick()).to.equal(undefined);
    });

    it('spreads picks evenly over the healthy targets (property)', () => {
      fc.assert(
        fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), fc.integer({ min: 1, max: 5 }), (health, rounds) => {
          const all = health.map((healthy, i) => ({ name: String(i), healthy, inflight: 0 }));
          const healthy = all.filter((t) => t.healthy).map((t) => t.name);
          const got = picks(new Balancer('round_robin', all), healthy.length * rounds);
          const counts = new Map<string | undefined, number>();
          for (const name of got) counts.set(name, (counts.get(name) ?? 0) + 1);
          expect([...counts.keys()].sort()).to.deep.equal(healthy.length === 0 ? [] : [...healthy].sort());
          for (const count of counts.values()) expect(count).to.equal(rounds);
        }),
      );
    });
  });

  describe('random', () => {
    it('picks uniformly among eligible targets with the injected random source', () => {
      const [a, b, c, d] = targets('a', 'b', 'c', 'd') as [Target, Target, Target, Target];
      const random = sinon.stub<[], number>();
      const balancer = new Balancer('random', [a, b, c, d], random);
      b.healthy = false;
      random.returns(0);
      expect(balancer.pick()?.name).to.equal('a');
      random.returns(0.5);
      expect(balancer.pick()?.name).to.equal('c');
      random.returns(0.999);
      expect(balancer.pick()?.name).to.equal('d');
      expect(balancer.pick(new Set([d]))?.name).to.equal('c');
      expect(random.callCount).to.equal(4);
    });

    it('returns undefined when nothing is eligible', () => {
      const [a] = targets('a') as [Target];
      a.healthy = false;
      expect(new Balancer('random', [a], () => 0).pick()).to.equal(undefined);
    });
  });

  describe('least_request', () => {
    it('picks the eligible target with the fewest requests in flight', () => {
      const [a, b, c] = targets('a', 'b', 'c') as [Target, Target, Target];
      const balancer = new Balancer('least_request', [a, b, c]);
      a.inflight = 3;
      b.inflight = 1;
      c.inflight = 2;
      expect(balancer.pick()?.name).to.equal('b');
      b.healthy = false;
      expect(balancer.pick()?.name).to.equal('c');
      expect(balancer.pick(new Set([c]))?.name).to.equal('a');
    });

    it('breaks ties in round-robin order', () => {
      const balancer = new Balancer('least_request', targets('a', 'b', 'c'));
      expect(picks(balancer, 4)).to.deep.equal(['a', 'b', 'c', 'a']);
      const [a, b, c] = targets('a', 'b', 'c') as [Target, Target, Target];
      const loaded = new Balancer('least_request', [a, b, c]);
      a.inflight = 2;
      b.inflight = 1;
      c.inflight = 1;
      expect(picks(loaded, 3)).to.deep.equal(['b', 'c', 'b']);
    });
  });

  it('never picks an unhealthy or excluded target, and picks one whenever one is eligible, whatever the policy (property)', () => {
    const state = fc.array(fc.record({ healthy: fc.boolean(), inflight: fc.nat(5), excluded: fc.boolean() }), { maxLength: 8 });
    const policy = fc.constantFrom<LoadBalancing>('round_robin', 'random', 'least_request');
    fc.assert(
      fc.property(policy, state, fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), fc.nat(10), (p, specs, r, warmup) => {
        const all = specs.map(({ healthy, inflight }, i) => ({ name: String(i), healthy, inflight }));
        const exclude = new Set(all.filter((_, i) => specs[i]!.excluded));
        const balancer = new Balancer(p, all, () => r);
        for (let i = 0; i < warmup; i += 1) balancer.pick();
        const picked = balancer.pick(exclude);
        const eligible = all.filter((t) => t.healthy && !exclude.has(t));
        if (eligible.length === 0) expect(picked).to.equal(undefined);
        else expect(eligible).to.include(picked);
        if (p === 'least_request' && picked) expect(picked.inflight).to.equal(Math.min(...eligible.map((t) => t.inflight)));
      }),
    );
  });
});
