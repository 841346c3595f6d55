import { expect } from 'chai';
import fc from 'fast-check';
import sinon from 'sinon';
import { validateConfig } from '../../lib/config/parse.js';
import type { RouteConfig } from '../../lib/config/schema.js';
import { noteEnds, scanEnds } from '../../lib/core/identity.js';
import type { RouteAction } from '../../lib/dataplane/ports.js';
import { LinearRouter } from '../../lib/dataplane/route/linear.js';
import { compileRespond } from '../../lib/dataplane/route/respond.js';
import { type ActionCompiler, type CompiledTable, compileReusing, compileRoutes, Router } from '../../lib/dataplane/route/router.js';
import { SegmentTrie } from '../../lib/dataplane/route/segment-trie.js';

/** The routes of a valid one-listener config, each answering `body`. */
function routeSections(routes: readonly { path_prefix: string; host?: string; body: string }[]): readonly RouteConfig[] {
  const config = validateConfig({
    listeners: [
      {
        name: 'web',
        listen: '127.0.0.1:8080',
        routes: routes.map(({ body, ...route }) => ({ ...route, respond: { status: 200, body } })),
      },
    ],
  });
  return config.listeners[0]!.routes;
}

/** `compileRespond` through a spy that counts the compiles. */
function counting(): sinon.SinonSpy<[RouteConfig, number], RouteAction> {
  return sinon.spy((route: RouteConfig, index: number): RouteAction => compileRespond(route, index));
}

function table(sections: readonly RouteConfig[], compile: ActionCompiler = counting()): CompiledTable {
  return { sections, router: Router.fromConfig(sections, compile) };
}

const always = () => true;

describe('compileReusing', () => {
  const many = (n: number, changed?: number) =>
    routeSections(Array.from({ length: n }, (_, i) => ({ path_prefix: `/r${i}`, body: i === changed ? 'changed' : `route ${i}` })));

  it('compiles one route of 10,000 when one route changed, and shares the index', () => {
    const before = table(many(10_000));
    const compile = counting();
    const after = compileReusing(many(10_000, 9_999), compile, before, always);
    expect(compile.callCount).to.equal(1);
    expect(compile.firstCall.args[1]).to.equal(9_999);
    expect(after).to.not.equal(before.router);
    expect(after.sharesIndexWith(before.router)).to.equal(true);
    expect(after.routes.filter((route, i) => route !== before.router.routes[i]).map((route) => route.index)).to.deep.equal([9_999]);
    expect(after.match('GET', undefined, '/r9999')?.action).to.equal(after.routes[9_999]!.action);
  });

  it('keeps the routes whose sections are the same objects without testing their actions when the caller vouches for all, and compiles the one changed', () => {
    const sections = many(10_000);
    const before = table(sections);
    const changed = [...sections];
    changed[5_000] = many(10_000, 5_000)[5_000]!;
    const compile = counting();
    const vouch = sinon.spy(always);
    const after = compileReusing(changed, compile, before, 'all');
    expect(compile.args.map(([, index]) => index)).to.deep.equal([5_000]);
    expect(after.sharesIndexWith(before.router)).to.equal(true);
    expect(after.routes.filter((route, i) => route !== before.router.routes[i]).map((route) => route.index)).to.deep.equal([5_000]);
    // The same edit with a test per action: every kept route is tested, none recompiled.
    compileReusing(changed, counting(), before, vouch);
    expect(vouch.callCount).to.equal(9_999);
  });

  it('keeps the trailing routes shifted by an insertion with their new index, and compiles only the route inserted', () => {
    const sections = many(1000);
    const before = table(sections);
    const added = routeSections([{ path_prefix: '/new', body: 'new' }])[0]!;
    const compile = counting();
    const after = compileReusing([...sections.slice(0, 500), added, ...sections.slice(500)], compile, before, 'all');
    expect(compile.args.map(([, index]) => index)).to.deep.equal([500]);
    expect(after.routes[501]!.action).to.equal(before.router.routes[500]!.action);
    expect(after.routes.map((route) => route.index)).to.deep.equal(Array.from({ length: 1001 }, (_, i) => i));
    expect(after.match('GET', undefined, '/r999')?.index).to.equal(1000);
    expect(after.match('GET', undefined, '/new')?.index).to.equal(500);
  });

  it('reads and compiles only the changed or added route of 10,000 when the producer of the new routes noted what they share with the old', () => {
    const sections = many(10_000);
    const changed = Object.freeze([...sections.slice(0, 5_000), many(10_000, 5_000)[5_000]!, ...sections.slice(5_001)]);
    // A route added: it equals no section at its place nor as far back as it shifts the others.
    const grown = Object.freeze([...sections.slice(0, 5_000), routeSections([{ path_prefix: '/new', body: 'new' }])[0]!, ...sections.slice(5_000)]);
    let reads = 0;
    const readCounted = (target: readonly RouteConfig[]): readonly RouteConfig[] =>
      new Proxy(target, {
        get(array, key, receiver) {
          if (typeof key === 'string' && /^\d+$/.test(key)) reads += 1;
          return Reflect.get(array, key, receiver);
        },
      });
    const [old, next] = [readCounted(sections), readCounted(changed)];
    noteEnds(old, next, scanEnds(sections, changed));
    const before = table(sections);
    for (const reusable of ['all', always] as const) {
      reads = 0;
      const compile = counting();
      const after = compileReusing(next, compile, { ...before, sections: old }, reusable);
      expect(compile.callCount, String(reusable)).to.equal(1);
      expect(reads, `route sections read (${String(reusable)})`).to.be.at.most(4);
      expect(after.routes[5_001]).to.equal(before.router.routes[5_001]);
      expect(after.sharesIndexWith(before.router)).to.equal(true);
    }
    const bigger = readCounted(grown);
    noteEnds(old, bigger, scanEnds(sections, grown));
    reads = 0;
    const compile = counting();
    const after = compileReusing(bigger, compile, { ...before, sections: old }, 'all');
    expect(compile.callCount).to.equal(1);
    expect(reads, 'route sections read for an added route').to.be.at.most(4);
    expect(after.match('GET', undefined, '/new')?.index).to.equal(5_000);
    expect(after.match('GET', undefined, '/r5000')?.index).to.equal(5_001);
  });

  it('returns the previous table itself when no route changed, compiling nothing', () => {
    const before = table(many(1000));
    const compile = counting();
    expect(compileReusing(many(1000), compile, before, always)).to.equal(before.router);
    expect(compile.callCount).to.equal(0);
  });

  it('compiles only the route added at the top, keeping the shifted ones with their new index and the index, patched with the one added', () => {
    const sections = many(1000);
    const before = table(sections);
    const added = routeSections([{ path_prefix: '/new', body: 'new' }])[0]!;
    const compile = counting();
    const after = compileReusing([added, ...sections], compile, before, always);
    expect(compile.callCount).to.equal(1);
    expect(after.sharesIndexWith(before.router)).to.equal(true);
    expect(after.match('GET', undefined, '/new')?.index).to.equal(0);
    expect(after.routes[1]!.action).to.equal(before.router.routes[0]!.action);
    expect(after.routes[1]!.index).to.equal(1);
    expect(after.match('GET', undefined, '/r0')?.index).to.equal(1);
  });

  it('compiles again every route whose compiled action the caller does not vouch for', () => {
    const before = table(many(100));
    const compile = counting();
    const refused = new Set([before.router.routes[3]!.action, before.router.routes[50]!.action]);
    const after = compileReusing(many(100), compile, before, (action) => !refused.has(action));
    expect(compile.args.map(([, index]) => index)).to.deep.equal([3, 50]);
    expect(after.routes[3]!.action).to.not.equal(before.router.routes[3]!.action);
    expect(after.sharesIndexWith(before.router)).to.equal(true);
  });

  const SEGMENTS = ['a', 'b', 'ab', ''];
  const HOSTS = [undefined, 'a.test', '*.test'];
  const routeArb = fc.record({
    path_prefix: fc.array(fc.constantFrom(...SEGMENTS), { maxLength: 3 }).map((s) => `/${s.join('/')}`),
    host: fc.constantFrom(...HOSTS),
    body: fc.constantFrom('x', 'y'),
  });
  const clean = (r: { path_prefix: string; host: string | undefined; body: string }) =>
    r.host === undefined ? { path_prefix: r.path_prefix, body: r.body } : r;

  type Edit = readonly ['insert' | 'remove' | 'change', number, { path_prefix: string; host: string | undefined; body: string }];
  /** `sections` with `edits` applied: the sections an edit keeps stay the very objects (as an unchanged fragment's do), edited ones are new. */
  const edited = (sections: readonly RouteConfig[], edits: readonly Edit[]): RouteConfig[] => {
    const next = [...sections];
    for (const [edit, at, route] of edits) {
      const i = next.length === 0 ? 0 : at % next.length;
      const section = routeSections([clean(route)])[0]!;
      if (edit === 'insert') next.splice(i, 0, section);
      else if (edit === 'remove') next.splice(i, 1);
      else if (next.length > 0) next[i] = section;
    }
    return next;
  };

  it('matches exactly as a table compiled from scratch, after any edit of random routes, and keeps an action only for an equal section', () => {
    fc.assert(
      fc.property(
        fc.array(routeArb, { maxLength: 16 }),
        fc.array(fc.tuple(fc.constantFrom('insert', 'remove', 'change'), fc.nat(), routeArb), { maxLength: 4 }),
        fc.array(fc.tuple(fc.constantFrom('GET', 'POST'), fc.constantFrom(undefined, 'a.test', 'x.test'), fc.constantFrom('/', '/a', '/a/b', '/ab', '/b/a')), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.boolean(),
        (initial, edits, requests, vouchAll) => {
          const first = routeSections(initial.map(clean));
          const before = table(first);
          const sections = edited(first, edits);
          const reused = compileReusing(sections, counting(), before, vouchAll ? 'all' : always);
          const fresh = new LinearRouter(compileRoutes(sections));
          reused.routes.forEach((route, index) => {
            expect(route.index).to.equal(index);
            const from = before.router.routes.findIndex((old) => old.action === route.action);
            if (from >= 0) expect(before.sections[from]).to.deep.equal(sections[index]);
          });
          for (const [method, host, path] of requests) {
            const label = `${method} ${String(host)} ${path}`;
            expect(reused.match(method, host, path)?.index, label).to.equal(fresh.match(method, host, path)?.index);
            expect(reused.allowedMethods(host, path), label).to.equal(fresh.allowedMethods(host, path));
          }
        },
      ),
      { seed: 12, numRuns: 1000 },
    );
  });

  const REQUESTS = ['GET', 'POST'].flatMap((method) =>
    [undefined, 'a.test', 'x.test'].flatMap((host) => ['/', '/a', '/a/b', '/ab', '/b/a'].map((path) => [method, host, path] as const)),
  );

  it('matches exactly as a table compiled from scratch after any series of edits, each table compiled from the last (patched indexes on patched ones)', () => {
    fc.assert(
      fc.property(
        fc.array(routeArb, { minLength: 8, maxLength: 48 }),
        fc.array(fc.array(fc.tuple(fc.constantFrom('change', 'change', 'change', 'insert', 'remove'), fc.nat(), routeArb), { minLength: 1, maxLength: 3 }), {
          minLength: 1,
          maxLength: 6,
        }),
        (initial, steps) => {
          let sections = routeSections(initial.map(clean));
          let last = table(sections);
          for (const edits of steps) {
            sections = edited(sections, edits);
            last = { sections, router: compileReusing(sections, counting(), last, 'all') };
            const fresh = new LinearRouter(compileRoutes(sections));
            for (const [method, host, path] of REQUESTS) {
              const label = `${method} ${String(host)} ${path}`;
              expect(last.router.match(method, host, path)?.index, label).to.equal(fresh.match(method, host, path)?.index);
              expect(last.router.allowedMethods(host, path), label).to.equal(fresh.allowedMethods(host, path));
            }
          }
        },
      ),
      { seed: 12, numRuns: 500 },
    );
  });

  it('indexes again only the routes whose path prefix or host changed, and all of them once the changes span more than an eighth', () => {
    const add = sinon.spy(SegmentTrie.prototype, 'add');
    try {
      const sections = many(10_000);
      const before = table(sections);
      const moved = (at: number[]) => {
        const next = [...sections];
        for (const i of at) next[i] = routeSections([{ path_prefix: `/moved${i}`, body: `route ${i}` }])[0]!;
        return next;
      };
      add.resetHistory();
      const one = compileReusing(moved([9_000]), counting(), before, 'all');
      expect(add.callCount).to.equal(1);
      expect(one.sharesIndexWith(before.router)).to.equal(true);
      expect(one.match('GET', undefined, '/moved9000')?.index).to.equal(9_000);
      expect(one.match('GET', undefined, '/r9000')).to.equal(undefined);
      // The next edit from the patched table: the patch spans both edits (ranks 8,000 to 9,000).
      add.resetHistory();
      const two = compileReusing(moved([8_000, 9_000]), counting(), { sections: moved([9_000]), router: one }, 'all');
      expect(add.callCount).to.equal(1001);
      expect(two.sharesIndexWith(before.router)).to.equal(true);
      expect(two.match('GET', undefined, '/moved8000')?.index).to.equal(8_000);
      expect(two.match('GET', undefined, '/r8500')?.index).to.equal(8_500);
      // Routes added and removed: the shared index's ranks after the patch stand for ranks further on.
      add.resetHistory();
      const added = [
        ...moved([9_000]).slice(0, 9_500),
        ...routeSections([
          { path_prefix: '/a', body: 'a' },
          { path_prefix: '/b', body: 'b' },
        ]),
        ...sections.slice(9_500),
      ];
      const grown = compileReusing(added, counting(), { sections: moved([9_000]), router: one }, 'all');
      expect(add.callCount, 'the patch: ranks 9,000 to 9,502').to.equal(502);
      expect(grown.sharesIndexWith(before.router)).to.equal(true);
      expect(grown.match('GET', undefined, '/b')?.index).to.equal(9_501);
      expect(grown.match('GET', undefined, '/r9999')?.index).to.equal(10_001);
      expect(grown.match('GET', undefined, '/r8999')?.index).to.equal(8_999);
      add.resetHistory();
      const shrunk = compileReusing(added.toSpliced(9_700, 1), counting(), { sections: added, router: grown }, 'all');
      expect(add.callCount, 'the patch: ranks 9,000 to 9,700').to.equal(700);
      expect(shrunk.match('GET', undefined, '/r9999')?.index).to.equal(10_000);
      expect(shrunk.match('GET', undefined, '/r9698')).to.equal(undefined);
      // Past an eighth of the table (1,250 routes), the index is built again, whole.
      add.resetHistory();
      const far = compileReusing(moved([0, 9_000]), counting(), { sections: moved([9_000]), router: one }, 'all');
      expect(add.callCount).to.equal(10_000);
      expect(far.sharesIndexWith(before.router)).to.equal(false);
      expect(far.match('GET', undefined, '/moved0')?.index).to.equal(0);
    } finally {
      add.restore();
    }
  });
});
