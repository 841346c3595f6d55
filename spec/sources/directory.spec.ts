import { createHash } from 'node:crypto';
import { mkdir, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { handleCount } from '../../harness/handles.js';
import { tempDir } from '../../harness/tmp.js';
import { rejectionOf, waitFor } from '../../harness/wait.js';
import { SourceReadError } from '../../lib/core/errors.js';
import { DirectorySource } from '../../lib/sources/directory.js';
import type { RawDocument } from '../../lib/sources/source.js';

/** A watching DirectorySource on `dir` that records what it reports; closed after the test. */
async function watched(dir: string) {
  const source = new DirectorySource({ path: dir });
  onCleanup(() => source.close());
  const docs: RawDocument[] = [];
  const errors: Error[] = [];
  await source.read();
  await source.watch({ onDocument: (d) => docs.push(d), onError: (e) => errors.push(e) });
  /** The text of fragment `file` in the last document reported. */
  const text = (file: string) => docs.at(-1)?.fragments?.find((f) => f.name === join(dir, file))?.text;
  return { source, docs, errors, text };
}

const names = (doc: RawDocument) => doc.fragments!.map((f) => f.name);

describe('DirectorySource', () => {
  describe('read', () => {
    it('returns every *.yaml, *.yml and *.json file as a fragment named by its path, in name order', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'b.yml'), 'b: 1\n');
      await writeFile(join(dir, 'a.yaml'), 'a: 1\n');
      await writeFile(join(dir, 'c.JSON'), '{"c": 1}');
      for (const other of ['.hidden.yaml', 'notes.txt', 'a.yaml~', 'a.yaml.swp']) await writeFile(join(dir, other), 'x: 1\n');
      await mkdir(join(dir, 'sub'));
      await writeFile(join(dir, 'sub', 'd.yaml'), 'd: 1\n');
      const doc = await new DirectorySource({ path: dir }).read();
      expect(names(doc)).to.deep.equal(['a.yaml', 'b.yml', 'c.JSON'].map((f) => join(dir, f)));
      expect(doc.fragments![0]).to.deep.equal({ name: join(dir, 'a.yaml'), text: 'a: 1\n', version: createHash('sha256').update('a: 1\n').digest('hex') });
      expect(doc.source).to.deep.equal({ kind: 'directory', path: dir });
      expect(doc.text).to.equal('');
    });

    it('gives the set a version that changes with any fragment, and only then', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'a.yaml'), 'a: 1\n');
      const source = new DirectorySource({ path: dir });
      const first = await source.read();
      expect((await source.read()).version).to.equal(first.version);
      await writeFile(join(dir, 'a.yaml'), 'a: 2\n');
      const second = await source.read();
      expect(second.version).to.not.equal(first.version);
      expect(second.fragments![0]!.text).to.equal('a: 2\n');
      await writeFile(join(dir, 'b.yaml'), 'b: 1\n');
      expect((await source.read()).version).to.not.equal(second.version);
    });

    it('turns a file it cannot use into a fragment with an error, and keeps the others', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'big.yaml'), `x: "${'y'.repeat(2000)}"\n`);
      await writeFile(join(dir, 'utf16.yaml'), Buffer.from([0xff, 0xfe, 0x61, 0x00]));
      await mkdir(join(dir, 'dir.yaml'));
      await writeFile(join(dir, 'ok.yaml'), 'a: 1\n');
      const doc = await new DirectorySource({ path: dir, maxFragmentBytes: 1000 }).read();
      const byName = new Map(doc.fragments!.map((f) => [f.name.slice(dir.length + 1), f]));
      expect(byName.get('big.yaml')!.error).to.match(/cannot read fragment file: file is \d+ bytes; the limit is 1000 bytes/);
      expect(byName.get('utf16.yaml')!.error).to.contain('UTF-16LE');
      expect(byName.get('dir.yaml')!.error).to.contain('is a directory');
      expect(byName.get('ok.yaml')).to.not.have.property('error');
    });

    it('refuses the whole directory over the total size limit, and a missing directory, naming it', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'a.yaml'), 'a: 1\n'.repeat(100));
      await writeFile(join(dir, 'b.yaml'), 'b: 1\n'.repeat(100));
      const error = await rejectionOf(new DirectorySource({ path: dir, maxTotalBytes: 999 }).read());
      expect(error).to.be.instanceOf(SourceReadError);
      expect(error.message).to.contain(dir).and.contain('the fragment files are 1000 bytes together; the limit is 999 bytes');
      const missing = await rejectionOf(new DirectorySource({ path: join(dir, 'absent') }).read());
      expect(missing).to.be.instanceOf(SourceReadError);
      expect(missing.message).to.contain('cannot read config directory').and.contain('ENOENT');
    });
  });

  describe('watch', () => {
    it('reports an in-place write, an editor rename-save, a new file and a removed one', async () => {
      const dir = await tempDir();
      await writeFile(join(dir, 'a.yaml'), 'v: 0\n');
      await writeFile(join(dir, 'b.yaml'), 'v: 0\n');
      const w = await watched(dir);
      await writeFile(join(dir, 'a.yaml'), 'v: 1\n');
      await waitFor('the write to be reported', () => w.text('a.yaml') === 'v: 1\n');
      await writeFile(join(dir, 'a.yaml.swp'), 'v: 2\n');
      await rename(join(dir, 'a.yaml.swp'), join(dir, 'a.yaml'));
      await waitFor('the rename-save to be reported', () => w.text('a.yaml') === 'v: 2\n');
      await writeFile(join(dir, 'c.json'), '{"v": 3}');
      await waitFor('the new file to be reported', () => w.text('c.json') === '{"v": 3}');
      await unlink(join(dir, 'b.yaml'));
      await waitFor('the removal to be reported', () => w.docs.at(-1)!.fragments!.length === 2);
      expect(names(w.docs.at(-1)!)).to.deep.equal([join(dir, 'a.yaml'), join(dir, 'c.json')]);
      expect(w.errors).to.deep.equal([]);
    });

    it('follows a Kubernetes ConfigMap ..data symlink swap, files added and removed with it', async () => {
      const dir = await tempDir();
      await mkdir(join(dir, '..2026_01'));
      await writeFile(join(dir, '..2026_01', 'a.yaml'), 'v: 1\n');
      await writeFile(join(dir, '..2026_01', 'b.yaml'), 'v: 1\n');
      await symlink('..2026_01', join(dir, '..data'));
      await symlink('..data/a.yaml', join(dir, 'a.yaml'));
      await symlink('..data/b.yaml', join(dir, 'b.yaml'));
      const w = await watched(dir);
      // What the kubelet does: new timestamped dir, new link, atomic rename over ..data, old dir removed;
      // a key removed from the ConfigMap loses its link after the swap.
      await mkdir(join(dir, '..2026_02'));
      await writeFile(join(dir, '..2026_02', 'a.yaml'), 'v: 2\n');
      await symlink('..2026_02', join(dir, '..data_tmp'));
      await rename(join(dir, '..data_tmp'), join(dir, '..data'));
      await rm(join(dir, '..2026_01'), { recursive: true });
      await unlink(join(dir, 'b.yaml'));
      await waitFor('the swap to be reported', () => w.text('a.yaml') === 'v: 2\n' && w.docs.at(-1)!.fragments!.length === 1);
      expect(w.docs.at(-1)!.fragments!.map((f) => f.name)).to.deep.equal([join(dir, 'a.yaml')]);
    });

    it('reads only the file an event names: a write among 200 fragments neither lists the directory nor looks at the others', async () => {
      const dir = await tempDir();
      for (let i = 0; i < 200; i += 1) await writeFile(join(dir, `f${String(i).padStart(3, '0')}.yaml`), `v: ${i}\n`);
      const w = await watched(dir);
      await writeFile(join(dir, 'f000.yaml'), 'v: a\n');
      // Reported by the check that lists the directory once after the watch started (and reads what changed).
      await waitFor('the first write to be reported', () => w.text('f000.yaml') === 'v: a\n');
      // The named exports of node:fs/promises follow its CommonJS object once synced: the source's calls go through the spies.
      const fsp = createRequire(import.meta.url)('node:fs/promises') as typeof import('node:fs/promises');
      const readdir = sinon.spy(fsp, 'readdir');
      const stat = sinon.spy(fsp, 'stat');
      syncBuiltinESMExports();
      onCleanup(() => {
        readdir.restore();
        stat.restore();
        syncBuiltinESMExports();
      });
      await writeFile(join(dir, 'f123.yaml'), 'v: b\n');
      await waitFor('the second write to be reported', () => w.text('f123.yaml') === 'v: b\n');
      expect(readdir.callCount).to.equal(0);
      expect(stat.callCount).to.be.within(1, 4);
      for (const call of stat.getCalls()) expect(call.args[0]).to.equal(join(dir, 'f123.yaml'));
      expect(w.docs.at(-1)!.fragments).to.have.length(200);
    });

    it('reports a directory it cannot watch to onError, naming it, and still reads', async () => {
      const dir = await tempDir();
      const path = join(dir, 'conf.d');
      await mkdir(path);
      await writeFile(join(path, 'a.yaml'), 'v: 0\n');
      const source = new DirectorySource({ path });
      onCleanup(() => source.close());
      await source.read();
      await rm(path, { recursive: true });
      const errors: Error[] = [];
      await source.watch({ onDocument: () => expect.fail('nothing to report'), onError: (e) => errors.push(e) });
      expect(errors).to.have.length(1);
      expect(errors[0]).to.be.instanceOf(SourceReadError);
      expect(errors[0]!.message).to.contain('cannot watch config directory').and.contain(path).and.contain('ENOENT');
      await mkdir(path);
      await writeFile(join(path, 'b.yaml'), 'v: 1\n');
      expect(names(await source.read())).to.deep.equal([join(path, 'b.yaml')]);
    });

    it('reports nothing for files that are not fragments, and stops reporting on close', async () => {
      const fsWatchers = () => handleCount('FSEventWrap');
      const before = fsWatchers();
      const dir = await tempDir();
      await writeFile(join(dir, 'a.yaml'), 'v: 0\n');
      const w = await watched(dir);
      await writeFile(join(dir, 'notes.txt'), 'x');
      await writeFile(join(dir, '.a.yaml.swp'), 'x');
      await writeFile(join(dir, 'a.yaml'), 'v: 1\n'); // a real change after the others, to know their events were handled
      await waitFor('the real change', () => w.text('a.yaml') === 'v: 1\n');
      expect(w.docs).to.have.length(1);
      await w.source.close();
      await waitFor('its file-system watchers to be released', () => fsWatchers() === before);
      const witness = await watched(dir);
      await writeFile(join(dir, 'a.yaml'), 'v: 2\n');
      await waitFor('the witness to report the write', () => witness.text('a.yaml') === 'v: 2\n');
      expect(w.docs).to.have.length(1);
    });
  });
});
