import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { expect } from 'chai';
import WebSocket from 'ws';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { onCleanup } from '../../harness/cleanup.js';
import { startDaemon } from '../../harness/daemon.js';
import { connectionRefused, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { TestCa } from '../../harness/tls.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';
import { closed, echo, openWebSocket, WsEchoUpstream } from '../../harness/websocket.js';

interface TunnelSetup {
  port: number;
  echoUpstream: WsEchoUpstream;
  tls?: { certFile: string; keyFile: string };
}

/** A listener whose `/ws` route proxies to the echo upstream, plus `extraRoutes` (unrelated ones, changed by reloads). */
function tunnelConfig(s: TunnelSetup, options: { extraRoutes?: Record<string, unknown>[]; withTunnelRoute?: boolean; top?: Record<string, unknown> } = {}) {
  const routes = [
    ...(options.withTunnelRoute === false ? [] : [{ path_prefix: '/ws', upstream: 'echo' }]),
    ...(options.extraRoutes ?? []),
    { path_prefix: '/', respond: { status: 200, body: 'plain' } },
  ];
  return {
    shutdown_timeout_ms: 3000,
    tunnel_close_delay_ms: 500,
    ...options.top,
    upstreams: { echo: { targets: [s.echoUpstream.origin] }, other: { targets: ['http://127.0.0.1:9'] } },
    listeners: [
      {
        name: 'web',
        listen: `127.0.0.1:${s.port}`,
        ...(s.tls ? { tls: { certificates: [{ cert_file: s.tls.certFile, key_file: s.tls.keyFile }] } } : {}),
        routes,
      },
    ],
  };
}

describe('edge: WebSocket tunnels across reloads', function () {
  this.timeout(60_000);

  it('keeps 20 tunnels open and echoing through 50 reloads of unrelated routes and a certificate rotation', async () => {
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['a.test']);
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start(), tls: site };
    const t = await startDaemon(tunnelConfig(s));
    const sockets = await Promise.all(
      Array.from({ length: 20 }, () => openWebSocket(`wss://127.0.0.1:${s.port}/ws/chat`, { ca: ca.caPem, servername: 'a.test' })),
    );
    for (let i = 1; i <= 50; i += 1) {
      if (i === 25) {
        const renewed = await ca.issue('renewed', ['a.test']);
        await writeFile(site.keyFile, renewed.keyPem);
        await writeFile(site.certFile, renewed.certPem);
      }
      const extraRoutes = [{ path_prefix: `/unrelated-${i}`, respond: { status: 200, body: `r${i}` } }];
      expect((await t.apply(tunnelConfig(s, { extraRoutes }))).result, `reload ${i}`).to.equal('applied');
      const ws = sockets[i % sockets.length]!;
      expect(await echo(ws, `message ${i}`)).to.equal(`message ${i}`);
    }
    for (const [i, ws] of sockets.entries()) expect(await echo(ws, `last ${i}`)).to.equal(`last ${i}`);
    expect(sockets.every((ws) => ws.readyState === WebSocket.OPEN)).to.equal(true);
    expect(t.daemon.reloader.active!.tunnels(`127.0.0.1:${s.port}`)!.size).to.equal(20);
    await waitFor('retired generations to be released: tunnels hold none', () => t.daemon.reloader.generations().length === 1);
    expect(t.daemon.registry.stats().tls_certificate).to.include({ created: 2, live: 1 });
  });

  it('closes the tunnels of a removed route with 1001 to both ends within tunnel_close_delay_ms, and leaves the others', async () => {
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start() };
    const keptRoute = { path_prefix: '/kept', upstream: 'echo' };
    const t = await startDaemon(tunnelConfig(s, { extraRoutes: [keptRoute] }));
    const doomed = await Promise.all([1, 2, 3].map(() => openWebSocket(`ws://127.0.0.1:${s.port}/ws`)));
    const kept = await openWebSocket(`ws://127.0.0.1:${s.port}/kept`);
    const codes = Promise.all(doomed.map(closed));
    const started = Date.now();
    expect((await t.apply(tunnelConfig(s, { withTunnelRoute: false, extraRoutes: [keptRoute] }))).result).to.equal('applied');
    expect(await codes).to.deep.equal([1001, 1001, 1001]);
    expect(Date.now() - started).to.be.below(500 + 2000);
    await waitFor('the upstream to see three 1001 close frames', () => s.echoUpstream.closeCodes.filter((c) => c === 1001).length === 3);
    expect(s.echoUpstream.errors, 'every frame hotconf sent upstream was well formed (masked)').to.deep.equal([]);
    expect(await echo(kept, 'still here')).to.equal('still here');
    await waitFor('the listener to count one tunnel', () => t.daemon.reloader.active!.tunnels(`127.0.0.1:${s.port}`)!.size === 1);
  });

  it("closes a tunnel whose upstream no longer lists its target, and keeps one whose upstream's other settings changed", async () => {
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start() };
    const t = await startDaemon(tunnelConfig(s));
    const ws = await openWebSocket(`ws://127.0.0.1:${s.port}/ws`);
    const config = tunnelConfig(s);
    (config.upstreams.echo as Record<string, unknown>).timeout_ms = 12_345;
    expect((await t.apply(config)).result).to.equal('applied');
    expect(await echo(ws, 'settings changed')).to.equal('settings changed');
    const moved = tunnelConfig(s);
    moved.upstreams.echo = { targets: ['http://127.0.0.1:9'] };
    expect((await t.apply(moved)).result).to.equal('applied');
    expect(await closed(ws)).to.equal(1001);
  });

  it("relays the upstream's answer to a refused upgrade as it is: 403 with its headers and body", async () => {
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start() };
    const t = await startDaemon(tunnelConfig(s, { extraRoutes: [{ path_prefix: '/deny', upstream: 'echo' }] }));
    const ws = new WebSocket(`ws://127.0.0.1:${s.port}/deny`);
    onCleanup(() => ws.terminate());
    const res = await new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      ws.once('open', () => reject(new Error('the upgrade was accepted')));
      ws.once('error', () => {});
      ws.once('unexpected-response', (_req, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      });
    });
    expect(res.status).to.equal(403);
    expect(res.headers['x-denied-by']).to.equal('upstream');
    expect(res.body).to.equal('denied');
    await waitFor('the generation to be unpinned', () => t.daemon.reloader.active!.inflight === 0);
  });

  it('answers an upgrade on a route that is not a proxy as a plain request', async () => {
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start() };
    await startDaemon(tunnelConfig(s));
    const res = await httpRequest(`http://127.0.0.1:${s.port}/plain`, { headers: { connection: 'Upgrade', upgrade: 'h2c' } });
    expect(res.status).to.equal(200);
    expect(res.body).to.equal('plain');
  });

  it("never hangs a listener's destroy on an upgraded socket whose peer ignores close frames", async () => {
    const [port, other] = [await freePort(), await freePort()];
    const s: TunnelSetup = { port, echoUpstream: await WsEchoUpstream.start() };
    const t = await startDaemon(tunnelConfig(s, { top: { tunnel_close_delay_ms: 60_000 } }));
    // A raw client: completes the handshake, then never answers anything.
    const raw = connect(port, '127.0.0.1');
    onCleanup(() => raw.destroy());
    let received = '';
    raw.on('data', (chunk) => (received += chunk.toString('latin1')));
    const rawClosed = new Promise((resolve) => raw.once('close', resolve));
    raw.write(
      'GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    await waitFor('the 101', () => received.startsWith('HTTP/1.1 101'));
    const moved = tunnelConfig({ ...s, port: other }, { top: { tunnel_close_delay_ms: 60_000, shutdown_timeout_ms: 500 } });
    expect((await t.apply(moved)).result).to.equal('applied');
    await waitFor('the old listener to be destroyed', () => t.daemon.registry.stats().listener?.destroyed === 1, 10_000);
    await rawClosed;
    expect(received).to.contain('\x88\x02\x03\xe9'); // the 1001 close frame came first
    expect(await connectionRefused(port)).to.equal(true);
  });

  it('closes every tunnel on SIGTERM and exits 0 within shutdown_timeout_ms, nothing left open', async function () {
    this.timeout(90_000);
    const s: TunnelSetup = { port: await freePort(), echoUpstream: await WsEchoUpstream.start() };
    const dir = await tempDir();
    const file = join(dir, 'hotconf.yaml');
    await writeFile(file, stringify(tunnelConfig(s, { top: { shutdown_timeout_ms: 1500, tunnel_close_delay_ms: 60_000 } })));
    const child = spawnHotconf(['run', '--config', file, '--admin', `127.0.0.1:${await freePort()}`, '--no-watch']);
    await child.waitForLog('started', event('started'));
    const sockets = await Promise.all([1, 2, 3, 4, 5].map(() => openWebSocket(`ws://127.0.0.1:${s.port}/ws`)));
    expect(await echo(sockets[0]!, 'hi')).to.equal('hi');
    const codes = Promise.all(sockets.map(closed));
    const started = Date.now();
    child.process.kill('SIGTERM');
    const { code } = await child.exited;
    expect(code).to.equal(0);
    expect(Date.now() - started).to.be.below(1500 + 1500);
    expect(await codes).to.deep.equal([1001, 1001, 1001, 1001, 1001]);
    const report = child.logs().find((l) => l.msg === 'final_leak_report') as { ok: boolean; resources: Record<string, { live: number }> };
    expect(report.ok).to.equal(true);
    for (const stats of Object.values(report.resources)) expect(stats.live).to.equal(0);
    await waitFor('the upstream to have no connection left', () => s.echoUpstream.openConnections === 0);
  });
});
