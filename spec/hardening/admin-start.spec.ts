import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { runHotconfToEnd } from '../../harness/child.js';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, memoryLogger, startDaemon } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { rejectionOf } from '../../harness/wait.js';
import { AdminTokenError, AdminTokenRequiredError } from '../../lib/core/errors.js';
import { Daemon } from '../../lib/daemon/daemon.js';
import { FileSource } from '../../lib/sources/file.js';

/** `final_leak_report`'s count of listeners ever created (0 when none was). */
function listenersCreated(logs: Record<string, unknown>[]): number {
  const report = logs.find((l) => l.msg === 'final_leak_report') as { resources?: Record<string, { created?: number }> } | undefined;
  expect(report, 'a final leak report').to.not.equal(undefined);
  return report!.resources?.listener?.created ?? 0;
}

describe('hardening: a start that cannot have its admin API', function () {
  this.timeout(60_000);

  async function configWithAdmin(admin: Record<string, unknown>): Promise<{ file: string; dir: string; web: number }> {
    const dir = await tempDir();
    const web = await freePort();
    const file = join(dir, 'hotconf.yaml');
    await writeFile(file, stringify(basicConfig({ port: web, extra: { admin } })));
    return { file, dir, web };
  }

  it('fails a start whose admin token file is missing before provisioning anything, naming the file once', async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, 'absent-token');
    const { file } = await configWithAdmin({ listen: `127.0.0.1:${await freePort()}`, token_file: tokenFile });
    const { code, stdout, stderr } = await runHotconfToEnd(['run', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.equal(`hotconf: ${tokenFile}: cannot read the admin token file: no such file or directory (ENOENT)\n`);
    const logs = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logs.filter((l) => l.msg === 'reload').map((l) => l.result)).to.deep.equal(['failed']);
    expect(logs.some((l) => l.msg === 'admin_listening')).to.equal(false);
    expect(listenersCreated(logs)).to.equal(0);
  });

  it('fails a cluster start (--workers 2) whose admin token file is missing before any worker provisions', async () => {
    const tokenFile = join(await tempDir(), 'absent-token');
    const { file } = await configWithAdmin({ listen: `127.0.0.1:${await freePort()}`, token_file: tokenFile });
    const { code, stdout, stderr } = await runHotconfToEnd(['run', '--workers', '2', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.equal(`hotconf: ${tokenFile}: cannot read the admin token file: no such file or directory (ENOENT)\n`);
    const reloads = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'reload');
    expect(reloads.map((l) => [l.component, l.result])).to.deep.equal([['cluster', 'failed']]);
  });

  it('refuses in process with the token error itself, or the missing-token error, with no listener created', async () => {
    const cases = [
      { admin: { listen: `127.0.0.1:${await freePort()}`, token_file: '/nonexistent/hotconf-token' }, error: AdminTokenError },
      { admin: { listen: `0.0.0.0:${await freePort()}` }, error: AdminTokenRequiredError },
    ];
    for (const { admin, error } of cases) {
      const { file } = await configWithAdmin(admin);
      const logs = memoryLogger();
      const daemon = new Daemon({ source: new FileSource({ path: file }), logger: logs.logger, watch: false, defaultMetrics: false });
      onCleanup(() => daemon.stop());
      expect(await rejectionOf(daemon.start()), JSON.stringify(admin)).to.be.instanceOf(error);
      expect(daemon.registry.stats().listener?.created ?? 0, JSON.stringify(admin)).to.equal(0);
      expect(logs.lines().some((l) => l.msg === 'reload' && l.result === 'applied')).to.equal(false);
    }
  });

  it('fails a start whose admin address is taken before provisioning anything', async () => {
    const taken = await freePort();
    await occupyPort(taken);
    const { file } = await configWithAdmin({ listen: `127.0.0.1:${taken}` });
    const { code, stdout, stderr } = await runHotconfToEnd(['run', '--config', file]);
    expect(code).to.equal(1);
    expect(stderr).to.contain('EADDRINUSE');
    const logs = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(listenersCreated(logs)).to.equal(0);
  });
});

describe('hardening: admin settings a reload cannot apply', function () {
  this.timeout(60_000);

  it('warns in the result and the log that admin.listen and admin.token_file take a restart, and applies the rest', async () => {
    const web = await freePort();
    const dir = await tempDir();
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'a-token-long-enough-for-hotconf');
    const adminPort = await freePort();
    const t = await startDaemon(basicConfig({ port: web, body: 'one', extra: { admin: { listen: `127.0.0.1:${adminPort}` } } }), { adminListen: undefined });
    const moved = `127.0.0.1:${await freePort()}`;
    const result = await t.apply(basicConfig({ port: web, body: 'two', extra: { admin: { listen: moved, token_file: tokenFile } } }));
    expect(result).to.deep.include({ result: 'applied', generation: 2 });
    expect(result.warnings).to.deep.equal([
      {
        path: 'admin.listen',
        message: `changed from 127.0.0.1:${adminPort} to ${moved}: takes effect when hotconf restarts; the admin API stays where it started (127.0.0.1:${adminPort})`,
      },
      {
        path: 'admin.token_file',
        message: `changed from (none) to ${tokenFile}: takes effect when hotconf restarts; the admin API keeps the token it started with`,
      },
    ]);
    const line = t.logs.lines().findLast((l) => l.msg === 'reload')!;
    expect(line).to.deep.include({ level: 40, result: 'applied', warnings: result.warnings });
    // Nothing of it took effect: same address, still no token.
    expect((await httpRequest(`http://127.0.0.1:${adminPort}/config`)).status).to.equal(200);
    expect((await httpRequest(`http://127.0.0.1:${web}/`)).body).to.equal('two');

    // hotconf reload prints them, and exits 0.
    const cli = await runHotconfToEnd(['reload', '--admin', `127.0.0.1:${adminPort}`]);
    expect(cli.code).to.equal(0);
    expect(cli.stdout).to.equal('unchanged (generation 2)\n');
    await t.write(basicConfig({ port: web, body: 'three', extra: { admin: { listen: moved, token_file: tokenFile } } }));
    const again = await runHotconfToEnd(['reload', '--admin', `127.0.0.1:${adminPort}`]);
    expect(again).to.deep.include({ code: 0, stdout: 'applied (generation 3)\n' });
    expect(again.stderr).to.contain(`warning: admin.listen: changed from 127.0.0.1:${adminPort} to ${moved}`);

    // Back to what it started with: nothing to warn about.
    const back = await t.apply(basicConfig({ port: web, body: 'four', extra: { admin: { listen: `127.0.0.1:${adminPort}` } } }));
    expect(back).to.deep.include({ result: 'applied' });
    expect(back).to.not.have.property('warnings');
  });
});
