import { expect } from 'chai';
import fc from 'fast-check';
import { validateConfig } from '../../lib/config/parse.js';
import { upstreamPath, upstreamRequestHeaders } from '../../lib/dataplane/proxy/headers.js';
import { TrustedProxies } from '../../lib/dataplane/proxy/trusted-proxies.js';
import { BadHost, normalizePath, normalizeTarget, requestHost, routePath } from '../../lib/dataplane/route/normalize.js';
import { prefixMatches, Router } from '../../lib/dataplane/route/router.js';

/** A router over `routes` (respond actions) of a minimal valid config. */
function router(routes: Record<string, unknown>[]): Router {
  const config = validateConfig({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes }] });
  return Router.fromConfig(config.listeners[0]!.routes);
}

const respond = { status: 200 };

describe('dataplane: route normalisation and matching', () => {
  describe('normalizePath (RFC 3986 section 6.2.2)', () => {
    const cases: [string, string | undefined][] = [
      ['/', '/'],
      ['/a/b', '/a/b'],
      ['/a/', '/a/'],
      ['/%61pi/%7Euser', '/api/~user'],
      ['/a%2Fb', '/a%2Fb'],
      ['/a%2fb', '/a%2fb'],
      ['/a%3F%20b', '/a%3F%20b'],
      ['/a//b', '/a/b'],
      ['//evil.example/x', '/evil.example/x'],
      ['/a///', '/a/'],
      ['/a/./b/../c', '/a/c'],
      ['/a/b/..', '/a/'],
      ['/a/.', '/a/'],
      ['/..', '/'],
      ['/../../etc/passwd', '/etc/passwd'],
      ['/api/%2e%2e/admin', '/admin'],
      ['/api/.%2E/admin', '/admin'],
      ['/api/..%2fadmin', '/api/..%2fadmin'],
      ['/a\\..\\b', '/b'],
      ['/.well-known/x', '/.well-known/x'],
      ['/q"<>`{}|', '/q"<>`{}|'],
      ['/a;b/../c;d', '/c;d'],
      ['/x/..;/admin', undefined],
      ['/x/%2e%2e;a=b/admin', undefined],
      ['/x/.;/admin', undefined],
      ['/a%zz', undefined],
      ['/a%2', undefined],
      ['/a%', undefined],
    ];
    for (const [input, expected] of cases) {
      it(`${JSON.stringify(input)} → ${JSON.stringify(expected)}`, () => {
        expect(normalizePath(input)).to.equal(expected);
      });
    }

    it('is idempotent, and its result has no empty, dot or encoded-unreserved segment', () => {
      const piece = fc.constantFrom('/', '//', '.', '..', '%2e', '%2E', '%2F', '%41', '%7e', '\\', 'a', 'b', '~', '%20', '?');
      fc.assert(
        fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
          const once = normalizePath(`/${pieces.join('')}`)!;
          expect(normalizePath(once)).to.equal(once);
          expect(once).to.match(/^\//);
          expect(once).not.to.match(/\/\/|\/\.\.?(\/|$)|%(2[eE]|4[1-9A-Fa-f]|[67][0-9A-Ea-e])|\\/);
        }),
        { seed: 14, numRuns: 500 },
      );
    });
  });

  describe('routePath', () => {
    it('drops segment parameters as Tomcat and Spring do before routing, and allocates nothing without them', () => {
      expect(routePath('/api;v=1/admin;jsessionid=2')).to.equal('/api/admin');
      expect(routePath('/a/;x/b;y')).to.equal('/a/b');
      expect(routePath('/;x')).to.equal('/');
      const plain = '/api/admin';
      expect(routePath(plain)).to.equal(plain);
    });
  });

  describe('normalizeTarget', () => {
    it('keeps the query byte for byte: reserved characters, quotes and malformed escapes included', () => {
      const query = `?sig=AbC%2F%2b%3d&q='"<>\`&x=%zz&y=a+b&z=%E2%82%AC`;
      expect(normalizeTarget(`/a/../files/%61?${query.slice(1)}`)).to.deep.equal({ path: '/files/a', query });
    });

    it('takes the authority of an absolute-form target, and its path', () => {
      expect(normalizeTarget('http://Internal.Test:8080/a/./b?x=1')).to.deep.equal({ path: '/a/b', query: '?x=1', authority: 'Internal.Test:8080' });
      expect(normalizeTarget('HTTPS://[::1]:8443?x')).to.deep.equal({ path: '/', query: '?x', authority: '[::1]:8443' });
      expect(normalizeTarget('http://host')).to.deep.equal({ path: '/', query: '', authority: 'host' });
    });

    it('refuses what cannot be served: not a path, a fragment, a malformed escape, userinfo or a bad authority', () => {
      for (const target of ['*', 'example.com:443', 'ftp://host/', '/a#b', '/a%zz', 'http://user:pw@host/', 'http://a b/', 'http:///x', '']) {
        expect(normalizeTarget(target), target).to.equal(undefined);
      }
    });
  });

  describe('requestHost (RFC 9112 section 3.2)', () => {
    it('returns the single Host value, or undefined without one', () => {
      expect(requestHost(['Host', 'example.com:8080', 'Accept', '*/*'])).to.equal('example.com:8080');
      expect(requestHost(['host', '[::1]:80'])).to.equal('[::1]:80');
      expect(requestHost(['HOST', ''])).to.equal('');
      expect(requestHost(['Accept', '*/*'])).to.equal(undefined);
    });

    it('refuses two Host lines, whatever their values', () => {
      const result = requestHost(['Host', 'a.test', 'X-A', '1', 'host', 'a.test']);
      expect(result).to.be.instanceOf(BadHost);
      expect((result as BadHost).reason).to.equal('more than one Host header');
    });

    it('refuses a Host with characters a host cannot contain', () => {
      for (const value of ['a/b', 'a?b', 'a b', 'user@a', 'a\\b', 'a#b', '[::1', 'a:b:c', 'a"b']) {
        const result = requestHost(['Host', value]);
        expect(result, value).to.be.instanceOf(BadHost);
        expect((result as BadHost).reason).to.equal('invalid Host header');
      }
    });
  });

  describe('Router', () => {
    it('matches a prefix on segment boundaries only (Envoy path_separated_prefix)', () => {
      expect(prefixMatches('/api', '/api')).to.equal(true);
      expect(prefixMatches('/api', '/api/x')).to.equal(true);
      expect(prefixMatches('/api', '/apiadmin')).to.equal(false);
      expect(prefixMatches('/api', routePath('/api;jsessionid=1'))).to.equal(true);
      expect(prefixMatches('/api/admin', routePath('/api;v=2/admin;x'))).to.equal(true);
      expect(prefixMatches('/a/b', routePath('/a/;x/b'))).to.equal(true);
      expect(prefixMatches('/api', '/ap')).to.equal(false);
      expect(prefixMatches('/api/', '/api/')).to.equal(true);
      expect(prefixMatches('/api/', '/api/x')).to.equal(true);
      expect(prefixMatches('/api/', '/api')).to.equal(false);
      expect(prefixMatches('/', '/anything')).to.equal(true);
    });

    it('normalises prefixes as it normalises paths', () => {
      const r = router([{ path_prefix: '/%61pi//v1/./x/..', respond }]);
      expect(r.routes[0]!.pathPrefix).to.equal('/api/v1/');
    });

    it('serves HEAD on a GET route, keeps TRACE off routes that do not list it, and names the allowed methods', () => {
      const r = router([
        { path_prefix: '/read', methods: ['GET'], respond },
        { path_prefix: '/read', methods: ['PUT'], respond },
        { path_prefix: '/any', respond },
        { path_prefix: '/trace', methods: ['TRACE'], respond },
      ]);
      expect(r.match('HEAD', undefined, '/read')?.index).to.equal(0);
      expect(r.match('PUT', undefined, '/read/x')?.index).to.equal(1);
      expect(r.match('POST', undefined, '/read')).to.equal(undefined);
      expect(r.allowedMethods(undefined, '/read')).to.equal('GET, HEAD, PUT');
      expect(r.match('PURGE', undefined, '/any')?.index).to.equal(2);
      expect(r.match('TRACE', undefined, '/any')).to.equal(undefined);
      expect(r.allowedMethods(undefined, '/any')).to.equal('GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS');
      expect(r.match('TRACE', undefined, '/trace')?.index).to.equal(3);
      expect(r.allowedMethods(undefined, '/nothing')).to.equal(undefined);
    });
  });

  describe('upstreamPath', () => {
    it('removes the prefix on its segment boundary and keeps the query', () => {
      const strip = (pathPrefix: string, path: string, query = '') => upstreamPath({ path, query }, { pathPrefix, stripPrefix: true });
      expect(strip('/api', '/api/users', '?q=%2F')).to.equal('/users?q=%2F');
      expect(strip('/api', '/api')).to.equal('/');
      expect(strip('/api/', '/api/x')).to.equal('/x');
      expect(strip('/api/', '/api/')).to.equal('/');
      expect(strip('/', '/x/y')).to.equal('/x/y');
      expect(strip('/api', '/api;v=2/x;y')).to.equal('/x;y');
      expect(strip('/api/', '/api;v=2/x')).to.equal('/x');
      expect(strip('/a/b', '/a/;p/b;q')).to.equal('/');
      expect(strip('/', '/a;p/b')).to.equal('/a;p/b');
      expect(upstreamPath({ path: '/api/x', query: '?a' }, { pathPrefix: '/api', stripPrefix: false })).to.equal('/api/x?a');
    });

    it('sends a normalised path: stripping a matched prefix from a normalised path leaves one', () => {
      const segment = fc.constantFrom('a', 'b', 'api', 'api;v=1', '.well-known', '%2F', '..x', '~');
      const pathArb = fc
        .array(segment, { maxLength: 6 })
        .chain((segments) => fc.boolean().map((slash) => `/${segments.join('/')}${slash && segments.length > 0 ? '/' : ''}`));
      fc.assert(
        fc.property(pathArb, pathArb, (rawPrefix, rawPath) => {
          const pathPrefix = routePath(normalizePath(rawPrefix)!);
          const path = normalizePath(rawPath)!;
          fc.pre(prefixMatches(pathPrefix, routePath(path)));
          const sent = upstreamPath({ path, query: '' }, { pathPrefix, stripPrefix: true });
          expect(normalizePath(sent)).to.equal(sent);
        }),
        { seed: 14, numRuns: 500 },
      );
    });
  });

  describe('upstreamRequestHeaders', () => {
    const req = (rawHeaders: string[]) => {
      const headers: Record<string, string> = {};
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i]!.toLowerCase();
        headers[name] = headers[name] === undefined ? rawHeaders[i + 1]! : `${headers[name]}, ${rawHeaders[i + 1]}`;
      }
      return { rawHeaders, headers, httpVersion: '1.1' };
    };

    it('never lets Connection remove an end-to-end or framing header', () => {
      const out = upstreamRequestHeaders(
        req([
          'Host',
          'site.test',
          'Connection',
          'host, Content-Length, authorization, x-hop',
          'Content-Length',
          '5',
          'Authorization',
          'Bearer t',
          'X-Hop',
          '1',
        ]),
        '10.0.0.1',
        'none',
      );
      expect(out.slice(0, 6)).to.deep.equal(['Host', 'site.test', 'Content-Length', '5', 'Authorization', 'Bearer t']);
      expect(out).not.to.include('X-Hop');
    });

    it('replaces the forwarding headers of an untrusted peer and extends a trusted one', () => {
      const incoming = [
        'Host',
        'site.test',
        'X-Forwarded-For',
        '6.6.6.6',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'lb.test',
        'Forwarded',
        'for=6.6.6.6',
      ];
      const pairs = (out: string[]) => Object.fromEntries(out.flatMap((v, i) => (i % 2 === 0 ? [[v.toLowerCase(), out[i + 1]]] : [])));
      expect(pairs(upstreamRequestHeaders(req(incoming), '10.0.0.1', 'none', false))).to.deep.equal({
        host: 'site.test',
        'x-forwarded-for': '10.0.0.1',
        'x-forwarded-proto': 'http',
        'x-forwarded-host': 'site.test',
      });
      expect(pairs(upstreamRequestHeaders(req(incoming), '10.0.0.1', 'none', true))).to.deep.equal({
        host: 'site.test',
        forwarded: 'for=6.6.6.6',
        'x-forwarded-for': '6.6.6.6, 10.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'lb.test',
      });
      expect(pairs(upstreamRequestHeaders(req(incoming), '10.0.0.1', 'forwarded', false)).forwarded).to.equal('for=10.0.0.1;host=site.test;proto=http');
      expect(pairs(upstreamRequestHeaders(req(incoming), '10.0.0.1', 'forwarded', true)).forwarded).to.equal(
        'for=6.6.6.6, for=10.0.0.1;host=site.test;proto=http',
      );
    });

    it('sends the authority of an absolute-form target as Host', () => {
      const out = upstreamRequestHeaders(req(['Host', 'public.test', 'Accept', '*/*']), '10.0.0.1', 'none', false, 'internal.test');
      expect(out.slice(0, 4)).to.deep.equal(['host', 'internal.test', 'Accept', '*/*']);
      expect(out).not.to.include('public.test');
    });
  });

  describe('TrustedProxies', () => {
    it('trusts addresses in its CIDRs, IPv4-mapped IPv6 included, and nobody when empty', () => {
      const trusted = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8']);
      for (const address of ['10.1.2.3', '::ffff:10.9.9.9', '192.168.1.7', 'fd12::1']) expect(trusted.trusts(address), address).to.equal(true);
      for (const address of ['11.0.0.1', '192.168.1.8', '::1', 'fe80::1', undefined]) expect(trusted.trusts(address), String(address)).to.equal(false);
      expect(new TrustedProxies([]).trusts('127.0.0.1')).to.equal(false);
    });
  });
});
