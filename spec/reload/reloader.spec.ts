import { expect } from 'chai';
import sinon from 'sinon';
import { stringify } from 'yaml';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';
import type { ReloaderEvent } from '../../lib/reload/reloader.js';
import { listenerKind } from '../../lib/resources/listener.js';

/**
 * The real listener kind, recording what its servers do, in order: `bound PORT` once a server
 * listens, `stop accepting PORT` when it is told to stop (its socket closes then), `closed PORT`
 * when its 'close' event fires (the last connection has ended).
 */
function recordedListeners(): { kinds: { listener: typeof listenerKind }; events: string[] } {
  const events: string[] = [];
  const factory: typeof listenerKind.factory = (input, deps) => {
    const real = listenerKind.factory(input, deps);
    return {
      async create() {
        const handle = await real.create();
        const port = handle.address.port;
        events.push(`bound ${port}`);
        handle.server.once('close', () => events.push(`closed ${port}`));
        return {
          ...handle,
          stopAccepting() {
            events.push(`stop accepting ${port}`);
            handle.stopAccepting();
          },
        };
      },
      destroy: (handle) => real.destroy(handle),
    };
  };
  return { kinds: { listener: { ...listenerKind, factory } }, events };
}

function twoListeners(web: number, api: number, body = 'web'): Record<string, unknown> {
  return {
    shutdown_timeout_ms: 2000,
    tracing: { exporter: 'none' },
    listeners: [
      { name: 'web', listen: `127.0.0.1:${web}`, routes: [{ path_prefix: '/', respond: { status: 200, body } }] },
      { name: 'api', listen: `127.0.0.1:${api}`, routes: [{ path_prefix: '/', respond: { status: 200, body: 'api' } }] },
    ],
  };
}

describe('Reloader', () => {
  describe('applied', () => {
    it('serves the new config, reusing the unchanged tracer provider and listener', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'one', tracing: { exporter: 'none' } }));
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('one');
      const result = await t.apply(basicConfig({ port, body: 'two', tracing: { exporter: 'none' } }));
      expect(result).to.include({ result: 'applied', generation: 2 });
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('two');
      const stats = t.daemon.registry.stats();
      expect(stats.listener).to.include({ created: 1, reused: 1, live: 1, refs: 1, destroyed: 0 });
      expect(stats.tracer_provider).to.include({ created: 1, reused: 1, live: 1, refs: 1, destroyed: 0 });
      const line = t.logs.lines().find((l) => l.msg === 'reload' && l.generation === 2)!;
      expect(line).to.deep.include({ result: 'applied', created: {}, reused: { tracer_provider: 1, listener: 1, http_stack: 1 } });
    });

    it('builds a new tracer provider when tracing changes and destroys the old one after the swap', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, tracing: { exporter: 'none', service_name: 'a' } }));
      await t.apply(basicConfig({ port, tracing: { exporter: 'none', service_name: 'b' } }));
      await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
      expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 2, destroyed: 1, live: 1 });
      expect(t.daemon.registry.stats().listener).to.include({ created: 1, live: 1 });
    });

    it('destroys a removed listener after the old generation is released, and binds an added one', async () => {
      const [web, api] = [await freePort(), await freePort()];
      const t = await startDaemon(twoListeners(web, api));
      expect(await getText(`http://127.0.0.1:${api}/`)).to.equal('api');
      const single = twoListeners(web, api);
      (single.listeners as unknown[]).pop();
      expect((await t.apply(single)).result).to.equal('applied');
      await waitFor(
        'the api port to close',
        async () => (await httpRequest(`http://127.0.0.1:${api}/`).catch((e: NodeJS.ErrnoException) => e.code)) === 'ECONNREFUSED',
      );
      expect(t.daemon.registry.stats().listener).to.include({ live: 1, destroyed: 1 });
      expect((await t.apply(twoListeners(web, api))).result).to.equal('applied');
      expect(await getText(`http://127.0.0.1:${api}/`)).to.equal('api');
    });

    it('moves a listener to a new address: the new one is bound before the old one closes', async () => {
      const [a, b] = [await freePort(), await freePort()];
      const { kinds, events } = recordedListeners();
      const t = await startDaemon(basicConfig({ port: a, body: 'here' }), { kinds });
      expect((await t.apply(basicConfig({ port: b, body: 'moved' }))).result).to.equal('applied');
      expect(await getText(`http://127.0.0.1:${b}/`)).to.equal('moved');
      await waitFor(
        'the old address to close',
        async () => (await httpRequest(`http://127.0.0.1:${a}/`).catch((e: NodeJS.ErrnoException) => e.code)) === 'ECONNREFUSED',
      );
      await waitFor('the old server to close', () => events.includes(`closed ${a}`));
      expect(events).to.deep.equal([`bound ${a}`, `bound ${b}`, `stop accepting ${a}`, `closed ${a}`]);
    });
  });

  describe('unchanged', () => {
    it('is unchanged for the same bytes, and for a document that differs only in order, comments and defaults', async () => {
      const port = await freePort();
      const config = basicConfig({ port });
      const t = await startDaemon(config);
      expect(await t.daemon.reload()).to.include({ result: 'unchanged', generation: 1 });
      const reordered = `# same config, other spelling\nlisteners:\n  - routes: [{respond: {body: hello, status: 200, headers: {}}, path_prefix: /}]\n    listen: "127.0.0.1:${port}"\n    name: web\nshutdown_timeout_ms: 2000\nadmin: {listen: "127.0.0.1:9901"}\n`;
      expect(await t.apply(reordered)).to.include({ result: 'unchanged', generation: 1 });
      expect(t.daemon.registry.stats().listener).to.include({ created: 1, reused: 0 });
      expect(t.daemon.reloader.active!.version).to.not.equal(undefined);
    });
  });

  describe('invalid', () => {
    it('rejects a bad document with paths and keeps the last good config serving', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'good' }));
      const bad = basicConfig({ port, body: 'bad' });
      (bad.listeners as Record<string, unknown>[])[0]!.listen = 'nowhere';
      const result = await t.apply(bad);
      expect(result).to.deep.include({ result: 'invalid', generation: 1 });
      expect(result.errors).to.deep.equal([{ path: 'listeners.0.listen', message: 'expected HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080' }]);
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('good');
      expect((await t.apply('{ unterminated: [')).result).to.equal('invalid');
      expect((await t.apply('')).errors).to.deep.equal([{ path: '', message: 'document is empty' }]);
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('good');
      expect(t.daemon.registry.stats().listener).to.include({ created: 1, reused: 0, live: 1, refs: 1 });
      expect((await t.apply(basicConfig({ port, body: 'fixed' }))).result).to.equal('applied');
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('fixed');
    });

    it('reports a config file that disappeared as invalid, naming the file', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port }));
      const { unlink } = await import('node:fs/promises');
      await unlink(t.file);
      const result = await t.daemon.reload();
      expect(result.result).to.equal('invalid');
      expect(result.errors![0]!.message).to.contain(t.file).and.contain('ENOENT');
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('hello');
    });
  });

  describe('failed', () => {
    it('fails on a taken port, releases exactly what the new generation acquired and keeps serving', async () => {
      const [web, api] = [await freePort(), await freePort()];
      const t = await startDaemon(basicConfig({ port: web, body: 'old', tracing: { exporter: 'none' } }));
      await occupyPort(api);
      const result = await t.apply(twoListeners(web, api, 'new'));
      expect(result).to.include({ result: 'failed', generation: 1, path: 'listeners.1.listen' });
      expect(result.error).to.contain('EADDRINUSE');
      expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('old');
      expect(t.daemon.registry.refs('listener', `127.0.0.1:${web}`)).to.equal(1);
      expect(t.daemon.registry.stats().listener).to.include({ live: 1, createFailures: 1 });
      expect(t.daemon.registry.stats().tracer_provider).to.include({ live: 1, refs: 1 });
      expect(t.daemon.reloader.generations()).to.have.length(1);
      expect(t.daemon.leaks()).to.include({ ok: true });
    });

    it('fails when a factory throws, destroying what the new generation created before it', async () => {
      const [web, api] = [await freePort(), await freePort()];
      const factory = sinon.stub<Parameters<typeof listenerKind.factory>, ReturnType<typeof listenerKind.factory>>().callsFake(listenerKind.factory);
      const t = await startDaemon(basicConfig({ port: web, tracing: { exporter: 'none' } }), { kinds: { listener: { ...listenerKind, factory } } });
      // The new generation creates a tracer provider (changed section), reuses listener `web`, then `api` throws.
      factory
        .withArgs(sinon.match({ listen: `127.0.0.1:${api}` }), sinon.match.any)
        .returns({ create: () => Promise.reject(new Error('injected listener failure')), destroy: () => {} });
      const next = twoListeners(web, api);
      (next as { tracing: unknown }).tracing = { exporter: 'none', service_name: 'other' };
      const result = await t.apply(next);
      expect(result).to.include({ result: 'failed', path: 'listeners.1.listen' });
      expect(result.error).to.contain('injected listener failure');
      expect(t.daemon.registry.stats().tracer_provider).to.include({ created: 2, destroyed: 1, live: 1, refs: 1 });
      expect(t.daemon.registry.stats().listener).to.include({ live: 1, refs: 1, createFailures: 1 });
      expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
      expect(t.daemon.leaks().ok).to.equal(true);
    });
  });

  describe('serialization', () => {
    it('coalesces a burst of 50 reload requests into at most two reloads', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'v0' }));
      const events: ReloaderEvent[] = [];
      onCleanup(t.daemon.reloader.subscribe((e) => events.push(e)));
      await t.write(basicConfig({ port, body: 'v1' }));
      const results = await Promise.all(Array.from({ length: 50 }, () => t.daemon.reload('signal')));
      expect(events.filter((e) => e.type === 'reload').length).to.be.within(1, 2);
      expect(new Set(results.map((r) => r.generation))).to.deep.equal(new Set([2]));
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('v1');
    });

    it('applies the latest of a burst of pushed documents, skipping the ones in between', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'v0' }));
      const events: ReloaderEvent[] = [];
      onCleanup(t.daemon.reloader.subscribe((e) => events.push(e)));
      const docs = Array.from({ length: 30 }, (_, i) => ({
        text: stringify(basicConfig({ port, body: `v${i + 1}` })),
        version: `v${i + 1}`,
        source: { kind: 'file', path: t.file },
      }));
      const results = await Promise.all(docs.map((d) => t.daemon.reloader.submit(d)));
      expect(events.filter((e) => e.type === 'reload').length).to.be.within(1, 2);
      expect(results.at(-1)!.result).to.equal('applied');
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('v30');
      expect(t.daemon.reloader.active!.version).to.equal('v30');
    });

    it('applies documents pushed by the watcher', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, body: 'before' }), { watch: true });
      await t.write(basicConfig({ port, body: 'after' }));
      await waitFor('the watched change to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'after');
      expect(t.daemon.reloader.active!.id).to.equal(2);
    });
  });

  describe('stop', () => {
    it('drains, releases every lease, closes listeners and reports clean', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port, tracing: { exporter: 'none' } }));
      await t.apply(basicConfig({ port, body: 'x', tracing: { exporter: 'none' } }));
      const report = await t.daemon.stop();
      expect(report.ok).to.equal(true);
      expect(report.generations_live).to.equal(0);
      expect(report.resources.listener).to.include({ live: 0, refs: 0, created: 1, destroyed: 1 });
      expect(report.resources.tracer_provider).to.include({ live: 0, refs: 0, destroyed: 1 });
      expect(await httpRequest(`http://127.0.0.1:${port}/`).catch((e: NodeJS.ErrnoException) => e.code)).to.equal('ECONNREFUSED');
      expect((await t.daemon.reload()).error).to.equal('hotconf is stopping');
      expect(t.logs.lines().find((l) => l.msg === 'final_leak_report')).to.include({ ok: true });
    });

    it('refuses to start on an invalid first config and leaves nothing behind', async () => {
      const port = await freePort();
      const error = await startDaemon(
        stringify({ listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [{ path_prefix: 'no-slash', respond: { status: 200 } }] }] }),
      ).then(
        () => undefined,
        (e: Error & { code?: string }) => e,
      );
      expect(error?.code).to.equal('E_STARTUP_FAILED');
      expect(error?.message).to.contain('listeners.0.routes.0.path_prefix');
      expect(await httpRequest(`http://127.0.0.1:${port}/`).catch((e: NodeJS.ErrnoException) => e.code)).to.equal('ECONNREFUSED');
    });
  });
});
