import { rename, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { h2Request, h2Session } from '../../harness/h2.js';
import { httpsRequest } from '../../harness/https.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { type IssuedCertificate, TestCa } from '../../harness/tls.js';
import { echoJson, hang, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

/**
 * The habitat of APISIX #13200 and of the APISIX 2.13 `ngx.ctx` coredump: per-request state
 * attached to what a long TLS connection shares (the handshake, the connection, the session).
 * Every request here must get the right answer, its own trace and its own context, whatever came
 * before it on the same connection: errors, reloads and a certificate rotation.
 */
describe('edge: seed regressions over TLS', function () {
  this.timeout(60_000);

  const ROUNDS = 30;
  /** What each request should get, in turn. */
  const PATTERN = [200, 404, 502, 504, 413] as const;

  let ca: TestCa;
  let site: IssuedCertificate;
  let port: number;
  let receiver: OtlpReceiver;
  let upstreams: Record<string, unknown>;

  beforeEach(async () => {
    ca = await TestCa.create();
    site = await ca.issue('site', ['a.test']);
    port = await freePort();
    receiver = await OtlpReceiver.start();
    const echo = await TestUpstream.start({
      handler: (req, res, received) => {
        // A backend's own 413 (the listener's limit closes an HTTP/1.1 connection: see below).
        if (req.url === '/too-large') {
          req.resume();
          res.writeHead(413, { 'content-type': 'text/plain', 'content-length': '9' });
          res.end('too large');
        } else echoJson(req, res, received);
      },
    });
    const stuck = await TestUpstream.start({ handler: hang });
    upstreams = {
      echo: { targets: [echo.origin] },
      dead: { targets: [`http://127.0.0.1:${await freePort()}`], retries: 0 },
      stuck: { targets: [stuck.origin], timeout_ms: 300 },
    };
  });

  function config(generation: number) {
    return {
      shutdown_timeout_ms: 5000,
      tracing: { exporter: 'otlp-http', endpoint: receiver.url, batch: { scheduled_delay_ms: 20 } },
      upstreams,
      listeners: [
        {
          name: 'web-tls',
          listen: `127.0.0.1:${port}`,
          tls: { certificates: [{ cert_file: site.certFile, key_file: site.keyFile }] },
          routes: [
            { path_prefix: '/ok', respond: { status: 200, body: `gen-${generation}` } },
            { path_prefix: '/too-large', upstream: 'echo' },
            { path_prefix: '/upload', upstream: 'echo' },
            { path_prefix: '/dead', upstream: 'dead' },
            { path_prefix: '/stuck', upstream: 'stuck' },
          ],
        },
      ],
    };
  }

  /** Reload every fifth request; the reload before request 15 also rotates the certificate. */
  async function between(t: TestDaemon, i: number): Promise<number> {
    const generation = Math.floor(i / 5) + 1;
    if (i > 0 && i % 5 === 0) {
      if (i === 15) {
        const renewed = await ca.issue(`renewed-${Date.now()}`, ['a.test']);
        await writeFile(`${site.keyFile}.new`, renewed.keyPem);
        await writeFile(`${site.certFile}.new`, renewed.certPem);
        await rename(`${site.keyFile}.new`, site.keyFile);
        await rename(`${site.certFile}.new`, site.certFile);
      }
      expect(await t.apply(config(generation))).to.include({ result: 'applied', generation });
    }
    return generation;
  }

  /** The server spans of `protocol`, `count` of them. */
  async function serverSpans(protocol: string, count: number) {
    return waitFor(`${count} server spans over HTTP/${protocol}`, () => {
      const spans = receiver.spans.filter((s) => s.kind === 2 && s.attributes['network.protocol.version'] === protocol);
      return spans.length === count ? spans : undefined;
    });
  }

  /** Every routed request has its own span and trace, with its status and the generation that served it. */
  async function checkSpans(protocol: string, statuses: number[], generations: number[]): Promise<void> {
    const spans = await serverSpans(protocol, statuses.length);
    expect(new Set(spans.map((s) => s.traceId)).size, 'a trace of its own per request').to.equal(statuses.length);
    expect(spans.map((s) => s.attributes['http.response.status_code'])).to.have.members(statuses);
    expect(spans.map((s) => s.attributes['hotconf.generation'])).to.have.members(generations);
    expect(spans.every((s) => s.attributes['url.scheme'] === 'https')).to.equal(true);
  }

  it('one HTTPS keepalive connection: 30 requests interleaving 404, 502, 504, 413 and 200 across reloads and a rotation', async () => {
    const t = await startDaemon(config(1));
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.caPem });
    onCleanup(() => agent.destroy());
    const ports = new Set<number | undefined>();
    const statuses: number[] = [];
    const generations: number[] = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const generation = await between(t, i);
      const expected = PATTERN[i % PATTERN.length]!;
      const path = { 200: '/ok', 404: '/missing', 502: '/dead', 504: '/stuck', 413: '/too-large' }[expected];
      const res = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', agent, path });
      expect(res.status, `request ${i} (${path})`).to.equal(expected);
      if (expected === 200) expect(res.body).to.equal(`gen-${generation}`);
      ports.add(res.localPort);
      statuses.push(expected);
      generations.push(generation);
    }
    expect(ports.size, 'one connection for all requests').to.equal(1);
    await checkSpans('1.1', statuses, generations);
  });

  it("one HTTP/2 session: 30 streams interleaving 404, 502, 504, the listener's 413 and 200 across reloads and a rotation", async () => {
    const t = await startDaemon(config(1), { httpLimits: { maxBodyBytes: 1024 } });
    const { session, goaways } = await h2Session(port, ca.caPem, 'a.test');
    const statuses: number[] = [];
    const generations: number[] = [];
    for (let i = 0; i < ROUNDS; i += 1) {
      const generation = await between(t, i);
      const expected = PATTERN[i % PATTERN.length]!;
      const res =
        expected === 413
          ? await h2Request(session, { ':path': '/upload', ':method': 'POST', 'content-length': '2048' }, Buffer.alloc(2048))
          : await h2Request(session, { ':path': { 200: '/ok', 404: '/missing', 502: '/dead', 504: '/stuck' }[expected] });
      expect(res.status, `stream ${i}`).to.equal(expected);
      if (expected === 200) expect(res.body).to.equal(`gen-${generation}`);
      // The listener's body limit answers before routing: no context, no span.
      if (expected === 413) continue;
      statuses.push(expected);
      generations.push(generation);
    }
    expect(goaways(), 'no GOAWAY on a normal reload').to.equal(0);
    await checkSpans('2', statuses, generations);
  });
});
