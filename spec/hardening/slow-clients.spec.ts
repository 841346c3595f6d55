import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { rawExchange } from '../../harness/raw-socket.js';
import { ByteLoggingUpstream } from '../../harness/raw-upstream.js';
import { echoJson, holding, proxyConfig, TestUpstream, type UpstreamHandler } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

/**
 * Slow clients against an upstream pool (issue 14, item 1): what a client that trickles its body
 * or never reads its response may hold, and that everyone else is still answered at once, or
 * told at once (503) that the upstream is saturated. Every bound is counted, never timed: the
 * legitimate request is sent while every slow client is still connected and still holding.
 */
describe('hardening: slow clients cannot starve an upstream pool', function () {
  this.timeout(60_000);

  let port: number;
  let t: TestDaemon;
  let base: string;

  async function serve(handler: UpstreamHandler, api: Record<string, unknown> = {}): Promise<TestUpstream> {
    const upstream = await TestUpstream.start({ handler });
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    t = await startDaemon(proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], ...api } } }));
    return upstream;
  }

  /** A raw connection that sent `payload` and then nothing; it records whether the server closed it. */
  async function slowClient(payload: string): Promise<{ socket: Socket; closed: () => boolean }> {
    const socket = connect(port, '127.0.0.1');
    onCleanup(() => socket.destroy());
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(payload);
    return { socket, closed: () => closed };
  }

  it('answers a legitimate request at once while 200 clients trickle request bodies into a 64-connection pool', async () => {
    // timeout_ms only bounds how long this spec takes to fail: before request buffering, the
    // legitimate request queued behind the trickling bodies and got a 504 at timeout_ms.
    const upstream = await serve(echoJson, { timeout_ms: 5000, body_idle_timeout_ms: 60_000 });
    const slow = [];
    for (let i = 0; i < 200; i += 1) {
      slow.push(await slowClient(`POST /upload/${i} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(10)}`));
    }
    await waitFor('every slow request arrived', () => t.daemon.reloader.active!.inflight === 200);

    const legit = await httpRequest(`${base}/legit`);
    expect(legit.status).to.equal(200);
    expect(JSON.parse(legit.body)).to.include({ url: '/legit' });
    // What the slow clients hold: their own connections and buffered bodies, no upstream request.
    expect(slow.filter((c) => c.closed())).to.deep.equal([]);
    expect(t.daemon.reloader.active!.inflight).to.equal(200);
    expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/legit']);
  });

  it('lets 200 clients trickling bodies over request_buffer_bytes hold at most half the pool, and answers a legitimate request at once', async () => {
    // queue_timeout_ms only bounds how long this spec takes to fail: without the share, the
    // streaming bodies took all 64 connections and the legitimate request waited for its 503.
    const upstream = await serve(echoJson, { request_buffer_bytes: 1024, body_idle_timeout_ms: 60_000, queue_timeout_ms: 30_000 });
    const slow = [];
    for (let i = 0; i < 200; i += 1) {
      slow.push(await slowClient(`POST /upload/${i} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(2048)}`));
    }
    const slots = () => t.daemon.reloader.active!.upstreams().get('api')!.targets[0]!.pool.slots;
    await waitFor('every slow request streaming or queued', () => slots().streaming + slots().pending === 200);

    const legit = await httpRequest(`${base}/legit`);
    expect(legit.status).to.equal(200);
    expect(slow.filter((c) => c.closed())).to.deep.equal([]);
    expect(slots().streaming).to.equal(32);
    expect(slots().pending).to.equal(168);
    expect(upstream.requests.filter((r) => r.url.startsWith('/upload/'))).to.have.length(32);
    expect(upstream.requests.filter((r) => r.url === '/legit')).to.have.length(1);
  });

  it('sends a body that fits request_buffer_bytes only once complete, with Content-Length, and a larger one streamed', async () => {
    const upstream = await ByteLoggingUpstream.start();
    port = await freePort();
    t = await startDaemon(proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], request_buffer_bytes: 16 } } }));
    const chunked = (...chunks: string[]) => `${chunks.map((c) => `${c.length.toString(16)}\r\n${c}\r\n`).join('')}0\r\n\r\n`;
    const head = 'POST /small HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n';
    expect((await rawExchange(port, head + chunked('hello ', 'world'))).status).to.equal(200);
    expect(upstream.header(0, 'content-length')).to.deep.equal(['11']);
    expect(upstream.requests[0]!.chunked).to.equal(false);
    expect(upstream.requests[0]!.body.toString()).to.equal('hello world');

    const big = 'b'.repeat(40);
    expect((await rawExchange(port, head.replace('/small', '/big') + chunked(big.slice(0, 20), big.slice(20)))).status).to.equal(200);
    expect(upstream.requests[1]!.chunked).to.equal(true);
  });

  it('cuts a client whose body stalls for body_idle_timeout_ms with 408; nothing reached the upstream', async () => {
    const upstream = await serve(echoJson, { body_idle_timeout_ms: 100 });
    const exchange = await rawExchange(port, 'POST /stalls HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n0123456789');
    expect(exchange.status).to.equal(408);
    expect(exchange.data).to.contain('request body idle');
    expect(upstream.requests).to.deep.equal([]);
  });

  it('cuts a client whose streamed body (over request_buffer_bytes) stalls with 408, and aborts the upstream request', async () => {
    const upstream = await serve(echoJson, { request_buffer_bytes: 16, body_idle_timeout_ms: 100 });
    const exchange = await rawExchange(port, `POST /streams HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n${'s'.repeat(40)}`);
    expect(exchange.status).to.equal(408);
    expect(exchange.data).to.contain('request body idle');
    await waitFor('the upstream request aborted', () => upstream.requests[0]?.aborted);
  });

  it('cuts a client that stops reading a large response after body_idle_timeout_ms, which frees its upstream connection', async () => {
    const big = Buffer.alloc(64 * 1024 * 1024, 'z');
    const upstream = await serve(
      (req, res, received) => {
        if (req.url !== '/big') return echoJson(req, res, received);
        req.resume();
        res.end(big);
      },
      { pool: { connections: 1 }, body_idle_timeout_ms: 200, timeout_ms: 30_000 },
    );
    const reader = await slowClient('GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n');
    reader.socket.pause();
    await waitFor('the large response under way', () => upstream.requests.length === 1);
    // The paused client never reads the close; the daemon's side shows it: no request in flight,
    // and the upstream connection the response held is closed (its response was not finished).
    await waitFor('the non-reading client cut', () => t.daemon.reloader.active!.inflight === 0, 20_000);
    await waitFor('its upstream connection closed', () => upstream.openConnections === 0);
    const legit = await httpRequest(`${base}/legit`);
    expect(legit.status).to.equal(200);
    expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/big', '/legit']);
  });

  describe('a busy target (all connections in use)', () => {
    it('queues up to max_pending_requests and answers 503 at once beyond, without contacting the upstream', async () => {
      const { handler, held } = holding();
      const upstream = await serve(handler, { pool: { connections: 1 }, max_pending_requests: 1, queue_timeout_ms: 30_000 });
      const first = httpRequest(`${base}/first`);
      await waitFor('the first request held upstream', () => held.length === 1);
      const second = httpRequest(`${base}/second`);
      await waitFor('the second request queued', () => t.daemon.reloader.active!.upstreams().get('api')!.targets[0]!.pool.slots.pending === 1);
      const third = await httpRequest(`${base}/third`);
      expect(third.status).to.equal(503);
      expect(JSON.parse(third.body)).to.deep.equal({ error: 'upstream queue full', upstream: 'api' });
      expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/first']);

      held[0]!.end('one');
      await waitFor('the queued request sent', () => held.length === 2);
      held[1]!.end('two');
      expect((await first).body).to.equal('one');
      expect((await second).body).to.equal('two');
    });

    it('answers 503 to a request that waited queue_timeout_ms, and the queue is empty after', async () => {
      const { handler, held } = holding();
      const upstream = await serve(handler, { pool: { connections: 1 }, queue_timeout_ms: 50 });
      const first = httpRequest(`${base}/first`);
      await waitFor('the first request held upstream', () => held.length === 1);
      const waited = await httpRequest(`${base}/waits`);
      expect(waited.status).to.equal(503);
      expect(JSON.parse(waited.body)).to.deep.equal({ error: 'upstream queue timeout', upstream: 'api' });
      expect(t.daemon.reloader.active!.upstreams().get('api')!.targets[0]!.pool.slots.pending).to.equal(0);
      held[0]!.end('one');
      expect((await first).status).to.equal(200);
      expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/first']);
    });

    it('drops a queued request whose client left, and hands the connection to the next one', async () => {
      const { handler, held } = holding();
      const upstream = await serve(handler, { pool: { connections: 1 }, queue_timeout_ms: 30_000 });
      const first = httpRequest(`${base}/first`);
      await waitFor('the first request held upstream', () => held.length === 1);
      const leaving = await slowClient('GET /leaves HTTP/1.1\r\nHost: a.test\r\n\r\n');
      const slots = () => t.daemon.reloader.active!.upstreams().get('api')!.targets[0]!.pool.slots;
      await waitFor('the leaving request queued', () => slots().pending === 1);
      leaving.socket.destroy();
      await waitFor('the leaving request dropped', () => slots().pending === 0);
      const next = httpRequest(`${base}/next`);
      await waitFor('the next request queued', () => slots().pending === 1);
      held[0]!.end('one');
      await waitFor('the next request sent', () => held.length === 2);
      held[1]!.end('two');
      expect((await first).body).to.equal('one');
      expect((await next).body).to.equal('two');
      expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/first', '/next']);
      expect(slots().active).to.equal(0);
    });
  });
});
