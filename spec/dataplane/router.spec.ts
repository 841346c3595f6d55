import { expect } from 'chai';
import { stringify } from 'yaml';
import { loadConfig } from '../../lib/config/parse.js';
import type { RouteConfig } from '../../lib/config/schema.js';
import type { RouteAction } from '../../lib/dataplane/ports.js';
import { RespondAction } from '../../lib/dataplane/route/respond.js';
import { Router } from '../../lib/dataplane/route/router.js';

/** Validated routes (defaults filled), each answering its own index as body. */
function routes(...specs: Omit<Partial<RouteConfig>, 'respond'>[]): readonly RouteConfig[] {
  const listener = {
    name: 'web',
    listen: '127.0.0.1:8080',
    routes: specs.map((s, i) => ({ path_prefix: '/', ...s, respond: { status: 200, body: String(i) } })),
  };
  return loadConfig(stringify({ listeners: [listener] })).config.listeners[0]!.routes;
}

/** Index of the route `router` picks, or undefined. */
function pick(router: Router, method: string, host: string | undefined, path: string): number | undefined {
  return router.match(method, host, path)?.index;
}

describe('Router', () => {
  describe('fromConfig', () => {
    it('compiles each route in config order: index, prefix, lowercase host, method set (HEAD with GET), and a respond action by default', () => {
      const router = Router.fromConfig(routes({ path_prefix: '/api', host: 'API.Example.com', methods: ['GET', 'POST'] }, { path_prefix: '/' }));
      expect(router.routes.map(({ action, ...route }) => route)).to.deep.equal([
        { index: 0, pathPrefix: '/api', host: 'api.example.com', methods: new Set(['GET', 'POST', 'HEAD']) },
        { index: 1, pathPrefix: '/', host: undefined, methods: undefined },
      ]);
      expect(router.routes[0]!.action).to.be.instanceOf(RespondAction);
      expect((router.routes[1]!.action as RespondAction).body.toString()).to.equal('1');
    });

    it('builds actions with the compiler given, passing each route and its index', () => {
      const seen: [string, number][] = [];
      const compile = (route: RouteConfig, index: number): RouteAction => {
        seen.push([route.path_prefix, index]);
        return { type: `custom-${index}`, run: () => {} };
      };
      const router = Router.fromConfig(routes({ path_prefix: '/a' }, { path_prefix: '/b' }), compile);
      expect(seen).to.deep.equal([
        ['/a', 0],
        ['/b', 1],
      ]);
      expect(router.routes.map((r) => r.action.type)).to.deep.equal(['custom-0', 'custom-1']);
    });
  });

  describe('match', () => {
    it('takes the first route in config order whose prefix matches', () => {
      const specificFirst = Router.fromConfig(routes({ path_prefix: '/api' }, { path_prefix: '/' }));
      expect(pick(specificFirst, 'GET', undefined, '/api/users')).to.equal(0);
      expect(pick(specificFirst, 'GET', undefined, '/other')).to.equal(1);
      const catchAllFirst = Router.fromConfig(routes({ path_prefix: '/' }, { path_prefix: '/api' }));
      expect(pick(catchAllFirst, 'GET', undefined, '/api/users')).to.equal(0);
    });

    it('matches path_prefix on segment boundaries, not as a string prefix', () => {
      const router = Router.fromConfig(routes({ path_prefix: '/api' }));
      expect(pick(router, 'GET', undefined, '/api')).to.equal(0);
      expect(pick(router, 'GET', undefined, '/api/x')).to.equal(0);
      expect(pick(router, 'GET', undefined, '/apiary')).to.equal(undefined);
      expect(pick(router, 'GET', undefined, '/ap')).to.equal(undefined);
      expect(pick(router, 'GET', undefined, '/API')).to.equal(undefined);
    });

    it('returns undefined when no route matches, and for an empty table', () => {
      expect(pick(Router.fromConfig(routes({ path_prefix: '/a' })), 'GET', undefined, '/b')).to.equal(undefined);
      expect(pick(Router.fromConfig([]), 'GET', 'example.com', '/')).to.equal(undefined);
    });

    it('matches an exact host against the normalised request host, and skips a host route for a request without Host', () => {
      const router = Router.fromConfig(routes({ host: 'Example.com' }, {}));
      expect(pick(router, 'GET', 'example.com', '/')).to.equal(0);
      expect(pick(router, 'GET', 'www.example.com', '/')).to.equal(1);
      expect(pick(router, 'GET', undefined, '/')).to.equal(1);
    });

    it('matches *.example.com against any subdomain, at any depth, but not the domain itself nor a lookalike', () => {
      const router = Router.fromConfig(routes({ host: '*.example.com' }, {}));
      expect(pick(router, 'GET', 'a.example.com', '/')).to.equal(0);
      expect(pick(router, 'GET', 'a.b.example.com', '/')).to.equal(0);
      expect(pick(router, 'GET', 'example.com', '/')).to.equal(1);
      expect(pick(router, 'GET', '.example.com', '/')).to.equal(1);
      expect(pick(router, 'GET', 'badexample.com', '/')).to.equal(1);
      expect(pick(router, 'GET', 'a.example.com.evil', '/')).to.equal(1);
    });

    it('matches methods exactly as listed (uppercase), any method when none are listed', () => {
      const router = Router.fromConfig(routes({ methods: ['GET', 'HEAD'] }, {}));
      expect(pick(router, 'GET', undefined, '/')).to.equal(0);
      expect(pick(router, 'HEAD', undefined, '/')).to.equal(0);
      expect(pick(router, 'POST', undefined, '/')).to.equal(1);
      expect(pick(router, 'get', undefined, '/')).to.equal(1);
    });

    it('needs prefix, host and method to match together, else falls through to the next route', () => {
      const router = Router.fromConfig(routes({ path_prefix: '/admin', host: 'admin.example.com', methods: ['POST'] }, { path_prefix: '/admin' }));
      expect(pick(router, 'POST', 'admin.example.com', '/admin/x')).to.equal(0);
      expect(pick(router, 'GET', 'admin.example.com', '/admin/x')).to.equal(1);
      expect(pick(router, 'POST', 'example.com', '/admin/x')).to.equal(1);
      expect(pick(router, 'POST', 'admin.example.com', '/x')).to.equal(undefined);
    });
  });
});
