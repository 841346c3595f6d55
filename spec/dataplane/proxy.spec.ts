import { createHash, randomBytes } from 'node:crypto';
import { type IncomingMessage, request } from 'node:http';
import { Socket } from 'node:net';
import { expect } from 'chai';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { hang, proxyConfig, streamEcho, TestUpstream, type UpstreamHandler } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

async function proxyTo(
  upstreams: Record<string, Record<string, unknown>>,
  routes?: Record<string, unknown>[],
  extra?: Record<string, unknown>,
  listener?: Record<string, unknown>,
): Promise<{ d: TestDaemon; base: string; port: number }> {
  const port = await freePort();
  const d = await startDaemon(proxyConfig({ port, upstreams, routes, extra, listener }));
  return { d, base: `http://127.0.0.1:${port}`, port };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A proxy to one upstream (`handler`: default echo), tracing to a fresh OTLP receiver. */
async function tracedProxy(handler?: UpstreamHandler) {
  const receiver = await OtlpReceiver.start();
  const upstream = await TestUpstream.start(handler ? { handler } : {});
  const tracing = { exporter: 'otlp-http', endpoint: receiver.url, service_name: 'proxy-spec', batch: { scheduled_delay_ms: 20 } };
  return { receiver, upstream, ...(await proxyTo({ api: { targets: [upstream.origin] } }, undefined, { tracing })) };
}

/** A raw client sends GET /gone to the listener on `port` and disconnects once `upstream` has it. */
async function leaveMidRequest(port: number, upstream: TestUpstream): Promise<void> {
  const socket = new Socket();
  await new Promise<void>((resolve) => socket.connect(port, '127.0.0.1', resolve));
  socket.write(`GET /gone HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`);
  await waitFor('the request at the upstream', () => upstream.requests.length === 1);
  socket.destroy();
}

/** Targets' health as the active generation sees it. */
function healthOf(d: TestDaemon, upstream = 'api'): boolean[] {
  return d.daemon.reloader
    .active!.upstreams()
    .get(upstream)!
    .targets.map((t) => t.healthy);
}

describe('proxy', () => {
  describe('fidelity', () => {
    it('preserves method, path, query and headers, drops hop-by-hop headers and adds x-forwarded-*', async () => {
      const upstream = await TestUpstream.start();
      // The client is a trusted proxy here, so its x-forwarded-for is extended (hostile-client.spec.ts: untrusted).
      const { base, port } = await proxyTo({ api: { targets: [upstream.origin] } }, undefined, undefined, { trusted_proxies: ['127.0.0.1'] });
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(
          `${base}/a/b%20c?x=1&y=%2F`,
          {
            method: 'PUT',
            agent: false,
            headers: {
              'x-custom': 'v1',
              connection: 'keep-alive, x-hop',
              'x-hop': 'secret',
              'keep-alive': 'timeout=5',
              'x-forwarded-for': '10.0.0.1',
              'content-type': 'text/plain',
            },
          },
          resolve,
        );
        req.on('error', reject);
        req.setHeader('x-multi', ['one', 'two']);
        req.end('body!');
      });
      res.resume();
      await new Promise((resolve) => res.on('end', resolve));
      expect(res.statusCode).to.equal(200);
      const seen = upstream.requests[0]!;
      expect(seen.method).to.equal('PUT');
      expect(seen.url).to.equal('/a/b%20c?x=1&y=%2F');
      expect(seen.headers).to.include({
        'x-custom': 'v1',
        'x-multi': 'one, two',
        'content-type': 'text/plain',
        'content-length': '5',
        host: `127.0.0.1:${port}`,
      });
      expect(seen.headers).to.not.have.any.keys('x-hop', 'keep-alive', 'via', 'forwarded');
      expect(seen.headers).to.include({ 'x-forwarded-for': '10.0.0.1, 127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': `127.0.0.1:${port}` });
    });

    it('relays the status and headers of the response minus hop-by-hop ones', async () => {
      const upstream = await TestUpstream.start({
        handler: (_req, res) => {
          res.setHeader('set-cookie', ['a=1', 'b=2']);
          res.setHeader('x-resp', 'r');
          res.setHeader('x-resp-hop', 'h');
          res.setHeader('connection', 'x-resp-hop');
          res.writeHead(201, { 'content-type': 'text/plain' });
          res.end('created');
        },
      });
      const { base } = await proxyTo({ api: { targets: [upstream.origin] } });
      const res = await httpRequest(`${base}/things`, { method: 'POST', body: '{}' });
      expect(res.status).to.equal(201);
      expect(res.body).to.equal('created');
      expect(res.headers['set-cookie']).to.deep.equal(['a=1', 'b=2']);
      expect(res.headers).to.include({ 'x-resp': 'r', 'content-type': 'text/plain' });
      expect(res.headers).to.not.have.property('x-resp-hop');
    });

    it('adds an RFC 7239 forwarded header, or via, when configured', async () => {
      const upstream = await TestUpstream.start();
      const trusted = { trusted_proxies: ['127.0.0.1'] };
      const forwarded = await proxyTo({ api: { targets: [upstream.origin], forwarded_header: 'forwarded' } }, undefined, undefined, trusted);
      await httpRequest(`${forwarded.base}/f`, { headers: { forwarded: 'for=10.0.0.9' } });
      expect(upstream.requests[0]!.headers.forwarded).to.equal(`for=10.0.0.9, for=127.0.0.1;host="127.0.0.1:${forwarded.port}";proto=http`);
      expect(upstream.requests[0]!.headers).to.not.have.property('via');

      await forwarded.d.apply(
        proxyConfig({ port: forwarded.port, upstreams: { api: { targets: [upstream.origin], forwarded_header: 'via' } }, listener: trusted }),
      );
      await httpRequest(`${forwarded.base}/v`);
      expect(upstream.requests[1]!.headers.via).to.equal('1.1 hotconf');
      expect(upstream.requests[1]!.headers).to.not.have.property('forwarded');
    });

    it('strips the route prefix when strip_prefix is set', async () => {
      const upstream = await TestUpstream.start();
      const { base } = await proxyTo({ api: { targets: [upstream.origin] } }, [{ path_prefix: '/api', upstream: 'api', strip_prefix: true }]);
      await httpRequest(`${base}/api/users?q=1`);
      await httpRequest(`${base}/api`);
      expect(upstream.requests.map((r) => r.url)).to.deep.equal(['/users?q=1', '/']);
    });

    it('streams both bodies: each request chunk comes back before the next is sent', async () => {
      const upstream = await TestUpstream.start({ handler: streamEcho });
      // Request buffering off (issue 14 buffers small bodies by default): every body streams.
      const { base } = await proxyTo({ api: { targets: [upstream.origin], request_buffer_bytes: 0 } });
      const received: Buffer[] = [];
      const req = request(`${base}/echo`, { method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } });
      const response = new Promise<IncomingMessage>((resolve, reject) => {
        req.on('response', resolve);
        req.on('error', reject);
      });
      req.flushHeaders();
      const rounds = ['ping-1;', 'ping-2;', 'ping-3;', 'ping-4;', 'ping-5;'];
      req.write(rounds[0]);
      const res = await response;
      res.on('data', (chunk: Buffer) => received.push(chunk));
      const ended = new Promise((resolve) => res.on('end', resolve));
      for (const [i, chunk] of rounds.entries()) {
        if (i > 0) req.write(chunk);
        // Proxying that buffered either body would never echo this chunk before the request ended.
        await waitFor(`echo of ${chunk}`, () => Buffer.concat(received).toString().endsWith(chunk), 20_000);
      }
      req.end();
      await ended;
      expect(Buffer.concat(received).toString()).to.equal(rounds.join(''));
    });

    it('relays a 32 MiB body to the upstream and back intact', async () => {
      const upstream = await TestUpstream.start({ handler: streamEcho });
      const { base } = await proxyTo({ api: { targets: [upstream.origin] } });
      const payload = randomBytes(32 * 1024 * 1024);
      const res = await new Promise<Buffer>((resolve, reject) => {
        const req = request(`${base}/big`, { method: 'POST', agent: false, headers: { 'content-length': String(payload.byteLength) } }, (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve(Buffer.concat(chunks)));
          r.on('error', reject);
        });
        req.on('error', reject);
        req.end(payload);
      });
      expect(res.byteLength).to.equal(payload.byteLength);
      expect(sha256(res)).to.equal(sha256(payload));
      expect(upstream.requests[0]!.headers['content-length']).to.equal(String(payload.byteLength));
    });
  });

  describe('load balancing', () => {
    it('spreads requests evenly in round-robin order', async () => {
      const upstreams = await Promise.all([TestUpstream.start(), TestUpstream.start(), TestUpstream.start()]);
      const { base } = await proxyTo({ api: { targets: upstreams.map((u) => u.origin), load_balancing: 'round_robin' } });
      for (let i = 0; i < 30; i += 1) expect((await httpRequest(`${base}/rr/${i}`)).status).to.equal(200);
      expect(upstreams.map((u) => u.requests.length)).to.deep.equal([10, 10, 10]);
      expect(upstreams[0]!.requests.map((r) => r.url).slice(0, 3)).to.deep.equal(['/rr/0', '/rr/3', '/rr/6']);
    });

    it('sends least_request traffic away from a target with a request in flight', async () => {
      const busy = await TestUpstream.start({ handler: hang });
      const idle = await TestUpstream.start();
      const { base } = await proxyTo({ api: { targets: [busy.origin, idle.origin], load_balancing: 'least_request' } });
      const held = httpRequest(`${base}/held`).catch(() => undefined);
      await waitFor('the held request at the busy target', () => busy.requests.length === 1);
      for (let i = 0; i < 10; i += 1) await httpRequest(`${base}/free/${i}`);
      expect(idle.requests).to.have.length(10);
      expect(busy.requests).to.have.length(1);
      await busy.close();
      await held;
    });

    it('uses every healthy target with random balancing', async () => {
      const upstreams = await Promise.all([TestUpstream.start(), TestUpstream.start()]);
      const { base } = await proxyTo({ api: { targets: upstreams.map((u) => u.origin), load_balancing: 'random' } });
      for (let i = 0; i < 60; i += 1) await httpRequest(`${base}/r`);
      expect(upstreams[0]!.requests.length + upstreams[1]!.requests.length).to.equal(60);
      expect(upstreams[0]!.requests.length).to.be.greaterThan(0);
      expect(upstreams[1]!.requests.length).to.be.greaterThan(0);
    });
  });

  describe('failures', () => {
    it('answers 503 with a JSON body, without trying any target, when every target is unhealthy', async () => {
      const upstreams = await Promise.all([TestUpstream.start(), TestUpstream.start()]);
      for (const u of upstreams) u.healthStatus = 503;
      const { d, base } = await proxyTo({ api: { targets: upstreams.map((u) => u.origin), health_check: { interval_ms: 20, unhealthy_threshold: 1 } } });
      await waitFor('both targets unhealthy', () => healthOf(d).every((h) => !h));
      const res = await httpRequest(`${base}/x`);
      expect(res.status).to.equal(503);
      expect(res.headers['content-type']).to.equal('application/json');
      expect(JSON.parse(res.body)).to.deep.equal({ error: 'no healthy upstream target', upstream: 'api' });
      expect(upstreams.map((u) => u.requests.length)).to.deep.equal([0, 0]);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total')).to.equal(0);
    });

    it('retries a refused connection on another target, body included', async () => {
      const refused = await freePort();
      const live = await TestUpstream.start();
      const { d, base } = await proxyTo({ api: { targets: [`http://127.0.0.1:${refused}`, live.origin], retries: 1 } });
      const res = await httpRequest(`${base}/retry`, { method: 'POST', body: 'payload' });
      expect(res.status).to.equal(200);
      expect(JSON.parse(res.body)).to.include({ url: '/retry', body_bytes: 7 });
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { target: `http://127.0.0.1:${refused}`, code_class: 'error' })).to.equal(1);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { target: live.origin, code_class: '2xx' })).to.equal(1);
    });

    it('answers 502 when the connection is refused and no retry is left', async () => {
      const refused = await freePort();
      const live = await TestUpstream.start();
      const { d, base } = await proxyTo({ api: { targets: [`http://127.0.0.1:${refused}`, live.origin], retries: 0 } });
      const res = await httpRequest(`${base}/no-retry`);
      expect(res.status).to.equal(502);
      expect(JSON.parse(res.body)).to.deep.equal({ error: 'upstream connect error', upstream: 'api' });
      expect(live.requests).to.have.length(0);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { code_class: 'error' })).to.equal(1);
    });

    it('answers 502 when every target refuses, after trying each once', async () => {
      const ports = [await freePort(), await freePort()];
      const { d, base } = await proxyTo({ api: { targets: ports.map((p) => `http://127.0.0.1:${p}`), retries: 5 } });
      const res = await httpRequest(`${base}/all-refuse`);
      expect(res.status).to.equal(502);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { code_class: 'error' })).to.equal(2);
    });

    it('answers 504 when the upstream does not answer within timeout_ms, and aborts the upstream request', async () => {
      const slow = await TestUpstream.start({ handler: hang });
      const { base } = await proxyTo({ api: { targets: [slow.origin], timeout_ms: 200 } });
      const res = await httpRequest(`${base}/slow`);
      expect(res.status).to.equal(504);
      expect(JSON.parse(res.body)).to.deep.equal({ error: 'upstream timeout', upstream: 'api' });
      await waitFor('the upstream request aborted', () => slow.requests[0]?.aborted);
    });

    it('never retries after the request reached a target that answered', async () => {
      const handler: UpstreamHandler = (req, res) => {
        req.resume();
        req.on('end', () => res.socket?.destroy());
      };
      const resets = await TestUpstream.start({ handler });
      const other = await TestUpstream.start();
      const { base } = await proxyTo({ api: { targets: [resets.origin, other.origin], retries: 3 } });
      const res = await httpRequest(`${base}/once`, { method: 'POST', body: 'not twice' });
      expect(res.status).to.equal(502);
      expect(resets.requests).to.have.length(1);
      expect(other.requests).to.have.length(0);
    });

    it('aborts the upstream request when the client disconnects', async () => {
      const slow = await TestUpstream.start({ handler: hang });
      const { d, port } = await proxyTo({ api: { targets: [slow.origin] } });
      await leaveMidRequest(port, slow);
      await waitFor('the upstream request aborted', () => slow.requests[0]!.aborted);
      await waitFor('no request in flight', () => d.daemon.reloader.active!.inflight === 0);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { code_class: 'error' })).to.equal(1);
    });
  });

  describe('tracing', () => {
    it('sends traceparent upstream from a client span parented on the server span', async () => {
      const { receiver, upstream, base } = await tracedProxy();
      const traceId = randomBytes(16).toString('hex');
      const callerSpan = randomBytes(8).toString('hex');
      const res = await httpRequest(`${base}/traced?q=1`, { headers: { traceparent: `00-${traceId}-${callerSpan}-01` } });
      expect(res.status).to.equal(200);
      const spans = await waitFor('server and client spans', () => {
        const ofTrace = receiver.spans.filter((s) => s.traceId === traceId);
        return ofTrace.length >= 2 ? ofTrace : undefined;
      });
      const server = spans.find((s) => s.kind === 2)!;
      const client = spans.find((s) => s.kind === 3)!;
      expect(server.parentSpanId).to.equal(callerSpan);
      expect(client.parentSpanId).to.equal(server.spanId);
      expect(client.name).to.equal('GET');
      expect(client.attributes).to.include({
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': upstream.port,
        'url.full': `${upstream.origin}/traced?q=1`,
        'http.response.status_code': 200,
      });
      expect(upstream.requests[0]!.headers.traceparent).to.equal(`00-${traceId}-${client.spanId}-01`);
    });

    it('names the target the attempt went to in url.full and server.address, also for a path starting with //', async () => {
      const { receiver, upstream, base } = await tracedProxy();
      expect((await httpRequest(`${base}//evil.example/x?q=1`)).status).to.equal(200);
      // Repeated slashes are merged (issue 14): the upstream gets the path the routes matched.
      expect(upstream.requests[0]!.url).to.equal('/evil.example/x?q=1');
      const client = await waitFor('the client span', () => receiver.spans.find((s) => s.kind === 3));
      expect(client.attributes).to.include({
        'server.address': '127.0.0.1',
        'server.port': upstream.port,
        'url.full': `${upstream.origin}/evil.example/x?q=1`,
      });
    });

    it("reports a method outside the conventions' list as _OTHER on the client span, as on the server span", async () => {
      const { receiver, upstream, base } = await tracedProxy();
      expect((await httpRequest(`${base}/cache/x`, { method: 'PURGE' })).status).to.equal(200);
      expect(upstream.requests[0]!.method).to.equal('PURGE');
      const spans = await waitFor('server and client spans', () => (receiver.spans.length >= 2 ? receiver.spans : undefined));
      const server = spans.find((s) => s.kind === 2)!;
      const client = spans.find((s) => s.kind === 3)!;
      expect(server.name).to.equal('HTTP /');
      expect(client.name).to.equal('HTTP');
      for (const span of [server, client]) expect(span.attributes).to.include({ 'http.request.method': '_OTHER', 'http.request.method_original': 'PURGE' });
    });

    it("passes a request's trace context upstream as it is when the request is not recorded, and sends none without one", async () => {
      const upstream = await TestUpstream.start();
      const { base } = await proxyTo({ api: { targets: [upstream.origin] } });
      const caller = `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
      await httpRequest(`${base}/off`, { headers: { traceparent: caller, tracestate: 'vendor=1' } });
      expect(upstream.requests[0]!.headers).to.include({ traceparent: caller, tracestate: 'vendor=1' });
      await httpRequest(`${base}/none`);
      expect(upstream.requests[1]!.headers).to.not.have.any.keys('traceparent', 'tracestate');
    });

    it('sends an unsampled request its trace context with the sampled flag off, and exports no span for it', async () => {
      const receiver = await OtlpReceiver.start();
      const upstream = await TestUpstream.start();
      const tracing = { exporter: 'otlp-http', endpoint: receiver.url, service_name: 'proxy-spec', sample_ratio: 0, batch: { scheduled_delay_ms: 20 } };
      const { base } = await proxyTo({ api: { targets: [upstream.origin] } }, [{ path_prefix: '/', upstream: 'api' }], { tracing });
      await httpRequest(`${base}/unsampled`);
      expect(upstream.requests[0]!.headers.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      // A sampled caller is followed: its request is recorded, and its spans reach the receiver after the unsampled one's would have.
      const traceId = randomBytes(16).toString('hex');
      await httpRequest(`${base}/sampled`, { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
      await waitFor("the sampled request's spans", () => receiver.spans.filter((s) => s.traceId === traceId).length === 2);
      expect(receiver.spans.map((s) => s.traceId)).to.deep.equal([traceId, traceId]);
    });

    it('records no response status on the server span of a request whose client left before any response', async () => {
      const { receiver, upstream: slow, port } = await tracedProxy(hang);
      await leaveMidRequest(port, slow);
      const server = await waitFor('the server span', () => receiver.spans.find((s) => s.kind === 2));
      expect(server.attributes).to.include({ 'error.type': 'aborted' });
      expect(server.attributes).to.not.have.property('http.response.status_code');
    });
  });
});
