import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, rename, symlink, unlink, writeFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { getText } from '../../harness/http.js';
import { httpsRequest } from '../../harness/https.js';
import { freePort } from '../../harness/ports.js';
import { type IssuedCertificate, TestCa } from '../../harness/tls.js';
import { tempDir } from '../../harness/tmp.js';
import { proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { loadConfig, validateConfig } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { loadTlsMaterial } from '../../lib/net/tls-files.js';

/** A config with one TLS listener on `port` answering `body`, serving `certs` (files) in order. */
function tlsConfig(port: number, certs: { certFile: string; keyFile: string; names?: string[] }[], tls: Record<string, unknown> = {}, body = 'secure') {
  return {
    shutdown_timeout_ms: 2000,
    listeners: [
      {
        name: 'web-tls',
        listen: `127.0.0.1:${port}`,
        tls: {
          certificates: certs.map((c) => ({ cert_file: c.certFile, key_file: c.keyFile, ...(c.names ? { server_names: c.names } : {}) })),
          ...tls,
        },
        routes: [{ path_prefix: '/', respond: { status: 200, body } }],
      },
    ],
  };
}

/** Replace `to` by `from`'s contents atomically: written beside, then renamed over (what editors and cert-manager's tools do). */
async function replaceAtomically(from: Buffer, to: string): Promise<void> {
  const tmp = `${to}.tmp-${Date.now()}`;
  await writeFile(tmp, from);
  await rename(tmp, to);
}

/** The fingerprint a fresh handshake for `servername` gets (chain verified; the name not, to see the default certificate). */
function presented(port: number, ca: Buffer, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername, checkServerIdentity: () => undefined }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

describe('edge: TLS termination', function () {
  this.timeout(30_000);

  let ca: TestCa;
  let site: IssuedCertificate;
  let port: number;

  beforeEach(async () => {
    ca = await TestCa.create();
    site = await ca.issue('site', ['a.test', '*.a.test']);
    port = await freePort();
  });

  it('serves HTTPS with the configured certificate, verified by a real client, and says https upstream', async () => {
    const upstream = await TestUpstream.start();
    const config = proxyConfig({ port, upstreams: { api: { targets: [upstream.origin], forwarded_header: 'forwarded' } } });
    (config.listeners as Record<string, unknown>[])[0]!.tls = { certificates: [{ cert_file: site.certFile, key_file: site.keyFile }] };
    await startDaemon(config);
    const res = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test' });
    expect(res.status).to.equal(200);
    expect(res.fingerprint256).to.equal(site.fingerprint256);
    const seen = JSON.parse(res.body) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-proto']).to.equal('https');
    expect(seen.headers.forwarded).to.match(/proto=https/);
    expect(seen.headers['x-forwarded-host']).to.equal('a.test');
  });

  it('picks the certificate by SNI: exact name, one-label wildcard, else the first; a Host its certificate does not serve gets 421', async () => {
    const other = await ca.issue('other', ['b.test']);
    await startDaemon(tlsConfig(port, [site, other]));
    expect(await presented(port, ca.caPem, 'b.test')).to.equal(other.fingerprint256);
    expect(await presented(port, ca.caPem, 'a.test')).to.equal(site.fingerprint256);
    expect(await presented(port, ca.caPem, 'x.a.test')).to.equal(site.fingerprint256);
    expect(await presented(port, ca.caPem, 'x.y.a.test'), 'a wildcard covers one label').to.equal(site.fingerprint256);
    expect(await presented(port, ca.caPem, 'unknown.test')).to.equal(site.fingerprint256);
    expect(await presented(port, ca.caPem, undefined), 'no SNI').to.equal(site.fingerprint256);

    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'b.test' })).body).to.equal('secure');
    const misdirected = await httpsRequest(port, { ca: ca.caPem, servername: 'b.test', headers: { host: 'a.test' } });
    expect(misdirected.status).to.equal(421);
    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'b.test', headers: { host: 'B.test:443' } })).status).to.equal(200);
  });

  it('chooses by server_names over the certificate names when they are set', async () => {
    const other = await ca.issue('other', ['b.test']);
    await startDaemon(tlsConfig(port, [site, { ...other, names: ['c.test'] }]));
    expect(await presented(port, ca.caPem, 'c.test')).to.equal(other.fingerprint256);
    expect(await presented(port, ca.caPem, 'b.test'), 'b.test is no longer a name of it').to.equal(site.fingerprint256);
  });

  it('rotates a certificate: new handshakes get the new one, a kept connection keeps answering, sessions resume, min_version still holds', async () => {
    const t = await startDaemon(tlsConfig(port, [site], { min_version: 'TLSv1.3' }));
    const keep = new Agent({ keepAlive: true, maxSockets: 1, ca: ca.caPem });
    const resume = new Agent({ keepAlive: false, maxCachedSessions: 10, ca: ca.caPem });
    onCleanup(() => {
      keep.destroy();
      resume.destroy();
    });
    const first = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', agent: keep });
    expect(first.fingerprint256).to.equal(site.fingerprint256);
    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', agent: resume })).sessionReused).to.equal(false);

    const renewed = await ca.issue('renewed', ['a.test', '*.a.test']);
    await replaceAtomically(renewed.keyPem, site.keyFile);
    await replaceAtomically(renewed.certPem, site.certFile);
    expect(await t.daemon.reload()).to.include({ result: 'applied', generation: 2 });

    expect(await presented(port, ca.caPem, 'a.test')).to.equal(renewed.fingerprint256);
    const kept = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', agent: keep });
    expect(kept.status).to.equal(200);
    expect(kept.localPort, 'the same connection').to.equal(first.localPort);
    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', agent: resume })).sessionReused, 'resumed across the rotation').to.equal(true);
    const old = await httpsRequest(port, { ca: ca.caPem, servername: 'a.test', maxVersion: 'TLSv1.2' }).catch((error: Error) => error);
    expect(old, 'TLS 1.2 refused').to.be.instanceOf(Error);
    expect(t.daemon.registry.stats().tls_certificate).to.include({ created: 2, destroyed: 1, live: 1 });
  });

  it('reports a missing, unparsable or mismatched file as invalid, with the config path and file name, and keeps serving the last good certificate', async () => {
    const t = await startDaemon(tlsConfig(port, [site]));
    const stranger = await ca.issue('stranger', ['a.test']);
    const cases: { write: () => Promise<void>; path: string; message: RegExp }[] = [
      { write: () => unlink(site.keyFile), path: 'listeners.0.tls.certificates.0.key_file', message: /site\.key: no such file/ },
      {
        write: () => writeFile(site.keyFile, '-----BEGIN PRIVATE KEY-----\nAAAA\n'),
        path: 'listeners.0.tls.certificates.0.key_file',
        message: /no PEM private key/,
      },
      {
        write: () => writeFile(site.keyFile, stranger.keyPem),
        path: 'listeners.0.tls.certificates.0.key_file',
        message: /does not match the certificate in .*site\.crt/,
      },
      {
        write: () => writeFile(site.certFile, site.certPem.subarray(0, 200)),
        path: 'listeners.0.tls.certificates.0.cert_file',
        message: /site\.crt: no PEM certificate/,
      },
    ];
    for (const c of cases) {
      await writeFile(site.keyFile, site.keyPem);
      await writeFile(site.certFile, site.certPem);
      await c.write();
      const result = await t.daemon.reload();
      expect(result.result, c.path).to.equal('invalid');
      expect(result.errors).to.have.length(1);
      expect(result.errors![0]!.path).to.equal(c.path);
      expect(result.errors![0]!.message).to.match(c.message);
      expect(await presented(port, ca.caPem, 'a.test')).to.equal(site.fingerprint256);
    }
    expect(t.logs.text()).not.to.contain(site.keyPem.toString().split('\n')[1]);
    expect(t.logs.text()).not.to.contain(stranger.keyPem.toString().split('\n')[1]);
  });

  it('reloads on its own when watched files change: a rename-save, and a Kubernetes Secret ..data symlink swap', async () => {
    // The Kubernetes layout: tls.crt -> ..data/tls.crt, ..data -> ..v1 (swapped atomically).
    const mount = join(ca.dir, 'secret');
    await mkdir(join(mount, '..v1'), { recursive: true });
    await writeFile(join(mount, '..v1', 'tls.crt'), site.certPem);
    await writeFile(join(mount, '..v1', 'tls.key'), site.keyPem);
    await symlink('..v1', join(mount, '..data'));
    await symlink('..data/tls.crt', join(mount, 'tls.crt'));
    await symlink('..data/tls.key', join(mount, 'tls.key'));
    const other = await ca.issue('other', ['b.test']);
    const t = await startDaemon(tlsConfig(port, [{ certFile: join(mount, 'tls.crt'), keyFile: join(mount, 'tls.key') }, other]), { watch: true });
    expect(await presented(port, ca.caPem, 'a.test')).to.equal(site.fingerprint256);

    const v2 = await ca.issue('v2', ['a.test']);
    await mkdir(join(mount, '..v2'));
    await writeFile(join(mount, '..v2', 'tls.crt'), v2.certPem);
    await writeFile(join(mount, '..v2', 'tls.key'), v2.keyPem);
    await symlink('..v2', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    await waitFor('the swapped Secret to be served', async () => (await presented(port, ca.caPem, 'a.test')) === v2.fingerprint256);

    const renewed = await ca.issue('renewed', ['b.test']);
    await replaceAtomically(renewed.keyPem, other.keyFile);
    await replaceAtomically(renewed.certPem, other.certFile);
    await waitFor('the renamed files to be served', async () => (await presented(port, ca.caPem, 'b.test')) === renewed.fingerprint256);
    // The Secret's mount and the directory its link points at now (..v2; ..v1 is no longer watched), and the other pair's.
    await waitFor('retired generations to be released', () => t.daemon.reloader.generations().length === 1);
    expect(
      t.daemon.registry
        .entries()
        .filter((e) => e.kind === 'file_watch')
        .map((e) => e.key)
        .sort(),
    ).to.deep.equal([ca.dir, mount, join(mount, '..v2')].sort());
  });

  it('keeps one secure context per certificate and no growth in handles over 200 rotations', async function () {
    this.timeout(120_000);
    const other = await ca.issue('other', ['b.test']);
    const t = await startDaemon(tlsConfig(port, [site, other]));
    const versions = [site, await ca.issue('site2', ['a.test', '*.a.test'])];
    const handles = () => process.getActiveResourcesInfo().filter((type) => type !== 'Timeout').length;
    const before = handles();
    for (let i = 1; i <= 200; i += 1) {
      const next = versions[i % 2]!;
      await writeFile(site.certFile, next.certPem);
      await writeFile(site.keyFile, next.keyPem);
      expect((await t.daemon.reload()).result, `rotation ${i}`).to.equal('applied');
      if (i % 50 === 0) expect(await presented(port, ca.caPem, 'a.test')).to.equal(next.fingerprint256);
    }
    await waitFor('retired generations to be released', () => t.daemon.reloader.generations().length === 1);
    expect(t.daemon.registry.stats().tls_certificate).to.include({ live: 2, refs: 2 });
    expect(handles()).to.be.at.most(before + 2);
    expect(t.daemon.leaks().ok).to.equal(true);
  });

  for (const alpn of [['h2', 'http/1.1'], ['http/1.1']]) {
    it(`cuts a TLS client that never finishes its request head with 408 (alpn ${alpn.join(',')}): the stack's timeouts are on`, async () => {
      await startDaemon(tlsConfig(port, [site], { alpn }), { httpLimits: { headersTimeoutMs: 300, requestTimeoutMs: 600, timeoutCheckIntervalMs: 50 } });
      const answer = await new Promise<string>((resolve, reject) => {
        let data = '';
        const socket = connect({ host: '127.0.0.1', port, ca: ca.caPem, servername: 'a.test', ALPNProtocols: ['http/1.1'] }, () => {
          socket.write('GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: 1\r\n');
        });
        onCleanup(() => socket.destroy());
        socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
        socket.on('error', reject);
        socket.on('close', () => resolve(data));
      });
      expect(answer).to.match(/^HTTP\/1\.1 408 /);
    });
  }

  it('serves HTTP/1.1 only when alpn lists only http/1.1', async () => {
    await startDaemon(tlsConfig(port, [site], { alpn: ['http/1.1'] }));
    const alpn = await new Promise<string | false>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca: ca.caPem, servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(socket.alpnProtocol ?? false);
        socket.destroy();
      });
      socket.on('error', reject);
    });
    expect(alpn).to.equal('http/1.1');
    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'a.test' })).body).to.equal('secure');
  });

  it('moves a plain listener to TLS on the same address: new connections get TLS, a kept plain one finishes', async () => {
    const t: TestDaemon = await startDaemon({ ...tlsConfig(port, [site]), listeners: [{ ...tlsConfig(port, [site]).listeners[0]!, tls: undefined }] });
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('secure');
    expect((await t.apply(tlsConfig(port, [site]))).result).to.equal('applied');
    expect((await httpsRequest(port, { ca: ca.caPem, servername: 'a.test' })).body).to.equal('secure');
    expect(t.daemon.registry.stats().listener).to.include({ created: 1, live: 1 });
    await waitFor('the plain stack to be released', () => t.daemon.registry.stats().http_stack?.live === 1);
  });
});

describe('edge: certificate files', () => {
  it('refuses an expired or not yet valid certificate, naming the file', async () => {
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['a.test']);
    const config = validateConfig(tlsConfig(1, [site]));
    const day = 24 * 3600 * 1000;
    for (const [now, message] of [
      [Date.now() + 3 * day, /site\.crt: the certificate expired at/],
      [Date.now() - 3 * day, /site\.crt: the certificate is not valid before/],
    ] as const) {
      const error = (await loadTlsMaterial(config, 'hotconf.yaml', now).catch((e: unknown) => e)) as ConfigInvalidError;
      expect(error).to.be.instanceOf(ConfigInvalidError);
      expect(error.issues.map((i) => i.path)).to.deep.equal(['listeners.0.tls.certificates.0.cert_file']);
      expect(error.issues[0]!.message).to.match(message);
    }
  });

  it('has a valid TLS example in fixtures/tls.yaml, whose files its comment makes', async () => {
    const text = readFileSync(new URL('../../fixtures/tls.yaml', import.meta.url), 'utf8');
    const { config } = loadConfig(text, { origin: 'fixtures/tls.yaml' });
    expect(config.listeners.map((l) => [l.name, l.tls?.alpn])).to.deep.equal([
      ['web-tls', ['h2', 'http/1.1']],
      ['web', undefined],
    ]);
    const dir = await tempDir();
    const command = /openssl req[^\n]*(?:\n#[^\n]*)*/
      .exec(text)![0]
      .replace(/\\\n#\s*/g, ' ')
      .replaceAll('fixtures/tls/', `${dir}/`);
    await promisify(execFile)('sh', ['-c', command]);
    const material = await loadTlsMaterial(loadConfig(text.replaceAll('fixtures/tls/', `${dir}/`)).config);
    expect(material.byListener.get(0)![0]!.names).to.deep.equal(['localhost', '*.localhost']);
  });

  it('takes the names from the certificate when server_names is not set, lowercase', async () => {
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['A.test', '*.b.TEST']);
    const material = await loadTlsMaterial(validateConfig(tlsConfig(1, [site])));
    expect(material.byListener.get(0)![0]!.names).to.deep.equal(['a.test', '*.b.test']);
    expect(material.digest).to.match(/^[0-9a-f]{64}$/);
  });
});
