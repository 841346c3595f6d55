// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these specs are about `${env:NAME}` and `${file:/path}` strings
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';
import { REDACTED } from '../../lib/config/redact.js';
import type { ReloadResult } from '../../lib/reload/reloader.js';

/** Set an environment variable of this process for the current test. */
function setEnv(name: string, value: string): void {
  const before = process.env[name];
  process.env[name] = value;
  onCleanup(() => {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  });
}

/**
 * A Kubernetes Secret volume as the kubelet writes it: `mount/token` → `..data/token`,
 * `..data` → `..<timestamp>`; `publish` writes a new timestamped directory and swaps `..data`
 * to it atomically (a symlink renamed over the old one), as the kubelet's AtomicWriter does.
 */
async function secretMount(dir: string, token: string): Promise<{ file: string; publish(token: string | undefined): Promise<void> }> {
  const mount = join(dir, 'secret');
  let version = 0;
  const publish = async (value: string | undefined) => {
    version += 1;
    const data = `..2026_12_02_00_00_${String(version).padStart(2, '0')}`;
    await mkdir(join(mount, data), { recursive: true });
    if (value !== undefined) await writeFile(join(mount, data, 'token'), value);
    await symlink(data, join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
  };
  await publish(token);
  await symlink('..data/token', join(mount, 'token'));
  return { file: join(mount, 'token'), publish };
}

describe('reload: secret references', function () {
  this.timeout(60_000);

  it('re-runs the reload when a referenced Secret is swapped, rebuilding only what uses it, and nothing when its value is unchanged', async () => {
    const receiver = await OtlpReceiver.start();
    const dir = await tempDir();
    const secret = await secretMount(dir, 'token-1\n');
    setEnv('HOTCONF_SPEC_BODY', 'body-1');
    const port = await freePort();
    const config = basicConfig({
      port,
      body: '${env:HOTCONF_SPEC_BODY}',
      tracing: { exporter: 'otlp-http', endpoint: receiver.url, headers: { authorization: `\${file:${secret.file}}` }, batch: { scheduled_delay_ms: 50 } },
    });
    const t = await startDaemon(config, { watch: true });
    const url = `http://127.0.0.1:${port}/`;
    const reloads: { trigger: string; result: ReloadResult }[] = [];
    t.daemon.reloader.subscribe((e) => {
      if (e.type === 'reload') reloads.push({ trigger: e.trigger, result: e.result });
    });
    const fileReloads = () => reloads.filter((r) => r.trigger === 'files');
    const created = () => Object.fromEntries(Object.entries(t.daemon.registry.stats()).map(([kind, s]) => [kind, s.created]));

    expect(await getText(url)).to.equal('body-1');
    await waitFor('a span sent with the file secret', () => receiver.lastHeaders.authorization === 'token-1');
    const initial = created();
    expect(initial).to.include({ tracer_provider: 1, listener: 1, http_stack: 1 });

    // The same value swapped in: the reload runs and finds the config unchanged; nothing is built.
    await secret.publish('token-1\n');
    await waitFor('the swap to be reloaded', () => fileReloads().length >= 1);
    await t.daemon.reloader.idle();
    expect(fileReloads().map((r) => r.result.result)).to.deep.equal(fileReloads().map(() => 'unchanged'));
    expect(created()).to.deep.equal(initial);

    // A new value: only the tracing pipeline, which sends it, is rebuilt (and a watch of the new target directory).
    await secret.publish('token-2\n');
    await waitFor('the new secret to be applied', () => fileReloads().some((r) => r.result.result === 'applied'));
    await t.daemon.reloader.idle();
    expect(created()).to.deep.equal({ ...initial, tracer_provider: 2, file_watch: initial.file_watch! + 1 });
    await getText(url);
    await waitFor('a span sent with the rotated secret', () => receiver.lastHeaders.authorization === 'token-2');

    // An environment variable is read at each reload (SIGHUP, POST /reload): it cannot be watched.
    setEnv('HOTCONF_SPEC_BODY', 'body-2');
    expect(await getText(url)).to.equal('body-1');
    expect(await t.daemon.reload('signal')).to.include({ result: 'applied' });
    expect(await getText(url)).to.equal('body-2');
    // Routes are compiled per generation: no resource is rebuilt for a new body.
    expect(created()).to.include({ tracer_provider: 2, listener: 1, http_stack: 1 });

    // Both values are secrets in /config.
    const shown = JSON.parse((await httpRequest(`${t.admin}/config`)).body) as { config: Record<string, unknown> };
    expect(JSON.stringify(shown)).to.not.contain('token-2').and.not.contain('body-2');
    expect(shown.config).to.nested.include({ 'listeners[0].routes[0].respond.body': REDACTED, 'tracing.headers.authorization': REDACTED });

    // The Secret loses its key: invalid, naming the path and the reference; the last good config serves.
    const before = fileReloads().length;
    await secret.publish(undefined);
    await waitFor('the missing secret to be refused', () => fileReloads().length > before && fileReloads().at(-1)!.result.result === 'invalid');
    expect(fileReloads().at(-1)!.result.errors).to.deep.equal([
      { path: 'tracing.headers.authorization', message: `\${file:${secret.file}}: no such file or directory (ENOENT)` },
    ]);
    expect(await getText(url)).to.equal('body-2');
    // And gets it back: the directory is still watched.
    await secret.publish('token-3');
    await waitFor('the restored secret to be applied', () => fileReloads().at(-1)!.result.result === 'applied');
    await getText(url);
    await waitFor('a span sent with the restored secret', () => receiver.lastHeaders.authorization === 'token-3');
    expect(t.logs.text()).to.not.contain('token-').and.not.contain('body-2');
  });

  it('refuses the first config when a variable is unset, and a later reload keeps the last good config serving', async () => {
    const dir = await tempDir();
    const file = join(dir, 'password');
    await writeFile(file, 'pw-1');
    const port = await freePort();
    const t = await startDaemon(basicConfig({ port, body: `\${file:${file}}` }));
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('pw-1');
    await rm(file);
    const result = await t.apply(basicConfig({ port, body: '${env:HOTCONF_SPEC_NEVER_SET}' }));
    expect(result).to.deep.include({
      result: 'invalid',
      errors: [{ path: 'listeners.0.routes.0.respond.body', message: '${env:HOTCONF_SPEC_NEVER_SET}: environment variable HOTCONF_SPEC_NEVER_SET is not set' }],
    });
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('pw-1');
  });
});
