import { expect } from 'chai';
import fc from 'fast-check';
import { waitForCollection } from '../../harness/wait.js';
import { concatEnds, notedEnds, noteEnds, sameEnds, scanEnds } from '../../lib/core/identity.js';

/** `array` behind a proxy that counts the items read (numeric keys), frozen when `array` is. */
function counted<T>(array: T[]): { proxy: T[]; reads: () => number } {
  let reads = 0;
  const proxy = new Proxy(array, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads += 1;
      return Reflect.get(target, key, receiver);
    },
  });
  return { proxy, reads: () => reads };
}

const items = (n: number) => Array.from({ length: n }, (_, i) => ({ i }));

describe('sameEnds', () => {
  it('answers a noted pair, either way round, without reading an item', () => {
    const shared = items(10_000);
    const a = counted(Object.freeze([...shared]) as { i: number }[]);
    const b = counted(Object.freeze([...shared.slice(0, 9_999), { i: -1 }]) as { i: number }[]);
    noteEnds(a.proxy, b.proxy, { head: 9_999, tail: 0 });
    expect(sameEnds(a.proxy, b.proxy)).to.deep.equal({ head: 9_999, tail: 0 });
    expect(sameEnds(b.proxy, a.proxy)).to.deep.equal({ head: 9_999, tail: 0 });
    expect(a.reads() + b.reads()).to.equal(0);
  });

  it('scans frozen arrays once, then answers from what it noted; arrays that may change are scanned each time', () => {
    const shared = items(1000);
    const a = counted(Object.freeze([...shared]) as { i: number }[]);
    const b = counted(Object.freeze([{ i: -1 }, ...shared.slice(1)]) as { i: number }[]);
    expect(sameEnds(a.proxy, b.proxy)).to.deep.equal({ head: 0, tail: 999 });
    const scanned = a.reads();
    expect(scanned).to.be.greaterThan(999);
    expect(sameEnds(b.proxy, a.proxy)).to.deep.equal({ head: 0, tail: 999 });
    expect(a.reads()).to.equal(scanned);

    const plain = [...shared];
    const other = [...shared];
    expect(sameEnds(plain, other)).to.deep.equal({ head: 1000, tail: 0 });
    other[0] = { i: -1 };
    expect(sameEnds(plain, other)).to.deep.equal({ head: 0, tail: 999 });
    noteEnds(plain, other, { head: 1000, tail: 0 });
    expect(notedEnds(plain, other), 'nothing noted for arrays that are not frozen').to.equal(undefined);
  });

  it('answers for the pair noted only: another array gets a scan', () => {
    const shared = items(100);
    const a = Object.freeze([...shared]);
    const b = Object.freeze([...shared]);
    const c = Object.freeze([...shared.slice(0, 50)]);
    noteEnds(a, b, { head: 100, tail: 0 });
    expect(notedEnds(c, b)).to.equal(undefined);
    expect(sameEnds(c, b)).to.deep.equal({ head: 50, tail: 0 });
  });

  it('keeps neither array of a note alive', async () => {
    const kept = Object.freeze(items(10));
    let dropped: readonly { i: number }[] | undefined = Object.freeze([...kept]);
    const ref = new WeakRef(dropped);
    noteEnds(dropped, kept, { head: 10, tail: 0 });
    dropped = undefined;
    await waitForCollection('the noted previous array to be collected', () => ref.deref() === undefined);
    expect(notedEnds(kept, [])).to.equal(undefined);
  });
});

describe('concatEnds', () => {
  it('answers what a scan of the two concatenations does, for any edit of their parts', () => {
    // Parts of a few shared items: the same part may recur, parts may be empty, and items recur across parts.
    const pool = items(6);
    const part = fc.array(fc.constantFrom(...pool), { maxLength: 4 });
    fc.assert(
      fc.property(
        fc.array(part, { maxLength: 6 }),
        fc.array(fc.tuple(fc.constantFrom('insert', 'remove', 'replace', 'same'), fc.nat(), part), { maxLength: 4 }),
        (initial, edits) => {
          const before = initial.map((p) => Object.freeze(p));
          const after = [...before];
          for (const [edit, at, items] of edits) {
            const i = after.length === 0 ? 0 : at % after.length;
            if (edit === 'insert') after.splice(i, 0, Object.freeze(items));
            else if (edit === 'remove') after.splice(i, 1);
            else if (edit === 'replace' && after.length > 0) after[i] = Object.freeze(items);
            // A new array with the very items of the old one: equal by items, not by identity.
            else if (after.length > 0) after[i] = Object.freeze([...after[i]!]);
          }
          const a = before.flat();
          const b = after.flat();
          expect(concatEnds(a, before, b, after)).to.deep.equal(scanEnds(a, b));
        },
      ),
      { seed: 12, numRuns: 2000 },
    );
  });

  it('reads only the items of the part that changed among many', () => {
    const parts = Array.from({ length: 100 }, () => Object.freeze(items(1000)));
    const next = [...parts];
    next[37] = Object.freeze([...parts[37]!.slice(0, 500), { i: -1 }, ...parts[37]!.slice(501)]);
    const a = counted(parts.flat());
    const b = counted(next.flat());
    expect(concatEnds(a.proxy, parts, b.proxy, next)).to.deep.equal({ head: 37_500, tail: 62_499 });
    expect(a.reads() + b.reads()).to.be.at.most(2 * 1000 + 4);
  });
});
