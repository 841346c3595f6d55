import { expect } from 'chai';
import fc from 'fast-check';
import { IncrementalLoader } from '../../lib/config/incremental.js';
import { deepFreeze } from '../../lib/config/parse.js';
import type { Config } from '../../lib/config/schema.js';
import { applyConfigDelta, configDelta } from '../../lib/reload/config-delta.js';
import { ConfigDeltaSchema } from '../../lib/reload/parse-protocol.js';

/** Sections of `config` (listeners, routes, upstreams) that are objects of `base`. */
function shared(config: Config, base: Config): string[] {
  const objects = new Set<unknown>([...base.listeners, ...base.listeners.flatMap((l) => l.routes), ...Object.values(base.upstreams)]);
  return [
    ...config.listeners.flatMap((listener, i) => [
      ...(objects.has(listener) ? [`listeners.${i}`] : []),
      ...listener.routes.flatMap((route, j) => (objects.has(route) ? [`listeners.${i}.routes.${j}`] : [])),
    ]),
    ...Object.entries(config.upstreams).flatMap(([name, upstream]) => (objects.has(upstream) ? [`upstreams.${name}`] : [])),
  ];
}

/** `config` as the other thread has it: a structured clone, deeply frozen. */
const across = <T>(value: T): T => deepFreeze(structuredClone(value));

describe('reload: a config sent as its differences from the last one', () => {
  const route = fc.oneof(
    fc.record({ path_prefix: fc.constantFrom('/a', '/b', '/c'), respond: fc.record({ status: fc.constantFrom(200, 404) }) }),
    fc.record({ path_prefix: fc.constantFrom('/a', '/d'), upstream: fc.constantFrom('x', 'y') }),
  );
  const listener = (name: string, port: number) =>
    fc.record({ name: fc.constant(name), listen: fc.constant(`127.0.0.1:${port}`), routes: fc.array(route, { maxLength: 6 }) });
  const upstream = fc.record({ targets: fc.constantFrom(['http://127.0.0.1:1'], ['http://127.0.0.1:2']) });
  const config = fc.record({
    shutdown_timeout_ms: fc.constantFrom(100, 200),
    upstreams: fc.record({ x: upstream, y: upstream, z: upstream }, { requiredKeys: ['x', 'y'], noNullPrototype: true }),
    listeners: fc.shuffledSubarray([listener('a', 8080), listener('b', 8081), listener('c', 8082)], { minLength: 1 }).chain((ls) => fc.tuple(...ls)),
  });

  it('rebuilds on the other side the same config, sharing the same sections with its base', () => {
    fc.assert(
      fc.property(config, config, (first, second) => {
        const loader = new IncrementalLoader();
        const base = loader.load(JSON.stringify(first)).config;
        // Half of the next document is the first's, shifted: what moved is still shared.
        const mixed = {
          ...second,
          listeners: [...second.listeners, ...first.listeners.slice(1)].filter((l, i, all) => all.findIndex((m) => m.name === l.name) === i),
        };
        const next = loader.load(JSON.stringify(mixed)).config;
        const other = across(base);
        const delta = ConfigDeltaSchema.parse(structuredClone(configDelta(base, next, 7)));
        const rebuilt = applyConfigDelta(other, delta);
        expect(rebuilt).to.deep.equal(next);
        expect(shared(rebuilt, other)).to.deep.equal(shared(next, base));
        expect(Object.isFrozen(rebuilt.listeners) && rebuilt.listeners.every((l) => Object.isFrozen(l) && l.routes.every(Object.isFrozen))).to.equal(true);
        if (next === base) expect(rebuilt).to.equal(other);
      }),
      { numRuns: 200 },
    );
  });

  it('sends only what changed: one route of 1,000 is one route and two runs', () => {
    const routes = (changed: number) =>
      Array.from({ length: 1000 }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? 'new' : 'old' } }));
    const doc = (changed: number) => JSON.stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: routes(changed) }] });
    const loader = new IncrementalLoader();
    const base = loader.load(doc(-1)).config;
    const delta = configDelta(base, loader.load(doc(500)).config, 1);
    expect(delta.listeners).to.have.length(1);
    const sent = (delta.listeners[0] as { routes: unknown[] }).routes;
    expect(sent).to.have.length(3);
    expect(sent[0]).to.deep.equal([0, 0, 500]);
    expect(sent[1]).to.deep.include({ path_prefix: '/r500' });
    expect(sent[2]).to.deep.equal([0, 501, 499]);
    expect(delta.upstreams).to.equal('base');
  });

  it('refuses a delta naming what its base does not have', () => {
    const loader = new IncrementalLoader();
    const base = loader.load(
      JSON.stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: [{ path_prefix: '/', respond: { status: 200 } }] }] }),
    ).config;
    const keys = Object.keys(base);
    expect(() => applyConfigDelta(base, { base: 1, keys, changed: {}, upstreams: 'base', listeners: [{ base: 1 }] })).to.throw(/base listener 1/);
    expect(() => applyConfigDelta(base, { base: 1, keys, changed: {}, upstreams: 'base', listeners: [{ listener: {}, routes: [[0, 0, 2]] }] })).to.throw(
      /routes 0-1 of base listener 0, which has 1/,
    );
    expect(() => applyConfigDelta(base, { base: 1, keys, changed: {}, upstreams: { names: ['u'], from: {}, changed: {} }, listeners: [] })).to.throw(
      /upstream u/,
    );
  });
});
