import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';
import type { FragmentStatus } from '../../lib/config/fragment-merge.js';
import type { ConfigIssue } from '../../lib/core/errors.js';

// `hotconf run --config-dir DIR` as a user runs it: the compiled CLI on real files, real sockets.

interface ConfigBody {
  generation: number;
  hash: string;
  source: { kind: string; path: string };
  fragments: FragmentStatus[];
  config: { listeners: { name: string; routes: { path_prefix: string }[] }[] };
}

const routeFragment = (i: number, body: string) => ({ listeners: [{ name: 'web', routes: [{ path_prefix: `/r${i}`, respond: { status: 200, body } }] }] });
const baseFragment = (port: number) => ({ shutdown_timeout_ms: 2000, listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [] }] });
const fileName = (i: number) => `r${String(i).padStart(4, '0')}.yaml`;

/** `hotconf run --config-dir DIR`, started; its URLs and how to ask it. */
async function runDir(dir: string, port: number, extra: readonly string[] = []) {
  const admin = await freePort();
  const p = spawnHotconf(['run', '--config-dir', dir, '--admin', `127.0.0.1:${admin}`, ...extra]);
  await p.waitForLog('started', event('started'), 60_000);
  const adminUrl = `http://127.0.0.1:${admin}`;
  return {
    p,
    get: async (path: string) => {
      const res = await httpRequest(`http://127.0.0.1:${port}${path}`);
      return res.status === 200 ? res.body : res.status;
    },
    config: async () => JSON.parse((await httpRequest(`${adminUrl}/config`)).body) as ConfigBody,
    reload: async () => JSON.parse((await httpRequest(`${adminUrl}/reload`, { method: 'POST' })).body) as { result: string; errors?: ConfigIssue[] },
  };
}

const stateOf = (body: ConfigBody, file: string) => body.fragments.find((f) => f.name.endsWith(`/${file}`));

describe('hotconf run --config-dir', function () {
  this.timeout(120_000);

  it('keeps the last good version of a bad fragment among 1,000 while a change to another fragment applies', async () => {
    const [dir, port] = [await tempDir(), await freePort()];
    await writeFile(join(dir, '0000-base.yaml'), stringify(baseFragment(port)));
    await Promise.all(Array.from({ length: 999 }, (_, i) => writeFile(join(dir, fileName(i + 1)), stringify(routeFragment(i + 1, `one-${i + 1}`)))));
    // Not watching: the reload below is the one that sees both changes.
    const d = await runDir(dir, port, ['--no-watch']);
    expect(await d.get('/r17')).to.equal('one-17');
    expect(await d.get('/r999')).to.equal('one-999');

    // One fragment breaks (a schema error), another changes, in one reload.
    await writeConfigAtomic(join(dir, fileName(17)), { listeners: [{ name: 'web', routes: [{ path_prefix: 'r17', respond: { status: 200 } }] }] });
    await writeConfigAtomic(join(dir, fileName(500)), routeFragment(500, 'two-500'));
    const result = await d.reload();
    expect(result.result).to.equal('applied');
    expect(result.errors).to.deep.equal([{ origin: join(dir, fileName(17)), path: 'listeners.0.routes.0.path_prefix', message: 'must start with /' }]);
    expect(await d.get('/r500')).to.equal('two-500');
    expect(await d.get('/r17')).to.equal('one-17');

    const body = await d.config();
    expect(body.fragments).to.have.length(1000);
    expect(stateOf(body, fileName(17))).to.deep.include({ state: 'invalid-kept-last-good' });
    expect(stateOf(body, fileName(17))!.errors).to.deep.equal(result.errors);
    expect(stateOf(body, fileName(500))).to.deep.include({ state: 'ok' });
    expect(body.fragments.filter((f) => f.state !== 'ok')).to.have.length(1);
    expect(body.config.listeners[0]!.routes).to.have.length(999);

    // Fixing it applies it.
    await writeConfigAtomic(join(dir, fileName(17)), routeFragment(17, 'fixed-17'));
    expect((await d.reload()).result).to.equal('applied');
    expect(await d.get('/r17')).to.equal('fixed-17');
    expect(stateOf(await d.config(), fileName(17))).to.deep.include({ state: 'ok' });
    d.p.process.kill('SIGTERM');
    expect((await d.p.exited).code).to.equal(0);
  });

  it('leaves a never-valid fragment out and reports it, removes exactly the routes of a removed file, and names both files of a duplicate', async () => {
    const [dir, port] = [await tempDir(), await freePort()];
    await writeFile(join(dir, 'a.yaml'), stringify(baseFragment(port)));
    await writeFile(join(dir, 'b.yaml'), stringify({ ...routeFragment(1, 'b'), upstreams: { api: { targets: ['http://127.0.0.1:9'] } } }));
    await writeFile(join(dir, 'c.yaml'), stringify(routeFragment(2, 'c')));
    await writeFile(join(dir, 'd.yaml'), 'listeners: [\n');
    const d = await runDir(dir, port);
    expect(await d.get('/r1')).to.equal('b');
    const started = await d.config();
    expect(stateOf(started, 'd.yaml')).to.deep.include({ state: 'invalid-never-applied' });
    expect(stateOf(started, 'd.yaml')!.errors![0]!.message).to.match(/^syntax error/);
    expect(stateOf(started, 'd.yaml')).to.not.have.property('applied_version');

    // A file removed: its route goes, every other one stays (the watcher applies it).
    await unlink(join(dir, 'c.yaml'));
    await waitFor('the removed route to go', async () => (await d.get('/r2')) === 404);
    expect(await d.get('/r1')).to.equal('b');
    expect((await d.config()).config.listeners[0]!.routes.map((r) => r.path_prefix)).to.deep.equal(['/r1']);
    expect(stateOf(await d.config(), 'c.yaml')).to.equal(undefined);

    // A second file defining the upstream and the listener: refused, naming both files.
    await writeConfigAtomic(join(dir, 'e.yaml'), {
      upstreams: { api: { targets: ['http://127.0.0.1:10'] } },
      listeners: [{ name: 'web', listen: `127.0.0.1:${await freePort()}`, routes: [] }],
    });
    const result = await d.reload();
    expect(result.result).to.equal('invalid');
    const e = result.errors!.filter((i) => i.origin === join(dir, 'e.yaml'));
    expect(e.map((i) => `${i.path}: ${i.message}`)).to.have.members([
      `upstreams.api: upstream "api" is also defined by fragment ${JSON.stringify(join(dir, 'b.yaml'))}`,
      `listeners.0.name: listener "web" is also defined by fragment ${JSON.stringify(join(dir, 'a.yaml'))}`,
    ]);
    expect(stateOf(await d.config(), 'e.yaml')).to.deep.include({ state: 'invalid-never-applied' });
    d.p.process.kill('SIGTERM');
    expect((await d.p.exited).code).to.equal(0);
  });

  it('applies a Kubernetes ConfigMap ..data symlink swap', async () => {
    const [dir, port] = [await tempDir(), await freePort()];
    const stamp = async (name: string, fragments: Record<string, unknown>) => {
      await mkdir(join(dir, name));
      for (const [file, data] of Object.entries(fragments)) await writeFile(join(dir, name, file), stringify(data));
    };
    await stamp('..2026_01', { 'base.yaml': baseFragment(port), 'routes.yaml': routeFragment(1, 'v1') });
    await symlink('..2026_01', join(dir, '..data'));
    for (const file of ['base.yaml', 'routes.yaml']) await symlink(`..data/${file}`, join(dir, file));
    const d = await runDir(dir, port);
    expect(await d.get('/r1')).to.equal('v1');
    // What the kubelet does: a new timestamped dir, a new link renamed over ..data, the old dir removed.
    await stamp('..2026_02', { 'base.yaml': baseFragment(port), 'routes.yaml': routeFragment(1, 'v2') });
    await symlink('..2026_02', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..2026_01'), { recursive: true });
    await waitFor('the swapped config to be served', async () => (await d.get('/r1')) === 'v2');
    await d.p.waitForLog('watch reload applied', event('reload', { trigger: 'watch', result: 'applied', generation: 2 }));
    d.p.process.kill('SIGTERM');
    expect((await d.p.exited).code).to.equal(0);
  });

  it('with --workers 2, the primary merges and both workers serve the merge, a bad fragment kept at its last good version', async () => {
    const [dir, port] = [await tempDir(), await freePort()];
    await writeFile(join(dir, 'a.yaml'), stringify(baseFragment(port)));
    await writeFile(join(dir, 'b.yaml'), stringify(routeFragment(1, 'b1')));
    await writeFile(join(dir, 'c.yaml'), stringify(routeFragment(2, 'c1')));
    const d = await runDir(dir, port, ['--workers', '2', '--no-watch']);
    await writeConfigAtomic(join(dir, 'b.yaml'), 'listeners: {');
    await writeConfigAtomic(join(dir, 'c.yaml'), routeFragment(2, 'c2'));
    const result = await d.reload();
    expect(result.result).to.equal('applied');
    expect(result.errors!.map((i) => i.origin)).to.deep.equal([join(dir, 'b.yaml')]);
    // Fresh connections, spread over both workers by the cluster's round-robin.
    for (let i = 0; i < 6; i += 1) {
      expect(await d.get('/r2')).to.equal('c2');
      expect(await d.get('/r1')).to.equal('b1');
    }
    const body = (await d.config()) as ConfigBody & { workers: { revision: number }[] };
    expect(body.workers.map((w) => w.revision)).to.deep.equal([2, 2]);
    expect(stateOf(body, 'b.yaml')).to.deep.include({ state: 'invalid-kept-last-good' });
    d.p.process.kill('SIGTERM');
    expect((await d.p.exited).code).to.equal(0);
  });

  it('refuses a fragment over --max-document-bytes on its own, and starts on a directory with no valid fragment only to fail saying so', async () => {
    const [dir, port] = [await tempDir(), await freePort()];
    await writeFile(join(dir, 'a.yaml'), stringify(baseFragment(port)));
    await writeFile(join(dir, 'big.yaml'), stringify(routeFragment(1, 'x'.repeat(3000))));
    const d = await runDir(dir, port, ['--max-document-bytes', '2k']);
    expect(stateOf(await d.config(), 'big.yaml')!.errors![0]!.message).to.match(/file is \d+ bytes; the limit is 2048 bytes/);
    d.p.process.kill('SIGTERM');
    expect((await d.p.exited).code).to.equal(0);

    const empty = await tempDir();
    await writeFile(join(empty, 'bad.json'), '{');
    const failed = await runHotconfToEnd(['run', '--config-dir', empty, '--admin', `127.0.0.1:${await freePort()}`]);
    expect(failed.code).to.equal(1);
    expect(failed.stderr).to.contain('no valid fragment among the 1').and.contain(join(empty, 'bad.json'));
  });

  it('validate accepts a directory, naming each refused fragment', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a.yaml'), stringify(baseFragment(8080)));
    await writeFile(join(dir, 'b.yaml'), stringify(routeFragment(1, 'b')));
    const valid = await runHotconfToEnd(['validate', dir]);
    expect(valid.code).to.equal(0);
    expect(valid.stdout).to.match(/valid \(2 fragments, hash [0-9a-f]{12}\)/);
    await writeFile(join(dir, 'c.yaml'), stringify({ listeners: [{ name: 'nope', routes: [{ path_prefix: '/', respond: { status: 200 } }] }] }));
    const invalid = await runHotconfToEnd(['validate', dir]);
    expect(invalid.code).to.equal(1);
    expect(invalid.stderr).to.contain(`${join(dir, 'c.yaml')}: listeners.0.name: adds routes to listener "nope", which no fragment defines`);
  });
});
