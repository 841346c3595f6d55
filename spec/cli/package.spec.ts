import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, REPO_ROOT, spawnNode } from '../../harness/child.js';
import { basicConfig } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

const run = promisify(execFile);

interface PackResult {
  filename: string;
  files: { path: string }[];
}

/**
 * The production install: `npm pack` (scripts skipped: `npm test` built dist/ already, and a
 * rebuild here would rewrite files other specs' children are loading), then
 * `npm install --omit=dev` of the tarball into an empty directory, from npm's cache when it has
 * everything (`--prefer-offline`), and the installed `hotconf` run from there.
 */
describe('the packed package', () => {
  it('installs with npm install --omit=dev and runs hotconf --version, validate and run from the install', async function () {
    this.timeout(300_000);
    const dir = await tempDir();
    const { stdout: packed } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: REPO_ROOT });
    const [pack] = JSON.parse(packed) as PackResult[];
    const files = pack!.files.map((f) => f.path);
    expect(files).to.include.members(['bin/hotconf.js', 'dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'fixtures/demo.yaml', 'package.json']);
    expect(
      files.filter((f) => /^(lib|spec|harness|bench)\//.test(f)),
      'sources and specs stay out',
    ).to.deep.equal([]);

    const prefix = join(dir, 'install');
    await run('npm', ['install', '--prefer-offline', '--omit=dev', '--no-audit', '--no-fund', '--prefix', prefix, join(dir, pack!.filename)], {
      cwd: dir,
      maxBuffer: 16 * 1024 * 1024,
    });
    const hotconf = join(prefix, 'node_modules', '.bin', 'hotconf');
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    expect((await run(hotconf, ['--version'])).stdout).to.equal(`${version}\n`);
    const demo = join(prefix, 'node_modules', 'hotconf', 'fixtures', 'demo.yaml');
    expect((await run(hotconf, ['validate', demo])).stdout).to.contain(`${demo}: valid`);
    for (const dev of ['typescript', 'mocha', 'tsx']) expect(existsSync(join(prefix, 'node_modules', dev)), `dev dependency ${dev} installed`).to.equal(false);

    // The installed daemon serves, and its pid is in the started line.
    const port = await freePort();
    const config = join(dir, 'hotconf.yaml');
    await writeFile(config, stringify(basicConfig({ port, body: 'installed' })));
    const daemon = spawnNode(
      join(prefix, 'node_modules', 'hotconf', 'bin', 'hotconf.js'),
      ['run', '--config', config, '--admin', `127.0.0.1:${await freePort()}`],
      {
        cwd: dir,
      },
    );
    const started = await daemon.waitForLog('started', event('started'));
    expect(started.pid).to.equal(daemon.process.pid);
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('installed');
    const admin = started.admin as { port: number };
    expect(JSON.parse((await httpRequest(`http://127.0.0.1:${admin.port}/healthz`)).body)).to.include({ pid: daemon.process.pid });
    daemon.process.kill('SIGTERM');
    expect((await daemon.exited).code).to.equal(0);
    await waitFor('the final leak report', () => daemon.logs().find((l) => l.msg === 'final_leak_report'));
  });
});
