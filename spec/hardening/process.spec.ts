import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, type HotconfChild, spawnHotconf, spawnNode } from '../../harness/child.js';
import { basicConfig } from '../../harness/daemon.js';
import { EtcdServer } from '../../harness/etcd.js';
import { connectionRefused, getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { hang, holding, proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const KEY = '/hotconf/config';

const FAULTY_RUN = fileURLToPath(new URL('./fixtures/faulty-run.ts', import.meta.url));

/** `hotconf run` with fault injection over IPC (see fixtures/faulty-run.ts): `CONFIG ADMIN_ADDRESS`. */
function spawnFaultyRun(args: [config: string, admin: string], env: NodeJS.ProcessEnv = {}): HotconfChild {
  return spawnNode(FAULTY_RUN, args, { nodeArgs: ['--import', 'tsx'], ipc: true, env });
}

/** Messages the faulty-run fixture sends over IPC, in arrival order. */
function ipcMessages(child: HotconfChild): { type: string; kind?: string }[] {
  const seen: { type: string; kind?: string }[] = [];
  child.process.on('message', (message) => seen.push(message as { type: string; kind?: string }));
  return seen;
}

interface FinalReport {
  ok: boolean;
  resources: Record<string, { live: number; refs: number }>;
  suspects: unknown[];
}

/** The child's `final_leak_report` line, after it exited 0: clean, nothing live, no refs. */
async function expectCleanExit(child: HotconfChild): Promise<FinalReport> {
  const { code } = await child.exited;
  const report = child.logs().find((l) => l.msg === 'final_leak_report') as unknown as FinalReport | undefined;
  expect(report, `no final_leak_report; stderr: ${child.stderr()}`).to.not.equal(undefined);
  expect(report!.suspects).to.deep.equal([]);
  expect(report!.ok).to.equal(true);
  for (const [kind, stats] of Object.entries(report!.resources)) {
    expect({ kind, live: stats.live, refs: stats.refs }).to.deep.equal({ kind, live: 0, refs: 0 });
  }
  expect(code).to.equal(0);
  return report!;
}

describe('hardening: the daemon as a process (real signals, real child processes)', function () {
  // Children start through tsx or the compiled CLI on 2 shared cores: generous safety limits.
  this.timeout(90_000);

  async function setup(config: Record<string, unknown>) {
    const dir = await tempDir();
    const file = join(dir, 'hotconf.yaml');
    await writeFile(file, stringify(config));
    const admin = `127.0.0.1:${await freePort()}`;
    return { dir, file, admin, write: (c: Record<string, unknown>) => writeFile(file, stringify(c)) };
  }

  describe('SIGTERM', () => {
    it('while a reload is provisioning: exits 0, gives up the reload and leaves nothing live', async () => {
      const [web, added] = [await freePort(), await freePort()];
      const first = basicConfig({ port: web, body: 'one', tracing: { exporter: 'none' }, extra: { shutdown_timeout_ms: 1000 } });
      const env = await setup(first);
      const child = spawnFaultyRun([env.file, env.admin]);
      const messages = ipcMessages(child);
      await child.waitForLog('started', event('started'));

      child.send({ type: 'hang', kind: 'listener' });
      await waitFor('the fault to be armed', () => messages.some((m) => m.type === 'armed'));
      const second = basicConfig({ port: web, body: 'two', tracing: { exporter: 'none' }, extra: { shutdown_timeout_ms: 1000 } });
      (second.listeners as unknown[]).push({ name: 'added', listen: `127.0.0.1:${added}`, routes: [] });
      await env.write(second);
      child.process.kill('SIGHUP');
      // The reload reused the tracer provider and the web listener, then blocked creating `added`.
      await waitFor('a listener create to hang', () => messages.some((m) => m.type === 'hanging'));
      expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('one');

      child.process.kill('SIGTERM');
      await expectCleanExit(child);
      expect(await connectionRefused(web)).to.equal(true);
    });

    it('while the first config is provisioning: exits 0 and leaves nothing live', async () => {
      const web = await freePort();
      const env = await setup(basicConfig({ port: web, tracing: { exporter: 'none' }, extra: { shutdown_timeout_ms: 1000 } }));
      const child = spawnFaultyRun([env.file, env.admin], { HANG_FIRST_CREATE: 'listener' });
      const messages = ipcMessages(child);
      await waitFor('the first listener create to hang', () => messages.some((m) => m.type === 'hanging'), 60_000);

      child.process.kill('SIGTERM');
      await expectCleanExit(child);
      expect(child.logs().some((l) => l.msg === 'started')).to.equal(false);
    });

    it('right after a SIGHUP with a changed config (real CLI): exits 0 with a clean final report', async () => {
      const [web, moved] = [await freePort(), await freePort()];
      const env = await setup(basicConfig({ port: web, body: 'one', tracing: { exporter: 'none' } }));
      const child = spawnHotconf(['run', '--config', env.file, '--admin', env.admin, '--no-watch']);
      await child.waitForLog('started', event('started'));
      await env.write(basicConfig({ port: moved, body: 'two', tracing: { exporter: 'none', service_name: 'changed' } }));
      child.process.kill('SIGHUP');
      child.process.kill('SIGTERM');
      await expectCleanExit(child);
      expect(await connectionRefused(web)).to.equal(true);
      expect(await connectionRefused(moved)).to.equal(true);
    });
  });

  describe('SIGTERM on the etcd and proxy paths', () => {
    it('while a reload set off by an etcd put is provisioning: exits 0, gives up the reload and leaves nothing live', async () => {
      const [web, added] = [await freePort(), await freePort()];
      const etcd = await EtcdServer.start();
      const config = (body: string) => basicConfig({ port: web, body, tracing: { exporter: 'none' }, extra: { shutdown_timeout_ms: 1000 } });
      await etcd.put(KEY, stringify(config('one')));
      const admin = `127.0.0.1:${await freePort()}`;
      const child = spawnFaultyRun(['-', admin], { HOTCONF_ETCD_ENDPOINTS: etcd.clientUrl, HOTCONF_ETCD_KEY: KEY });
      const messages = ipcMessages(child);
      await child.waitForLog('started', event('started'));
      await child.waitForLog('the watch', event('watch_started'));

      child.send({ type: 'hang', kind: 'listener' });
      await waitFor('the fault to be armed', () => messages.some((m) => m.type === 'armed'));
      const second = config('two');
      (second.listeners as unknown[]).push({ name: 'added', listen: `127.0.0.1:${added}`, routes: [] });
      await etcd.put(KEY, stringify(second));
      await waitFor('the watched put to hang creating a listener', () => messages.some((m) => m.type === 'hanging'));
      expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('one');

      child.process.kill('SIGTERM');
      await expectCleanExit(child);
      expect(child.logs().some((l) => l.msg === 'stop_gave_up_on_running_reload')).to.equal(true);
      expect(child.logs().filter((l) => l.msg === 'reload' && l.trigger === 'watch')).to.deep.equal([]);
      expect(await connectionRefused(web)).to.equal(true);
      expect(await connectionRefused(added)).to.equal(true);
    });

    it('with proxied requests in flight: stops accepting, lets them finish, exits 0 with nothing live', async () => {
      const { handler, held } = holding();
      const upstream = await TestUpstream.start({ handler });
      const web = await freePort();
      // A drain budget far beyond the test: the requests, not the timeout, end the drain.
      const env = await setup(proxyConfig({ port: web, upstreams: { api: { targets: [upstream.origin] } }, extra: { shutdown_timeout_ms: 60_000 } }));
      const child = spawnHotconf(['run', '--config', env.file, '--admin', env.admin, '--no-watch']);
      await child.waitForLog('started', event('started'));
      const inflight = Array.from({ length: 5 }, (_, i) => httpRequest(`http://127.0.0.1:${web}/slow/${i}`));
      await waitFor('every request held at the upstream', () => held.length === 5);

      child.process.kill('SIGTERM');
      await waitFor('the listener to stop accepting', () => connectionRefused(web));
      expect(child.process.exitCode, 'still draining').to.equal(null);
      for (const [i, res] of held.entries()) res.end(`done ${i}`);
      const responses = await Promise.all(inflight);
      expect(responses.map((r) => `${r.status} ${r.body}`)).to.deep.equal(held.map((_, i) => `200 done ${i}`));

      await expectCleanExit(child);
      const released = child.logs().find((l) => l.msg === 'generation_released');
      expect(released).to.include({ generation: 1, aborted: 0 });
      expect(released!.destroyed).to.include({ upstream_pool: 1, listener: 1 });
      await waitFor('the pool connection to the upstream closed', () => upstream.openConnections === 0);
    });

    it('with proxied requests outliving shutdown_timeout_ms: aborts them, upstream included, counts them and exits 0 with nothing live', async () => {
      const upstream = await TestUpstream.start({ handler: hang });
      const web = await freePort();
      const env = await setup(proxyConfig({ port: web, upstreams: { api: { targets: [upstream.origin] } }, extra: { shutdown_timeout_ms: 300 } }));
      const child = spawnHotconf(['run', '--config', env.file, '--admin', env.admin, '--no-watch']);
      await child.waitForLog('started', event('started'));
      const inflight = Array.from({ length: 3 }, (_, i) =>
        httpRequest(`http://127.0.0.1:${web}/stuck/${i}`).then(
          (res) => `answered ${res.status}`,
          (error: Error) => error.message,
        ),
      );
      await waitFor('every request at the upstream', () => upstream.requests.length === 3);

      child.process.kill('SIGTERM');
      expect(await Promise.all(inflight)).to.deep.equal(['socket hang up', 'socket hang up', 'socket hang up']);
      await expectCleanExit(child);
      expect(upstream.requests.map((r) => r.aborted)).to.deep.equal([true, true, true]);
      expect(child.logs().find((l) => l.msg === 'generation_released')).to.include({ generation: 1, aborted: 3 });
      await waitFor('the pool connections to the upstream closed', () => upstream.openConnections === 0);
    });
  });

  describe('SIGHUP storm', () => {
    /**
     * Send `child` (serving `before` on `web`, its source already holding `after`) 1000
     * SIGHUPs, check it serves `after`, stop it, and return what the storm cost: the SIGHUPs
     * it logged and its reload lines (trigger `signal`), once the log is complete.
     */
    async function storm(child: HotconfChild, web: number, admin: string): Promise<{ signalsSeen: number; reloads: Record<string, unknown>[] }> {
      for (let i = 0; i < 1000; i += 1) child.process.kill('SIGHUP');
      await waitFor('the new value to be served', async () => (await getText(`http://127.0.0.1:${web}/`)) === 'after');
      // A reload through the API queues behind whatever the signals started.
      const api = await httpRequest(`http://${admin}/reload`, { method: 'POST' });
      expect(JSON.parse(api.body)).to.include({ result: 'unchanged', generation: 2 });

      child.process.kill('SIGTERM');
      await expectCleanExit(child);
      // After the exit the log is complete: count what the storm cost.
      const logs = child.logs();
      const signalsSeen = logs.filter((l) => l.msg === 'signal' && l.signal === 'SIGHUP').length;
      const reloads = logs.filter((l) => l.msg === 'reload' && l.trigger === 'signal');
      expect(signalsSeen).to.be.at.least(1);
      expect(reloads.length).to.be.within(1, 10);
      expect(reloads.filter((r) => r.result === 'applied')).to.have.length(1);
      expect(reloads.every((r) => r.result === 'applied' || r.result === 'unchanged')).to.equal(true);
      return { signalsSeen, reloads };
    }

    it('coalesces 1000 SIGHUPs into a handful of reloads, serves the last config and stops clean', async () => {
      const web = await freePort();
      const env = await setup(basicConfig({ port: web, body: 'before' }));
      const child = spawnHotconf(['run', '--config', env.file, '--admin', env.admin, '--no-watch']);
      await child.waitForLog('started', event('started'));
      await env.write(basicConfig({ port: web, body: 'after' }));
      const { signalsSeen, reloads } = await storm(child, web, env.admin);
      console.log(`        1000 SIGHUPs sent, ${signalsSeen} delivered, ${reloads.length} reloads`);
    });

    it('to an etcd-sourced daemon: a handful of etcd reads (counted by etcd), the last value served, a clean stop', async () => {
      const web = await freePort();
      const etcd = await EtcdServer.start();
      await etcd.put(KEY, stringify(basicConfig({ port: web, body: 'before' })));
      const admin = `127.0.0.1:${await freePort()}`;
      // Not watching: every read of the key is a reload's (no watch, no consistency checks).
      const child = spawnHotconf(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', admin, '--no-watch']);
      await child.waitForLog('started', event('started'));
      const revision = await etcd.put(KEY, stringify(basicConfig({ port: web, body: 'after' })));
      const rangesBefore = await etcd.rangesServed();
      const { signalsSeen, reloads } = await storm(child, web, admin);
      const reads = (await etcd.rangesServed()) - rangesBefore;
      console.log(`        1000 SIGHUPs sent, ${signalsSeen} delivered, ${reloads.length} reloads, ${reads} etcd reads (API reload included)`);
      // One linearizable get per reload, the API's included, and nothing else.
      expect(reads).to.equal(reloads.length + 1);
      expect(reloads.find((r) => r.result === 'applied')!.source).to.include({ kind: 'etcd', revision });
    });
  });

  describe('crashes', () => {
    for (const [how, fatalMsg, message] of [
      ['uncaught', 'uncaught_exception', 'injected uncaught exception'],
      ['rejection', 'unhandled_rejection', 'injected unhandled rejection'],
    ] as const) {
      it(`logs an ${fatalMsg.replace('_', ' ')} with its stack and exits 1 instead of living on half-alive`, async () => {
        const web = await freePort();
        const env = await setup(basicConfig({ port: web }));
        const child = spawnFaultyRun([env.file, env.admin]);
        await child.waitForLog('started', event('started'));
        expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');

        child.send({ type: 'crash', how });
        const { code } = await child.exited;
        expect(code).to.equal(1);
        const fatal = child.logs().find((l) => l.msg === fatalMsg) as { level: number; err: { message: string; stack: string } } | undefined;
        expect(fatal, child.stdout().slice(-2000)).to.not.equal(undefined);
        expect(fatal!.level).to.equal(60);
        expect(fatal!.err.message).to.equal(message);
        expect(fatal!.err.stack).to.contain('faulty-run.ts');
        expect(await connectionRefused(web)).to.equal(true);
      });
    }
  });
});
