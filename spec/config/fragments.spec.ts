// biome-ignore-all lint/suspicious/noTemplateCurlyInString: some specs hold `${env:NAME}` references
import { expect } from 'chai';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { type FragmentInput, FragmentMerger, type MergePlan } from '../../lib/config/fragment-merge.js';
import { type FragmentConfig, loadFragment } from '../../lib/config/fragments.js';
import { deepFreeze, validateConfig } from '../../lib/config/parse.js';
import { PROCESS_READER } from '../../lib/config/references.js';
import type { RouteConfig } from '../../lib/config/schema.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { notedEnds, sameItems, scanEnds } from '../../lib/core/identity.js';

/** A fragment input from plain data (or raw text), its version derived from the text. */
function fragment(name: string, data: Record<string, unknown> | string): FragmentInput {
  const text = typeof data === 'string' ? data : stringify(data);
  const version = `v:${text}`;
  try {
    return { name, version, parsed: { ok: true, loaded: loadFragment(text, { origin: name }) } };
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    return { name, version, parsed: { ok: false, issues: error.issues } };
  }
}

const respond = (prefix: string, body = prefix) => ({ path_prefix: prefix, respond: { status: 200, body } });
const proxied = (prefix: string, upstream: string) => ({ path_prefix: prefix, upstream });
const listener = (name: string, port: number, routes: unknown[] = []) => ({ name, listen: `127.0.0.1:${port}`, routes });
const upstream = (port: number) => ({ targets: [`http://127.0.0.1:${port}`] });

/** Plan `inputs` and commit the plan; returns it. */
function apply(merger: FragmentMerger, inputs: FragmentInput[]): MergePlan {
  const plan = merger.plan(inputs);
  merger.commit(plan);
  return plan;
}

const prefixes = (plan: MergePlan, name = 'web') => plan.loaded?.config.listeners.find((l) => l.name === name)?.routes.map((r) => r.path_prefix);
const stateOf = (merger: FragmentMerger, name: string) => merger.statuses().find((s) => s.name === name);

describe('fragment merge', () => {
  it('appends routes to their listener in fragment-name order, then document order, and merges upstreams by key', () => {
    const merger = new FragmentMerger();
    const plan = apply(merger, [
      fragment('b.yaml', { listeners: [{ name: 'web', routes: [respond('/b1'), proxied('/b2', 'api')] }], upstreams: { api: upstream(9001) } }),
      fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a1'), respond('/a2')])], shutdown_timeout_ms: 100 }),
      fragment('c.yaml', { listeners: [{ name: 'web', routes: [respond('/c')] }] }),
    ]);
    expect(plan.issues).to.deep.equal([]);
    expect(prefixes(plan)).to.deep.equal(['/a1', '/a2', '/b1', '/b2', '/c']);
    expect(plan.loaded!.config.upstreams).to.have.keys('api');
    expect(plan.loaded!.config.shutdown_timeout_ms).to.equal(100);
    // Sections no fragment sets take a document's defaults.
    expect(plan.loaded!.config.admin.listen).to.equal('127.0.0.1:9901');
    expect(Object.isFrozen(plan.loaded!.config.listeners[0])).to.equal(true);
    expect(merger.statuses().map((s) => s.state)).to.deep.equal(['ok', 'ok', 'ok']);
  });

  it('merges any split of a config into the config a single document of it gives', () => {
    const route = fc.oneof(
      fc.record({
        path_prefix: fc.constantFrom('/', '/a', '/b/c', '/d'),
        // A body holding `${` reads as a malformed secret reference, refused in a fragment (references
        // are resolved per fragment, specced with them) while `validateConfig` below takes it as text.
        respond: fc.record({ status: fc.constantFrom(200, 404), body: fc.string({ maxLength: 4 }).filter((body) => !body.includes('${')) }),
      }),
      fc.record({ path_prefix: fc.constantFrom('/', '/up', '/x'), upstream: fc.constantFrom('u0', 'u1') }),
    );
    // Fragments: each may add routes to listener l0 and l1; fragment 0 defines both listeners and the upstreams.
    const fragments = fc.array(fc.record({ l0: fc.array(route, { maxLength: 3 }), l1: fc.array(route, { maxLength: 3 }) }), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fragments, (parts) => {
        const inputs = parts.map((part, i) => {
          const entries = ['l0', 'l1']
            .map((name, j) => (i === 0 ? listener(name, 8000 + j, part[name as 'l0' | 'l1']) : { name, routes: part[name as 'l0' | 'l1'] }))
            .filter((entry) => i === 0 || entry.routes.length > 0);
          const upstreams = i === 0 ? { upstreams: { u0: upstream(9000), u1: upstream(9001) } } : {};
          return fragment(`f${String(i).padStart(2, '0')}.yaml`, { ...upstreams, ...(entries.length > 0 ? { listeners: entries } : {}) });
        });
        const whole = validateConfig({
          upstreams: { u0: upstream(9000), u1: upstream(9001) },
          listeners: ['l0', 'l1'].map((name, j) =>
            listener(
              name,
              8000 + j,
              parts.flatMap((part) => part[name as 'l0' | 'l1']),
            ),
          ),
        });
        const together = new FragmentMerger().plan(inputs);
        expect(together.issues).to.deep.equal([]);
        expect(together.loaded!.config).to.deep.equal(whole);
        // One fragment at a time, in reverse order, ends in the same config and hash.
        const stepwise = new FragmentMerger();
        let last: MergePlan | undefined;
        for (let n = 1; n <= inputs.length; n += 1) last = apply(stepwise, inputs.slice(0, n));
        expect(last!.loaded!.config).to.deep.equal(whole);
        expect(last!.loaded!.hash).to.equal(together.loaded!.hash);
      }),
      { numRuns: 60 },
    );
  });

  it('keeps the last good version of a fragment that becomes invalid while another fragment changes', () => {
    const merger = new FragmentMerger();
    const base = fragment('00-base.yaml', { listeners: [listener('web', 8080)], upstreams: { api: upstream(9001) } });
    apply(merger, [
      base,
      fragment('10-a.yaml', { listeners: [{ name: 'web', routes: [respond('/a', 'a1')] }] }),
      fragment('20-b.yaml', { listeners: [{ name: 'web', routes: [respond('/b', 'b1')] }] }),
    ]);
    const bad = fragment('10-a.yaml', 'listeners: [');
    const plan = apply(merger, [base, bad, fragment('20-b.yaml', { listeners: [{ name: 'web', routes: [respond('/b', 'b2')] }] })]);
    const bodies = plan.loaded!.config.listeners[0]!.routes.map((r) => r.respond?.body);
    expect(bodies).to.deep.equal(['a1', 'b2']);
    expect(plan.issues).to.have.length(1);
    expect(plan.issues[0]).to.include({ origin: '10-a.yaml', path: '' });
    expect(plan.issues[0]!.message).to.match(/^syntax error/);
    expect(stateOf(merger, '10-a.yaml')).to.deep.include({ state: 'invalid-kept-last-good', version: bad.version });
    expect(stateOf(merger, '10-a.yaml')!.applied_version).to.be.a('string').and.not.equal(bad.version);
    expect(stateOf(merger, '20-b.yaml')).to.deep.include({ state: 'ok' });
  });

  it('refuses a route naming an upstream no fragment defines, with its path, and leaves a never-valid fragment out', () => {
    const merger = new FragmentMerger();
    const plan = apply(merger, [
      fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a')])] }),
      fragment('b.yaml', { listeners: [{ name: 'web', routes: [respond('/b'), proxied('/b2', 'nope')] }] }),
    ]);
    expect(prefixes(plan)).to.deep.equal(['/a']);
    expect(plan.issues).to.deep.equal([
      { origin: 'b.yaml', path: 'listeners.0.routes.1.upstream', message: 'unknown upstream "nope": no fragment defines it' },
    ]);
    expect(stateOf(merger, 'b.yaml')).to.deep.include({ state: 'invalid-never-applied' });
    expect(stateOf(merger, 'b.yaml')).to.not.have.property('applied_version');
  });

  it('admits a fragment refused for a missing upstream once another fragment defines it', () => {
    const merger = new FragmentMerger();
    const a = fragment('a.yaml', { listeners: [listener('web', 8080, [proxied('/', 'api')])] });
    expect(apply(merger, [a, fragment('b.yaml', { shutdown_timeout_ms: 5 })]).loaded!.config.listeners).to.deep.equal([]);
    expect(stateOf(merger, 'a.yaml')!.state).to.equal('invalid-never-applied');
    const plan = apply(merger, [a, fragment('b.yaml', { upstreams: { api: upstream(9001) } })]);
    expect(plan.issues).to.deep.equal([]);
    expect(prefixes(plan)).to.deep.equal(['/']);
    expect(merger.statuses().map((s) => s.state)).to.deep.equal(['ok', 'ok']);
  });

  it('names both fragments when a listener, an upstream or a top-level section is defined twice, keeping the one merged first', () => {
    const merger = new FragmentMerger();
    apply(merger, [fragment('a.yaml', { listeners: [listener('web', 8080)], upstreams: { api: upstream(9001) }, tracing: { exporter: 'none' } })]);
    const plan = apply(merger, [
      fragment('a.yaml', { listeners: [listener('web', 8080)], upstreams: { api: upstream(9001) }, tracing: { exporter: 'none' } }),
      fragment('0-new.yaml', { listeners: [listener('web', 8081)], upstreams: { api: upstream(9002) }, tracing: { exporter: 'console' } }),
    ]);
    expect(plan.issues.map((i) => `${i.origin}: ${i.path}: ${i.message}`)).to.have.members([
      '0-new.yaml: tracing: tracing is also set by fragment "a.yaml": one fragment at most sets each top-level section',
      '0-new.yaml: upstreams.api: upstream "api" is also defined by fragment "a.yaml"',
      '0-new.yaml: listeners.0.name: listener "web" is also defined by fragment "a.yaml"',
    ]);
    expect(plan.loaded!.config.listeners[0]!.listen).to.equal('127.0.0.1:8080');
    expect(stateOf(merger, '0-new.yaml')!.state).to.equal('invalid-never-applied');
  });

  it('between two new fragments defining one name, keeps the first in name order', () => {
    const plan = new FragmentMerger().plan([
      fragment('b.yaml', { listeners: [listener('web', 8081, [respond('/b')])] }),
      fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a')])] }),
    ]);
    expect(prefixes(plan)).to.deep.equal(['/a']);
    expect(plan.issues).to.deep.equal([{ origin: 'b.yaml', path: 'listeners.0.name', message: 'listener "web" is also defined by fragment "a.yaml"' }]);
  });

  it('refuses a listener on an address another fragment binds, or the admin API', () => {
    const plan = new FragmentMerger().plan([
      fragment('a.yaml', { listeners: [listener('web', 8080)], admin: { listen: '127.0.0.1:9000' } }),
      fragment('b.yaml', { listeners: [{ name: 'other', listen: '0.0.0.0:8080', routes: [] }] }),
      fragment('c.yaml', { listeners: [listener('third', 9000)] }),
    ]);
    expect(plan.issues.map((i) => `${i.origin}: ${i.path}: ${i.message}`)).to.have.members([
      'b.yaml: listeners.0.listen: address 0.0.0.0:8080 clashes with listener "web" of fragment "a.yaml": binding both fails',
      'c.yaml: listeners.0.listen: address 127.0.0.1:9000 is also the address of the admin API of fragment "a.yaml"',
    ]);
  });

  it('removes exactly the routes and upstreams of a removed fragment', () => {
    const merger = new FragmentMerger();
    const a = fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a')])] });
    const c = fragment('c.yaml', { listeners: [{ name: 'web', routes: [respond('/c')] }] });
    apply(merger, [a, fragment('b.yaml', { listeners: [{ name: 'web', routes: [proxied('/b', 'bu')] }], upstreams: { bu: upstream(9001) } }), c]);
    const plan = apply(merger, [a, c]);
    expect(plan.issues).to.deep.equal([]);
    expect(prefixes(plan)).to.deep.equal(['/a', '/c']);
    expect(plan.loaded!.config.upstreams).to.deep.equal({});
    expect(merger.statuses().map((s) => s.name)).to.deep.equal(['a.yaml', 'c.yaml']);
  });

  it('refuses a removal that would leave merged routes without their upstream, keeping the removed fragment', () => {
    const merger = new FragmentMerger();
    const routes = fragment('routes.yaml', { listeners: [listener('web', 8080, [proxied('/', 'api')])] });
    const upstreams = fragment('upstreams.yaml', { upstreams: { api: upstream(9001) } });
    apply(merger, [routes, upstreams]);
    const plan = apply(merger, [routes]);
    expect(plan.issues).to.deep.equal([
      {
        origin: 'upstreams.yaml',
        path: 'upstreams.api',
        message: 'removes upstream "api", which routes of fragment(s) "routes.yaml" name: change those first, or together',
      },
    ]);
    expect(plan.loaded!.config.upstreams).to.have.keys('api');
    expect(stateOf(merger, 'upstreams.yaml')).to.deep.include({ state: 'invalid-kept-last-good', version: null });
    // Removing both together applies.
    const both = apply(merger, [fragment('other.yaml', { listeners: [listener('web', 8080)] })]);
    expect(both.issues).to.deep.equal([]);
    expect(both.loaded!.config.upstreams).to.deep.equal({});
  });

  it('applies an upstream moved from one fragment to another in one change', () => {
    const merger = new FragmentMerger();
    const routes = fragment('a.yaml', { listeners: [listener('web', 8080, [proxied('/', 'api')])] });
    apply(merger, [routes, fragment('b.yaml', { upstreams: { api: upstream(9001) } }), fragment('c.yaml', { shutdown_timeout_ms: 5 })]);
    const plan = apply(merger, [routes, fragment('b.yaml', { shutdown_timeout_ms: 5 }), fragment('c.yaml', { upstreams: { api: upstream(9002) } })]);
    expect(plan.issues).to.deep.equal([]);
    expect(plan.loaded!.config.upstreams.api!.targets).to.deep.equal(['http://127.0.0.1:9002']);
  });

  it('adds routes only to a listener some fragment defines', () => {
    const plan = new FragmentMerger().plan([
      fragment('a.yaml', { listeners: [listener('web', 8080)] }),
      fragment('b.yaml', { listeners: [{ name: 'wbe', routes: [respond('/b')] }] }),
    ]);
    expect(plan.issues).to.deep.equal([
      { origin: 'b.yaml', path: 'listeners.0.name', message: 'adds routes to listener "wbe", which no fragment defines (an entry with listen defines it)' },
    ]);
  });

  it('says what a listener entry without listen may hold', () => {
    const input = fragment('a.yaml', { listeners: [{ name: 'web', tls: {}, routes: [respond('/')] }] });
    expect(input.parsed.ok).to.equal(false);
    expect(!input.parsed.ok && input.parsed.issues[0]).to.deep.equal({
      path: 'listeners.0.tls',
      message:
        'unknown key (a listener entry without listen only adds routes to the listener of that name that a fragment defines: it may hold name and routes)',
    });
  });

  it('keeps the merged hash and the listener objects whose routes did not change, and rebuilds only the touched listener', () => {
    const merger = new FragmentMerger();
    const base = fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a')]), listener('api', 8081, [respond('/x')])] });
    const first = apply(merger, [base, fragment('b.yaml', { listeners: [{ name: 'web', routes: [respond('/b', 'one')] }] })]);
    // The same content, spelled differently: same hash.
    const respelled = apply(merger, [
      base,
      fragment('b.yaml', '{"listeners": [{"name": "web", "routes": [{"path_prefix": "/b", "respond": {"status": 200, "body": "one"}}]}]}'),
    ]);
    expect(respelled.loaded!.hash).to.equal(first.loaded!.hash);
    const changed = apply(merger, [base, fragment('b.yaml', { listeners: [{ name: 'web', routes: [respond('/b', 'two')] }] })]);
    expect(changed.loaded!.hash).to.not.equal(first.loaded!.hash);
    const api = (plan: MergePlan) => plan.loaded!.config.listeners.find((l) => l.name === 'api');
    expect(api(changed)).to.equal(api(first));
    expect(changed.loaded!.config.listeners[0]).to.not.equal(first.loaded!.config.listeners[0]);
  });

  it('keeps the merged upstreams record itself when a changed fragment defines the same upstreams, and rebuilds it when one changes', () => {
    const merger = new FragmentMerger();
    const base = fragment('a.yaml', { listeners: [listener('web', 8080, [proxied('/a', 'ua')])], upstreams: { ua: upstream(9001) } });
    const tenant = (body: string, port = 9002) =>
      fragment('b.yaml', {
        upstreams: { ub: upstream(port), uc: upstream(9003) },
        listeners: [{ name: 'web', routes: [proxied('/b', 'ub'), respond('/c', body)] }],
      });
    const first = apply(merger, [base, tenant('one')]);
    const routesChanged = apply(merger, [base, tenant('two')]);
    expect(routesChanged.loaded!.config.upstreams).to.equal(first.loaded!.config.upstreams);
    expect(routesChanged.loaded!.config.listeners[0]!.routes[2]!.respond!.body).to.equal('two');
    const upstreamChanged = apply(merger, [base, tenant('two', 9004)]);
    expect(upstreamChanged.loaded!.config.upstreams).to.not.equal(first.loaded!.config.upstreams);
    expect(upstreamChanged.loaded!.config.upstreams.ub!.targets).to.deep.equal(['http://127.0.0.1:9004']);
    expect(upstreamChanged.loaded!.config.upstreams.ua).to.equal(first.loaded!.config.upstreams.ua);
  });

  it('changes nothing for a plan that is not committed', () => {
    const merger = new FragmentMerger();
    const a = fragment('a.yaml', { listeners: [listener('web', 8080, [respond('/a')])] });
    const first = apply(merger, [a]);
    merger.plan([a, fragment('b.yaml', { listeners: [{ name: 'web', routes: [respond('/b')] }] })]);
    const again = merger.plan([a]);
    expect(again.changed).to.equal(0);
    expect(again.loaded!.hash).to.equal(first.loaded!.hash);
    expect(prefixes(again)).to.deep.equal(['/a']);
  });

  it('resolves references per fragment: errors name the fragment and path, values are scrubbed, keys land at merged paths, and a new value at the same version applies', () => {
    const load = (name: string, version: string, data: Record<string, unknown>, env: Record<string, string>): FragmentInput => {
      try {
        return {
          name,
          version,
          parsed: { ok: true, loaded: loadFragment(stringify(data), { origin: name, references: { env, readFile: PROCESS_READER.readFile } }) },
        };
      } catch (error) {
        if (!(error instanceof ConfigInvalidError)) throw error;
        return { name, version, parsed: { ok: false, issues: error.issues } };
      }
    };
    const a = load(
      'a.yaml',
      'a1',
      { listeners: [listener('web', 8080, [respond('/a')])], tracing: { exporter: 'none', headers: { authorization: '${env:H}' } } },
      { H: 'S3cr3t-h' },
    );
    const bData = { listeners: [{ name: 'web', routes: [respond('/b1'), respond('/b2', '${env:B}')] }] };
    const merger = new FragmentMerger();
    const first = apply(merger, [a, load('b.yaml', 'b1', bData, { B: 'S3cr3t-1' })]);
    expect(first.loaded!.references!.map((r) => r.path)).to.deep.equal(['tracing.headers.authorization', 'listeners.0.routes.2.respond.body']);
    expect(first.loaded!.references![1]!.keys).to.deep.equal(['listeners', '0', 'routes', '2', 'respond', 'body']);

    // b's text (its version) unchanged, the variable changed: b is merged again.
    const second = apply(merger, [a, load('b.yaml', 'b1', bData, { B: 'S3cr3t-2' })]);
    expect(second.changed).to.equal(1);
    expect(second.loaded!.hash).to.not.equal(first.loaded!.hash);
    expect(second.loaded!.config.listeners[0]!.routes[2]!.respond!.body).to.equal('S3cr3t-2');

    // Unset: refused with the fragment and the path; its last good version stays merged.
    const unset = merger.plan([a, load('b.yaml', 'b1', bData, {})]);
    expect(unset.issues).to.deep.equal([
      { origin: 'b.yaml', path: 'listeners.0.routes.1.respond.body', message: '${env:B}: environment variable B is not set' },
    ]);
    expect(unset.loaded!.hash).to.equal(second.loaded!.hash);

    // A value the schema refuses is not quoted in the issue.
    const bad = load('c.yaml', 'c1', { tracing: { exporter: 'none', endpoint: '${env:E}' } }, { E: 'S3cr3t-collector:4318' });
    expect(bad.parsed.ok).to.equal(false);
    expect(JSON.stringify(bad.parsed)).to.contain('tracing.endpoint').and.not.contain('S3cr3t');
  });
});

describe('fragment merge: what a rebuilt listener shares with the last one', () => {
  const routesOf = (plan: MergePlan) => plan.loaded!.config.listeners.find((l) => l.name === 'web')!.routes;

  it('notes the ends a one-route change in the last of 100 fragments leaves (that fragment parsed again: its sections all new), so that comparing the listeners reads nothing', () => {
    const part = (f: number, changed = false) =>
      fragment(`f${String(f).padStart(3, '0')}.yaml`, {
        listeners: [f === 0 ? listener('web', 8080, routes(f, changed)) : { name: 'web', routes: routes(f, changed) }],
      });
    const routes = (f: number, changed: boolean) => Array.from({ length: 100 }, (_, r) => respond(`/f${f}/r${r}`, changed && r === 99 ? 'changed' : 'same'));
    const merger = new FragmentMerger();
    const inputs = Array.from({ length: 100 }, (_, f) => part(f));
    const before = routesOf(apply(merger, inputs));
    inputs[99] = part(99, true);
    const after = routesOf(apply(merger, inputs));
    expect(after).to.have.length(10_000);
    expect(notedEnds(before, after)).to.deep.equal({ head: 9_900, tail: 0 });
    expect(scanEnds(before, after)).to.deep.equal({ head: 9_900, tail: 0 });
  });

  it("builds every listener from its members' very sections and notes exactly the ends a scan finds, over any series of fragment edits", () => {
    // Route sections from one pool, so that fragments share sections as parsed documents rebuilt copy-on-write do.
    const pool = validateConfig({
      listeners: [
        listener(
          'web',
          8080,
          ['/a', '/b', '/c', '/d', '/e'].map((p) => respond(p)),
        ),
      ],
    }).listeners[0]!;
    const definition = { ...pool, routes: [] as RouteConfig[] };
    let versions = 0;
    /** Fragment `name` holding `picks` of the pool (the very section objects), or exactly `routes`. */
    const input = (name: string, routes: readonly RouteConfig[]): FragmentInput => {
      versions += 1;
      const entry = name === 'a' ? { ...definition, routes } : { name: 'web', routes };
      return {
        name,
        version: `v${versions}`,
        parsed: { ok: true, loaded: { config: deepFreeze({ listeners: [entry] }) as unknown as FragmentConfig, hash: `h${versions}` } },
      };
    };
    const picks = fc.array(fc.nat({ max: pool.routes.length - 1 }), { minLength: 1, maxLength: 4 }).map((at) => at.map((i) => pool.routes[i]!));
    const edit = fc.tuple(fc.constantFrom('routes', 'same-routes', 'add', 'remove'), fc.constantFrom('a', 'b', 'c', 'd', 'e'), picks);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('b', 'c', 'd', 'e'), picks), { maxLength: 4 }),
        picks,
        fc.array(edit, { minLength: 1, maxLength: 6 }),
        (members, first, edits) => {
          const merger = new FragmentMerger();
          const current = new Map<string, FragmentInput>([['a', input('a', first)]]);
          for (const [name, routes] of members) current.set(name, input(name, routes));
          let before = routesOf(apply(merger, [...current.values()]));
          for (const [kind, name, routes] of edits) {
            const now = current.get(name);
            if (kind === 'remove' && name !== 'a') current.delete(name);
            else if (kind === 'same-routes' && now?.parsed.ok) current.set(name, input(name, now.parsed.loaded.config.listeners![0]!.routes));
            else if (kind !== 'remove') current.set(name, input(name, routes));
            const plan = apply(merger, [...current.values()]);
            expect(plan.issues).to.deep.equal([]);
            const after = routesOf(plan);
            const members = [...current].sort(([x], [y]) => (x < y ? -1 : 1)).map(([, f]) => (f.parsed.ok ? f.parsed.loaded.config.listeners![0]!.routes : []));
            expect(sameItems(after, members.flat()), 'the very sections of the members, in name order').to.equal(true);
            if (after !== before) expect(notedEnds(before, after), `${kind} ${name}`).to.deep.equal(scanEnds(before, after));
            before = after;
          }
        },
      ),
      { seed: 12, numRuns: 500 },
    );
  });
});
