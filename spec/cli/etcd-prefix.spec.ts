import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { event, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { EtcdServer } from '../../harness/etcd.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';

const PREFIX = '/hotconf/routes/';

/** A fragment adding one route to the listener `web`, which another fragment defines. */
const route = (path: string) => `listeners:\n  - name: web\n    routes: [{ path_prefix: ${path}, respond: { status: 200, body: ${path} } }]\n`;

describe('hotconf put and delete with --prefix (CLI, real processes)', function () {
  this.timeout(90_000);
  let etcd: EtcdServer;
  let dir: string;
  beforeEach(async () => {
    etcd = await EtcdServer.start();
    dir = await tempDir();
  });

  const file = async (name: string, content: string) => {
    const path = join(dir, name);
    await writeFile(path, content);
    return path;
  };
  const hotconf = (command: 'put' | 'delete', args: string[]) => runHotconfToEnd([command, '--etcd', etcd.clientUrl, '--prefix', PREFIX, ...args]);
  /** Mod revision of `key` (0: absent). */
  const modRevision = async (key: string) => Number((await etcd.client().kv.range({ key: Buffer.from(key) })).kvs[0]?.mod_revision ?? 0);

  it('writes a fragment to PREFIX+NAME, compares --if-revision with that key alone, and refuses one that is not a valid fragment', async () => {
    const written = await hotconf('put', ['shop.yaml', await file('shop.yaml', route('/shop'))]);
    expect(written.code, written.stderr).to.equal(0);
    const shop = await modRevision(`${PREFIX}shop.yaml`);
    expect(written.stdout).to.match(new RegExp(`^${PREFIX}shop\\.yaml: written at revision ${shop} \\(hash [0-9a-f]{12}\\)\\n$`));
    expect(await etcd.client().get(`${PREFIX}shop.yaml`).string()).to.equal(route('/shop'));

    // Another key written since: the compare is on shop.yaml's own mod revision.
    await etcd.put(`${PREFIX}blog.yaml`, route('/blog'));
    const swapped = await hotconf('put', ['--if-revision', String(shop), 'shop.yaml', await file('shop2.yaml', route('/shop2'))]);
    expect(swapped.code, swapped.stderr).to.equal(0);
    expect(swapped.stdout).to.include(`(was ${shop}; hash `);
    const stale = await hotconf('put', ['--if-revision', String(shop), 'shop.yaml', await file('shop3.yaml', route('/shop3'))]);
    expect(stale.code).to.equal(1);
    expect(stale.stderr).to.include(`${PREFIX}shop.yaml: its mod revision is ${await modRevision(`${PREFIX}shop.yaml`)}, not ${shop} (--if-revision)`);

    const broken = await file('broken.yaml', 'listeners: [\n');
    const refused = await hotconf('put', ['broken.yaml', broken]);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include(`${broken}: (document): syntax error`).and.include(`invalid; nothing written to ${PREFIX}broken.yaml`);
    const unknown = await file('unknown.yaml', `${route('/x')}colour: blue\n`);
    const rejected = await hotconf('put', ['unknown.yaml', unknown]);
    expect(rejected.code).to.equal(1);
    expect(rejected.stderr).to.include(`${unknown}: colour: unknown key`);
    expect(await modRevision(`${PREFIX}broken.yaml`)).to.equal(0);
    expect(await modRevision(`${PREFIX}unknown.yaml`)).to.equal(0);
  });

  it('deletes a fragment, with --if-revision, and says when there is nothing to delete', async () => {
    const first = await etcd.put(`${PREFIX}a.yaml`, route('/a'));
    await etcd.put(`${PREFIX}b.yaml`, route('/b'));
    const stale = await hotconf('delete', ['--if-revision', String(first - 1), 'a.yaml']);
    expect(stale.code).to.equal(1);
    expect(stale.stderr).to.include(`its mod revision is ${first}, not ${first - 1} (--if-revision): changed since; nothing deleted`);
    const deleted = await hotconf('delete', ['--if-revision', String(first), 'a.yaml']);
    expect(deleted.code, deleted.stderr).to.equal(0);
    expect(deleted.stdout).to.match(new RegExp(`^${PREFIX}a\\.yaml: deleted at revision \\d+ \\(was ${first}\\)\\n$`));
    expect(await modRevision(`${PREFIX}a.yaml`)).to.equal(0);
    expect(await modRevision(`${PREFIX}b.yaml`)).to.be.above(0);

    const again = await hotconf('delete', ['a.yaml']);
    expect(again.code).to.equal(1);
    expect(again.stderr).to.include(`${PREFIX}a.yaml: does not exist in etcd`);
    const plain = await hotconf('delete', ['b.yaml']);
    expect(plain.code, plain.stderr).to.equal(0);
    expect(await modRevision(`${PREFIX}b.yaml`)).to.equal(0);
  });

  it('runs on the prefix: fragments written and deleted with the CLI apply, a key over --max-document-bytes keeps its last good version', async () => {
    const port = await freePort();
    const adminPort = await freePort();
    const listener = `listeners: [{ name: web, listen: "127.0.0.1:${port}", routes: [{ path_prefix: /base, respond: { status: 200, body: base } }] }]\n`;
    const initial: [string, string][] = [
      ['0-listener.yaml', listener],
      ['shop.yaml', route('/shop')],
      ['blog.yaml', route('/blog')],
    ];
    for (const [name, text] of initial) {
      const res = await hotconf('put', [name, await file(name, text)]);
      expect(res.code, res.stderr).to.equal(0);
    }
    const daemon = spawnHotconf(['run', '--etcd', etcd.clientUrl, '--prefix', PREFIX, '--admin', `127.0.0.1:${adminPort}`, '--max-document-bytes', '1k']);
    await daemon.waitForLog('started', event('started'));
    const get = async (path: string) => {
      const res = await httpRequest(`http://127.0.0.1:${port}${path}`);
      return `${res.status} ${res.body}`;
    };
    expect([await get('/shop'), await get('/blog')]).to.deep.equal(['200 /shop', '200 /blog']);

    const deleted = await hotconf('delete', ['blog.yaml']);
    expect(deleted.code, deleted.stderr).to.equal(0);
    await waitFor('the deleted fragment to go', async () => (await get('/blog')).startsWith('404'));
    expect(await get('/shop')).to.equal('200 /shop');

    // Over the daemon's 1 KiB limit, under put's 1 MiB: written, refused by the daemon naming the key.
    const big = await hotconf('put', ['shop.yaml', await file('big.yaml', `${route('/shop')}# ${'x'.repeat(2000)}\n`)]);
    expect(big.code, big.stderr).to.equal(0);
    await etcd.put(`${PREFIX}news.yaml`, route('/news'));
    await waitFor('the other fragment to apply', async () => (await get('/news')) === '200 /news');
    expect(await get('/shop')).to.equal('200 /shop');
    const config = JSON.parse((await httpRequest(`http://127.0.0.1:${adminPort}/config`)).body) as {
      source: Record<string, unknown>;
      fragments: { name: string; state: string; errors?: { message: string }[] }[];
    };
    expect(config.source).to.include({ kind: 'etcd', prefix: PREFIX, fragments: 3 });
    const shop = config.fragments.find((f) => f.name === `${PREFIX}shop.yaml`)!;
    expect(shop.state).to.equal('invalid-kept-last-good');
    expect(shop.errors![0]!.message).to.match(/^value is \d+ bytes; the limit is 1024 bytes \(--max-document-bytes\)$/);
    daemon.process.kill('SIGTERM');
    expect((await daemon.exited).code).to.equal(0);
  });

  it('refuses a command line that mixes --key and --prefix or misses the fragment name, exit 64', async () => {
    const path = await file('f.yaml', route('/f'));
    const cases: [string[], string][] = [
      [['put', '--etcd', etcd.clientUrl, '--prefix', PREFIX, path], 'with --prefix, put takes NAME FILE'],
      [['delete', '--etcd', etcd.clientUrl, '--prefix', PREFIX], 'with --prefix, delete takes NAME'],
      [['put', '--etcd', etcd.clientUrl, '--key', '/k', 'name', path], 'with --key, put takes FILE; NAME goes with --prefix'],
      [['put', '--etcd', etcd.clientUrl, '--key', '/k', '--prefix', PREFIX, 'name', path], '--key and --prefix exclude each other'],
      [['run', '--etcd', etcd.clientUrl, '--key', '/k', '--prefix', PREFIX], '--key and --prefix exclude each other'],
      [['run', '--prefix', PREFIX], '--prefix needs --etcd'],
    ];
    const results = await Promise.all(cases.map(([args]) => runHotconfToEnd(args)));
    for (const [i, res] of results.entries()) {
      expect(res.code, cases[i]![0].join(' ')).to.equal(64);
      expect(res.stderr).to.include(cases[i]![1]);
    }
  });
});
