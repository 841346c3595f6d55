import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile, rename } from 'node:fs/promises';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { trace } from '@opentelemetry/api';
import { expect } from 'chai';
import { event, spawnHotconf } from '../../harness/child.js';
import { onCleanup } from '../../harness/cleanup.js';
import { type MemoryLogs, memoryLogger, startDaemon, writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort, listenOn } from '../../harness/ports.js';
import { rawRequest } from '../../harness/raw-socket.js';
import { tempDir } from '../../harness/tmp.js';
import { hang, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';
import { closed, echo, openWebSocket, WsEchoUpstream } from '../../harness/websocket.js';
import { logDestination } from '../../lib/core/log.js';
import type { RequestContext, RouteAction, ServingGeneration } from '../../lib/dataplane/ports.js';
import { AccessLog } from '../../lib/dataplane/serve/access-log.js';
import { createRequestHandler } from '../../lib/dataplane/serve/handler.js';

type Line = Record<string, unknown>;

function accessLines(logs: MemoryLogs): Line[] {
  return logs.lines().filter((line) => line.msg === 'access');
}

/** Access lines of a file (an empty list while it does not exist). */
async function fileLines(file: string): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Line);
}

/** How many descriptors of this process are open on `file` (`/proc/self/fd`). */
function descriptorsOn(file: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) count += 1;
    } catch {
      // closed while listing
    }
  }
  return count;
}

function listener(port: number, routes: unknown[], accessLog?: Record<string, unknown>): Record<string, unknown> {
  return { name: 'web', listen: `127.0.0.1:${port}`, routes, ...(accessLog ? { access_log: accessLog } : {}) };
}

describe('access log', function () {
  this.timeout(30_000);

  it('writes one line per request to stdout with its route, status, exact bytes, client and how it ended', async () => {
    const port = await freePort();
    const t = await startDaemon({
      listeners: [
        listener(port, [
          { path_prefix: '/missing-upstream-route', respond: { status: 204 } },
          { path_prefix: '/hello', respond: { status: 200, body: 'hi' } },
        ]),
      ],
    });
    const response = await rawRequest(port, '/hello/x?token=secret-token', { 'user-agent': 'spec-agent/1' });
    expect(response.status).to.equal(200);
    const line = await waitFor('the access line', () => accessLines(t.logs)[0]);
    const sent = 'GET /hello/x?token=secret-token HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\nuser-agent: spec-agent/1\r\n\r\n';
    expect(line).to.include({
      component: 'access',
      listener: 'web',
      generation: 1,
      route: 1,
      path_prefix: '/hello',
      method: 'GET',
      host: 'localhost',
      path: '/hello/x',
      protocol: '1.1',
      status: 200,
      bytes_in: Buffer.byteLength(sent),
      bytes_out: Buffer.byteLength(response.data, 'latin1'),
      attempts: 0,
      client_address: '127.0.0.1',
      user_agent: 'spec-agent/1',
      ended: 'complete',
    });
    expect(line.duration_ms).to.be.a('number').and.at.least(0);
    expect(line).not.to.have.any.keys('upstream', 'target', 'trace_id', 'span_id', 'request_headers');
    expect(t.logs.text()).not.to.include('secret-token');
  });

  it('logs a 404 without route, and counts each keepalive request on its own', async () => {
    const port = await freePort();
    const t = await startDaemon({ listeners: [listener(port, [{ path_prefix: '/a', respond: { status: 200, body: 'aaaa' } }])] });
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    const first = await httpRequest(`http://127.0.0.1:${port}/a`, { agent });
    const second = await httpRequest(`http://127.0.0.1:${port}/nothing`, { agent });
    expect([first.status, second.status, second.reusedSocket]).to.deep.equal([200, 404, true]);
    const [a, b] = (await waitFor('two lines', () => (accessLines(t.logs).length === 2 ? accessLines(t.logs) : undefined))) as [Line, Line];
    expect(a).to.include({ route: 0, status: 200, path: '/a' });
    expect(b).to.include({ status: 404, path: '/nothing', ended: 'complete' });
    expect(b).not.to.have.any.keys('route', 'path_prefix');
    // Each request's bytes, not the connection's so far: the second head is about as long as the first.
    expect(b.bytes_in as number).to.be.within((a.bytes_in as number) - 10, (a.bytes_in as number) + 10);
  });

  it('keeps the query with include_query, and never writes redacted headers', async () => {
    const port = await freePort();
    const t = await startDaemon({
      listeners: [
        listener(port, [{ path_prefix: '/', respond: { status: 200 } }], {
          include_query: true,
          request_headers: ['X-Request-Id', 'authorization', 'cookie', 'proxy-authorization', 'x-api-key', 'accept'],
          redact_headers: ['X-Api-Key'],
        }),
      ],
    });
    await httpRequest(`http://127.0.0.1:${port}/q?a=1&b=two`, {
      headers: {
        'x-request-id': 'req-42',
        authorization: 'Bearer secret-bearer',
        cookie: 'session=secret-cookie',
        'proxy-authorization': 'Basic secret-proxy',
        'x-api-key': 'secret-api-key',
      },
    });
    const line = await waitFor('the access line', () => accessLines(t.logs)[0]);
    expect(line.path).to.equal('/q?a=1&b=two');
    expect(line.request_headers).to.deep.equal({
      'x-request-id': 'req-42',
      authorization: '[REDACTED]',
      cookie: '[REDACTED]',
      'proxy-authorization': '[REDACTED]',
      'x-api-key': '[REDACTED]',
    });
    expect(t.logs.text()).not.to.match(/secret-(bearer|cookie|proxy|api-key)/);
  });

  it('logs proxied requests and upstream errors with their status and bytes', async () => {
    const port = await freePort();
    const upstream = await TestUpstream.start();
    const t = await startDaemon({
      upstreams: { api: { targets: [upstream.origin] }, down: { targets: [`http://127.0.0.1:${await freePort()}`], retries: 0 } },
      listeners: [
        listener(port, [
          { path_prefix: '/down', upstream: 'down' },
          { path_prefix: '/', upstream: 'api' },
        ]),
      ],
    });
    const ok = await httpRequest(`http://127.0.0.1:${port}/api/x`, { method: 'POST', body: 'x'.repeat(1000) });
    const failed = await httpRequest(`http://127.0.0.1:${port}/down`);
    expect([ok.status, failed.status]).to.deep.equal([200, 502]);
    const [a, b] = (await waitFor('two lines', () => (accessLines(t.logs).length === 2 ? accessLines(t.logs) : undefined))) as [Line, Line];
    expect(a).to.include({ route: 1, path_prefix: '/', method: 'POST', path: '/api/x', status: 200, ended: 'complete' });
    expect(a.bytes_in as number).to.be.greaterThan(1000);
    expect(a.bytes_out as number).to.be.greaterThan(Buffer.byteLength(ok.body));
    expect(b).to.include({ route: 0, path_prefix: '/down', status: 502 });
  });

  it('marks a request whose client left before the response as client_aborted', async () => {
    const port = await freePort();
    const upstream = await TestUpstream.start({ handler: hang });
    const t = await startDaemon({
      upstreams: { slow: { targets: [upstream.origin] } },
      listeners: [listener(port, [{ path_prefix: '/', upstream: 'slow' }])],
    });
    const socket = connect(port, '127.0.0.1');
    onCleanup(() => socket.destroy());
    socket.write('GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n');
    await waitFor('the upstream to receive the request', () => upstream.requests.length === 1);
    socket.destroy();
    const line = await waitFor('the access line', () => accessLines(t.logs)[0]);
    expect(line).to.include({ path: '/slow', status: 0, ended: 'client_aborted' });
  });

  it('writes one line per WebSocket tunnel when it closes, with its upstream, target and bytes', async () => {
    const port = await freePort();
    const echoUpstream = await WsEchoUpstream.start();
    const t = await startDaemon({
      upstreams: { echo: { targets: [echoUpstream.origin] } },
      listeners: [listener(port, [{ path_prefix: '/ws', upstream: 'echo' }])],
    });
    const ws = await openWebSocket(`ws://127.0.0.1:${port}/ws/chat?room=1`);
    expect(await echo(ws, 'x'.repeat(500))).to.have.length(500);
    expect(accessLines(t.logs)).to.have.length(0);
    ws.close();
    await closed(ws);
    const line = await waitFor('the tunnel line', () => accessLines(t.logs)[0]);
    expect(line).to.include({
      route: 0,
      path_prefix: '/ws',
      method: 'GET',
      path: '/ws/chat',
      status: 101,
      upstream: 'echo',
      target: echoUpstream.origin.slice('http://'.length),
      attempts: 1,
      ended: 'complete',
      close_reason: 'client',
    });
    expect(line.bytes_in as number).to.be.greaterThan(500);
    expect(line.bytes_out as number).to.be.greaterThan(500);
  });

  it('logs upgrades answered without a tunnel: relayed from the upstream, failed upstream, or by a route that is no tunnel', async () => {
    const port = await freePort();
    const plain = await TestUpstream.start();
    const t = await startDaemon({
      upstreams: { plain: { targets: [plain.origin] }, gone: { targets: [`http://127.0.0.1:${await freePort()}`] } },
      listeners: [
        listener(port, [
          { path_prefix: '/gone', upstream: 'gone' },
          { path_prefix: '/answer', respond: { status: 403, body: 'no' } },
          { path_prefix: '/', upstream: 'plain' },
        ]),
      ],
    });
    const refused = await openWebSocket(`ws://127.0.0.1:${port}/chat`).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    expect(refused).to.equal('upgrade answered 200');
    const failed = await openWebSocket(`ws://127.0.0.1:${port}/gone`).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    expect(failed).to.equal('upgrade answered 502');
    // A route that is no tunnel answers the upgrade as a plain request.
    const answered = await openWebSocket(`ws://127.0.0.1:${port}/answer`).then(
      () => 'opened',
      (error: Error) => error.message,
    );
    expect(answered).to.equal('upgrade answered 403');
    const [a, b, c] = (await waitFor('three lines', () => (accessLines(t.logs).length === 3 ? accessLines(t.logs) : undefined))) as [Line, Line, Line];
    expect(c).to.include({ route: 1, path: '/answer', status: 403, ended: 'complete' });
    expect(a).to.include({
      route: 2,
      path: '/chat',
      status: 200,
      upstream: 'plain',
      target: plain.origin.slice('http://'.length),
      attempts: 1,
      ended: 'complete',
    });
    expect(a).not.to.have.property('close_reason');
    expect(b).to.include({ route: 0, path: '/gone', status: 502, upstream: 'gone', ended: 'upstream_error' });
  });

  it('writes nothing for a listener whose access log is off', async () => {
    const [off, on] = [await freePort(), await freePort()];
    const t = await startDaemon({
      listeners: [
        { ...listener(off, [{ path_prefix: '/', respond: { status: 200 } }], { enabled: false }), name: 'quiet' },
        { ...listener(on, [{ path_prefix: '/', respond: { status: 200 } }]), name: 'loud' },
      ],
    });
    expect((await httpRequest(`http://127.0.0.1:${off}/`)).status).to.equal(200);
    // Witness: a later request on the other listener is logged.
    await httpRequest(`http://127.0.0.1:${on}/`);
    await waitFor('the loud listener line', () => accessLines(t.logs)[0]);
    expect(accessLines(t.logs).map((l) => l.listener)).to.deep.equal(['loud']);
  });

  it('carries the trace and span ids of a traced request', async () => {
    const port = await freePort();
    const t = await startDaemon({
      tracing: { exporter: 'console', sample_ratio: 1 },
      listeners: [listener(port, [{ path_prefix: '/', respond: { status: 200 } }])],
    });
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await httpRequest(`http://127.0.0.1:${port}/`, { headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } });
    const line = await waitFor('the access line', () => accessLines(t.logs)[0]);
    expect(line.trace_id).to.equal(traceId);
    expect(line.span_id)
      .to.match(/^[0-9a-f]{16}$/)
      .and.not.equal('00f067aa0ba902b7');
  });

  it('writes what the action recorded in ctx.outcome: upstream, target, attempts and how it ended', async () => {
    // The proxy's part of the contract, played by an action that records what the proxy does
    // after two failed attempts, on the real request handler and a real socket.
    const logs = memoryLogger('info');
    const outcomes: RequestContext['outcome'][] = [
      { upstream: 'api', target: '10.0.0.1:80', attempts: 2, ended: 'upstream_error' },
      { upstream: 'api', target: '10.0.0.2:80', attempts: 1, ended: 'timeout' },
    ];
    const action: RouteAction = {
      type: 'recording',
      run(req, res, ctx) {
        Object.assign(ctx.outcome, outcomes[Number(req.url?.slice(1))]);
        res.writeHead(ctx.outcome.ended === 'timeout' ? 504 : 502).end();
      },
    };
    const accessLog = new AccessLog({
      listener: 'web',
      sink: logDestination(logs.logger),
      bindings: {},
      includeQuery: false,
      requestHeaders: [],
      redacted: new Set(),
    });
    const generation: ServingGeneration = {
      id: 7,
      tracer: trace.getTracer('spec'),
      router: () => ({ match: () => ({ index: 3, pathPrefix: '/', host: undefined, methods: undefined, action }), allowedMethods: () => undefined }),
      sni: () => undefined,
      tunnels: () => undefined,
      accessLog: () => accessLog,
      routeSection: () => undefined,
      pin: () => () => {},
    };
    const server = createServer(createRequestHandler({ active: () => generation, listenKey: '127.0.0.1:0', logger: logs.logger }));
    onCleanup(() => new Promise((done) => server.close(done)));
    const port = await freePort();
    await listenOn(server, port);
    expect((await httpRequest(`http://127.0.0.1:${port}/0`)).status).to.equal(502);
    expect((await httpRequest(`http://127.0.0.1:${port}/1`)).status).to.equal(504);
    const [a, b] = (await waitFor('two lines', () => (accessLines(logs).length === 2 ? accessLines(logs) : undefined))) as [Line, Line];
    expect(a).to.include({ generation: 7, route: 3, status: 502, upstream: 'api', target: '10.0.0.1:80', attempts: 2, ended: 'upstream_error' });
    expect(b).to.include({ status: 504, upstream: 'api', target: '10.0.0.2:80', attempts: 1, ended: 'timeout' });
  });

  describe('to a file', () => {
    it('writes the lines to the file, and keeps it open across a reload that keeps its path', async () => {
      const dir = await tempDir();
      const file = join(dir, 'access.log');
      const port = await freePort();
      const config = (body: string, path = file) => ({ listeners: [listener(port, [{ path_prefix: '/', respond: { status: 200, body } }], { path })] });
      const t = await startDaemon(config('one'));
      await httpRequest(`http://127.0.0.1:${port}/first`);
      const [first] = await waitFor('the line in the file', async () => ((await fileLines(file)).length === 1 ? fileLines(file) : undefined));
      expect(first).to.include({ msg: 'access', listener: 'web', path: '/first', status: 200, generation: 1 });
      expect(accessLines(t.logs)).to.deep.equal([]);
      expect(descriptorsOn(file)).to.equal(1);

      expect((await t.apply(config('two'))).result).to.equal('applied');
      expect((await t.apply(config('two'))).result).to.equal('unchanged');
      await httpRequest(`http://127.0.0.1:${port}/second`);
      await waitFor('the second line', async () => (await fileLines(file)).length === 2);
      expect((await fileLines(file))[1]).to.include({ path: '/second', generation: 2 });
      expect(t.daemon.registry.stats().access_log_file).to.include({ created: 1, reused: 1, live: 1, destroyed: 0 });
      expect(descriptorsOn(file)).to.equal(1);

      // A new path: the old file is flushed and closed once no generation uses it.
      const other = join(dir, 'other.log');
      expect((await t.apply(config('two', other))).result).to.equal('applied');
      await waitFor('the old file to close', () => descriptorsOn(file) === 0);
      await httpRequest(`http://127.0.0.1:${port}/third`);
      await waitFor('the line in the new file', async () => (await fileLines(other)).length === 1);
      expect((await fileLines(file)).map((l) => l.path)).to.deep.equal(['/first', '/second']);
      expect(t.daemon.registry.stats().access_log_file).to.include({ created: 2, destroyed: 1, live: 1 });
    });

    it('refuses a path it cannot open, naming it, and keeps the last good config serving', async () => {
      const dir = await tempDir();
      const port = await freePort();
      const good = { listeners: [listener(port, [{ path_prefix: '/', respond: { status: 200, body: 'good' } }])] };
      const t = await startDaemon(good);
      const result = await t.apply({
        listeners: [listener(port, [{ path_prefix: '/', respond: { status: 200, body: 'bad' } }], { path: join(dir, 'no-such-dir', 'a.log') })],
      });
      expect(result.result).to.equal('failed');
      expect(JSON.stringify(result)).to.include('listeners.0.access_log.path').and.include('ENOENT');
      expect((await httpRequest(`http://127.0.0.1:${port}/`)).body).to.equal('good');
    });

    it('lists the file among the process descriptors only once for two listeners sharing it', async () => {
      const dir = await tempDir();
      const file = join(dir, 'shared.log');
      const [a, b] = [await freePort(), await freePort()];
      const t = await startDaemon({
        listeners: [
          { ...listener(a, [{ path_prefix: '/', respond: { status: 200 } }], { path: file }), name: 'a' },
          { ...listener(b, [{ path_prefix: '/', respond: { status: 200 } }], { path: file }), name: 'b' },
        ],
      });
      await httpRequest(`http://127.0.0.1:${a}/`);
      await httpRequest(`http://127.0.0.1:${b}/`);
      const lines = await waitFor('both lines', async () => ((await fileLines(file)).length === 2 ? fileLines(file) : undefined));
      expect(lines.map((l) => l.listener).sort()).to.deep.equal(['a', 'b']);
      expect(descriptorsOn(file)).to.equal(1);
      expect(t.daemon.registry.stats().access_log_file).to.include({ created: 1, reused: 1 });
      expect(readFileSync(file, 'utf8').endsWith('\n')).to.equal(true);
    });
  });

  describe('SIGUSR1 (logrotate)', () => {
    /**
     * `hotconf run` logging `port` to `file`; requests `/r/<n>` numbered across batches. Rotates
     * as logrotate's create mode does: rename, then SIGUSR1, then the daemon writes a new file.
     */
    async function rotation(workers: number) {
      const dir = await tempDir();
      const file = join(dir, 'access.log');
      const config = join(dir, 'hotconf.yaml');
      const port = await freePort();
      await writeConfigAtomic(config, { listeners: [listener(port, [{ path_prefix: '/', respond: { status: 200 } }], { path: file })] });
      const args = ['run', '--config', config, '--no-watch', '--admin', `127.0.0.1:${await freePort()}`, '--workers', String(workers)];
      const child = spawnHotconf(args);
      await child.waitForLog('started', event('started'));
      let n = 0;
      const batch = async (count: number) => {
        const sent: string[] = [];
        for (let i = 0; i < count; i += 1) {
          n += 1;
          sent.push(`/r/${n}`);
          expect((await httpRequest(`http://127.0.0.1:${port}/r/${n}`)).status).to.equal(200);
        }
        return sent;
      };
      const paths = async (path: string) => (await fileLines(path)).map((l) => String(l.path));
      const before = await batch(20);
      await waitFor('the first batch in the file', async () => (await paths(file)).length === 20);
      await rename(file, `${file}.1`);
      const between = await batch(20);
      child.process.kill('SIGUSR1');
      await waitFor(`${workers} reopened`, () => child.logs().filter(event('access_log_reopened', { path: file })).length === workers);
      const after = await batch(20);
      const all = [...before, ...between, ...after];
      await waitFor('every line in one of the two files', async () => [...(await paths(`${file}.1`)), ...(await paths(file))].length === all.length);
      const rotated = await paths(`${file}.1`);
      const current = await paths(file);
      expect([...rotated, ...current].sort()).to.deep.equal([...all].sort());
      expect(rotated).to.include.members(before);
      expect(current).to.include.members(after);
      child.process.kill('SIGTERM');
      expect((await child.exited).code).to.equal(0);
    }

    it('reopens the file after logrotate renamed it, losing no line', async () => {
      await rotation(1);
    });

    it('passes SIGUSR1 from the cluster primary to every worker', async () => {
      await rotation(2);
    });
  });
});
