import { expect } from 'chai';
import fc from 'fast-check';
import { TrackedKeys } from '../../lib/sources/etcd/keys.js';
import type { RawFragment } from '../../lib/sources/source.js';

const fragment = (name: string, mod: number, text: string): RawFragment => ({ name, text, version: `${mod}:${text}` });

describe('TrackedKeys (the etcd source key set)', () => {
  it('matches a freshly built set after any sequence of puts and deletes: order, fragments, version, counts, newest mod revision', () => {
    const op = fc.oneof(
      fc.record({ type: fc.constant('put' as const), key: fc.constantFrom('a', 'b', 'c', 'a/b', 'B', 'é', 'z'), text: fc.constantFrom('x', 'y') }),
      fc.record({ type: fc.constant('delete' as const), key: fc.constantFrom('a', 'b', 'c', 'a/b', 'B', 'é', 'z') }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const keys = TrackedKeys.of([]);
        const model = new Map<string, { mod: number; fragment: RawFragment }>();
        ops.forEach((o, i) => {
          const mod = i + 1;
          if (o.type === 'put') {
            const f = fragment(o.key, mod, o.text);
            keys.put(o.key, mod, f);
            model.set(o.key, { mod, fragment: f });
          } else {
            expect(keys.delete(o.key)).to.equal(model.delete(o.key));
          }
        });
        const fresh = TrackedKeys.of([...model].map(([key, { mod, fragment: f }]) => [key, mod, f] as const));
        const sorted = [...model.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
        expect(keys.fragments().map((f) => f.name)).to.deep.equal(sorted);
        expect(keys.fragments()).to.deep.equal(fresh.fragments());
        expect(keys.version()).to.equal(fresh.version());
        expect(keys.size).to.equal(model.size);
        expect(keys.fragmentCount).to.equal(model.size);
        expect(keys.maxMod()).to.equal(Math.max(0, ...[...model.values()].map((v) => v.mod)));
        for (const [key, { mod }] of model) expect(keys.modOf(key)).to.equal(mod);
      }),
    );
  });

  it('gives sets that differ in one fragment version different versions, and equal sets equal ones', () => {
    const a = TrackedKeys.of([
      ['k1', 1, fragment('k1', 1, 'x')],
      ['k2', 2, fragment('k2', 2, 'y')],
    ]);
    const b = TrackedKeys.of([
      ['k2', 2, fragment('k2', 2, 'y')],
      ['k1', 1, fragment('k1', 1, 'x')],
    ]);
    expect(a.version()).to.equal(b.version());
    b.put('k1', 3, fragment('k1', 3, 'x'));
    expect(b.version()).to.not.equal(a.version());
    expect(b.version()).to.match(/^2:[0-9a-f]{32}$/);
  });

  it('tracks mod revisions without fragments for the single key', () => {
    const keys = TrackedKeys.of([['/config', 7, undefined]]);
    expect([keys.size, keys.fragmentCount, keys.modOf('/config'), keys.maxMod()]).to.deep.equal([1, 0, 7, 7]);
    expect(keys.fragments()).to.deep.equal([]);
  });
});
