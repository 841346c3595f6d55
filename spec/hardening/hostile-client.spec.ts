import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { type RawExchange, rawExchange, rawRequest } from '../../harness/raw-socket.js';
import { ByteLoggingUpstream } from '../../harness/raw-upstream.js';
import { proxyConfig } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

/**
 * What a hostile client can make the proxy send, seen byte for byte by an upstream that logs
 * what it receives (`ByteLoggingUpstream`), with raw sockets on the client side.
 */
describe('hardening: a hostile client against the data plane', function () {
  this.timeout(30_000);

  let upstream: ByteLoggingUpstream;
  let port: number;
  let t: TestDaemon;

  /** Serve `routes` (default: everything proxied to `api`) with `upstream` as `api`'s only target. */
  async function serve(options: { routes?: Record<string, unknown>[]; listener?: Record<string, unknown>; api?: Record<string, unknown> } = {}): Promise<void> {
    upstream = await ByteLoggingUpstream.start();
    port = await freePort();
    t = await startDaemon(
      proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], ...options.api } }, routes: options.routes, listener: options.listener }),
    );
  }

  /** The request line the upstream received for its `i`th request. */
  const requestLine = (i: number) => upstream.requests[i]!.head.split('\r\n')[0];

  /** `lines` as one raw request with its blank line. */
  const raw = (...lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

  /** The body of a raw response (after the head). */
  const bodyOf = (exchange: RawExchange) => exchange.data.slice(exchange.data.indexOf('\r\n\r\n') + 4);

  describe('route matching agrees with what the upstream sees', () => {
    beforeEach(() =>
      serve({
        routes: [
          { path_prefix: '/api/admin', respond: { status: 403, body: 'denied' } },
          { path_prefix: '/api', upstream: 'api', strip_prefix: true },
          { path_prefix: '/', respond: { status: 404, body: 'fallback' } },
        ],
      }),
    );

    it('matches path_prefix on segment boundaries: /api does not catch /apiadmin (and never sends it as /admin)', async () => {
      for (const path of ['/apiadmin', '/api-admin', '/apix/admin']) {
        const res = await rawRequest(port, path);
        expect(res.body, path).to.equal('fallback');
      }
      expect(upstream.requests).to.deep.equal([]);
      const res = await rawRequest(port, '/api/users');
      expect(res.status).to.equal(200);
      expect(requestLine(0)).to.equal('GET /users HTTP/1.1');
    });

    it('routes every spelling of a denied path to the deny route, and nothing reaches the upstream', async () => {
      for (const path of [
        '/api/admin',
        '/api/%61dmin',
        '/api/%61%64%6D%69%6E',
        '/%61pi/admin',
        '/api//admin',
        '//api///admin/',
        '/api/./admin',
        '/api/x/../admin',
        '/api/x/%2e%2e/admin',
        '/api\\admin',
        '/x/../api/admin/users',
        '/api/admin;jsessionid=0',
        '/api;v=1/admin',
      ]) {
        expect((await rawRequest(port, path)).body, path).to.equal('denied');
      }
      expect(upstream.requests).to.deep.equal([]);
    });

    it('forwards the one normalised spelling it routed, with strip_prefix, and refuses malformed escapes', async () => {
      for (const path of ['/api/%75sers', '/api//users', '/api/x/../users', '/%61pi/./users']) await rawRequest(port, path);
      expect(upstream.requests.map((_, i) => requestLine(i))).to.deep.equal(Array(4).fill('GET /users HTTP/1.1'));
      // A malformed escape, or a dot segment with parameters (Tomcat reads /..;/ as /../): no single reading.
      for (const path of ['/api/%zz', '/api/x/..;/admin', '/api/.;/admin']) {
        expect((await rawRequest(port, path)).status, path).to.equal(400);
      }
      expect(upstream.requests).to.have.length(4);
    });

    it('sends the query and reserved characters byte for byte: signed URLs survive', async () => {
      const target = `/api/files/a%2Fb%3Fc;v=1,2?X-Amz-Signature=AbC%2F%2b%3d&q='"<>\`{}|&bad=%zz&plus=a+b`;
      const res = await rawRequest(port, target);
      expect(res.status).to.equal(200);
      expect(requestLine(0)).to.equal(`GET ${target.slice('/api'.length)} HTTP/1.1`);
    });
  });

  describe('headers a client cannot remove or hide', () => {
    beforeEach(() => serve());

    it('never lets Connection remove Host, Content-Length or another end-to-end header', async () => {
      const exchange = await rawExchange(
        port,
        `${raw(
          'POST /upload HTTP/1.1',
          'Host: public.example',
          'Connection: close, Host, content-length, Authorization, Cookie, X-Hop',
          'Authorization: Bearer t0ken',
          'Cookie: a=1',
          'X-Hop: drop-me',
          'Content-Length: 5',
        )}hello`,
      );
      expect(exchange.status).to.equal(200);
      expect(upstream.header(0, 'host')).to.deep.equal(['public.example']);
      expect(upstream.header(0, 'content-length')).to.deep.equal(['5']);
      expect(upstream.header(0, 'authorization')).to.deep.equal(['Bearer t0ken']);
      expect(upstream.header(0, 'cookie')).to.deep.equal(['a=1']);
      expect(upstream.header(0, 'x-hop')).to.deep.equal([]);
      expect(upstream.requests[0]!.chunked).to.equal(false);
      expect(upstream.requests[0]!.body.toString()).to.equal('hello');
    });

    it('answers 431 to more request headers than the limit instead of cutting them silently', async () => {
      const headers = (n: number) => Array.from({ length: n }, (_, i) => `X-H${i}: v`);
      const refused = await rawExchange(port, `${raw('POST /many HTTP/1.1', 'Host: a.test', ...headers(1100), 'Content-Length: 2')}ab`);
      expect(refused.status).to.equal(431);
      const justOver = await rawExchange(port, raw('GET /over HTTP/1.1', 'Host: a.test', 'Connection: close', ...headers(99)));
      expect(justOver.status).to.equal(431);
      expect(upstream.requests).to.deep.equal([]);
      const atLimit = await rawExchange(port, raw('GET /at HTTP/1.1', 'Host: a.test', 'Connection: close', ...headers(98)));
      expect(atLimit.status).to.equal(200);
      expect(upstream.headerLines(0).filter(([name]) => name.startsWith('X-H'))).to.have.length(98);
    });

    it('answers 400, not a 502 counted against the upstream, to two Host lines or a Host no host can have', async () => {
      const hosts = [['a.test', 'b.test'], ['a.test', 'a.test'], ['a/b'], ['a?b'], ['a b'], ['user@a.test'], ['a.test/../x'], ['[::1']];
      for (const values of hosts) {
        const exchange = await rawExchange(port, raw('GET /x HTTP/1.1', ...values.map((v) => `Host: ${v}`), 'Connection: close'));
        expect(exchange.status, JSON.stringify(values)).to.equal(400);
        expect(bodyOf(exchange)).to.match(/Host header/);
      }
      expect(upstream.requests).to.deep.equal([]);
      expect(await metricValue(t.admin, 'hotconf_upstream_requests_total')).to.equal(0);
    });

    it("routes and forwards an absolute-form request by its target's authority, not Host (RFC 9112 section 3.2.2)", async () => {
      await t.apply(
        proxyConfig({
          port,
          upstreams: { api: { targets: [upstream.origin] } },
          routes: [
            { path_prefix: '/', host: 'internal.test', upstream: 'api' },
            { path_prefix: '/', respond: { status: 404, body: 'public' } },
          ],
        }),
      );
      const viaAuthority = await rawExchange(port, raw('GET http://internal.test/a/../b?x=1 HTTP/1.1', 'Host: public.test', 'Connection: close'));
      expect(viaAuthority.status).to.equal(200);
      expect(requestLine(0)).to.equal('GET /b?x=1 HTTP/1.1');
      expect(upstream.header(0, 'host')).to.deep.equal(['internal.test']);
      expect(upstream.header(0, 'x-forwarded-host')).to.deep.equal(['internal.test']);
      const viaHost = await rawExchange(port, raw('GET http://public.test/b HTTP/1.1', 'Host: internal.test', 'Connection: close'));
      expect(bodyOf(viaHost)).to.equal('public');
      expect(upstream.requests).to.have.length(1);
    });
  });

  describe('forwarding headers (trusted_proxies)', () => {
    const spoofed = ['X-Forwarded-For: 6.6.6.6', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: lb.example', 'Forwarded: for=6.6.6.6;proto=https'];

    it('replaces every forwarding header a client that is not a trusted proxy sends', async () => {
      await serve({ listener: { trusted_proxies: ['10.0.0.0/8'] } });
      await rawExchange(port, raw('GET /x HTTP/1.1', 'Host: site.test', 'Connection: close', ...spoofed));
      expect(upstream.header(0, 'x-forwarded-for')).to.deep.equal(['127.0.0.1']);
      expect(upstream.header(0, 'x-forwarded-proto')).to.deep.equal(['http']);
      expect(upstream.header(0, 'x-forwarded-host')).to.deep.equal(['site.test']);
      expect(upstream.header(0, 'forwarded')).to.deep.equal([]);
    });

    it("keeps and extends a trusted proxy's forwarding headers", async () => {
      await serve({ listener: { trusted_proxies: ['127.0.0.0/8'] } });
      await rawExchange(port, raw('GET /x HTTP/1.1', 'Host: site.test', 'Connection: close', ...spoofed));
      expect(upstream.header(0, 'x-forwarded-for')).to.deep.equal(['6.6.6.6, 127.0.0.1']);
      expect(upstream.header(0, 'x-forwarded-proto')).to.deep.equal(['https']);
      expect(upstream.header(0, 'x-forwarded-host')).to.deep.equal(['lb.example']);
      expect(upstream.header(0, 'forwarded')).to.deep.equal(['for=6.6.6.6;proto=https']);
    });

    it('replaces or extends the RFC 7239 Forwarded header by the same rule', async () => {
      await serve({ api: { forwarded_header: 'forwarded' } });
      await rawExchange(port, raw('GET /x HTTP/1.1', 'Host: site.test', 'Connection: close', ...spoofed));
      expect(upstream.header(0, 'forwarded')).to.deep.equal(['for=127.0.0.1;host=site.test;proto=http']);
      await t.apply(
        proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], forwarded_header: 'forwarded' } }, listener: { trusted_proxies: ['127.0.0.1'] } }),
      );
      await rawExchange(port, raw('GET /x HTTP/1.1', 'Host: site.test', 'Connection: close', ...spoofed));
      expect(upstream.header(1, 'forwarded')).to.deep.equal(['for=6.6.6.6;proto=https, for=127.0.0.1;host=site.test;proto=http']);
    });
  });

  describe('smaller protocol points', () => {
    it('relays the final response after an unsolicited 100 Continue (RFC 9110 section 15.2), and keeps the connection', async () => {
      await serve();
      const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
      const hints = 'HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n';
      upstream.respond = () => `${interim}${hints}HTTP/1.1 100 Continue\r\nx-odd: 1\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal`;
      const get = await rawRequest(port, '/unsolicited');
      expect(get.status).to.equal(200);
      expect(get.body).to.equal('final');
      // Early, while the body is still on its way, as a server that ignores Expect would send it.
      upstream.onHead = () => interim;
      upstream.respond = () => 'HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone';
      const post = await rawExchange(port, `${raw('POST /early HTTP/1.1', 'Host: a.test', 'Connection: close', 'Content-Length: 4')}body`);
      expect(post.status).to.equal(201);
      expect(bodyOf(post)).to.equal('done');
      expect(upstream.requests.map((r) => r.connection)).to.deep.equal([0, 0]);
      expect(await metricValue(t.admin, 'hotconf_upstream_requests_total', { code_class: 'error' })).to.equal(0);
    });

    it("answers TRACE with 405 unless a route's methods allow it", async () => {
      await serve({
        routes: [
          { path_prefix: '/debug', methods: ['TRACE'], respond: { status: 200, body: 'traced' } },
          { path_prefix: '/', upstream: 'api' },
        ],
      });
      const refused = await rawRequest(port, '/x', {}, 'TRACE');
      expect(refused.status).to.equal(405);
      expect(refused.data).to.match(/\r\nallow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\n/i);
      expect(upstream.requests).to.deep.equal([]);
      expect((await rawRequest(port, '/debug', {}, 'TRACE')).body).to.equal('traced');
    });

    it('serves HEAD on a GET-only route and answers 405 with Allow to a method no route allows', async () => {
      await serve({
        routes: [
          { path_prefix: '/static', methods: ['GET'], respond: { status: 200, body: 'static body' } },
          { path_prefix: '/api', methods: ['GET', 'POST'], upstream: 'api' },
        ],
      });
      const head = await rawRequest(port, '/static/x', {}, 'HEAD');
      expect(head.status).to.equal(200);
      expect(head.data).to.match(/\r\ncontent-length: 11\r\n/i);
      expect(head.body).to.equal('');
      expect((await rawRequest(port, '/api/x', {}, 'HEAD')).status).to.equal(200);
      expect(requestLine(0)).to.equal('HEAD /api/x HTTP/1.1');
      const put = await rawRequest(port, '/static/x', {}, 'PUT');
      expect(put.status).to.equal(405);
      expect(put.data).to.match(/\r\nallow: GET, HEAD\r\n/i);
      expect((await rawRequest(port, '/api', {}, 'DELETE')).data).to.match(/\r\nallow: GET, HEAD, POST\r\n/i);
      expect((await rawRequest(port, '/other', {}, 'PUT')).status).to.equal(404);
      expect(upstream.requests).to.have.length(1);
    });

    it('closes client connections over max_connections as they arrive, and serves again once one ends', async () => {
      await serve({ listener: { max_connections: 2 } });
      const open = async (): Promise<Socket> => {
        const socket = connect(port, '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        return socket;
      };
      const held = [await open(), await open()];
      for (const socket of held) socket.write('GET /held HTTP/1.1\r\nHost: a.test\r\n\r\n');
      await waitFor('both held connections answered', () => upstream.requests.length === 2);
      const refused = await rawExchange(port, raw('GET /third HTTP/1.1', 'Host: a.test', 'Connection: close'));
      expect(refused.data).to.equal('');
      expect(upstream.requests).to.have.length(2);
      held[0]!.destroy();
      await waitFor('a slot free again', async () => (await rawRequest(port, '/fourth')).status === 200);
      held[1]!.destroy();
      expect(requestLine(upstream.requests.length - 1)).to.equal('GET /fourth HTTP/1.1');
    });
  });
});
