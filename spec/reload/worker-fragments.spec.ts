import { expect } from 'chai';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { loadFragment } from '../../lib/config/fragments.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { FragmentBases, type FragmentParse } from '../../lib/reload/parser.js';
import { KEPT_FRAGMENTS, WorkerFragments } from '../../lib/reload/worker-fragments.js';
import { applyEdit, editOf, fragment, fragmentEntry } from '../config/arbitraries.js';

/** A fragment adding `routes` routes to listener `web`; route `changed` says `body`. */
function routesFragment(routes: number, changed = -1, body = 'changed'): string {
  const list = Array.from({ length: routes }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? body : `r${i}` } }));
  return stringify({ listeners: [{ name: 'web', routes: list }] });
}

/** `loadFragment`'s outcome as `FragmentBases` gives it. */
function expected(text: string, origin: string): FragmentParse {
  try {
    return { ok: true, loaded: loadFragment(text, { origin }) };
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    return { ok: false, issues: error.issues };
  }
}

describe('reload: the parser worker’s fragments', () => {
  it('gives loadFragment’s outcome for every version of random edit chains of several fragments, told whole or as deltas', () => {
    let deltas = 0;
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fragment), { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), editOf(fragmentEntry)), { minLength: 4, maxLength: 16 }),
        (initial, edits) => {
          // Two kept of three names: fragments are dropped and taken up again.
          const worker = new WorkerFragments(2);
          const receiver = new FragmentBases();
          const data = new Map<string, Record<string, unknown>>(initial);
          let id = 0;
          const send = (names: readonly string[]) => {
            id += 1;
            const fragments = names.map((name) => ({ name, text: stringify(data.get(name), { aliasDuplicateObjects: false }) }));
            const outcomes = worker.answer({ id, fragments });
            deltas += outcomes.filter((result) => 'delta' in result).length;
            const got = receiver.take(id, names, outcomes);
            expect(got).to.deep.equal(fragments.map(({ name, text }) => expected(text, name)));
            expect(worker.kept).to.be.at.most(2);
          };
          send([...data.keys()]);
          for (const [name, edit] of edits) {
            data.set(name, applyEdit(data.get(name) ?? {}, edit));
            send([name]);
          }
        },
      ),
      { numRuns: 200 },
    );
    expect(deltas, 'fragments told as their differences').to.be.greaterThan(100);
  });

  it(`keeps incremental state for the ${KEPT_FRAGMENTS} fragments changed last, none at start-up or for an unchanged one, and drops a removed fragment's`, () => {
    const worker = new WorkerFragments();
    const names = Array.from({ length: 20 }, (_, i) => `conf.d/f${i}.yaml`);
    let id = 0;
    const answer = (fragments: { name: string; text: string }[], removed?: string[]) => worker.answer({ id: ++id, fragments, ...(removed ? { removed } : {}) });
    answer(names.map((name) => ({ name, text: routesFragment(50) })));
    expect(worker.kept, 'start-up keeps nothing').to.equal(0);
    answer(names.slice(0, 10).map((name) => ({ name, text: routesFragment(50) })));
    expect(worker.kept, 'a fragment sent again unchanged (to resolve its references again) takes no place').to.equal(0);
    for (const [i, name] of names.entries()) {
      const [first] = answer([{ name, text: routesFragment(50, i, 'one') }]);
      expect(first, 'the first change of a fragment is sent whole').to.have.property('config');
      expect(worker.kept).to.equal(Math.min(i + 1, KEPT_FRAGMENTS));
    }
    const [last] = answer([{ name: names[19]!, text: routesFragment(50, 19, 'two') }]);
    expect(last, 'a kept fragment is sent as its differences').to.have.property('delta');
    const [dropped] = answer([{ name: names[0]!, text: routesFragment(50, 0, 'two') }]);
    expect(dropped, 'the least recently changed was dropped: sent whole').to.have.property('config');
    expect(worker.kept).to.equal(KEPT_FRAGMENTS);
    answer([], [names[19]!, names[0]!]);
    expect(worker.kept).to.equal(KEPT_FRAGMENTS - 2);
    const [again] = answer([{ name: names[19]!, text: routesFragment(50) }]);
    expect(again, 'a fragment added again is new').to.have.property('config');
    expect(worker.kept, 'and not kept until it changes').to.equal(KEPT_FRAGMENTS - 2);
  });
});
