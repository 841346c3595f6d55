import { appendFile, chmod, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { basicConfig, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { mkfifo, tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

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

  it('replaced by a FIFO: refuses it without blocking, keeps the last good config, recovers when a file is back', async () => {
    await rm(t.file);
    mkfifo(t.file);
    await expectLastGoodKept(/is a FIFO \(named pipe\), not a regular file/);
    await expectRecovery(async () => {
      await rm(t.file);
      await recovered();
    });
  });

  it('replaced by a symlink to /dev/zero: refuses it without reading, keeps the last good config, recovers', async () => {
    const link = join(t.dir, 'zero.tmp');
    await symlink('/dev/zero', link);
    await rename(link, t.file);
    await expectLastGoodKept(/is a character device \(such as \/dev\/zero\), not a regular file/);
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
    // A temp dir only root may enter, as mktemp makes: the daemon runs as root, without root's
    // bypass of file modes (setpriv), so the unreadable file is unreadable to it.
    const dir = await tempDir();
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
    const child = spawnHotconf(['run', '--config', file, '--admin', admin], { fileModesApply: true });
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

describe('hardening: files that are not regular files', function () {
  this.timeout(60_000);

  it('a daemon whose config becomes a FIFO answers every reload and stops on SIGTERM (nothing blocks on open)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'hotconf.yaml');
    const web = await freePort();
    await writeFile(file, stringify(basicConfig({ port: web, body: 'good' })));
    const child = spawnHotconf(['run', '--config', file, '--no-watch', '--admin', `127.0.0.1:${await freePort()}`]);
    await child.waitForLog('started', event('started'));
    await rm(file);
    mkfifo(file);
    // More reloads than libuv has pool threads (4): each blocked open used to hold one for good.
    for (let i = 1; i <= 6; i++) {
      child.process.kill('SIGHUP');
      await waitFor(`SIGHUP reload ${i}`, () => child.logs().filter((l) => l.msg === 'reload' && l.trigger === 'signal').length >= i);
    }
    const reloads = child.logs().filter((l) => l.msg === 'reload' && l.trigger === 'signal') as { result: string; errors: { message: string }[] }[];
    expect(reloads.map((r) => r.result)).to.deep.equal(Array(6).fill('invalid'));
    expect(reloads[0]!.errors[0]!.message).to.equal(`${file}: cannot read config file: is a FIFO (named pipe), not a regular file`);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
    child.process.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
  });

  it('hotconf validate refuses a FIFO and a symlink to /dev/zero at once, naming each, also as fragments of a directory', async () => {
    const dir = await tempDir();
    const pipe = join(dir, 'pipe.yaml');
    mkfifo(pipe);
    const zero = join(dir, 'zero.yaml');
    await symlink('/dev/zero', zero);
    const reasons = [
      [pipe, 'is a FIFO (named pipe), not a regular file'],
      [zero, 'is a character device (such as /dev/zero), not a regular file'],
    ] as const;
    for (const [path, reason] of reasons) {
      const { code, stderr } = await runHotconfToEnd(['validate', path]);
      expect(code, path).to.equal(1);
      expect(stderr, path).to.equal(`${path}: cannot read config file: ${reason}\n`);
    }
    // A directory is validated as `run --config-dir` reads it: each file a fragment.
    const { code, stderr } = await runHotconfToEnd(['validate', dir]);
    expect(code, dir).to.equal(1);
    expect(stderr, dir).to.equal(
      `${reasons.map(([path, reason]) => `${path}: (document): cannot read fragment file: ${reason}\n`).join('')}${dir}: no valid fragment among 2\n`,
    );
  });

  it('refuses an admin token file that is a FIFO at start, naming it once, with nothing bound', async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, 'token');
    mkfifo(tokenFile);
    const web = await freePort();
    const file = join(dir, 'hotconf.yaml');
    await writeFile(file, stringify(basicConfig({ port: web, extra: { admin: { listen: `127.0.0.1:${await freePort()}`, token_file: tokenFile } } })));
    const { code, stdout, stderr } = await runHotconfToEnd(['run', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.equal(`hotconf: ${tokenFile}: cannot read the admin token file: is a FIFO (named pipe), not a regular file\n`);
    expect(stdout).to.not.contain('"result":"applied"');
  });
});
