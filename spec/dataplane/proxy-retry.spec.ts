import { createServer } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { INVALID_SPAN_CONTEXT, trace } from '@opentelemetry/api';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { ByteLoggingUpstream, type FirstByteAction, type FirstByteHook } from '../../harness/raw-upstream.js';
import { hang, proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { UpstreamSchema } from '../../lib/config/schema.js';
import type { RequestContext } from '../../lib/dataplane/ports.js';
import { ProxyTarget, proxyRequest, Upstream } from '../../lib/dataplane/proxy/proxy.js';
import { TrustedProxies } from '../../lib/dataplane/proxy/trusted-proxies.js';
import { normalizeTarget } from '../../lib/dataplane/route/normalize.js';
import { type UpstreamPool, upstreamPoolFactory, upstreamPoolSettings } from '../../lib/resources/upstream.js';

/**
 * Issue 13: a request sent on a kept-alive upstream connection that the upstream closes just as
 * the request arrives (its idle timer fired) is sent again, once, on a new connection, when that
 * is safe. The race is made deterministic: the upstream closes the connection on the first byte
 * of the request it chose, before answering anything.
 */
/** An upstream that closes a connection on the first byte of the requests `onFirstByte` picks. */
function closing(onFirstByte: FirstByteHook): Promise<ByteLoggingUpstream> {
  return ByteLoggingUpstream.start({ onFirstByte });
}

/** The second request of the first connection, the first to reuse it, is dropped there (`how`). */
function droppingFirstReuse(how: Exclude<FirstByteAction, 'answer'>): FirstByteHook {
  return (connection, request) => (connection === 0 && request === 1 ? how : 'answer');
}

describe('proxy: retry on a reused connection that died', () => {
  async function serve(upstream: ByteLoggingUpstream, api: Record<string, unknown> = {}): Promise<{ d: TestDaemon; base: string }> {
    const port = await freePort();
    const d = await startDaemon(proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], ...api } } }));
    return { d, base: `http://127.0.0.1:${port}` };
  }

  const retries = (d: TestDaemon, reason = 'reused_connection_closed') => metricValue(d.admin, 'hotconf_upstream_retries_total', { reason });

  for (const how of ['close', 'reset'] as const) {
    it(`sends a GET again on a new connection when the reused one is ${how === 'close' ? 'closed' : 'reset'} before any response byte`, async () => {
      const upstream = await closing(droppingFirstReuse(how));
      const { d, base } = await serve(upstream);
      expect((await httpRequest(`${base}/first`)).status).to.equal(200);
      const second = await httpRequest(`${base}/second`);
      expect(second.status).to.equal(200);
      expect(second.body).to.equal('ok');
      expect(upstream.started).to.deep.equal([
        { connection: 0, request: 0, action: 'answer' },
        { connection: 0, request: 1, action: how },
        { connection: 1, request: 0, action: 'answer' },
      ]);
      expect(await retries(d)).to.equal(1);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { code_class: 'error' })).to.equal(1);
      expect(await metricValue(d.admin, 'hotconf_upstream_requests_total', { code_class: '2xx' })).to.equal(2);
    });
  }

  it('sends an idempotent PUT with its buffered body again', async () => {
    const upstream = await closing(droppingFirstReuse('close'));
    const { d, base } = await serve(upstream);
    await httpRequest(`${base}/first`);
    const put = await httpRequest(`${base}/put`, { method: 'PUT', body: 'the same twice' });
    expect(put.status).to.equal(200);
    expect(upstream.connections).to.equal(2);
    expect(await retries(d)).to.equal(1);
  });

  it('answers 502 to a POST whose body went out on the reused connection, without sending it again', async () => {
    const upstream = await closing(droppingFirstReuse('close'));
    const { d, base } = await serve(upstream, { retries: 3 });
    await httpRequest(`${base}/first`);
    const post = await httpRequest(`${base}/post`, { method: 'POST', body: 'not twice' });
    expect(post.status).to.equal(502);
    expect(JSON.parse(post.body)).to.deep.equal({ error: 'upstream error', upstream: 'api' });
    expect(upstream.started).to.have.length(2);
    expect(await retries(d)).to.equal(0);
  });

  it('never retries with retries: 0', async () => {
    const upstream = await closing(droppingFirstReuse('reset'));
    const { d, base } = await serve(upstream, { retries: 0 });
    await httpRequest(`${base}/first`);
    expect((await httpRequest(`${base}/second`)).status).to.equal(502);
    expect(upstream.started).to.have.length(2);
    expect(await retries(d)).to.equal(0);
  });

  it('retries once only, and never a request that died on a new connection', async () => {
    // Everything after the very first request is dropped: the retry, on a new connection, too.
    const upstream = await closing((connection, request) => (connection === 0 && request === 0 ? 'answer' : 'close'));
    const { d, base } = await serve(upstream, { retries: 5 });
    await httpRequest(`${base}/first`);
    expect((await httpRequest(`${base}/second`)).status).to.equal(502);
    expect(upstream.started.map((s) => [s.connection, s.request])).to.deep.equal([
      [0, 0],
      [0, 1],
      [1, 0],
    ]);
    expect(await retries(d)).to.equal(1);
    // A first request on a new connection that dies is an upstream failure, not a stale connection.
    expect((await httpRequest(`${base}/third`)).status).to.equal(502);
    expect(upstream.started).to.have.length(4);
    expect(await retries(d)).to.equal(1);
  });
});

describe('proxy: the outcome it records for the access log', () => {
  /** A front server that proxies every request with `proxyRequest` to `targets`, keeping each request's context. */
  async function front(targets: string[], settings: Record<string, unknown> = {}) {
    const config = UpstreamSchema.parse({ targets, ...settings });
    const proxyTargets = targets.map((origin) => {
      const factory = upstreamPoolFactory(upstreamPoolSettings(origin, config));
      const pool = factory.create() as UpstreamPool;
      onCleanup(() => factory.destroy?.(pool));
      return new ProxyTarget(pool, undefined);
    });
    const upstream = new Upstream({ name: 'api', config, targets: proxyTargets, tracer: trace.getTracer('spec') });
    onCleanup(() => upstream.close());
    const route = { upstream, pathPrefix: '/', stripPrefix: false, trustedProxies: new TrustedProxies([]) };
    const contexts: RequestContext[] = [];
    const server = createServer((req, res) => {
      const ctx: RequestContext = {
        generation: 1,
        listener: 'spec',
        target: normalizeTarget(req.url),
        route: undefined,
        span: trace.wrapSpanContext(INVALID_SPAN_CONTEXT),
        startedAt: process.hrtime.bigint(),
        outcome: { attempts: 0 },
      };
      contexts.push(ctx);
      proxyRequest(route, req, res, ctx);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise((resolve) => server.close(resolve)));
    onCleanup(() => server.closeAllConnections());
    return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, contexts };
  }

  it('names the upstream, the target of the last attempt and the attempts, and no end for a complete response after a retry', async () => {
    const upstream = await closing(droppingFirstReuse('close'));
    const { base, contexts } = await front([upstream.origin]);
    await httpRequest(`${base}/first`);
    expect((await httpRequest(`${base}/second`)).status).to.equal(200);
    const port = new URL(upstream.origin).port;
    expect(contexts.map((c) => c.outcome)).to.deep.equal([
      { upstream: 'api', target: `127.0.0.1:${port}`, attempts: 1 },
      { upstream: 'api', target: `127.0.0.1:${port}`, attempts: 2 },
    ]);
  });

  it('says upstream_error after a connect error on every target, and timeout at timeout_ms', async () => {
    const refused = [await freePort(), await freePort()].map((p) => `http://127.0.0.1:${p}`);
    const { base, contexts } = await front(refused, { retries: 1 });
    expect((await httpRequest(`${base}/refused`)).status).to.equal(502);
    expect(contexts[0]!.outcome).to.deep.include({ attempts: 2, ended: 'upstream_error' });
    expect([refused[0], refused[1]].map((o) => new URL(o!).host)).to.include(contexts[0]!.outcome.target);

    const slow = await TestUpstream.start({ handler: hang });
    const timed = await front([slow.origin], { timeout_ms: 100 });
    expect((await httpRequest(`${timed.base}/slow`)).status).to.equal(504);
    expect(timed.contexts[0]!.outcome).to.deep.include({ attempts: 1, ended: 'timeout' });
  });

  it('says client_aborted when the client leaves before the response', async () => {
    const slow = await TestUpstream.start({ handler: hang });
    const { base, contexts } = await front([slow.origin]);
    const socket = connect(Number(new URL(base).port), '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /gone HTTP/1.1\r\nhost: a.test\r\n\r\n');
    await waitFor('the request at the upstream', () => slow.requests.length === 1);
    socket.destroy();
    await waitFor('the outcome recorded', () => contexts[0]?.outcome.ended !== undefined);
    expect(contexts[0]!.outcome).to.deep.include({ attempts: 1, ended: 'client_aborted' });
  });
});
