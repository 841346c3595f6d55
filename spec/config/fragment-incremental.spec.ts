import { expect } from 'chai';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { FRAGMENT_DOCUMENT, type FragmentConfig, loadFragment } from '../../lib/config/fragments.js';
import { IncrementalLoader } from '../../lib/config/incremental.js';
import { SpliceParser } from '../../lib/config/splice.js';
import { applyEdit, editOf, fragment, fragmentEntry, outcome } from './arbitraries.js';

/** A fragment of `routes` routes added to listener `web`, and `routes / 10` upstreams; route `changed` says `body`. */
function routesFragment(routes: number, changed = -1, body = 'changed'): string {
  const upstreams = Object.fromEntries(Array.from({ length: routes / 10 }, (_, u) => [`u${u}`, { targets: ['http://127.0.0.1:1'] }]));
  const list = Array.from({ length: routes }, (_, i) =>
    i % 2 === 1
      ? { path_prefix: `/r${i}`, upstream: `u${Math.floor(i / 10)}` }
      : { path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? body : `r${i}` } },
  );
  return stringify({ upstreams, listeners: [{ name: 'web', routes: list }] });
}

/** Loads the versions of one fragment as the parser's worker does: read by a `SpliceParser`, loaded by an `IncrementalLoader` of fragments. */
function fragmentLoader(): { load(text: string): ReturnType<typeof loadFragment>; loader: IncrementalLoader<FragmentConfig>; parser: SpliceParser } {
  const loader = new IncrementalLoader(FRAGMENT_DOCUMENT);
  const parser = new SpliceParser();
  const options = { origin: 'conf.d/web.yaml' };
  return { loader, parser, load: (text) => loader.loadParsed(parser.parse(text, options), options) };
}

describe('config: incremental loading of the versions of one fragment', () => {
  it('reads and validates only the route that changed in a 1,000-route fragment, and gives what loadFragment gives', () => {
    const { load, loader, parser } = fragmentLoader();
    const first = load(routesFragment(1000));
    const text = routesFragment(1000, 500);
    const second = load(text);
    expect(parser.counts.spliced, 'the route read alone').to.equal(1);
    expect(loader.counts).to.deep.equal({ routes: 1, upstreams: 0, rest: 0, full: 0 });
    expect(second).to.deep.equal(loadFragment(text, { origin: 'conf.d/web.yaml' }));
    const [before, after] = [first.config.listeners![0]!.routes, second.config.listeners![0]!.routes];
    expect(after.filter((route, i) => route !== before[i]).map((route) => route.path_prefix)).to.deep.equal(['/r500']);
    expect(second.config.upstreams, 'unchanged upstreams are the same object').to.equal(first.config.upstreams);
    expect(Object.isFrozen(second.config.listeners) && Object.isFrozen(after[500]!.respond)).to.equal(true);
  });

  it('refuses a routes-only entry left without routes, and a name given twice, with loadFragment’s errors', () => {
    const { load } = fragmentLoader();
    const entry = (routes: unknown[]) => ({ name: 'web', routes });
    load(stringify({ listeners: [entry([{ path_prefix: '/', respond: { status: 200 } }])] }));
    for (const data of [
      { listeners: [entry([])] },
      { listeners: [{ name: 'web' }] },
      { listeners: [entry([{ path_prefix: '/', respond: { status: 200 } }]), { name: 'web', listen: '127.0.0.1:1' }] },
    ]) {
      const text = stringify(data);
      expect(outcome(() => load(text))).to.deep.equal(outcome(() => loadFragment(text, { origin: 'conf.d/web.yaml' })));
    }
  });

  it('gives the same fragment, hash and errors as loadFragment for every version of random edit chains', () => {
    let incremental = 0;
    fc.assert(
      fc.property(fragment, fc.array(editOf(fragmentEntry), { minLength: 1, maxLength: 6 }), (base, edits) => {
        const { load, loader } = fragmentLoader();
        let data: Record<string, unknown> = base;
        for (const step of [undefined, ...edits]) {
          if (step) data = applyEdit(data, step);
          const text = stringify(data, { aliasDuplicateObjects: false });
          const got = outcome(() => load(text));
          const want = outcome(() => loadFragment(text, { origin: 'conf.d/web.yaml' }));
          expect(got).to.deep.equal(want);
          // Key order too: the fragment is written (JSON, YAML) as validateFragment ordered it.
          expect(JSON.stringify(got)).to.equal(JSON.stringify(want));
          if (loader.counts.full === 0 && 'ok' in (got as object)) incremental += 1;
        }
      }),
      { numRuns: 300 },
    );
    expect(incremental, 'fragments validated section by section').to.be.greaterThan(100);
  });
});
