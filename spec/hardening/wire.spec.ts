import { expect } from 'chai';
import { basicConfig, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { rawExchange, rawRequest } from '../../harness/raw-socket.js';
import { echoJson, proxyConfig, TestUpstream, type UpstreamHandler } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import type { HttpLimits } from '../../lib/net/limits.js';

/** Small limits so every bad client is cut within a bounded, short exchange. */
const LIMITS: Partial<HttpLimits> = {
  headersTimeoutMs: 300,
  requestTimeoutMs: 600,
  timeoutCheckIntervalMs: 50,
  maxHeaderBytes: 4096,
  maxBodyBytes: 1024,
};

describe('hardening: bad input on the wire', function () {
  this.timeout(30_000);

  let t: TestDaemon;
  let web: number;
  let adminPort: number;

  beforeEach(async () => {
    web = await freePort();
    t = await startDaemon(basicConfig({ port: web }), { httpLimits: LIMITS });
    adminPort = t.daemon.adminAddress!.port;
  });

  /** Both servers still answer normally. */
  async function expectHealthy(): Promise<void> {
    expect((await httpRequest(`${t.admin}/healthz`)).status).to.equal(200);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
  }

  for (const target of ['listener', 'admin API'] as const) {
    describe(`the ${target}`, () => {
      const port = () => (target === 'listener' ? web : adminPort);
      const post = target === 'listener' ? '/' : '/reload';

      it('cuts a client that never finishes its request head (slowloris) with 408', async () => {
        const exchange = await rawExchange(port(), 'GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n');
        expect(exchange.status).to.equal(408);
        await expectHealthy();
      });

      it('cuts a client that never finishes its body', async () => {
        const exchange = await rawExchange(port(), `POST ${post} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789`);
        expect(exchange.data).to.match(/HTTP\/1\.1 408 Request Timeout\r\n/);
        await expectHealthy();
      });

      it('refuses a declared body over the limit with 413 and closes', async () => {
        const exchange = await rawExchange(port(), `POST ${post} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
        expect(exchange.status).to.equal(413);
        expect(exchange.data.toLowerCase()).to.contain('connection: close');
        await expectHealthy();
      });

      it('answers a malformed request line with 400 and closes', async () => {
        for (const line of [
          'GARBAGE\r\n\r\n',
          'GET / HTTP/9.9\r\n\r\n',
          'GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n',
          'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
        ]) {
          expect((await rawExchange(port(), line)).status, JSON.stringify(line)).to.equal(400);
        }
        await expectHealthy();
      });

      it('answers an oversized request head with 431 and closes', async () => {
        const exchange = await rawExchange(port(), `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(8192)}\r\n\r\n`);
        expect(exchange.status).to.equal(431);
        await expectHealthy();
      });
    });
  }

  it('the admin API stops reading a chunked POST body over its limit (413)', async () => {
    const chunk = 'x'.repeat(16 * 1024);
    const body = `${Array.from({ length: 8 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('')}0\r\n\r\n`;
    const exchange = await rawExchange(adminPort, `POST /reload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
    expect(exchange.status).to.equal(413);
    expect(t.logs.lines().filter((l) => l.msg === 'reload' && l.trigger === 'api')).to.deep.equal([]);
    await expectHealthy();
  });

  describe('proxy routes', () => {
    let upstream: TestUpstream;

    /** Proxy every path to one test upstream, the whole exchange bounded by `timeoutMs`; `api` adds upstream settings. */
    async function proxyTo(handler: UpstreamHandler, timeoutMs = 500, api: Record<string, unknown> = {}): Promise<void> {
      upstream = await TestUpstream.start({ handler });
      const config = proxyConfig({ port: web, upstreams: { api: { targets: [upstream.origin], timeout_ms: timeoutMs, ...api } } });
      expect((await t.apply(config)).result).to.equal('applied');
    }

    /** Nothing in flight, and both servers answer (the proxy too). */
    async function expectProxyHealthy(): Promise<void> {
      await waitFor('no request in flight', () => t.daemon.reloader.active!.inflight === 0);
      expect((await httpRequest(`${t.admin}/healthz`)).status).to.equal(200);
      const handler = upstream.handler;
      upstream.handler = echoJson;
      expect(JSON.parse((await httpRequest(`http://127.0.0.1:${web}/after`)).body)).to.include({ url: '/after' });
      upstream.handler = handler;
    }

    it('cuts a client that never finishes its body with 408, and aborts the upstream request it was streaming to', async () => {
      // The upstream answers only once the whole body arrived; its timeout is past the client's.
      // Streamed (request buffering off): a buffered body never reaches the upstream (slow-clients.spec.ts).
      await proxyTo(echoJson, 30_000, { request_buffer_bytes: 0 });
      const exchange = await rawExchange(web, 'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789');
      expect(exchange.status).to.equal(408);
      await waitFor('the upstream request aborted', () => upstream.requests[0]?.aborted);
      await expectProxyHealthy();
    });

    it('refuses a declared body over the limit with 413 before anything reaches the upstream', async () => {
      await proxyTo(echoJson);
      const exchange = await rawExchange(web, `POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
      expect(exchange.status).to.equal(413);
      expect(upstream.requests).to.deep.equal([]);
      await expectProxyHealthy();
    });

    it('cuts the client when the upstream stalls its body after the head (slowloris upstream), at timeout_ms', async () => {
      await proxyTo((req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
      });
      const exchange = await rawExchange(web, 'GET /stalls HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expect(exchange.status).to.equal(200);
      expect(exchange.data).to.contain('partial');
      // Chunked and never terminated: the client sees the cut, not a complete response.
      expect(exchange.data.endsWith('0\r\n\r\n')).to.equal(false);
      await waitFor('the upstream request aborted', () => upstream.requests[0]?.aborted);
      await expectProxyHealthy();
    });

    it('answers 502 to an upstream response head over the size limit', async () => {
      await proxyTo((req, res) => {
        req.resume();
        res.writeHead(200, { 'x-huge': 'h'.repeat(64 * 1024) });
        res.end('never relayed');
      });
      const res = await httpRequest(`http://127.0.0.1:${web}/huge`);
      expect(res.status).to.equal(502);
      expect(JSON.parse(res.body)).to.deep.equal({ error: 'upstream error', upstream: 'api' });
      await expectProxyHealthy();
    });
  });

  describe('routes', () => {
    beforeEach(async () => {
      const result = await t.apply({
        shutdown_timeout_ms: 1000,
        listeners: [
          {
            name: 'web',
            listen: `127.0.0.1:${web}`,
            routes: [
              { path_prefix: '/admin', host: 'internal.test', respond: { status: 200, body: 'internal' } },
              { path_prefix: '/api/', respond: { status: 200, body: 'api' } },
              { path_prefix: '/', respond: { status: 404, body: 'fallback' } },
            ],
          },
        ],
      });
      expect(result.result).to.equal('applied');
    });

    it('matches dot segments, encoded or not, after normalising them away: /api/../admin is /admin', async () => {
      for (const path of ['/api/../admin', '/api/%2e%2e/admin', '/api/%2E%2E/admin', '/api/.%2e/admin', '/api/./../admin', '/api/x/../../admin']) {
        // Not the /api/ route: an upstream would normalise the path and serve /admin.
        expect((await rawRequest(web, path, { host: 'public.test' })).body, path).to.equal('fallback');
        expect((await rawRequest(web, path, { host: 'internal.test' })).body, path).to.equal('internal');
      }
      // An encoded slash is not a separator: this stays a path under /api/.
      expect((await rawRequest(web, '/api/..%2fadmin', { host: 'internal.test' })).body).to.equal('api');
      expect((await rawRequest(web, '/api/x', { host: 'internal.test' })).body).to.equal('api');
    });

    it('matches hosts case-insensitively, with or without port and trailing dot', async () => {
      for (const host of ['internal.test', 'INTERNAL.TEST', 'Internal.Test:8080', 'internal.test.']) {
        expect((await rawRequest(web, '/admin', { host })).body, host).to.equal('internal');
      }
      for (const host of ['internal.test.evil', 'xinternal.test', 'internal.tes']) {
        expect((await rawRequest(web, '/admin', { host })).body, host).to.equal('fallback');
      }
    });

    it('rejects response headers that would inject a header or split the response, and keeps serving', async () => {
      for (const [name, value, path] of [
        ['x-a', 'b\r\nset-cookie: session=stolen', 'listeners.0.routes.0.respond.headers.x-a'],
        ['x-a', 'b\nset-cookie: session=stolen', 'listeners.0.routes.0.respond.headers.x-a'],
        ['x-a: b\r\nset-cookie', 'session=stolen', 'listeners.0.routes.0.respond.headers.x-a: b\r\nset-cookie'],
      ]) {
        const config = basicConfig({ port: web, body: 'injected' });
        (config.listeners as { routes: { respond: Record<string, unknown> }[] }[])[0]!.routes[0]!.respond.headers = { [name!]: value };
        const result = await t.apply(config);
        expect(result.result).to.equal('invalid');
        expect(result.errors!.map((e) => e.path)).to.include(path);
      }
      const res = await rawRequest(web, '/api/x');
      expect(res.body).to.equal('api');
      expect(res.data.toLowerCase()).to.not.contain('set-cookie');
    });
  });
});
