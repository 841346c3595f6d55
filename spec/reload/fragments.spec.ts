// biome-ignore-all lint/suspicious/noTemplateCurlyInString: the references specs hold `${env:NAME}` and `${file:/path}` strings
import { rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { onCleanup } from '../../harness/cleanup.js';
import { memoryLogger, specDaemon } from '../../harness/daemon.js';
import { getText } from '../../harness/http.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { rejectionOf, waitFor } from '../../harness/wait.js';
import { REDACTED } from '../../lib/config/redact.js';
import type { Config } from '../../lib/config/schema.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { FragmentLoader, parseFragmentsHere } from '../../lib/reload/fragments.js';
import { DirectorySource } from '../../lib/sources/directory.js';

const routes = (prefix: string, body: string) => ({ listeners: [{ name: 'web', routes: [{ path_prefix: prefix, respond: { status: 200, body } }] }] });

/** A daemon on a config directory holding `files`, started, not watching. */
async function dirDaemon(files: Record<string, unknown>) {
  const dir = await tempDir();
  for (const [name, data] of Object.entries(files)) await writeFile(join(dir, name), stringify(data));
  const daemon = await specDaemon(new DirectorySource({ path: dir }), memoryLogger(), { watch: false });
  await daemon.start();
  return { dir, daemon, write: (name: string, data: unknown) => writeFile(join(dir, name), stringify(data)) };
}

describe('fragments in the reloader', () => {
  it('commits fragment states only with the config they belong to: a failed provision changes none', async () => {
    const [web, api] = [await freePort(), await freePort()];
    const t = await dirDaemon({ 'a.yaml': { listeners: [{ name: 'web', listen: `127.0.0.1:${web}` }] }, 'b.yaml': routes('/', 'one') });
    const blocker = await occupyPort(api);
    await t.write('b.yaml', routes('/', 'two'));
    await t.write('c.yaml', { listeners: [{ name: 'api', listen: `127.0.0.1:${api}`, routes: [] }] });
    const failed = await t.daemon.reload();
    expect(failed).to.include({ result: 'failed', generation: 1 });
    expect(failed.error).to.contain('EADDRINUSE');
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('one');
    const states = t.daemon.reloader.fragments()!;
    expect(states.map((s) => s.name)).to.deep.equal([join(t.dir, 'a.yaml'), join(t.dir, 'b.yaml')]);
    expect((t.daemon.config() as { fragments: unknown }).fragments).to.deep.equal(states);

    // The port free again, the same fragments apply: they were not taken for merged.
    await blocker.release();
    expect(await t.daemon.reload()).to.include({ result: 'applied', generation: 2 });
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('two');
    expect(t.daemon.reloader.fragments()!.map((s) => s.state)).to.deep.equal(['ok', 'ok', 'ok']);
  });

  it('is unchanged for the same fragments, and invalid when the only change is refused', async () => {
    const web = await freePort();
    const t = await dirDaemon({ 'a.yaml': { listeners: [{ name: 'web', listen: `127.0.0.1:${web}` }] }, 'b.yaml': routes('/', 'one') });
    expect(await t.daemon.reload()).to.include({ result: 'unchanged', generation: 1 });
    await writeFile(join(t.dir, 'b.yaml'), 'listeners: [{name: web, routes: [{path_prefix: /, respond: {status: 999}}]}]\n');
    const refused = await t.daemon.reload();
    expect(refused).to.include({ result: 'invalid', generation: 1 });
    expect(refused.errors).to.deep.equal([
      { origin: join(t.dir, 'b.yaml'), path: 'listeners.0.routes.0.respond.status', message: 'must be a status, 200-599' },
    ]);
    expect(t.daemon.reloader.fragments()![1]).to.deep.include({ state: 'invalid-kept-last-good' });
    // Removing the bad file removes the routes it had.
    await unlink(join(t.dir, 'b.yaml'));
    expect(await t.daemon.reload()).to.include({ result: 'applied', generation: 2 });
    expect(t.daemon.reloader.active!.config.listeners[0]!.routes).to.deep.equal([]);
    expect(t.daemon.reloader.fragments()!.map((s) => s.name)).to.deep.equal([join(t.dir, 'a.yaml')]);
  });

  it('parses only the fragments whose version is new, and refuses the set over the total size limit', async () => {
    const parsed: string[] = [];
    const loader = new FragmentLoader({
      maxTotalBytes: 200,
      parse: (fragments, options) => {
        parsed.push(...fragments.map((f) => f.name));
        return parseFragmentsHere(fragments, options);
      },
    });
    const base = { name: 'a', text: stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080' }] }), version: 'a1' };
    loader.commit(await loader.plan([base, { name: 'b', text: stringify(routes('/', 'x')), version: 'b1' }]));
    loader.commit(
      await loader.plan([base, { name: 'b', text: stringify(routes('/', 'y')), version: 'b2' }, { name: 'c', text: '', version: 'c1', error: 'unreadable' }]),
    );
    expect(parsed).to.deep.equal(['a', 'b', 'b']);
    expect(loader.statuses().find((s) => s.name === 'c')).to.deep.include({
      state: 'invalid-never-applied',
      errors: [{ path: '', message: 'unreadable', origin: 'c' }],
    });
    const error = await rejectionOf(loader.plan([base, { name: 'big', text: 'x: 1\n'.repeat(50), version: 'big' }], '/etc/hotconf.d'));
    expect(error).to.be.instanceOf(ConfigInvalidError);
    expect(error.message).to.match(/^\/etc\/hotconf\.d: invalid config: the 2 fragments are \d+ bytes together; the limit is 200 bytes/);
  });
});

describe('fragments with secret references', function () {
  this.timeout(60_000);

  it('resolves ${env:} and ${file:} per fragment, redacts them at their merged paths, re-applies a rotated file, and keeps a fragment whose variable is unset at its last good version', async () => {
    const secrets = await tempDir();
    const token = join(secrets, 'token');
    await writeFile(token, 'S3cr3t-file-1\n');
    process.env.HOTCONF_SPEC_FRAGMENT_BODY = 'S3cr3t-env-1';
    onCleanup(() => delete process.env.HOTCONF_SPEC_FRAGMENT_BODY);
    const [web, api] = [await freePort(), await freePort()];
    const dir = await tempDir();
    const write = (name: string, data: unknown) => writeFile(join(dir, name), stringify(data));
    const webFragment = (body: string) => ({
      listeners: [{ name: 'web', listen: `127.0.0.1:${web}`, routes: [{ path_prefix: '/a', respond: { status: 200, body } }] }],
    });
    await write('a.yaml', webFragment('a1'));
    // b adds routes to web: its listeners.0.routes.1 is the merged listeners.0.routes.2.
    await write('b.yaml', {
      listeners: [
        {
          name: 'web',
          routes: [
            { path_prefix: '/plain', respond: { status: 200, body: 'plain' } },
            { path_prefix: '/env', respond: { status: 200, body: '${env:HOTCONF_SPEC_FRAGMENT_BODY}' } },
          ],
        },
      ],
    });
    // c defines api (merged listeners.1) and adds to web: its listeners.1.routes.0 is the merged listeners.0.routes.3.
    await write('c.yaml', {
      listeners: [
        { name: 'api', listen: `127.0.0.1:${api}`, routes: [{ path_prefix: '/', respond: { status: 200, body: 'api' } }] },
        { name: 'web', routes: [{ path_prefix: '/file', respond: { status: 200, body: `\${file:${token}}` } }] },
      ],
    });
    const logs = memoryLogger();
    const daemon = await specDaemon(new DirectorySource({ path: dir, logger: logs.logger }), logs, { watch: true });
    await daemon.start();

    expect(await getText(`http://127.0.0.1:${web}/env`)).to.equal('S3cr3t-env-1');
    expect(await getText(`http://127.0.0.1:${web}/file`)).to.equal('S3cr3t-file-1');
    expect(await getText(`http://127.0.0.1:${api}/`)).to.equal('api');
    expect(daemon.reloader.active!.references.map((r) => r.path)).to.deep.equal(['listeners.0.routes.2.respond.body', 'listeners.0.routes.3.respond.body']);
    const shown = (daemon.config() as { config: Config }).config;
    expect(shown.listeners[0]!.routes.map((r) => r.respond!.body)).to.deep.equal(['a1', 'plain', REDACTED, REDACTED]);
    expect(shown.listeners[1]!.routes[0]!.respond!.body).to.equal('api');

    // The secret file rotated (c.yaml unchanged): the reload it triggers resolves c again.
    await writeFile(`${token}.new`, 'S3cr3t-file-2\n');
    await rename(`${token}.new`, token);
    await waitFor('the rotated secret served', async () => (await getText(`http://127.0.0.1:${web}/file`)) === 'S3cr3t-file-2');

    // The variable unset: b keeps its last good version while a's change applies.
    delete process.env.HOTCONF_SPEC_FRAGMENT_BODY;
    await write('a.yaml', webFragment('a2'));
    await waitFor('a.yaml applied', async () => (await getText(`http://127.0.0.1:${web}/a`)) === 'a2');
    expect(await getText(`http://127.0.0.1:${web}/env`)).to.equal('S3cr3t-env-1');
    const b = daemon.reloader.fragments()!.find((f) => f.name === join(dir, 'b.yaml'))!;
    expect(b).to.deep.include({ state: 'invalid-kept-last-good' });
    expect(b.errors).to.deep.equal([
      {
        origin: join(dir, 'b.yaml'),
        path: 'listeners.0.routes.1.respond.body',
        message: '${env:HOTCONF_SPEC_FRAGMENT_BODY}: environment variable HOTCONF_SPEC_FRAGMENT_BODY is not set',
      },
    ]);
    expect((daemon.config() as { config: Config }).config.listeners[0]!.routes[2]!.respond!.body).to.equal(REDACTED);
    expect(logs.text()).to.not.contain('S3cr3t');
  });
});
