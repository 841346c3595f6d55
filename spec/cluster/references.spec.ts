import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { REDACTED } from '../../lib/config/redact.js';

/** A request on a fresh connection, so the cluster's round-robin spreads them over the workers. */
async function freshGet(url: string): Promise<{ body: string; token: string | undefined }> {
  const res = await httpRequest(url, { headers: { connection: 'close' } });
  return { body: res.body, token: res.headers['x-token'] as string | undefined };
}

describe('cluster: secret references with --workers 2', function () {
  this.timeout(120_000);

  it('resolves in the primary, which watches the referenced file: a rotation reaches both workers, redacted in /config', async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'token-1\n');
    const port = await freePort();
    const config = basicConfig({ port, body: `$\{env:HOTCONF_SPEC_BODY}` });
    (config.listeners as { routes: { respond: Record<string, unknown> }[] }[])[0]!.routes[0]!.respond.headers = { 'x-token': `$\{file:${tokenFile}}` };
    const file = join(dir, 'hotconf.yaml');
    await writeFile(file, stringify(config));
    const adminPort = await freePort();
    const admin = `http://127.0.0.1:${adminPort}`;
    const p = spawnHotconf(['run', '--config', file, '--workers', '2', '--admin', `127.0.0.1:${adminPort}`], { env: { HOTCONF_SPEC_BODY: 'from-env' } });
    await p.waitForLog('started', event('started'), 60_000);
    const url = `http://127.0.0.1:${port}/`;
    for (let i = 0; i < 6; i += 1) expect(await freshGet(url)).to.deep.equal({ body: 'from-env', token: 'token-1' });

    // Rotated as a secret manager does (write a temp file, rename it over): the primary's watch reloads everyone.
    await writeFile(join(dir, 'token.tmp'), 'token-2\n');
    await rename(join(dir, 'token.tmp'), tokenFile);
    await p.waitForLog('the rotation applied', event('reload', { trigger: 'files', result: 'applied', revision: 2 }), 30_000);
    const status = JSON.parse((await httpRequest(`${admin}/config`)).body) as { revision: number; workers: { revision: number }[]; config: unknown };
    expect(status.revision).to.equal(2);
    expect(status.workers.map((w) => w.revision)).to.deep.equal([2, 2]);
    expect(status.config).to.nested.include({ 'listeners[0].routes[0].respond.body': REDACTED, 'listeners[0].routes[0].respond.headers.x-token': REDACTED });
    for (let i = 0; i < 6; i += 1) expect(await freshGet(url)).to.deep.equal({ body: 'from-env', token: 'token-2' });

    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
    expect(p.stdout()).to.not.contain('token-').and.not.contain('from-env');
  });
});
