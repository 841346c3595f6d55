// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the references spec writes `${env:NAME}` strings
import { expect } from 'chai';
import fc from 'fast-check';
import { ConfigHasher, canonicalHash } from '../../lib/config/hash.js';
import { IncrementalLoader } from '../../lib/config/incremental.js';
import { loadConfig, type ParseOptions } from '../../lib/config/parse.js';
import { PROCESS_READER, type ReferenceReader } from '../../lib/config/references.js';
import { applyEdit, editOf, listener, listenerOf, orBad, outcome, topFields, upstreams } from './arbitraries.js';

/** `routes` routes on one listener, every other one proxying to one of `routes / 10` upstreams; route `changed` says `changed`. */
function routesConfig(routes: number, changed = -1): Record<string, unknown> {
  const upstreams = Object.fromEntries(Array.from({ length: Math.ceil(routes / 10) }, (_, u) => [`u${u}`, { targets: ['http://127.0.0.1:1'] }]));
  const list = Array.from({ length: routes }, (_, i) =>
    i % 2 === 1
      ? { path_prefix: `/r${i}`, upstream: `u${Math.floor(i / 10)}` }
      : { path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? 'changed' : `route ${i}` } },
  );
  return { upstreams, listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: list }] };
}

describe('config: incremental loading of one document after another', () => {
  it('validates only the route that changed in a 200-route document, and gives what loadConfig gives', () => {
    const loader = new IncrementalLoader();
    const first = loader.load(JSON.stringify(routesConfig(200)));
    expect(loader.counts).to.deep.equal({ routes: 0, upstreams: 0, rest: 0, full: 1 });
    const text = JSON.stringify(routesConfig(200, 42));
    const second = loader.load(text);
    expect(loader.counts).to.deep.equal({ routes: 1, upstreams: 0, rest: 0, full: 0 });
    expect(second).to.deep.equal(loadConfig(text));
    const [before, after] = [first.config.listeners[0]!.routes, second.config.listeners[0]!.routes];
    expect(after.filter((route, i) => route !== before[i]).map((route) => route.path_prefix)).to.deep.equal(['/r42']);
    expect(second.config.upstreams, 'unchanged upstreams are the same object').to.equal(first.config.upstreams);
    expect(Object.isFrozen(after) && Object.isFrozen(after[42]!.respond) && Object.isFrozen(second.config)).to.equal(true);
  });

  it('keeps every route validated when one is inserted first (routes are recognised by content, not position)', () => {
    const loader = new IncrementalLoader();
    const config = routesConfig(100);
    loader.load(JSON.stringify(config));
    const listener = (config.listeners as { routes: unknown[] }[])[0]!;
    listener.routes.unshift({ path_prefix: '/new', respond: { status: 204 } });
    const text = JSON.stringify(config);
    expect(loader.load(text)).to.deep.equal(loadConfig(text));
    expect(loader.counts).to.deep.equal({ routes: 1, upstreams: 0, rest: 0, full: 0 });
  });

  it('validates no route when one is removed, and finds routes that moved far by their content', () => {
    const loader = new IncrementalLoader();
    const config = routesConfig(100);
    const before = loader.load(JSON.stringify(config)).config.listeners[0]!.routes;
    const listener = (config.listeners as { routes: unknown[] }[])[0]!;
    listener.routes.splice(50, 1);
    const removed = JSON.stringify(config);
    expect(loader.load(removed)).to.deep.equal(loadConfig(removed));
    expect(loader.counts.routes).to.equal(0);
    listener.routes.reverse();
    const reversed = JSON.stringify(config);
    const loaded = loader.load(reversed);
    expect(loaded).to.deep.equal(loadConfig(reversed));
    expect(loader.counts.routes, 'the routes validated before the search by content starts').to.equal(16);
    expect(loaded.config.listeners[0]!.routes.filter((route) => before.includes(route))).to.have.length(99 - 16);
  });

  it('gives one object per occurrence of a repeated route, as a full validation does', () => {
    const loader = new IncrementalLoader();
    const route = { path_prefix: '/', respond: { status: 200 } };
    const doc = (routes: unknown[]) => JSON.stringify({ listeners: [{ name: 'a', listen: '127.0.0.1:1', routes }] });
    loader.load(doc([route, { path_prefix: '/x', respond: { status: 200 } }]));
    const { config } = loader.load(doc([route, route, route]));
    expect(loader.counts.routes, 'two copies are new').to.equal(2);
    expect(new Set(config.listeners[0]!.routes).size).to.equal(3);
  });

  it('validates a changed upstream and the rest, and refuses a route left naming a removed upstream with loadConfig’s error', () => {
    const loader = new IncrementalLoader();
    const config = routesConfig(20) as { upstreams: Record<string, unknown>; shutdown_timeout_ms?: number };
    loader.load(JSON.stringify(config));
    config.upstreams.u1 = { targets: ['http://127.0.0.1:2'] };
    config.shutdown_timeout_ms = 10;
    const changed = JSON.stringify(config);
    expect(loader.load(changed)).to.deep.equal(loadConfig(changed));
    expect(loader.counts).to.deep.equal({ routes: 0, upstreams: 1, rest: 1, full: 0 });
    delete config.upstreams.u1;
    const dangling = JSON.stringify(config);
    const error = outcome(() => loader.load(dangling, { origin: 'a.json' }));
    expect(error).to.deep.equal(outcome(() => loadConfig(dangling, { origin: 'a.json' })));
    expect(error).to.have.nested.property('issues[0].path', 'listeners.0.routes.11.upstream');
    expect(loader.counts.full, 'an invalid document is told by validateConfig').to.equal(1);
  });

  it('refuses prototype keys in a changed section as validateConfig does', () => {
    const loader = new IncrementalLoader();
    loader.load(JSON.stringify(routesConfig(4)));
    for (const text of [
      '{"upstreams":{"constructor":{"targets":["http://127.0.0.1:1"]}},"listeners":[{"name":"web","listen":"127.0.0.1:8080"}]}',
      '{"listeners":[{"name":"web","listen":"127.0.0.1:8080","routes":[{"path_prefix":"/","respond":{"status":200,"headers":{"__proto__":"x"}}}]}]}',
    ]) {
      expect(outcome(() => loader.load(text))).to.deep.equal(outcome(() => loadConfig(text)));
    }
  });

  it('resolves secret references in every document, a changed secret being a changed section', () => {
    const env: Record<string, string> = { HOTCONF_SPEC_TOKEN: 'one' };
    const reader: ReferenceReader = { env, readFile: PROCESS_READER.readFile };
    const options: ParseOptions = { origin: 'refs.json', references: reader };
    const config = routesConfig(10) as { listeners: { routes: unknown[] }[] };
    config.listeners[0]!.routes.push({ path_prefix: '/secret', respond: { status: 200, headers: { 'x-token': '${env:HOTCONF_SPEC_TOKEN}' } } });
    const text = JSON.stringify(config);
    const loader = new IncrementalLoader();
    loader.load(text, options);
    env.HOTCONF_SPEC_TOKEN = 'two';
    const second = loader.load(text, options);
    expect(second).to.deep.equal(loadConfig(text, options));
    expect(second.config.listeners[0]!.routes[10]!.respond!.headers['x-token']).to.equal('two');
    expect(loader.counts).to.deep.equal({ routes: 1, upstreams: 0, rest: 0, full: 0 });
    env.HOTCONF_SPEC_TOKEN = 'bad\nvalue';
    const refused = outcome(() => loader.load(text, options));
    expect(refused).to.deep.equal(outcome(() => loadConfig(text, options)));
    expect(JSON.stringify(refused)).not.to.contain('bad');
  });

  it('hashes as canonicalHash does, reusing what it serialised for the sections a config shares', () => {
    const hasher = new ConfigHasher();
    const loader = new IncrementalLoader();
    // Route counts across the hasher's blocks of 256 routes, growing and shrinking.
    for (const [routes, changed] of [
      [30, -1],
      [30, 3],
      [600, 8],
      [600, 300],
      [520, 300],
      [600, 300],
      [257, -1],
      [256, 255],
      [30, 3],
    ] as const) {
      const { config } = loader.load(JSON.stringify(routesConfig(routes, changed)));
      expect(hasher.hash(config)).to.equal(canonicalHash(config));
    }
  });

  describe('against loadConfig, on random edits of random configs, valid and invalid', () => {
    const config = fc.record(
      {
        listeners: fc.uniqueArray(fc.nat({ max: 3 }), { maxLength: 3 }).chain((ids) => fc.tuple(...ids.map(listenerOf))),
        upstreams: orBad(upstreams, [[], 'x']),
        ...topFields,
      },
      { requiredKeys: ['listeners'] },
    );
    const edit = editOf(listener);

    it('gives the same config, hash and errors as loadConfig for every document of a sequence', () => {
      let incremental = 0;
      fc.assert(
        fc.property(config, fc.array(edit, { minLength: 1, maxLength: 6 }), (base, edits) => {
          const loader = new IncrementalLoader();
          let data: Record<string, unknown> = base;
          for (const step of [undefined, ...edits]) {
            if (step) data = applyEdit(data, step);
            const text = JSON.stringify(data);
            const got = outcome(() => loader.load(text, { origin: 'doc.json' }));
            expect(got).to.deep.equal(outcome(() => loadConfig(text, { origin: 'doc.json' })));
            if (loader.counts.full === 0) incremental += 1;
          }
        }),
        { numRuns: 300 },
      );
      expect(incremental, 'documents validated section by section').to.be.greaterThan(100);
    });
  });
});
