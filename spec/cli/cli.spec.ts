import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { basicConfig, startDaemon, writeConfigAtomic } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';
import { leaksCommand } from '../../lib/cli/leaks.js';

async function configFile(config: Record<string, unknown> | string): Promise<string> {
  const file = join(await tempDir(), 'hotconf.yaml');
  await writeFile(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

const refused = (url: string) =>
  httpRequest(url).then(
    () => false,
    (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED',
  );

describe('hotconf CLI', function () {
  this.timeout(60_000);

  describe('run', () => {
    it('serves the file, applies edits it watches, reloads on SIGHUP and exits 0 on SIGTERM with a clean leak report', async () => {
      const [port, admin] = [await freePort(), await freePort()];
      const file = await configFile(basicConfig({ port, body: 'one' }));
      const p = spawnHotconf(['run', '--config', file, '--admin', `127.0.0.1:${admin}`]);
      await p.waitForLog('started', event('started'));
      const url = `http://127.0.0.1:${port}/`;
      expect(await getText(url)).to.equal('one');

      await writeConfigAtomic(file, basicConfig({ port, body: 'two' }));
      await waitFor('the edit to be served', async () => (await getText(url)) === 'two');
      await p.waitForLog('watch reload applied', event('reload', { trigger: 'watch', result: 'applied', generation: 2 }));

      p.process.kill('SIGHUP');
      await p.waitForLog('signal reload unchanged', event('reload', { trigger: 'signal', result: 'unchanged', generation: 2 }));

      p.process.kill('SIGTERM');
      expect((await p.exited).code).to.equal(0);
      const report = p.logs().find((l) => l.msg === 'final_leak_report')!;
      expect(report).to.include({ ok: true });
      expect(report.suspects).to.deep.equal([]);
      expect(await refused(url)).to.equal(true);
    });

    it('with --no-watch applies a change only on SIGHUP', async () => {
      const [port, admin] = [await freePort(), await freePort()];
      const file = await configFile(basicConfig({ port, body: 'before' }));
      const p = spawnHotconf(['run', '--config', file, '--no-watch', '--admin', `127.0.0.1:${admin}`, '--log-level', 'debug']);
      await p.waitForLog('started', event('started'));
      await writeConfigAtomic(file, basicConfig({ port, body: 'after' }));
      p.process.kill('SIGHUP');
      await p.waitForLog('signal reload applied', event('reload', { trigger: 'signal', result: 'applied', generation: 2 }));
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('after');
      expect(p.logs().filter((l) => l.msg === 'reload' && l.trigger === 'watch')).to.deep.equal([]);
      p.process.kill('SIGINT');
      expect((await p.exited).code).to.equal(0);
    });

    it('runs the bundled demo when given no --config', async () => {
      const admin = await freePort();
      const p = spawnHotconf(['run', '--admin', `127.0.0.1:${admin}`]);
      const started = await p.waitForLog('started', event('started'));
      expect(started.source).to.deep.include({ kind: 'file' });
      expect(String((started.source as { path: string }).path)).to.match(/fixtures\/demo\.yaml$/);
      expect(await getText('http://127.0.0.1:8080/')).to.equal('hello from hotconf\n');
      p.process.kill('SIGTERM');
      expect((await p.exited).code).to.equal(0);
    });

    it('exits 0 on SIGTERM while still waiting for an unreachable etcd at start', async () => {
      const [etcdPort, admin] = [await freePort(), await freePort()];
      const p = spawnHotconf(['run', '--etcd', `http://127.0.0.1:${etcdPort}`, '--key', '/hotconf/none', '--admin', `127.0.0.1:${admin}`]);
      await p.waitForLog('etcd_startup_retry', event('etcd_startup_retry'));
      expect((await httpRequest(`http://127.0.0.1:${admin}/healthz`)).status).to.equal(503);
      p.process.kill('SIGTERM');
      expect((await p.exited).code).to.equal(0);
      expect(p.logs().find((l) => l.msg === 'start_failed')).to.equal(undefined);
      expect(p.logs().find((l) => l.msg === 'final_leak_report')).to.include({ ok: true });
    });

    it('exits 1 naming the file when it is missing', async () => {
      const missing = join(await tempDir(), 'nope.yaml');
      const { code, stderr } = await runHotconfToEnd(['run', '--config', missing, '--admin', `127.0.0.1:${await freePort()}`]);
      expect(code).to.equal(1);
      expect(stderr).to.contain(missing).and.contain('ENOENT');
    });

    it('exits 1 with the path of a target without a scheme, as invalid (not failed)', async () => {
      const port = await freePort();
      const file = await configFile({ ...basicConfig({ port }), upstreams: { api: { targets: ['127.0.0.1:9000'] } } });
      const { code, stderr } = await runHotconfToEnd(['run', '--config', file, '--admin', `127.0.0.1:${await freePort()}`]);
      expect(code).to.equal(1);
      expect(stderr).to.contain('cannot start: invalid config: upstreams.api.targets.0: must be an http:// or https:// URL, scheme included');
      expect(stderr).to.not.contain('TypeError');
    });

    it('exits 1 naming the file and the config path when the file is invalid', async () => {
      const file = await configFile({ listeners: [{ name: 'web', listen: 'no-port', routes: [] }] });
      const { code, stderr } = await runHotconfToEnd(['run', '--config', file, '--admin', `127.0.0.1:${await freePort()}`]);
      expect(code).to.equal(1);
      expect(stderr).to.contain('listeners.0.listen').and.contain('HOST:PORT');
    });
  });

  describe('validate', () => {
    it('exits 0 for a valid file', async () => {
      const file = await configFile(basicConfig({ port: 8080 }));
      const { code, stdout } = await runHotconfToEnd(['validate', file]);
      expect(code).to.equal(0);
      expect(stdout).to.contain(`${file}: valid`);
    });

    it('exits 1 with one line per error, each with its path and message', async () => {
      const file = await configFile({
        listeners: [{ name: 'web', listen: '127.0.0.1:99999', routes: [{ path_prefix: '/', respond: { status: 42 } }] }],
        oops: true,
      });
      const { code, stderr } = await runHotconfToEnd(['validate', file]);
      expect(code).to.equal(1);
      const lines = stderr.trim().split('\n');
      expect(lines).to.have.length(3);
      expect(lines).to.include(`${file}: oops: unknown key`);
      expect(lines.some((l) => l.startsWith(`${file}: listeners.0.listen: port 99999 is out of range`))).to.equal(true);
      expect(lines.some((l) => l.startsWith(`${file}: listeners.0.routes.0.respond.status:`))).to.equal(true);
    });

    it('names a target or tracing endpoint without a scheme at its path, with no stack trace', async () => {
      const file = await configFile({
        ...basicConfig({ port: 8080 }),
        upstreams: { api: { targets: ['127.0.0.1:9000'] } },
        tracing: { endpoint: 'localhost:4318/v1/traces' },
      });
      const { code, stderr } = await runHotconfToEnd(['validate', file]);
      expect(code).to.equal(1);
      expect(stderr.trim().split('\n')).to.have.members([
        `${file}: upstreams.api.targets.0: must be an http:// or https:// URL, scheme included (http://127.0.0.1:9000, not 127.0.0.1:9000)`,
        `${file}: tracing.endpoint: must be an http:// or https:// URL, scheme included (http://localhost:4318/v1/traces, not localhost:4318/v1/traces)`,
      ]);
    });

    it('says a UTF-16 file is UTF-16', async () => {
      const file = join(await tempDir(), 'utf16.yaml');
      await writeFile(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(stringify(basicConfig({ port: 8080 })), 'utf16le')]));
      const { code, stderr } = await runHotconfToEnd(['validate', file]);
      expect(code).to.equal(1);
      expect(stderr).to.equal(
        `${file}: (document): document is UTF-16LE text (it starts with the byte order mark FF FE); hotconf reads UTF-8: convert it (iconv -f UTF-16LE -t UTF-8)\n`,
      );
    });

    it('exits 1 for an unreadable path', async () => {
      const { code, stderr } = await runHotconfToEnd(['validate', join(await tempDir(), 'absent.yaml')]);
      expect(code).to.equal(1);
      expect(stderr).to.contain('ENOENT');
    });
  });

  describe('reload and leaks', () => {
    it('reload exits 0 when applied, 1 with the errors when invalid; leaks prints the table and exits 0', async () => {
      const port = await freePort();
      const t = await startDaemon(basicConfig({ port }));
      await t.write(basicConfig({ port, body: 'new' }));
      const applied = await runHotconfToEnd(['reload', '--admin', t.admin]);
      expect(applied).to.deep.include({ code: 0, stdout: 'applied (generation 2)\n' });

      await t.write('listeners: [{name: web, listen: "x"}]\n');
      const invalid = await runHotconfToEnd(['reload', '--admin', t.admin.replace('http://', '')]);
      expect(invalid.code).to.equal(1);
      expect(invalid.stderr).to.contain('reload invalid (generation 2 keeps serving)').and.contain('listeners.0.listen');

      const leaks = await runHotconfToEnd(['leaks', '--admin', t.admin]);
      expect(leaks.code).to.equal(0);
      expect(leaks.stdout).to.match(/^KIND\s+LIVE\s+REFS\s+CREATED\s+REUSED\s+DESTROYED\s+FAILURES\s+LEAKED$/m);
      expect(leaks.stdout).to.match(/^listener\s+1\s+1\s+1\s+1\s+0\s+0\s+0$/m);
      expect(leaks.stdout).to.contain('ok: nothing leaked');

      const asJson = await runHotconfToEnd(['leaks', '--json', '--admin', t.admin]);
      expect(JSON.parse(asJson.stdout)).to.include({ ok: true, generations_live: 1 });
    });

    it('reload and leaks exit 2 when the daemon is unreachable', async () => {
      const admin = `http://127.0.0.1:${await freePort()}`;
      const reload = await runHotconfToEnd(['reload', '--admin', admin]);
      expect(reload.code).to.equal(2);
      expect(reload.stderr).to.contain(`cannot reach the hotconf admin API at ${admin}`);
      expect((await runHotconfToEnd(['leaks'], { env: { HOTCONF_ADMIN: admin } })).code).to.equal(2);
    });

    it('leaks exits 1 and lists the suspect when a resource is held outside any generation', async () => {
      const t = await startDaemon(basicConfig({ port: await freePort() }));
      const stray = await t.daemon.registry.acquire('cache', 'orphan', { create: () => 1, destroy: () => {} });
      let out = '';
      const code = await leaksCommand({ admin: t.admin }, { out: (s) => (out += s), err: (s) => (out += s) });
      expect(code).to.equal(1);
      expect(out).to.contain('suspects: 1').and.contain('unowned_resource cache orphan');
      await stray.release();
    });
  });
});
