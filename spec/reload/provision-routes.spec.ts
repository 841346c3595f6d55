import { expect } from 'chai';
import sinon from 'sinon';
import { freePort } from '../../harness/ports.js';
import { canonicalJson } from '../../lib/config/hash.js';
import { validateConfig } from '../../lib/config/parse.js';
import type { Config, RouteConfig } from '../../lib/config/schema.js';
import { noteEnds, scanEnds } from '../../lib/core/identity.js';
import { silentLogger } from '../../lib/core/log.js';
import { createListenerServing } from '../../lib/dataplane/serve/serving.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { Generation } from '../../lib/reload/generation.js';
import { type ProvisionContext, provision } from '../../lib/reload/provision.js';

/** `routes` behind a proxy that counts the items read (numeric keys); frozen, as config arrays are. */
function counted(routes: readonly RouteConfig[]): { routes: readonly RouteConfig[]; reads: sinon.SinonSpy } {
  const reads = sinon.spy();
  const proxy = new Proxy(routes, {
    get(target, key, receiver) {
      if (typeof key === 'string' && /^\d+$/.test(key)) reads();
      return Reflect.get(target, key, receiver);
    },
  });
  return { routes: proxy, reads };
}

/** `config` with its one listener's routes replaced by `routes`. */
function withRoutes(config: Config, routes: readonly RouteConfig[]): Config {
  return Object.freeze({ ...config, listeners: Object.freeze([Object.freeze({ ...config.listeners[0]!, routes })]) }) as Config;
}

describe('provisioning a listener whose routes changed in one place', () => {
  const N = 10_000;
  const configOf = (port: number, changed?: number) =>
    validateConfig({
      listeners: [
        {
          name: 'web',
          listen: `127.0.0.1:${port}`,
          routes: Array.from({ length: N }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? 'changed' : `route ${i}` } })),
        },
      ],
    });

  let registry: ResourceRegistry;
  let generations: Generation[];
  beforeEach(() => {
    registry = new ResourceRegistry();
    generations = [];
  });
  afterEach(async () => {
    // Oldest first, as the applier retires them.
    for (const generation of generations) {
      await generation.drain(0);
      await generation.release();
    }
    await registry.close();
  });

  /** Provision the first generation, then the second from it; the second returned. */
  async function reload(first: Config, second: Config): Promise<Generation> {
    const ctx: ProvisionContext = {
      registry,
      deps: { onBackgroundError: () => {}, logger: silentLogger() },
      serving: (listenKey) => createListenerServing({ active: () => undefined, listenKey, logger: silentLogger() }),
    };
    const source = { kind: 'file', path: '/x' } as const;
    const one = new Generation(1, first, 'h1', 'v1', source);
    generations.push(one);
    await provision(one, ctx);
    one.activate();
    const two = new Generation(2, second, 'h2', 'v2', source);
    generations.push(two);
    await provision(two, ctx, one);
    two.activate();
    return two;
  }

  /**
   * A config of N routes and the next one, its last route changed: every other section the very
   * object of the first (as a merge shares them), both behind read-counting proxies.
   */
  async function lastRouteChanged() {
    const port = await freePort();
    const [config, next] = [configOf(port), configOf(port, N - 1)];
    const sections = config.listeners[0]!.routes;
    const shared = Object.freeze([...sections.slice(0, N - 1), next.listeners[0]!.routes[N - 1]!]);
    const [before, after] = [counted(sections), counted(shared)];
    return { sections, shared, before, after, first: withRoutes(config, before.routes), second: withRoutes(next, after.routes) };
  }

  it('reads only the changed routes of both configs when their producer noted what they share', async () => {
    const { sections, shared, before, after, first, second } = await lastRouteChanged();
    // What a fragment merge notes: the config it built from the last one ends alike but for its last route.
    noteEnds(before.routes, after.routes, scanEnds(sections, shared));
    const reads = () => before.reads.callCount + after.reads.callCount;
    const two = await reload(first, second);
    // Compiling reads the changed route of each (it is compared with its old section), the tunnels' texts one more: a few reads, not 10,000.
    expect(reads() - 2 * N, 'reads beyond the first provisioning').to.be.at.most(8);
    const [key, listener] = [...two.listeners()][0]!;
    const old = generations[0]!.listeners().get(key)!;
    expect(listener.routeSections).to.have.length(N);
    expect(two.routeSection(key, N - 1)).to.equal(canonicalJson(shared[N - 1]!));
    expect(two.routeSection(key, N - 2)).to.equal(old.routeSections[N - 2]);
    expect(listener.router.routes[N - 2]).to.equal(old.router.routes[N - 2]);
    expect(listener.router.sharesIndexWith(old.router)).to.equal(true);
  });

  it('scans the routes once when nothing was noted: compiling notes what it found, the tunnels reuse it', async () => {
    const { before, after, first, second } = await lastRouteChanged();
    await reload(first, second);
    // The first provisioning compiles and serialises each route of `before` (two reads each, and no more).
    expect(before.reads.callCount - 2 * N, 'reads of the old routes beyond the first provisioning').to.be.within(N - 1, N + 8);
    expect(after.reads.callCount, 'reads of the new routes').to.be.within(N - 1, N + 8);
  });
});
