import { expect } from 'chai';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { rawRequest } from '../../harness/raw-socket.js';

/** Every character Node sends in a header value: tab, space, visible ASCII, Latin-1. */
const EVERY_ALLOWED = `\t${Array.from({ length: 0x7e - 0x20 + 1 }, (_, i) => String.fromCharCode(0x20 + i)).join('')}${Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i)).join('')}`;

describe('hardening: config that validates is config that serves', function () {
  this.timeout(60_000);

  function respondConfig(port: number, routes: Record<string, unknown>[]): Record<string, unknown> {
    return { shutdown_timeout_ms: 2000, listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes }] };
  }

  it('serves every header value the schema accepts, byte for byte, and 204/205/304 routes without content', async () => {
    const port = await freePort();
    await startDaemon(
      respondConfig(port, [
        { path_prefix: '/all', respond: { status: 200, body: 'ok', headers: { 'x-all': EVERY_ALLOWED } } },
        { path_prefix: '/204', respond: { status: 204 } },
        { path_prefix: '/205', respond: { status: 205 } },
        { path_prefix: '/304', respond: { status: 304, headers: { etag: '"v1"' } } },
      ]),
    );
    const all = await rawRequest(port, '/all');
    expect(all.status).to.equal(200);
    expect(all.data).to.contain(`\r\nx-all: ${EVERY_ALLOWED}\r\n`);
    expect(all.body).to.equal('ok');
    for (const status of [204, 205, 304]) {
      const res = await rawRequest(port, `/${status}`);
      expect(res.status, String(status)).to.equal(status);
      expect(res.body, String(status)).to.equal('');
    }
  });

  it('sends no Content-Length on 204 and 304 (RFC 9110 §8.6, §15.4.5) and content-length: 0 on 205 (§15.3.6), for GET and HEAD', async () => {
    const port = await freePort();
    await startDaemon(
      respondConfig(port, [
        { path_prefix: '/204', respond: { status: 204, headers: { 'x-kept': 'yes' } } },
        { path_prefix: '/205', respond: { status: 205 } },
        { path_prefix: '/304', respond: { status: 304, headers: { etag: '"v1"' } } },
      ]),
    );
    for (const method of ['GET', 'HEAD']) {
      const headerBlock = async (status: number) => {
        const res = await rawRequest(port, `/${status}`, {}, method);
        expect(res.status, `${method} ${status}`).to.equal(status);
        return res.data.slice(0, res.data.indexOf('\r\n\r\n')).toLowerCase();
      };
      const noContent = await headerBlock(204);
      expect(noContent).to.not.contain('\r\ncontent-length:');
      expect(noContent).to.not.contain('\r\ncontent-type:');
      expect(noContent).to.contain('\r\nx-kept: yes');
      const notModified = await headerBlock(304);
      expect(notModified).to.not.contain('\r\ncontent-length:');
      expect(notModified).to.contain('\r\netag: "v1"');
      expect(await headerBlock(205)).to.contain('\r\ncontent-length: 0');
    }
  });

  it('refuses at validation what used to pass and then fail or hang every request on the route, and keeps serving', async () => {
    const port = await freePort();
    const t = await startDaemon(basicConfig({ port, body: 'kept' }));
    const route = (respond: Record<string, unknown>) => respondConfig(port, [{ path_prefix: '/', respond }]);
    const refused: [Record<string, unknown>, string][] = [
      [route({ status: 200, headers: { 'x-a': 'bell\x07' } }), 'listeners.0.routes.0.respond.headers.x-a'],
      [route({ status: 200, headers: { 'x-a': 'check ✓' } }), 'listeners.0.routes.0.respond.headers.x-a'],
      [route({ status: 200, headers: { 'transfer-encoding': 'chunked' } }), 'listeners.0.routes.0.respond.headers.transfer-encoding'],
      [route({ status: 200, body: 'x', headers: { 'Content-Length': '0' } }), 'listeners.0.routes.0.respond.headers.Content-Length'],
      [route({ status: 102 }), 'listeners.0.routes.0.respond.status'],
      [route({ status: 204, body: 'content' }), 'listeners.0.routes.0.respond.body'],
      [respondConfig(port, [{ path_prefix: '/', host: '*example.com', respond: { status: 200 } }]), 'listeners.0.routes.0.host'],
    ];
    for (const [config, path] of refused) {
      const result = await t.apply(config);
      expect(result.result, path).to.equal('invalid');
      expect(
        result.errors!.map((e) => e.path),
        path,
      ).to.deep.equal([path]);
    }
    expect(t.daemon.reloader.active!.id).to.equal(1);
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('kept');
  });

  it('refuses two listeners that would share or fight over one socket, naming both', async () => {
    const [port, other] = [await freePort(), await freePort()];
    const t = await startDaemon(basicConfig({ port, body: 'kept' }));
    const listeners = (a: string, b: string) => ({
      shutdown_timeout_ms: 2000,
      listeners: [
        { name: 'a', listen: a, routes: [{ path_prefix: '/', respond: { status: 200, body: 'a' } }] },
        { name: 'b', listen: b, routes: [{ path_prefix: '/', respond: { status: 200, body: 'b' } }] },
      ],
    });
    for (const [a, b, message] of [
      [`LOCALHOST:${other}`, `localhost:${other}`, `address localhost:${other} is already used by listeners.0`],
      [`localhost:${other}`, `127.0.0.1:${other}`, `address 127.0.0.1:${other} clashes with listeners.0 (localhost:${other}): binding both fails`],
      [`0.0.0.0:${other}`, `127.0.0.1:${other}`, `address 127.0.0.1:${other} clashes with listeners.0 (0.0.0.0:${other}): binding both fails`],
    ]) {
      const result = await t.apply(listeners(a!, b!));
      expect(result, `${a} ${b}`).to.deep.include({ result: 'invalid', generation: 1, errors: [{ path: 'listeners.1.listen', message }] });
    }
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('kept');
  });
});
