import { expect } from 'chai';
import fc from 'fast-check';
import { validateConfig } from '../../lib/config/parse.js';
import { HTTP_METHODS } from '../../lib/config/schema.js';
import { LinearRouter } from '../../lib/dataplane/route/linear.js';
import { compileRoutes, Router } from '../../lib/dataplane/route/router.js';

/** Few segments, so that random prefixes and paths overlap; some change under normalisation. */
const SEGMENTS = ['a', 'b', 'ab', '', '.', '..', 'a;v=1', '%61'];
const ROUTE_HOSTS = ['a.test', 'B.test', 'x.a.test', '*.a.test', '*.test', '*.x.a.test'];
const REQUEST_HOSTS = [undefined, '', 'a.test', 'b.test', 'x.a.test', 'y.x.a.test', 'test', '.a.test', 'a.test.evil', 'xa.test', 'x.b.test'];
const REQUEST_METHODS = [...HTTP_METHODS, 'PURGE', 'get'];

const segmentsArb = fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 4 });
/** `/` + segments, with or without a trailing `/`. */
const prefixArb = fc.tuple(segmentsArb, fc.boolean()).map(([segments, slash]) => `/${segments.join('/')}${slash ? '/' : ''}`);

const routeArb = fc.record(
  {
    path_prefix: prefixArb,
    host: fc.constantFrom(...ROUTE_HOSTS),
    methods: fc.uniqueArray(fc.constantFrom(...HTTP_METHODS), { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: ['path_prefix'] },
);

/** Paths as the router gets them, and raw ones (no leading `/`, empty and dot segments) it must still agree on. */
const pathArb = fc.oneof(
  prefixArb,
  fc.tuple(segmentsArb, fc.boolean()).map(([segments, slash]) => `${segments.join('/')}${slash ? '/' : ''}`),
);
const requestArb = fc.record({
  method: fc.constantFrom(...REQUEST_METHODS),
  host: fc.constantFrom(...REQUEST_HOSTS),
  path: pathArb,
});

/** Both routers over the same compiled routes of a valid config. */
function routers(routes: readonly Record<string, unknown>[]): { tree: Router; linear: LinearRouter } {
  const config = validateConfig({
    listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: routes.map((route) => ({ ...route, respond: { status: 200 } })) }],
  });
  const compiled = compileRoutes(config.listeners[0]!.routes);
  return { tree: new Router(compiled), linear: new LinearRouter(compiled) };
}

describe('Router (tree) against LinearRouter', () => {
  it('picks the same route and names the same allowed methods for random route sets and requests', () => {
    fc.assert(
      fc.property(fc.array(routeArb, { maxLength: 24 }), fc.array(requestArb, { minLength: 1, maxLength: 16 }), (routes, requests) => {
        const { tree, linear } = routers(routes);
        for (const { method, host, path } of requests) {
          const label = `${method} ${String(host)} ${JSON.stringify(path)}`;
          expect(tree.match(method, host, path)?.index, label).to.equal(linear.match(method, host, path)?.index);
          expect(tree.allowedMethods(host, path), label).to.equal(linear.allowedMethods(host, path));
        }
      }),
      { seed: 12, numRuns: 2000 },
    );
  });

  it('finds a route whatever its position among 10,000 (the first match in config order still wins)', () => {
    const routes = Array.from({ length: 10_000 }, (_, i) => ({ path_prefix: `/t${i}`, ...(i % 2 === 0 ? { host: `h${i}.test` } : {}) }));
    routes.push({ path_prefix: '/t9999' }, { path_prefix: '/' });
    const { tree, linear } = routers(routes);
    for (const [host, path] of [
      [undefined, '/t9999/x'],
      ['h9998.test', '/t9998'],
      [undefined, '/t9998'],
      ['h0.test', '/t0'],
      ['h2.test', '/t0'],
    ] as const) {
      expect(tree.match('GET', host, path)?.index, `${host} ${path}`).to.equal(linear.match('GET', host, path)?.index);
    }
    expect(tree.match('GET', undefined, '/t9999/x')?.index).to.equal(9999);
    expect(tree.match('GET', undefined, '/t9998')?.index).to.equal(10_001);
  });
});
