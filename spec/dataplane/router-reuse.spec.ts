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

  it('reads and compiles only the changed route of 10,000 when the producer of the new routes noted what they share with the old', () => {
    const sections = many(10_000);
    const changed = Object.freeze([...sections.slice(0, 5_000), many(10_000, 5_000)[5_000]!, ...sections.slice(5_001)]);
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
  });

  it('returns the previous table itself when no route changed, compiling nothing', () => {
    const before = table(many(1000));
    const compile = counting();
    expect(compileReusing(many(1000), compile, before, always)).to.equal(before.router);
    expect(compile.callCount).to.equal(0);
  });

  it('compiles only the route added at the top, keeping the shifted ones with their new index', () => {
    const sections = many(1000);
    const before = table(sections);
    const added = routeSections([{ path_prefix: '/new', body: 'new' }])[0]!;
    const compile = counting();
    const after = compileReusing([added, ...sections], compile, before, always);
    expect(compile.callCount).to.equal(1);
    expect(after.sharesIndexWith(before.router)).to.equal(false);
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
          // Sections kept by an edit stay the very objects (as an unchanged fragment's do); edited ones are new.
          const first = routeSections(initial.map(clean));
          const next = [...first];
          for (const [edit, at, route] of edits) {
            const i = next.length === 0 ? 0 : at % next.length;
            const section = routeSections([clean(route)])[0]!;
            if (edit === 'insert') next.splice(i, 0, section);
            else if (edit === 'remove') next.splice(i, 1);
            else if (next.length > 0) next[i] = section;
          }
          const before = table(first);
          const sections = next;
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
});
