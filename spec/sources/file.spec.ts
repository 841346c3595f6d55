import { createHash } from 'node:crypto';
import { mkdir, rename, rm, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { writeConfigAtomic } from '../../harness/daemon.js';
import { handleCount } from '../../harness/handles.js';
import { tempDir } from '../../harness/tmp.js';
import { rejectionOf, waitFor } from '../../harness/wait.js';
import { SourceReadError } from '../../lib/core/errors.js';
import { FileSource } from '../../lib/sources/file.js';
import type { RawDocument } from '../../lib/sources/source.js';

/** A watching FileSource that records what it reports; closed after the test. */
async function watched(path: string) {
  const source = new FileSource({ path });
  onCleanup(() => source.close());
  const docs: RawDocument[] = [];
  const errors: Error[] = [];
  await source.read();
  await source.watch({ onDocument: (d) => docs.push(d), onError: (e) => errors.push(e) });
  return { source, docs, errors, texts: () => docs.map((d) => d.text) };
}

/** `c.yaml` holding `v: 0` in a fresh temp dir, read and watched (see `watched`). */
async function watchedFile() {
  const file = join(await tempDir(), 'c.yaml');
  await writeFile(file, 'v: 0\n');
  return { file, ...(await watched(file)) };
}

describe('FileSource', () => {
  describe('read', () => {
    it('returns the text, its SHA-256 as version and the absolute path', async () => {
      const dir = await tempDir();
      const file = join(dir, 'c.yaml');
      await writeFile(file, 'a: 1\n');
      const doc = await new FileSource({ path: file }).read();
      expect(doc.text).to.equal('a: 1\n');
      expect(doc.version).to.equal(createHash('sha256').update('a: 1\n').digest('hex'));
      expect(doc.source).to.deep.equal({ kind: 'file', path: file });
    });

    it('names the file when it is missing', async () => {
      const dir = await tempDir();
      const error = await rejectionOf(new FileSource({ path: join(dir, 'absent.yaml') }).read());
      expect(error).to.be.instanceOf(SourceReadError);
      expect(error.message).to.contain(join(dir, 'absent.yaml')).and.contain('ENOENT');
    });

    it('refuses a directory and a file over the size limit without reading it', async () => {
      const dir = await tempDir();
      expect((await rejectionOf(new FileSource({ path: dir }).read())).message).to.contain('is a directory');
      const big = join(dir, 'big.yaml');
      await writeFile(big, 'x'.repeat(2000));
      expect((await rejectionOf(new FileSource({ path: big, maxDocumentBytes: 1000 }).read())).message).to.contain(
        'file is 2000 bytes; the limit is 1000 bytes',
      );
    });
  });

  describe('watch', () => {
    it('reports an in-place write', async () => {
      const { file, ...w } = await watchedFile();
      await writeFile(file, 'v: 1\n');
      await waitFor('the write to be reported', () => w.texts().includes('v: 1\n'));
    });

    it('reports an editor rename-save (write a temp file, rename over)', async () => {
      const { file, ...w } = await watchedFile();
      await writeFile(`${file}.swp`, 'v: 2\n');
      await rename(`${file}.swp`, file);
      await waitFor('the rename to be reported', () => w.texts().includes('v: 2\n'));
    });

    it('reports a delete as an error, keeps watching and reports the recreated file', async () => {
      const { file, ...w } = await watchedFile();
      await unlink(file);
      await waitFor('the delete to be reported', () => w.errors.some((e) => e.message.includes('ENOENT')));
      expect(w.docs).to.have.length(0);
      await writeFile(file, 'v: 3\n');
      await waitFor('the recreated file to be reported', () => w.texts().includes('v: 3\n'));
    });

    it('follows a Kubernetes ConfigMap ..data symlink swap', async () => {
      const dir = await tempDir();
      await mkdir(join(dir, '..2026_01'));
      await writeFile(join(dir, '..2026_01', 'c.yaml'), 'v: 1\n');
      await symlink('..2026_01', join(dir, '..data'));
      await symlink('..data/c.yaml', join(dir, 'c.yaml'));
      const w = await watched(join(dir, 'c.yaml'));
      for (const [n, stamp] of [
        [2, '..2026_02'],
        [3, '..2026_03'],
      ] as const) {
        // What the kubelet does: new timestamped dir, new link, atomic rename over ..data, old dir removed.
        await mkdir(join(dir, stamp));
        await writeFile(join(dir, stamp, 'c.yaml'), `v: ${n}\n`);
        await symlink(stamp, join(dir, '..data_tmp'));
        await rename(join(dir, '..data_tmp'), join(dir, '..data'));
        await rm(join(dir, n === 2 ? '..2026_01' : '..2026_02'), { recursive: true });
        await waitFor(`swap ${n} to be reported`, () => w.texts().includes(`v: ${n}\n`));
      }
      expect(w.texts()).to.deep.equal(['v: 2\n', 'v: 3\n']);
    });

    it('reports nothing when the file is touched without a content change', async () => {
      const { file, ...w } = await watchedFile();
      // Whole-file replacements: an in-place write truncates first, and a check that lands between
      // the truncation and the write (a loaded machine) rightly reports the empty file it read.
      await writeConfigAtomic(file, 'v: 0\n');
      await utimes(file, new Date(), new Date());
      await writeConfigAtomic(file, 'v: 4\n'); // a real change after the no-ops, to know the events were processed
      await waitFor('the real change', () => w.texts().includes('v: 4\n'));
      expect(w.texts()).to.deep.equal(['v: 4\n']);
    });

    it('debounces a burst of writes into the final content', async () => {
      const { file, ...w } = await watchedFile();
      for (let i = 1; i <= 20; i++) await writeFile(file, `v: ${i}\n`);
      await waitFor('the last write', () => w.texts().includes('v: 20\n'));
      // A later change, once reported, proves every event of the burst has been handled.
      await writeFile(file, 'v: 21\n');
      await waitFor('the later change', () => w.texts().includes('v: 21\n'));
      const burst = w.texts().slice(0, -1);
      expect(burst.length).to.be.lessThan(20);
      expect(burst.at(-1)).to.equal('v: 20\n');
    });

    it('stops reporting and releases its watchers on close', async () => {
      const fsWatchers = () => handleCount('FSEventWrap');
      const before = fsWatchers();
      const { file, ...w } = await watchedFile();
      expect(fsWatchers()).to.be.above(before);
      await w.source.close();
      await waitFor('its file-system watchers to be released', () => fsWatchers() === before);
      // A second source reports the next write: by then the closed one would have reported it too.
      const witness = await watched(file);
      await writeFile(file, 'v: 9\n');
      await waitFor('the witness to report the write', () => witness.texts().includes('v: 9\n'));
      expect(w.docs).to.have.length(0);
    });
  });
});

describe('FileSource between read and watch', () => {
  it('reports a write made after the last read but before the watch was ready', async () => {
    const dir = await tempDir();
    const file = join(dir, 'c.yaml');
    await writeFile(file, 'v: 0\n');
    const source = new FileSource({ path: file });
    onCleanup(() => source.close());
    await source.read();
    await writeFile(file, 'v: 1\n'); // no watcher yet: no event will ever say so
    const docs: RawDocument[] = [];
    await source.watch({ onDocument: (d) => docs.push(d), onError: () => {} });
    await waitFor('the missed write to be reported', () => docs.some((d) => d.text === 'v: 1\n'));
  });
});
