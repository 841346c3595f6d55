import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startDaemon } from '../../harness/daemon.js';
import { h2Request, h2Session } from '../../harness/h2.js';
import { httpsRequest } from '../../harness/https.js';
import { freePort } from '../../harness/ports.js';
import { type IssuedCertificate, TestCa } from '../../harness/tls.js';
import { holding, streamEcho, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

interface Setup {
  ca: TestCa;
  site: IssuedCertificate;
  port: number;
}

/** A TLS listener on `port` with `routes`, offering h2 and http/1.1. */
function h2Config(s: Setup, routes: Record<string, unknown>[], extra: Record<string, unknown> = {}, tls: Record<string, unknown> = {}) {
  return {
    shutdown_timeout_ms: 5000,
    ...extra,
    listeners: [
      {
        name: 'web-tls',
        listen: `127.0.0.1:${s.port}`,
        tls: { certificates: [{ cert_file: s.site.certFile, key_file: s.site.keyFile }], ...tls },
        routes,
      },
    ],
  };
}

describe('edge: HTTP/2', function () {
  this.timeout(30_000);

  let s: Setup;

  beforeEach(async () => {
    const ca = await TestCa.create();
    s = { ca, site: await ca.issue('site', ['a.test', 'b.a.test']), port: await freePort() };
  });

  it('routes by :authority and sends no pseudo-header upstream, :authority as Host, https as the forwarded proto', async () => {
    const upstream = await TestUpstream.start();
    await startDaemon(
      h2Config(
        s,
        [
          { path_prefix: '/', host: 'b.a.test', upstream: 'api' },
          { path_prefix: '/', respond: { status: 200, body: 'default' } },
        ],
        { upstreams: { api: { targets: [upstream.origin], forwarded_header: 'forwarded' } } },
      ),
    );
    const { session } = await h2Session(s.port, s.ca.caPem, 'a.test');
    expect((await h2Request(session, { ':path': '/x' })).body).to.equal('default');
    const res = await h2Request(session, { ':path': '/echo?q=1', ':method': 'POST', ':authority': 'b.a.test', 'x-custom': 'yes' }, 'payload');
    expect(res.status).to.equal(200);
    const seen = JSON.parse(res.body) as { method: string; url: string; headers: Record<string, string>; body_bytes: number };
    expect(seen).to.deep.include({ method: 'POST', url: '/echo?q=1', body_bytes: 7 });
    expect(Object.keys(seen.headers).filter((name) => name.startsWith(':'))).to.deep.equal([]);
    expect(seen.headers).to.deep.include({ host: 'b.a.test', 'x-custom': 'yes', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'b.a.test' });
    expect(seen.headers.forwarded).to.match(/proto=https/);
  });

  it('drops connection-specific response headers for h2 clients instead of failing (relayed ones; the schema refuses configured ones)', async () => {
    const upstream = await TestUpstream.start({ handler: streamEcho }); // answers chunked
    await startDaemon(
      h2Config(
        s,
        [
          { path_prefix: '/stream', upstream: 'api' },
          { path_prefix: '/', respond: { status: 200, body: 'configured', headers: { 'x-kept': '1' } } },
        ],
        { upstreams: { api: { targets: [upstream.origin] } } },
      ),
    );
    const { session } = await h2Session(s.port, s.ca.caPem, 'a.test');
    const configured = await h2Request(session, { ':path': '/' });
    expect(configured).to.deep.include({ status: 200, body: 'configured' });
    expect(configured.headers['x-kept']).to.equal('1');
    expect(configured.headers).not.to.have.any.keys('connection', 'keep-alive');
    const relayed = await h2Request(session, { ':path': '/stream', ':method': 'POST' }, 'abc');
    expect(relayed).to.deep.include({ status: 200, body: 'abc' });
    expect(relayed.headers).not.to.have.any.keys('transfer-encoding', 'connection');
    expect((await h2Request(session, { ':path': '/' })).status, 'the session still serves').to.equal(200);
    const h1 = await httpsRequest(s.port, { ca: s.ca.caPem, servername: 'a.test' });
    expect(h1.headers['x-kept'], 'an HTTP/1.1 client of the same route gets its headers too').to.equal('1');
  });

  it('keeps the session across reloads without GOAWAY; each stream is served by the generation active when it arrived', async () => {
    const { handler, held } = holding();
    const upstream = await TestUpstream.start({ handler });
    const routes = (body: string) => [
      { path_prefix: '/held', upstream: 'api' },
      { path_prefix: '/', respond: { status: 200, body } },
    ];
    const extra = { upstreams: { api: { targets: [upstream.origin] } } };
    const t = await startDaemon(h2Config(s, routes('gen-1'), extra));
    const { session, goaways } = await h2Session(s.port, s.ca.caPem, 'a.test');
    const pending = h2Request(session, { ':path': '/held' });
    await waitFor('the held stream to reach the upstream', () => held.length === 1);
    for (let i = 2; i <= 6; i += 1) {
      expect((await t.apply(h2Config(s, routes(`gen-${i}`), extra))).result).to.equal('applied');
      expect((await h2Request(session, { ':path': '/' })).body).to.equal(`gen-${i}`);
    }
    expect(t.daemon.reloader.generations().map((g) => g.id)).to.include(1); // pinned by the held stream
    held[0]!.writeHead(200, { 'content-length': '4' });
    held[0]!.end('held');
    expect((await pending).body).to.equal('held');
    await waitFor('generation 1 to be released', () => !t.daemon.reloader.generations().some((g) => g.id === 1));
    expect(goaways()).to.equal(0);
    expect(session.closed || session.destroyed).to.equal(false);
    expect(t.daemon.registry.stats().http_stack).to.include({ created: 1, live: 1 });
  });

  it('answers 421 to a stream whose :authority the certificate of the session does not serve', async () => {
    await startDaemon(h2Config(s, [{ path_prefix: '/', respond: { status: 200, body: 'ok' } }]));
    const { session } = await h2Session(s.port, s.ca.caPem, 'a.test');
    expect((await h2Request(session, { ':path': '/', ':authority': 'b.a.test' })).status).to.equal(200);
    expect((await h2Request(session, { ':path': '/', ':authority': 'other.test' })).status).to.equal(421);
    expect((await h2Request(session, { ':path': '/' })).status).to.equal(200);
  });

  it('answers curl --http2', async () => {
    await startDaemon(h2Config(s, [{ path_prefix: '/', respond: { status: 200, body: 'curl-ok' } }]));
    const { stdout } = await promisify(execFile)('curl', [
      '--silent',
      '--show-error',
      '--http2',
      '--cacert',
      s.ca.caFile,
      '--resolve',
      `a.test:${s.port}:127.0.0.1`,
      '--write-out',
      ' %{http_version}',
      `https://a.test:${s.port}/`,
    ]);
    expect(stdout).to.equal('curl-ok 2');
  });

  it('drains the old stack with a GOAWAY when the TLS policy changes, while the stream in flight finishes', async () => {
    const { handler, held } = holding();
    const upstream = await TestUpstream.start({ handler });
    const routes = [{ path_prefix: '/', upstream: 'api' }];
    const extra = { upstreams: { api: { targets: [upstream.origin] } } };
    const t = await startDaemon(h2Config(s, routes, extra));
    const { session, goaways } = await h2Session(s.port, s.ca.caPem, 'a.test');
    const pending = h2Request(session, { ':path': '/slow' });
    await waitFor('the stream to reach the upstream', () => held.length === 1);
    expect((await t.apply(h2Config(s, routes, extra, { min_version: 'TLSv1.3' }))).result).to.equal('applied');
    held[0]!.end('done');
    expect((await pending).body).to.equal('done');
    await waitFor('the GOAWAY of the old stack', () => goaways() > 0);
    await waitFor('the old stack to be released', () => t.daemon.registry.stats().http_stack?.live === 1);
    const fresh = await h2Session(s.port, s.ca.caPem, 'a.test');
    const next = h2Request(fresh.session, { ':path': '/again' });
    await waitFor('the new stream to reach the upstream', () => held.length === 2);
    held[1]!.end('again');
    expect((await next).body).to.equal('again');
  });
});
