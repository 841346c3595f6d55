import { open, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import sinon from 'sinon';
import { onCleanup } from '../../harness/cleanup.js';
import { mkfifo, tempDir } from '../../harness/tmp.js';
import { rejectionOf } from '../../harness/wait.js';
import { FileReadError, FileTooLargeError } from '../../lib/core/errors.js';
import { readRegularFile } from '../../lib/core/regular-file.js';

describe('readRegularFile', () => {
  it('reads a regular file, through a symlink too', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'a'), 'content\n');
    await symlink('a', join(dir, 'link'));
    expect((await readRegularFile(join(dir, 'a'), { maxBytes: 100 })).toString()).to.equal('content\n');
    expect((await readRegularFile(join(dir, 'link'), { maxBytes: 100 })).toString()).to.equal('content\n');
  });

  it('refuses a FIFO, a symlink to /dev/zero, a directory and a missing path, naming why without repeating the path', async () => {
    const dir = await tempDir();
    await symlink('/dev/zero', join(dir, 'zero'));
    const cases: [string, RegExp][] = [
      [mkfifo(join(dir, 'fifo')), /^is a FIFO \(named pipe\), not a regular file$/],
      [join(dir, 'zero'), /^is a character device \(such as \/dev\/zero\), not a regular file$/],
      [dir, /^is a directory, not a regular file$/],
      [join(dir, 'absent'), /^no such file or directory \(ENOENT\)$/],
    ];
    for (const [path, reason] of cases) {
      const error = await rejectionOf(readRegularFile(path, { maxBytes: 1024 }));
      expect(error, path).to.be.instanceOf(FileReadError);
      expect((error as FileReadError).reason, path).to.match(reason);
      expect(error.message, path).to.equal(`${path}: ${(error as FileReadError).reason}`);
    }
  });

  it('refuses a file over the limit by its size, without reading it', async () => {
    const file = join(await tempDir(), 'big');
    await writeFile(file, 'x'.repeat(2000));
    const error = await rejectionOf(readRegularFile(file, { maxBytes: 1000 }));
    expect(error).to.be.instanceOf(FileTooLargeError);
    expect(error).to.include({ sizeBytes: 2000, maxBytes: 1000, reason: 'file is 2000 bytes; the limit is 1000 bytes' });
  });

  it('stops reading a file whose size stat reports as 0 once it passes the limit (procfs)', async () => {
    // /proc/self/maps is a regular file of size 0 whose content is far longer than 64 bytes.
    const error = await rejectionOf(readRegularFile('/proc/self/maps', { maxBytes: 64 }));
    expect(error).to.be.instanceOf(FileTooLargeError);
    expect(error).to.include({ sizeBytes: 65, reason: 'file grew past the limit of 64 bytes while read' });
  });

  it('gives up on a read that does not finish within its timeout', async () => {
    const file = join(await tempDir(), 'slow');
    await writeFile(file, 'never read');
    const probe = await open(file, 'r');
    const prototype = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    // A read that never completes, as on a hung network file system.
    const stuck = sinon.stub(prototype, 'read').callsFake(() => new Promise(() => {}));
    onCleanup(() => stuck.restore());
    const error = await rejectionOf(readRegularFile(file, { maxBytes: 1024, timeoutMs: 50 }));
    expect(error).to.be.instanceOf(FileReadError);
    expect((error as FileReadError).reason).to.equal('the read did not finish within 50 ms');
    expect(stuck.callCount).to.equal(1);
  });
});
