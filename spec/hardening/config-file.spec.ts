import { appendFile, chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

/** `nobody` on Debian: root bypasses file permissions, so the EACCES daemon runs as this user. */
const NOBODY = 65534;

describe('hardening: a config file that breaks while watched', function () {
  this.timeout(60_000);

  let t: TestDaemon;
  let web: number;

  beforeEach(async () => {
    web = await freePort();
    t = await startDaemon(basicConfig({ port: web, body: 'good' }), { watch: true });
  });

  /** The watcher reported the breakage; generation 1 still serves `good`; an explicit reload says why, naming the file. */
  async function expectLastGoodKept(reason: RegExp): Promise<void> {
    await waitFor('a source error', () =>
      t.logs.lines().some((l) => l.msg === 'source_error' && reason.test(String((l.err as { message?: string } | undefined)?.message))),
    );
    expect(await metricValue(t.admin, 'hotconf_source_errors_total')).to.be.at.least(1);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
    const res = await httpRequest(`${t.admin}/reload`, { method: 'POST' });
    expect(res.status).to.equal(422);
    const body = JSON.parse(res.body) as { result: string; generation: number; errors: { message: string }[] };
    expect(body).to.include({ result: 'invalid', generation: 1 });
    expect(body.errors[0]!.message).to.contain(t.file).and.match(reason);
    expect(t.daemon.reloader.generations().map((g) => g.id)).to.deep.equal([1]);
    expect((await httpRequest(`${t.admin}/healthz`)).status).to.equal(200);
  }

  /** A good write is picked up by the watcher again. */
  async function expectRecovery(write: () => Promise<void>): Promise<void> {
    await write();
    await waitFor('the recovered config to be served', async () => (await getText(`http://127.0.0.1:${web}/`)) === 'recovered');
    expect(t.daemon.reloader.active!.id).to.equal(2);
    expect(t.daemon.leaks().ok).to.equal(true);
  }

  const recovered = () => writeFile(t.file, stringify(basicConfig({ port: web, body: 'recovered' })));

  it('replaced by a directory: keeps the last good config, recovers when a file is back', async () => {
    await rm(t.file);
    await mkdir(t.file);
    await expectLastGoodKept(/is a directory/);
    await expectRecovery(async () => {
      await rm(t.file, { recursive: true });
      await recovered();
    });
  });

  it('replaced by a symlink loop: keeps the last good config, recovers when a file is back', async () => {
    const link = join(t.dir, 'loop.tmp');
    await symlink('hotconf.yaml', link); // hotconf.yaml -> hotconf.yaml once renamed
    await rename(link, t.file);
    await expectLastGoodKept(/ELOOP/);
    await expectRecovery(async () => {
      await rm(t.file);
      await recovered();
    });
  });

  it('deleted, then recreated: keeps the last good config meanwhile', async () => {
    await rm(t.file);
    await expectLastGoodKept(/ENOENT/);
    await expectRecovery(recovered);
  });

  it('written in two halves with a pause: rejects the half, applies the whole', async () => {
    const text = JSON.stringify(basicConfig({ port: web, body: 'recovered' }), null, 2);
    const half = Math.floor(text.length / 2);
    await writeFile(t.file, text.slice(0, half));
    await waitFor('the half to be rejected', () => t.logs.lines().some((l) => l.msg === 'reload' && l.trigger === 'watch' && l.result === 'invalid'));
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
    expect(t.daemon.reloader.active!.id).to.equal(1);
    await expectRecovery(() => appendFile(t.file, text.slice(half)));
  });
});

describe('hardening: an unreadable config file (EACCES)', function () {
  this.timeout(60_000);

  it('keeps the last good config in a daemon that may not read the file, and recovers', async () => {
    const dir = await tempDir();
    await chmod(dir, 0o755); // reachable by the unprivileged daemon
    const file = join(dir, 'hotconf.yaml');
    const web = await freePort();
    const admin = `127.0.0.1:${await freePort()}`;
    const write = async (body: string, mode: number) => {
      const tmp = join(dir, `next-${body}.tmp`);
      await writeFile(tmp, stringify(basicConfig({ port: web, body })), { mode });
      await chmod(tmp, mode); // not subject to the umask
      await rename(tmp, file);
    };
    await write('good', 0o644);
    const asRoot = process.getuid?.() === 0;
    const child = spawnHotconf(['run', '--config', file, '--admin', admin], asRoot ? { uid: NOBODY, gid: NOBODY } : {});
    await child.waitForLog('started', event('started'));

    await write('unreadable', 0o000);
    const error = await child.waitForLog('a source error', event('source_error'));
    expect(String((error.err as { message?: string } | undefined)?.message))
      .to.contain('EACCES')
      .and.contain(file);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
    child.process.kill('SIGHUP');
    const reload = (await child.waitForLog('the SIGHUP reload', event('reload', { trigger: 'signal' }))) as {
      result: string;
      generation: number;
      errors: { message: string }[];
    };
    expect(reload).to.include({ result: 'invalid', generation: 1 });
    expect(reload.errors[0]!.message).to.contain('EACCES');
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');

    await write('recovered', 0o644);
    await waitFor('the recovered config', async () => (await getText(`http://127.0.0.1:${web}/`)) === 'recovered');
    child.process.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    expect(child.logs().find((l) => l.msg === 'final_leak_report')).to.include({ ok: true });
  });
});
