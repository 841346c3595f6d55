import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { type HotconfChild, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { basicConfig } from '../../harness/daemon.js';
import { EtcdServer } from '../../harness/etcd.js';
import { getText, httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

const KEY = '/hotconf/config';

/** The value and mod revision of `key`, read with the spec's own client. */
async function current(etcd: EtcdServer, key = KEY): Promise<{ value: string | undefined; revision: number }> {
  const res = await etcd.client().kv.range({ key: Buffer.from(key) });
  const kv = res.kvs[0];
  return { value: kv?.value.toString('utf8'), revision: Number(kv?.mod_revision ?? 0) };
}

async function health(admin: string): Promise<number> {
  return (await httpRequest(`${admin}/healthz`)).status;
}

/** SIGTERM a running daemon and wait for it to exit: 0 is a clean stop. */
async function stop(proc: HotconfChild): Promise<number | NodeJS.Signals> {
  proc.process.kill('SIGTERM');
  const { code, signal } = await proc.exited;
  return code ?? signal!;
}

describe('hotconf with etcd (CLI, real processes)', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let dir: string;
  let port: number;
  beforeEach(async () => {
    etcd = await EtcdServer.start();
    dir = await tempDir();
    port = await freePort();
  });

  const file = async (name: string, content: string | Record<string, unknown>) => {
    const path = join(dir, name);
    await writeFile(path, typeof content === 'string' ? content : stringify(content));
    return path;
  };
  const put = (args: string[]) => runHotconfToEnd(['put', '--etcd', etcd.clientUrl, '--key', KEY, ...args]);

  describe('hotconf put', () => {
    it('writes a valid document and prints the new mod revision', async () => {
      const path = await file('good.yaml', basicConfig({ port, body: 'hello' }));
      const res = await put([path]);
      expect(res.code, res.stderr).to.equal(0);
      const { value, revision } = await current(etcd);
      expect(value).to.equal(stringify(basicConfig({ port, body: 'hello' })));
      expect(res.stdout).to.include(`${KEY}: written at revision ${revision}`);
    });

    it('refuses an invalid document with its errors, writing nothing', async () => {
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'before' })));
      const before = await current(etcd);
      const path = await file('bad.yaml', { listeners: [{ name: 'web', listen: 'nowhere', routes: [] }], colour: 'blue' });
      const res = await put([path]);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.include(`${path}: listeners.0.listen:`).and.include(`${path}: colour: unknown key`).and.include('nothing written');
      expect(await current(etcd)).to.deep.equal(before);
    });

    it('refuses a document over 1 MiB with a clear message, writing nothing', async () => {
      const path = await file('huge.yaml', `# ${'x'.repeat(1024 * 1024)}\n${stringify(basicConfig({ port }))}`);
      const res = await put([path]);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.match(/bytes; hotconf refuses config documents over 1 MiB \(1048576 bytes\).*Nothing written/);
      expect((await current(etcd)).revision).to.equal(0);
    });

    it('with --if-revision writes only while the mod revision still matches (0: key absent)', async () => {
      const first = await put(['--if-revision', '0', await file('a.yaml', basicConfig({ port, body: 'a' }))]);
      expect(first.code, first.stderr).to.equal(0);
      const { revision: seen } = await current(etcd);

      // Two operators start from revision `seen`; the first one wins.
      const mine = await put(['--if-revision', String(seen), await file('b.yaml', basicConfig({ port, body: 'b' }))]);
      expect(mine.code, mine.stderr).to.equal(0);
      const after = await current(etcd);
      expect(after.value).to.include('b');
      const theirs = await put(['--if-revision', String(seen), await file('c.yaml', basicConfig({ port, body: 'c' }))]);
      expect(theirs.code).to.equal(1);
      expect(theirs.stderr).to.include(`its mod revision is ${after.revision}, not ${seen} (--if-revision)`).and.include('nothing written');
      expect(await current(etcd)).to.deep.equal(after);

      const absent = await put(['--if-revision', '0', await file('d.yaml', basicConfig({ port, body: 'd' }))]);
      expect(absent.code).to.equal(1);
      expect(await current(etcd)).to.deep.equal(after);
    });

    it('exits 2 naming the endpoint when etcd is unreachable', async () => {
      const path = await file('good.yaml', basicConfig({ port }));
      await etcd.kill();
      const res = await put([path]);
      expect(res.code).to.equal(2);
      expect(res.stderr).to.include(`cannot write to etcd at ${etcd.clientUrl}`);
    });
  });

  describe('hotconf run --etcd', () => {
    it('answers /healthz 503 while etcd is unreachable at start, retrying, then serves the key once etcd is up', async () => {
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'first' })));
      await etcd.kill();
      const adminPort = await freePort();
      const admin = `http://127.0.0.1:${adminPort}`;
      const daemon = spawnHotconf(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', `127.0.0.1:${adminPort}`]);
      await waitFor('the admin API to answer 503', async () => (await health(admin)) === 503, 20_000);
      await waitFor('two startup attempts to be logged', () => daemon.logs().filter((l) => l.msg === 'etcd_startup_retry').length >= 2, 20_000);
      const retry = daemon.logs().find((l) => l.msg === 'etcd_startup_retry')!;
      expect(retry).to.include({ component: 'source', key: KEY, attempt: 1 });
      expect(retry.delay_ms).to.be.a('number');
      expect(await health(admin)).to.equal(503);

      await etcd.restart();
      await waitFor('the first config to apply', async () => (await health(admin)) === 200, 30_000);
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('first');
      expect(await stop(daemon)).to.equal(0);
    });

    it('gives up after --startup-timeout with a clear message and a non-zero exit', async () => {
      await etcd.kill();
      const res = await runHotconfToEnd(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', `127.0.0.1:${await freePort()}`, '--startup-timeout', '1s']);
      expect(res.code).to.equal(1);
      expect(res.stderr).to.include('hotconf: cannot start').and.include(KEY).and.include(etcd.clientUrl).and.include('startup timeout 1 s');
    });

    it('re-reads the key on SIGHUP', async () => {
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'one' })));
      const adminPort = await freePort();
      const daemon = spawnHotconf(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', `127.0.0.1:${adminPort}`, '--no-watch']);
      await waitFor('the daemon to start', async () => (await health(`http://127.0.0.1:${adminPort}`).catch(() => 0)) === 200, 30_000);
      const second = await etcd.put(KEY, stringify(basicConfig({ port, body: 'two' })));
      daemon.process.kill('SIGHUP');
      await waitFor('the re-read value to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'two');
      const line = daemon.logs().find((l) => l.msg === 'reload' && l.trigger === 'signal')!;
      expect(line).to.include({ result: 'applied' });
      expect((line.source as { revision: number }).revision).to.equal(second);
      expect(await stop(daemon)).to.equal(0);
    });

    it('authenticates with --etcd-user and the password from HOTCONF_ETCD_PASSWORD, never showing it', async () => {
      const password = 'spec-secret-4711';
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'authenticated' })));
      await etcd.enableAuth(password);
      const adminPort = await freePort();
      const admin = `http://127.0.0.1:${adminPort}`;
      const args = ['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', `127.0.0.1:${adminPort}`, '--etcd-user', 'root'];

      const denied = await runHotconfToEnd([...args, '--startup-timeout', '1s'], { env: { HOTCONF_ETCD_PASSWORD: 'wrong' } });
      expect(denied.code).to.equal(1);
      expect(denied.stderr).to.match(/authentication failed/i);

      const daemon = spawnHotconf(args, { env: { HOTCONF_ETCD_PASSWORD: password } });
      await waitFor('the daemon to start with auth', async () => (await health(admin).catch(() => 0)) === 200, 30_000);
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('authenticated');
      expect(daemon.stdout() + daemon.stderr() + (await httpRequest(`${admin}/config`)).body).to.not.include(password);
      expect(await stop(daemon)).to.equal(0);
      expect(daemon.stdout() + daemon.stderr()).to.not.include(password);
    });

    it('refuses --etcd-user without a password, naming where the password comes from', async () => {
      const res = await runHotconfToEnd(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--etcd-user', 'root'], { env: { HOTCONF_ETCD_PASSWORD: '' } });
      expect(res.code).to.equal(64);
      expect(res.stderr).to.include('--etcd-user root needs a password: set $HOTCONF_ETCD_PASSWORD or --etcd-password-file');
    });

    it('recovers from a compacted resume revision: daemon frozen (SIGSTOP) while etcd is written, compacted and restarted', async () => {
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'before' })));
      const adminPort = await freePort();
      const admin = `http://127.0.0.1:${adminPort}`;
      const daemon = spawnHotconf(['run', '--etcd', etcd.clientUrl, '--key', KEY, '--admin', `127.0.0.1:${adminPort}`]);
      await waitFor('the daemon to start', async () => (await health(admin).catch(() => 0)) === 200, 30_000);
      await waitFor('the watch to be established', () => daemon.logs().some((l) => l.msg === 'watch_started'));

      // Frozen, the daemon cannot read its watch; etcd restarting drops that connection, so the
      // writes after it reach the daemon only through a new watch from its resume revision,
      // which the compaction has removed.
      daemon.process.kill('SIGSTOP');
      await etcd.restart();
      await etcd.put(KEY, stringify(basicConfig({ port, body: 'missed-1' })));
      const last = await etcd.put(KEY, stringify(basicConfig({ port, body: 'missed-2' })));
      await etcd.compact();
      daemon.process.kill('SIGCONT');

      await waitFor('the value written while frozen to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'missed-2', 30_000);
      const config = JSON.parse((await httpRequest(`${admin}/config`)).body) as { source: { revision: number } };
      expect(config.source.revision).to.equal(last);
      const resync = daemon.logs().find((l) => l.msg === 'resync')!;
      expect(resync).to.include({ reason: 'compacted', key: KEY });
      expect(await metricValue(admin, 'hotconf_source_resyncs_total', { reason: 'compacted' })).to.equal(1);
      // The resync serves the value it read before the new watch exists: `connected` turns 1
      // only when etcd confirms that watch (`created`), some time after the value is served.
      await waitFor('the new watch to be confirmed', async () => (await metricValue(admin, 'hotconf_source_connected')) === 1);
      // The intermediate value was compacted away: only the final one is applied, once (its log
      // line may reach the pipe after the swap that served it).
      await waitFor('the reload log line', () => daemon.logs().some((l) => l.msg === 'reload' && l.trigger === 'watch'));
      const applied = daemon.logs().filter((l) => l.msg === 'reload' && l.trigger === 'watch');
      expect(applied.map((l) => l.result)).to.deep.equal(['applied']);

      const after = await etcd.put(KEY, stringify(basicConfig({ port, body: 'after' })));
      await waitFor('puts after the resync to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'after');
      expect((JSON.parse((await httpRequest(`${admin}/config`)).body) as { source: { revision: number } }).source.revision).to.equal(after);
      expect(await stop(daemon)).to.equal(0);
    });
  });
});

describe('hotconf with etcd over mutual TLS (CLI, real processes)', function () {
  this.timeout(90_000);

  it('puts and serves through --etcd-ca/--etcd-cert/--etcd-key, and is refused without a client certificate', async () => {
    const etcd = await EtcdServer.start({ tls: true });
    const tls = etcd.tls!;
    const port = await freePort();
    const dir = await tempDir();
    const path = join(dir, 'hotconf.yaml');
    await writeFile(path, stringify(basicConfig({ port, body: 'over tls' })));
    const flags = ['--etcd', etcd.clientUrl, '--key', KEY, '--etcd-ca', tls.ca];

    const anonymous = await runHotconfToEnd(['put', ...flags, path]);
    expect(anonymous.code).to.equal(2);
    expect((await current(etcd)).revision).to.equal(0);

    const written = await runHotconfToEnd(['put', ...flags, '--etcd-cert', tls.clientCert, '--etcd-key', tls.clientKey, path]);
    expect(written.code, written.stderr).to.equal(0);
    const { revision } = await current(etcd);
    expect(revision).to.be.above(0);

    const adminPort = await freePort();
    const admin = `http://127.0.0.1:${adminPort}`;
    // The same flags through their environment variables: the bootstrap section.
    const daemon = spawnHotconf(['run', '--admin', `127.0.0.1:${adminPort}`], {
      env: {
        HOTCONF_ETCD_ENDPOINTS: etcd.clientUrl,
        HOTCONF_ETCD_KEY: KEY,
        HOTCONF_ETCD_CA: tls.ca,
        HOTCONF_ETCD_CERT: tls.clientCert,
        HOTCONF_ETCD_CERT_KEY: tls.clientKey,
      },
    });
    await waitFor('the daemon to start over TLS', async () => (await health(admin).catch(() => 0)) === 200, 30_000);
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('over tls');
    const config = JSON.parse((await httpRequest(`${admin}/config`)).body) as { source: unknown };
    expect(config.source).to.deep.equal({ kind: 'etcd', endpoints: [etcd.clientUrl], key: KEY, revision });
    expect(await stop(daemon)).to.equal(0);
  });

  it('refuses TLS files with http:// endpoints, naming the flags', async () => {
    const res = await runHotconfToEnd(['put', '--etcd', 'http://127.0.0.1:1', '--key', KEY, '--etcd-ca', '/nonexistent.pem', '/nonexistent.yaml']);
    expect(res.code).to.equal(64);
    expect(res.stderr).to.include('--etcd-ca/--etcd-cert/--etcd-key need https:// endpoints in --etcd');
  });
});
