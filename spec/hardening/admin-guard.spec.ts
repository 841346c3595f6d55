import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { type RawExchange, rawExchange } from '../../harness/raw-socket.js';
import { tempDir } from '../../harness/tmp.js';

/** A raw HTTP/1.1 request to the admin API of `t` (nothing added but what is written here). */
async function admin(
  port: number,
  request: { method?: string; path?: string; headers: Record<string, string>; body?: string },
): Promise<RawExchange & { json: Record<string, unknown> }> {
  const body = request.body ?? '';
  const lines = [
    `${request.method ?? 'GET'} ${request.path ?? '/config'} HTTP/1.1`,
    ...Object.entries({ connection: 'close', ...request.headers }).map(([k, v]) => `${k}: ${v}`),
  ];
  if (body && request.headers['transfer-encoding'] === undefined) lines.push(`content-length: ${Buffer.byteLength(body)}`);
  const exchange = await rawExchange(port, `${lines.join('\r\n')}\r\n\r\n${body}`);
  const text = exchange.data.slice(exchange.data.indexOf('\r\n\r\n') + 4);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON (chunked or empty)
  }
  return { ...exchange, json };
}

const portOf = (t: TestDaemon) => t.daemon.adminAddress!.port;

describe('hardening: who may call the admin API', function () {
  this.timeout(60_000);

  describe('bound to loopback, without a token', () => {
    let t: TestDaemon;
    let port: number;
    beforeEach(async () => {
      t = await startDaemon(basicConfig({ port: await freePort() }));
      port = portOf(t);
    });

    it('answers only loopback names in Host, whatever the port: a rebound name gets 403', async () => {
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `LOCALHOST:${port}`, '127.0.0.2', 'localhost.']) {
        const res = await admin(port, { headers: { host } });
        expect(res.status, host).to.equal(200);
      }
      for (const [path, host] of [
        ['/config', `evil.example:${port}`],
        ['/healthz', `evil.example:${port}`],
        ['/metrics', 'attacker.test'],
        ['/config', `127.0.0.1.evil.example:${port}`],
        ['/config', '10.0.0.1'],
      ] as const) {
        const res = await admin(port, { path, headers: { host } });
        expect(res.status, `${path} ${host}`).to.equal(403);
        expect(String(res.json.error), host).to.match(/^host not allowed: /);
        expect(res.data, host).to.not.contain('listeners');
      }
      // HTTP/1.0 lets a client leave Host out: that is not a loopback name either.
      const bare = await rawExchange(port, 'GET /config HTTP/1.0\r\n\r\n');
      expect(bare.status).to.equal(403);
    });

    it('refuses a foreign Origin with 403 before doing anything, and accepts its own', async () => {
      const reloads = () => t.logs.lines().filter((l) => l.msg === 'reload').length;
      const before = reloads();
      for (const origin of [
        'http://evil.example',
        `http://evil.example:${port}`,
        'null',
        `http://127.0.0.1:${port + 1}`,
        `https://localhost`,
        'file://',
        'not a url',
      ]) {
        const res = await admin(port, {
          method: 'POST',
          path: '/reload',
          headers: { host: `127.0.0.1:${port}`, origin, 'content-type': 'text/plain' },
          body: 'x',
        });
        expect(res.status, origin).to.equal(403);
        expect(res.json.error, origin).to.equal(`origin not allowed: ${origin}`);
      }
      const cross = await admin(port, { path: '/config', headers: { host: `127.0.0.1:${port}`, origin: 'http://evil.example' } });
      expect(cross.status).to.equal(403);
      expect(reloads(), 'no refused request reloaded').to.equal(before);
      for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]) {
        const res = await admin(port, { method: 'POST', path: '/reload', headers: { host: `127.0.0.1:${port}`, origin } });
        expect(res.status, origin).to.equal(200);
        expect(res.json.result, origin).to.equal('unchanged');
      }
    });

    it('requires a JSON content type, or no body, on POST /reload (415), as a simple cross-site form cannot send', async () => {
      const host = `127.0.0.1:${port}`;
      for (const [headers, body] of [
        [{ host, 'content-type': 'text/plain' }, 'x'],
        [{ host, 'content-type': 'application/x-www-form-urlencoded' }, 'a=1'],
        [{ host, 'content-type': 'multipart/form-data; boundary=x' }, '--x--'],
        [{ host, 'content-type': 'text/plain' }, ''],
        [{ host }, '{}'],
        [{ host, 'transfer-encoding': 'chunked' }, '2\r\n{}\r\n0\r\n\r\n'],
      ] as [Record<string, string>, string][]) {
        const res = await admin(port, { method: 'POST', path: '/reload', headers, body });
        expect(res.status, JSON.stringify(headers)).to.equal(415);
      }
      for (const [headers, body] of [
        [{ host }, ''],
        [{ host, 'content-type': 'application/json' }, '{}'],
        [{ host, 'content-type': 'Application/JSON; charset=utf-8' }, '{}'],
      ] as [Record<string, string>, string][]) {
        const res = await admin(port, { method: 'POST', path: '/reload', headers, body });
        expect(res.status, JSON.stringify(headers)).to.equal(200);
      }
      expect(t.daemon.reloader.active!.id).to.equal(1);
    });
  });

  it('answers the names in admin.allowed_hosts too, as the latest reload sets them', async () => {
    const web = await freePort();
    const config = (hosts: string[]) => basicConfig({ port: web, extra: { admin: { allowed_hosts: hosts } } });
    const t = await startDaemon(config(['hotconf.internal']));
    const port = portOf(t);
    expect((await admin(port, { headers: { host: `hotconf.internal:${port}` } })).status).to.equal(200);
    expect((await admin(port, { headers: { host: `localhost:${port}` } })).status).to.equal(200);
    expect((await admin(port, { headers: { host: `other.internal:${port}` } })).status).to.equal(403);
    expect((await t.apply(config(['other.internal']))).result).to.equal('applied');
    expect((await admin(port, { headers: { host: `other.internal:${port}` } })).status).to.equal(200);
    expect((await admin(port, { headers: { host: `hotconf.internal:${port}` } })).status).to.equal(403);
    const wildcard = await t.apply(config(['*.internal']));
    expect(wildcard).to.deep.include({ result: 'invalid', errors: [{ path: 'admin.allowed_hosts.0', message: 'must be a host name, without wildcard' }] });
  });

  it('bound off loopback with a token: any Host by default, but never a foreign Origin', async () => {
    const token = `tok-${randomUUID()}`;
    const tokenFile = join(await tempDir(), 'token');
    await writeFile(tokenFile, token);
    const adminPort = await freePort();
    await startDaemon(basicConfig({ port: await freePort(), extra: { admin: { listen: `0.0.0.0:${adminPort}`, token_file: tokenFile } } }), {
      adminListen: undefined,
    });
    const authorization = `Bearer ${token}`;
    expect((await admin(adminPort, { headers: { host: `hotconf.example:${adminPort}`, authorization } })).status).to.equal(200);
    const foreign = await admin(adminPort, {
      method: 'POST',
      path: '/reload',
      headers: { host: `10.0.0.5:${adminPort}`, authorization, origin: 'http://evil.example' },
    });
    expect(foreign.status).to.equal(403);
    const own = await admin(adminPort, {
      method: 'POST',
      path: '/reload',
      headers: { host: `10.0.0.5:${adminPort}`, authorization, origin: `http://10.0.0.5:${adminPort}` },
    });
    expect(own.status).to.equal(200);
  });

  it('answers POST /reload at once with 503 while run --etcd waits for its first document, saying why', async () => {
    const [etcdPort, adminPort] = [await freePort(), await freePort()];
    const p = spawnHotconf(['run', '--etcd', `http://127.0.0.1:${etcdPort}`, '--key', '/hotconf/waiting', '--admin', `127.0.0.1:${adminPort}`]);
    await p.waitForLog('etcd_startup_retry', event('etcd_startup_retry'));
    const res = await httpRequest(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST' });
    expect(res.status).to.equal(503);
    expect(JSON.parse(res.body)).to.deep.equal({
      result: 'failed',
      generation: 0,
      error: `no config applied yet: hotconf is waiting for its first config from etcd key /hotconf/waiting at http://127.0.0.1:${etcdPort}; it applies it as soon as it can read it, without a reload`,
    });
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });
});
