import { Agent } from 'node:http';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

describe('keepalive connections across reloads', () => {
  it('serves every request on one kept connection with the generation active at its arrival, each with its own trace', async () => {
    const receiver = await OtlpReceiver.start();
    const port = await freePort();
    const tracing = { exporter: 'otlp-http', endpoint: receiver.url, batch: { scheduled_delay_ms: 20 } };
    const t = await startDaemon(basicConfig({ port, body: 'body-0', tracing }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());

    const ROUNDS = 20;
    const ports = new Set<number | undefined>();
    for (let i = 1; i <= ROUNDS; i++) {
      expect((await t.apply(basicConfig({ port, body: `body-${i}`, tracing }))).result).to.equal('applied');
      const res = await httpRequest(`http://127.0.0.1:${port}/`, { agent });
      expect(res.status).to.equal(200);
      expect(res.body).to.equal(`body-${i}`);
      if (i > 1) expect(res.reusedSocket, `request ${i} reused the connection`).to.equal(true);
      ports.add(res.localPort);
    }
    expect(ports.size, 'one client connection for all requests').to.equal(1);
    expect(t.daemon.registry.stats().listener).to.include({ created: 1, reused: ROUNDS });

    const spans = await waitFor('one server span per request', () => {
      const server = receiver.spans.filter((s) => s.kind === 2);
      return server.length === ROUNDS ? server : undefined;
    });
    expect(new Set(spans.map((s) => s.traceId)).size, 'distinct trace per request').to.equal(ROUNDS);
    expect(spans.map((s) => s.attributes['hotconf.generation'])).to.have.members(Array.from({ length: ROUNDS }, (_, i) => i + 2));
  });

  it('answers 503 with Connection: close on a kept connection whose listener the active config dropped', async () => {
    const [web, api] = [await freePort(), await freePort()];
    const config = basicConfig({ port: web });
    (config.listeners as unknown[]).push({ name: 'api', listen: `127.0.0.1:${api}`, routes: [{ path_prefix: '/', respond: { status: 200, body: 'api' } }] });
    config.shutdown_timeout_ms = 60_000;
    const t = await startDaemon(config);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    onCleanup(() => agent.destroy());
    expect((await httpRequest(`http://127.0.0.1:${api}/`, { agent })).body).to.equal('api');
    // A request still in flight on generation 1 keeps it (and the api listener) alive while it drains.
    const unpin = t.daemon.reloader.active!.pin(() => {});
    expect((await t.apply(basicConfig({ port: web }))).result).to.equal('applied');
    const res = await httpRequest(`http://127.0.0.1:${api}/`, { agent });
    expect(res.status).to.equal(503);
    expect(res.headers.connection).to.equal('close');
    expect(JSON.parse(res.body)).to.deep.equal({ error: 'listener is not in the active config' });
    unpin();
    await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
    expect(t.daemon.registry.stats().listener).to.include({ live: 1, destroyed: 1 });
  });
});
