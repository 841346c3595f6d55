import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, spawnHotconf } from '../../harness/child.js';
import { basicConfig } from '../../harness/daemon.js';
import { httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { TestCa } from '../../harness/tls.js';
import { tempDir } from '../../harness/tmp.js';
import { REDACTED } from '../../lib/config/redact.js';

/** A request on a fresh connection, so the cluster's round-robin spreads them over the workers. */
async function freshGet(url: string): Promise<{ body: string; token: string | undefined }> {
  const res = await httpRequest(url, { headers: { connection: 'close' } });
  return { body: res.body, token: res.headers['x-token'] as string | undefined };
}

/** The fingerprint a fresh TLS handshake gets (a fresh connection: round-robin spreads them over the workers). */
function presented(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'a.test' }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

/** `hotconf run --workers 2 --admin …` on `config`, with `env` added; resolves once it logged `started`. */
async function startCluster(dir: string, config: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const file = join(dir, 'hotconf.yaml');
  await writeFile(file, stringify(config));
  const adminPort = await freePort();
  const p = spawnHotconf(['run', '--config', file, '--workers', '2', '--admin', `127.0.0.1:${adminPort}`], { env });
  await p.waitForLog('started', event('started'), 60_000);
  return { p, admin: `http://127.0.0.1:${adminPort}` };
}

describe('cluster: watched files with --workers 2', function () {
  this.timeout(120_000);

  it('resolves in the primary, which watches the referenced file: a rotation reaches both workers, redacted in /config', async () => {
    const dir = await tempDir();
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'token-1\n');
    const port = await freePort();
    const config = basicConfig({ port, body: `$\{env:HOTCONF_SPEC_BODY}` });
    (config.listeners as { routes: { respond: Record<string, unknown> }[] }[])[0]!.routes[0]!.respond.headers = { 'x-token': `$\{file:${tokenFile}}` };
    const { p, admin } = await startCluster(dir, config, { HOTCONF_SPEC_BODY: 'from-env' });
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

  it('watches certificate files in the primary too: a rotated certificate reaches both workers', async () => {
    const ca = await TestCa.create();
    const site = await ca.issue('site', ['a.test']);
    const port = await freePort();
    const config = {
      shutdown_timeout_ms: 2000,
      listeners: [
        {
          name: 'web-tls',
          listen: `127.0.0.1:${port}`,
          tls: { certificates: [{ cert_file: site.certFile, key_file: site.keyFile }] },
          routes: [{ path_prefix: '/', respond: { status: 200 } }],
        },
      ],
    };
    const { p } = await startCluster(await tempDir(), config);
    for (let i = 0; i < 4; i += 1) expect(await presented(port, ca.caPem)).to.equal(site.fingerprint256);

    const renewed = await ca.issue('renewed', ['a.test']);
    await writeFile(`${site.keyFile}.tmp`, renewed.keyPem);
    await rename(`${site.keyFile}.tmp`, site.keyFile);
    await writeFile(`${site.certFile}.tmp`, renewed.certPem);
    await rename(`${site.certFile}.tmp`, site.certFile);
    await p.waitForLog('the renewal applied', (line) => line.msg === 'reload' && line.trigger === 'files' && line.result === 'applied', 30_000);
    for (let i = 0; i < 4; i += 1) expect(await presented(port, ca.caPem)).to.equal(renewed.fingerprint256);
    p.process.kill('SIGTERM');
    expect((await p.exited).code).to.equal(0);
  });
});
