import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { stringify } from 'yaml';
import { event, type HotconfChild, runHotconfToEnd, spawnHotconf } from '../../harness/child.js';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, memoryLogger, startDaemon } from '../../harness/daemon.js';
import { EtcdServer } from '../../harness/etcd.js';
import { connectionRefused, getText, type HttpResponse, httpRequest } from '../../harness/http.js';
import { OtlpReceiver } from '../../harness/otlp-receiver.js';
import { freePort, occupyPort } from '../../harness/ports.js';
import { tempDir } from '../../harness/tmp.js';
import { rejectionOf, waitFor } from '../../harness/wait.js';
import { MIN_ADMIN_TOKEN_LENGTH } from '../../lib/admin/token.js';
import { MAX_NESTING_DEPTH } from '../../lib/config/parse.js';
import { REDACTED, SECRET_PATHS } from '../../lib/config/redact.js';
import { AdminTokenError, AdminTokenRequiredError } from '../../lib/core/errors.js';
import { Daemon } from '../../lib/daemon/daemon.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { FileSource } from '../../lib/sources/file.js';
import { FaultyKinds } from './faulty-kinds.js';

/** A token unique to this run, long enough to be accepted. */
const newToken = () => `tok-${randomUUID()}`;

/** Run a short-lived CLI command to its end, with `env` added to this process's environment. */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runHotconfToEnd(args, { env });

describe('hardening: admin API security', function () {
  this.timeout(60_000);

  describe('binding', () => {
    it('refuses to start on a non-loopback admin address without a token, naming what to set', async () => {
      const web = await freePort();
      const dir = await tempDir();
      const file = join(dir, 'hotconf.yaml');
      await writeFile(file, stringify(basicConfig({ port: web, extra: { admin: { listen: `0.0.0.0:${await freePort()}` } } })));
      const daemon = new Daemon({ source: new FileSource({ path: file }), watch: false, defaultMetrics: false });
      onCleanup(() => daemon.stop());
      const error = await rejectionOf(daemon.start());
      expect(error).to.be.instanceOf(AdminTokenRequiredError);
      expect(error).to.have.property('code', 'E_ADMIN_TOKEN_REQUIRED');
      expect(error.message).to.contain('admin.token_file').and.contain('HOTCONF_ADMIN_TOKEN');
      expect(await connectionRefused(web)).to.equal(true); // nothing is left running

      // The CLI says so on stderr and exits 1; --admin off loopback is refused the same way.
      const run = await cli(['run', '--config', file]);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.match(/^hotconf: admin address 0\.0\.0\.0:\d+ is not loopback: set admin\.token_file/);
      const override = await cli(['run', '--config', file, '--admin', `0.0.0.0:${await freePort()}`]);
      expect(override.code).to.equal(1);
      expect(override.stderr).to.contain('is not loopback');
    });

    it('applies admin.token_file to an admin address given on the command line, from the first config on', async () => {
      const dir = await tempDir();
      const tokenFile = join(dir, 'token');
      const token = newToken();
      await writeFile(tokenFile, token);
      const t = await startDaemon(basicConfig({ port: await freePort(), extra: { admin: { token_file: tokenFile } } }));
      expect((await httpRequest(`${t.admin}/config`)).status).to.equal(401);
      expect((await httpRequest(`${t.admin}/config`, { headers: { authorization: `Bearer ${token}` } })).status).to.equal(200);
      expect((await httpRequest(`${t.admin}/healthz`)).status).to.equal(200);
    });

    it('refuses a token that is too short, naming its file but never quoting it', async () => {
      const dir = await tempDir();
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, 'short-secret\n');
      const error = await rejectionOf(
        startDaemon(basicConfig({ port: await freePort(), extra: { admin: { listen: `127.0.0.1:${await freePort()}`, token_file: tokenFile } } }), {
          adminListen: undefined,
        }),
      );
      expect(error).to.be.instanceOf(AdminTokenError);
      expect(error.message).to.contain(tokenFile).and.contain(`at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
      expect(error.message).to.not.contain('short-secret');
    });
  });

  describe('with a token', () => {
    let token: string;
    let admin: string;

    beforeEach(async () => {
      token = newToken();
      const dir = await tempDir();
      const tokenFile = join(dir, 'admin-token');
      await writeFile(tokenFile, `${token}\n`);
      const adminPort = await freePort();
      const t = await startDaemon(basicConfig({ port: await freePort(), extra: { admin: { listen: `0.0.0.0:${adminPort}`, token_file: tokenFile } } }), {
        adminListen: undefined,
      });
      expect(t.daemon.adminAddress).to.include({ address: '0.0.0.0', port: adminPort });
      admin = `http://127.0.0.1:${adminPort}`;
    });

    const call = (method: string, path: string, authorization?: string) =>
      httpRequest(`${admin}${path}`, { method, headers: authorization === undefined ? {} : { authorization } });

    function expectUnauthorized(res: HttpResponse, what: string): void {
      expect(res.status, what).to.equal(401);
      expect(res.body, what).to.equal('{"error":"unauthorized"}');
      expect(res.headers['www-authenticate'], what).to.equal('Bearer');
    }

    it('answers /healthz and /metrics without one', async () => {
      expect((await call('GET', '/healthz')).status).to.equal(200);
      expect((await call('GET', '/metrics')).status).to.equal(200);
    });

    it('answers 401 with no detail to every other request without the right token', async () => {
      const wrong = [
        undefined,
        '',
        'Bearer',
        `Bearer ${newToken()}`,
        `Bearer ${token}x`,
        `Bearer ${token.slice(0, -1)}`,
        'Bearer x',
        `Bearer ${'x'.repeat(10_000)}`,
        `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`,
        `Bearer ${token} extra`,
      ];
      for (const [method, path] of [
        ['GET', '/config'],
        ['GET', '/leaks'],
        ['POST', '/reload'],
        ['GET', '/nowhere'],
        ['POST', '/healthz'],
      ] as const) {
        for (const authorization of wrong)
          expectUnauthorized(await call(method, path, authorization), `${method} ${path} with ${String(authorization).slice(0, 40)}`);
      }
    });

    it('serves every endpoint with the right token, whatever the case of the scheme', async () => {
      for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
        expect((await call('GET', '/config', `${scheme} ${token}`)).status).to.equal(200);
      }
      expect((await call('GET', '/leaks', `Bearer ${token}`)).status).to.equal(200);
      expect(JSON.parse((await call('POST', '/reload', `Bearer ${token}`)).body)).to.include({ result: 'unchanged' });
    });

    it('hotconf reload and leaks send it from --token-file or HOTCONF_ADMIN_TOKEN, and exit 2 without it', async () => {
      const dir = await tempDir();
      const tokenFile = join(dir, 'client-token');
      await writeFile(tokenFile, `${token}\n`);
      const env = { HOTCONF_ADMIN: admin };
      const [byFile, byEnv, leaks, without, wrong] = await Promise.all([
        cli(['reload', '--token-file', tokenFile], env),
        cli(['reload'], { ...env, HOTCONF_ADMIN_TOKEN: token }),
        cli(['leaks', '--token-file', tokenFile], env),
        cli(['reload'], env),
        cli(['leaks'], { ...env, HOTCONF_ADMIN_TOKEN: newToken() }),
      ]);
      expect(byFile).to.include({ code: 0, stdout: 'unchanged (generation 1)\n' });
      expect(byEnv).to.include({ code: 0, stdout: 'unchanged (generation 1)\n' });
      expect(leaks.code).to.equal(0);
      expect(leaks.stdout).to.contain('ok: nothing leaked');
      expect(without.code).to.equal(2);
      expect(without.stderr).to.contain('401 (it needs a token)').and.contain('--token-file');
      expect(wrong.code).to.equal(2);
      expect(wrong.stderr).to.contain('401 (it refused the token)');
    });
  });
});

/**
 * Puts a unique secret into every field of `SECRET_PATHS`. When a secret field is added (etcd
 * password, upstream credentials), add its planter here; the first spec below fails until then.
 */
const PLANTERS: Record<string, (config: Record<string, unknown>, secret: (field: string) => string, env: { otlp: string }) => void> = {
  'tracing.headers.*': (config, secret, env) => {
    config.tracing = {
      exporter: 'otlp-http',
      endpoint: env.otlp,
      headers: { authorization: `Bearer ${secret('tracing.headers.authorization')}`, 'x-api-key': secret('tracing.headers.x-api-key') },
      batch: { scheduled_delay_ms: 50 },
    };
  },
};

describe('hardening: secrets never leave the process', function () {
  this.timeout(90_000);

  it('has a planter for every secret path', () => {
    expect(Object.keys(PLANTERS).sort()).to.deep.equal([...SECRET_PATHS].sort());
  });

  it('appear in no log line, admin response, CLI output or error, through valid, invalid and failing reloads', async () => {
    const receiver = await OtlpReceiver.start();
    const secrets = new Map<string, string>();
    const secret = (field: string) => {
      if (!secrets.has(field)) secrets.set(field, `S3cr3t-${field.replace(/\W/g, '-')}-${randomUUID()}`);
      return secrets.get(field)!;
    };
    const adminToken = secret('admin-token');
    const dir = await tempDir();
    // Values from secret references (a variable of the daemon's environment, a file) are secrets
    // wherever they end up, here response headers; so are OTLP headers from the environment.
    const referencedFile = join(dir, 'referenced-secret');
    await writeFile(referencedFile, `${secret('file-reference')}\n`);
    const withSecrets = (config: Record<string, unknown>, round = '') => {
      for (const plant of Object.values(PLANTERS)) plant(config, (field) => secret(field + round), { otlp: receiver.url });
      const respond = (config.listeners as { routes: { respond: Record<string, unknown> }[] }[])[0]!.routes[0]!.respond;
      respond.headers = { 'x-from-file': `$\{file:${referencedFile}}`, 'x-from-env': `$\{env:HOTCONF_SPEC_REFERENCED}` };
      return config;
    };

    const file = join(dir, 'hotconf.yaml');
    const [web, clash, adminPort] = [await freePort(), await freePort(), await freePort()];
    const admin = `http://127.0.0.1:${adminPort}`;
    await writeFile(file, stringify(withSecrets(basicConfig({ port: web, body: 'one' }))));
    const child: HotconfChild = spawnHotconf(['run', '--config', file, '--admin', `127.0.0.1:${adminPort}`, '--no-watch', '--log-level', 'debug'], {
      env: {
        HOTCONF_ADMIN_TOKEN: adminToken,
        HOTCONF_SPEC_REFERENCED: secret('env-reference'),
        HOTCONF_SPEC_ENDPOINT: `${secret('env-endpoint')}:4318`,
        OTEL_EXPORTER_OTLP_HEADERS: `x-otel-env=${secret('otel-exporter-otlp-headers')}`,
      },
    });
    await child.waitForLog('started', event('started'));
    // The referenced values are in force: served, and sent to the collector.
    const served = await httpRequest(`http://127.0.0.1:${web}/`);
    expect(served.headers).to.include({ 'x-from-env': secret('env-reference'), 'x-from-file': secret('file-reference') });
    const emitted: { what: string; text: string }[] = [];
    const auth = { authorization: `Bearer ${adminToken}` };
    const adminCall = async (method: string, path: string, headers: Record<string, string> = auth) => {
      const res = await httpRequest(`${admin}${path}`, { method, headers });
      emitted.push({ what: `${method} ${path}`, text: `${JSON.stringify(res.headers)}\n${res.body}` });
      return res;
    };
    const reloadCli = async () => {
      const run = await cli(['reload', '--admin', admin], { HOTCONF_ADMIN_TOKEN: adminToken });
      emitted.push({ what: 'hotconf reload', text: run.stdout + run.stderr });
      return run;
    };

    // Valid: the secrets are in force (redacted in /config), then rotated.
    await waitFor('spans at the receiver', () => receiver.spans.length > 0);
    expect(receiver.lastHeaders['x-otel-env']).to.equal(secret('otel-exporter-otlp-headers'));
    const config = JSON.parse((await adminCall('GET', '/config')).body) as { config: Record<string, unknown> };
    expect(config.config).to.nested.include({
      'tracing.headers.authorization': REDACTED,
      'tracing.headers.x-api-key': REDACTED,
      'listeners[0].routes[0].respond.headers.x-from-env': REDACTED,
      'listeners[0].routes[0].respond.headers.x-from-file': REDACTED,
    });
    await writeFile(referencedFile, secret('file-reference-rotated'));
    await writeFile(file, stringify(withSecrets(basicConfig({ port: web, body: 'two' }), '-rotated')));
    expect((await reloadCli()).code).to.equal(0);
    expect((await httpRequest(`http://127.0.0.1:${web}/`)).headers['x-from-file']).to.equal(secret('file-reference-rotated'));

    // Invalid, in several ways, each document carrying secrets next to the error.
    const invalid = [
      `${stringify(withSecrets(basicConfig({ port: web })))}\nbroken: [unterminated\n`,
      stringify(withSecrets(basicConfig({ port: web, extra: { unknown_key: 1 } }))),
      stringify(withSecrets(basicConfig({ port: `${web}0` as unknown as number }))).slice(0, -20),
      // A secret value that is itself invalid (CR LF: header injection).
      JSON.stringify(withSecrets(basicConfig({ port: web }))).replace(
        `Bearer ${secret('tracing.headers.authorization')}"`,
        `Bearer ${secret('tracing.headers.authorization')}\\r\\nx: y"`,
      ),
      `tracing:\n  headers:\n    authorization: "Bearer ${secret('tracing.headers.authorization')}\n`,
      // A referenced value the schema refuses, with a message that quotes what it was given.
      stringify(withSecrets(basicConfig({ port: web }))).replace(`endpoint: ${receiver.url}`, `endpoint: $\{env:HOTCONF_SPEC_ENDPOINT}`),
    ];
    for (const [i, text] of invalid.entries()) {
      await writeFile(file, text);
      const run = await reloadCli();
      expect(run.code, `invalid document ${i}: ${run.stdout}${run.stderr}`).to.equal(1);
      const validate = await cli(['validate', file]);
      expect(validate.code).to.equal(1);
      emitted.push({ what: 'hotconf validate', text: validate.stdout + validate.stderr });
      child.process.kill('SIGHUP');
    }

    // Failing: a port another process holds.
    await occupyPort(clash);
    const failing = withSecrets(basicConfig({ port: web, body: 'three' }), '-failing');
    (failing.listeners as unknown[]).push({ name: 'clash', listen: `127.0.0.1:${clash}`, routes: [] });
    await writeFile(file, stringify(failing));
    const failed = await adminCall('POST', '/reload');
    expect(JSON.parse(failed.body)).to.include({ result: 'failed', path: 'listeners.1.listen' });

    // Everything else the admin API and the CLI show, with and without the token.
    await adminCall('GET', '/leaks');
    await adminCall('GET', '/metrics');
    await adminCall('GET', '/config', {});
    await adminCall('GET', '/config', { authorization: `Bearer ${adminToken}0` });
    const leaks = await cli(['leaks', '--admin', admin, '--json'], { HOTCONF_ADMIN_TOKEN: adminToken });
    emitted.push({ what: 'hotconf leaks', text: leaks.stdout + leaks.stderr });
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('two');

    await waitFor('the signal reloads', () => child.logs().filter((l) => l.msg === 'reload' && l.trigger === 'signal').length > 0);
    child.process.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    emitted.push({ what: 'daemon stdout', text: child.stdout() }, { what: 'daemon stderr', text: child.stderr() });
    expect(child.logs().some((l) => l.msg === 'final_leak_report')).to.equal(true);
    expect(child.logs().filter((l) => l.msg === 'reload' && l.result === 'invalid').length).to.be.at.least(invalid.length);

    for (const [field, value] of secrets) {
      const leaked = emitted.filter((e) => e.text.includes(value)).map((e) => e.what);
      expect(leaked, `secret ${field} appears in`).to.deep.equal([]);
    }
  });

  it('are scrubbed from factory errors that quote them, in logs, results and the admin API', async () => {
    const mark = `S3cr3t-${randomUUID()}`;
    // Also secret: an OTLP header from the environment, and a value a reference resolved to.
    const envMark = `S3cr3t-otel-env-${randomUUID()}`;
    const referencedMark = `S3cr3t-referenced-${randomUUID()}`;
    for (const [name, value] of [
      ['OTEL_EXPORTER_OTLP_HEADERS', `x-otel-env=${envMark}`],
      ['HOTCONF_SPEC_REFERENCED', referencedMark],
    ] as const) {
      process.env[name] = value;
      onCleanup(() => delete process.env[name]);
    }
    const logs = memoryLogger();
    const registry = new ResourceRegistry({ logger: logs.logger });
    onCleanup(() => registry.close());
    const faults = new FaultyKinds();
    const web = await freePort();
    const tracing = (service: string) => ({ exporter: 'none', service_name: service, headers: { authorization: `Bearer ${mark}` } });
    const config = (tracingSection: Record<string, unknown>) => {
      const c = basicConfig({ port: web, tracing: tracingSection });
      (c.listeners as { routes: { respond: Record<string, unknown> }[] }[])[0]!.routes[0]!.respond.headers = { 'x-token': `$\{env:HOTCONF_SPEC_REFERENCED}` };
      return c;
    };
    const t = await startDaemon(config(tracing('a')), { registry, kinds: faults.kinds, logs });

    // create quotes the secrets: the result, the reload log and the registry's own log line.
    faults.armCreate({
      mode: 'throw',
      at: 0,
      kind: 'tracer_provider',
      message: `exporter rejected headers "authorization: Bearer ${mark}", "x-otel-env: ${envMark}" (route header ${referencedMark})`,
    });
    await t.write(config(tracing('b')));
    const res = await httpRequest(`${t.admin}/reload`, { method: 'POST' });
    expect(res.status).to.equal(500);
    expect(JSON.parse(res.body).error).to.contain(`authorization: ${REDACTED}`).and.contain(`x-otel-env: ${REDACTED}`).and.contain(`route header ${REDACTED}`);
    expect(res.body).to.not.contain(mark).and.not.contain(envMark).and.not.contain(referencedMark);

    // destroy quotes the secret of the config that built it.
    faults.failDestroys('tracer_provider', `flush failed with header Bearer ${mark} and ${envMark}`);
    expect(await t.apply(basicConfig({ port: web, tracing: { exporter: 'none', service_name: 'c' } }))).to.include({ result: 'applied' });
    await waitFor('the old pipeline to be destroyed', () => logs.lines().some((l) => l.msg === 'resource_destroy_failed'));

    const text = logs.text();
    expect(text).to.contain('resource_create_failed').and.contain('resource_destroy_failed').and.contain(REDACTED);
    expect(text).to.not.contain(mark).and.not.contain(envMark).and.not.contain(referencedMark);
  });
});

describe('hardening: the etcd password never leaves the process', function () {
  // A real etcd with auth, the daemon and a dozen CLI runs as child processes, an etcd restart.
  this.timeout(180_000);

  it('appears in no log line, admin response, error or CLI output of run and put, through valid, invalid and failing reloads and an etcd restart', async () => {
    const KEY = '/hotconf/config';
    const password = `S3cr3t-etcd-password-${randomUUID()}`;
    const wrong = `S3cr3t-etcd-wrong-password-${randomUUID()}`;
    const etcd = await EtcdServer.start();
    await etcd.enableAuth(password);

    const dir = await tempDir();
    const passwordFile = join(dir, 'etcd-password');
    await writeFile(passwordFile, `${password}\n`);
    const wrongFile = join(dir, 'wrong-password');
    await writeFile(wrongFile, wrong);
    const [web, clash, adminPort] = [await freePort(), await freePort(), await freePort()];
    const admin = `http://127.0.0.1:${adminPort}`;
    const etcdFlags = ['--etcd', etcd.clientUrl, '--key', KEY, '--etcd-user', 'root'];
    const emitted: { what: string; text: string }[] = [];
    const record = async (what: string, run: ReturnType<typeof cli>) => {
      const res = await run;
      emitted.push({ what, text: res.stdout + res.stderr });
      return res;
    };
    /** `hotconf put` of `config`, the password from a file or from the environment. */
    let documents = 0;
    const put = async (what: string, config: Record<string, unknown> | string, from: { file: string } | { env: string }) => {
      const path = join(dir, `document-${(documents += 1)}.yaml`);
      await writeFile(path, typeof config === 'string' ? config : stringify(config));
      const args = ['put', ...etcdFlags, ...('file' in from ? ['--etcd-password-file', from.file] : []), path];
      return record(`hotconf put (${what})`, cli(args, 'env' in from ? { HOTCONF_ETCD_PASSWORD: from.env } : {}));
    };
    const adminCall = async (method: string, path: string) => {
      const res = await httpRequest(`${admin}${path}`, { method });
      emitted.push({ what: `${method} ${path}`, text: `${JSON.stringify(res.headers)}\n${res.body}` });
      return res;
    };
    const served = () => getText(`http://127.0.0.1:${web}/`);

    // hotconf put: written with the password from its file, refused (invalid, wrong password).
    expect((await put('valid', basicConfig({ port: web, body: 'one' }), { file: passwordFile })).code).to.equal(0);
    expect((await put('invalid', { listeners: [{ name: 'web', listen: 'nowhere' }] }, { env: password })).code).to.equal(1);
    const denied = await put('wrong password', basicConfig({ port: web, body: 'denied' }), { file: wrongFile });
    expect(denied.code).to.equal(2);
    expect(denied.stderr).to.match(/authentication failed/i);
    // The password in an endpoint URL instead: refused, the flag named, the URL not echoed.
    const inUrl = etcd.clientUrl.replace('http://', `http://root:${password}@`);
    for (const command of ['run', 'put'] as const) {
      const args =
        command === 'run'
          ? ['run', '--etcd', inUrl, '--key', KEY, '--admin', `127.0.0.1:${await freePort()}`, '--startup-timeout', '1s']
          : ['put', '--etcd', inUrl, '--key', KEY, passwordFile];
      const res = await record(`hotconf ${command} (password in the endpoint URL)`, cli(args));
      expect(res.code, res.stderr).to.equal(64);
      expect(res.stderr).to.contain(`--etcd: http://${REDACTED}@127.0.0.1:`).and.contain('must not contain credentials').and.contain('--etcd-user');
    }
    // hotconf run with the wrong password gives up at its startup timeout.
    const refused = await record(
      'hotconf run (wrong password)',
      cli(['run', ...etcdFlags, '--admin', `127.0.0.1:${await freePort()}`, '--startup-timeout', '1s'], { HOTCONF_ETCD_PASSWORD: wrong }),
    );
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/authentication failed/i);

    const child = spawnHotconf(['run', ...etcdFlags, '--admin', `127.0.0.1:${adminPort}`, '--log-level', 'debug'], {
      env: { HOTCONF_ETCD_PASSWORD: password },
    });
    await child.waitForLog('started', event('started'));
    expect(await served()).to.equal('one');
    const reloads = (result: string) => child.logs().filter((l) => l.msg === 'reload' && l.result === result).length;

    // Valid: a put through the watch.
    expect((await put('valid, watched', basicConfig({ port: web, body: 'two' }), { env: password })).code).to.equal(0);
    await waitFor('the put to be served', async () => (await served()) === 'two');
    // Invalid: written past hotconf put's validation, then re-read on SIGHUP.
    await etcd.put(KEY, `${stringify(basicConfig({ port: web }))}\nbroken: [unterminated\n`);
    await waitFor('the invalid value to be rejected', () => reloads('invalid') >= 1);
    child.process.kill('SIGHUP');
    await waitFor('the re-read to be rejected too', () => reloads('invalid') >= 2);
    // Failing: a port another process holds, through the watch and POST /reload.
    await occupyPort(clash);
    const failing = basicConfig({ port: web, body: 'three' });
    (failing.listeners as unknown[]).push({ name: 'clash', listen: `127.0.0.1:${clash}`, routes: [] });
    expect((await put('failing', failing, { file: passwordFile })).code).to.equal(0);
    await waitFor('the failing value to fail', () => reloads('failed') >= 1);
    expect(JSON.parse((await adminCall('POST', '/reload')).body)).to.include({ result: 'failed', path: 'listeners.1.listen' });

    // etcd down: a re-read fails naming the endpoint, hotconf put cannot reach it; then back.
    await etcd.kill();
    const down = JSON.parse((await adminCall('POST', '/reload')).body) as { result: string; error: string };
    expect(down.result).to.equal('failed');
    expect(down.error).to.contain(etcd.clientUrl);
    expect((await put('etcd down', basicConfig({ port: web, body: 'unreachable' }), { env: password })).code).to.equal(2);
    await etcd.restart();
    await waitFor('the watch to resume', () => child.logs().some((l) => l.msg === 'watch_resumed'), 60_000);
    expect((await put('after the restart', basicConfig({ port: web, body: 'four' }), { file: passwordFile })).code).to.equal(0);
    await waitFor('the put after the restart to be served', async () => (await served()) === 'four', 30_000);

    // Everything else the admin API and the CLI show.
    await adminCall('GET', '/config');
    await adminCall('GET', '/leaks');
    await adminCall('GET', '/metrics');
    await adminCall('GET', '/healthz');
    await record('hotconf reload', cli(['reload', '--admin', admin]));
    await record('hotconf leaks', cli(['leaks', '--admin', admin, '--json']));

    child.process.kill('SIGTERM');
    expect((await child.exited).code).to.equal(0);
    emitted.push({ what: 'daemon stdout', text: child.stdout() }, { what: 'daemon stderr', text: child.stderr() });
    expect(child.logs().find((l) => l.msg === 'final_leak_report')).to.include({ ok: true });
    expect(child.logs().some((l) => l.msg === 'reload' && l.trigger === 'watch' && l.result === 'applied')).to.equal(true);

    for (const [field, value] of [
      ['the etcd password', password],
      ['a wrong etcd password', wrong],
    ] as const) {
      const leaked = emitted.filter((e) => e.text.includes(value)).map((e) => e.what);
      expect(leaked, `${field} appears in`).to.deep.equal([]);
    }
    console.log(`        planted 2 etcd passwords, grepped ${emitted.length} outputs (${new Set(emitted.map((e) => e.what.replace(/ \(.*/, ''))).size} kinds)`);
  });
});

describe('hardening: hostile config documents', function () {
  this.timeout(30_000);

  async function daemonServing(): Promise<{
    apply: (text: string) => Promise<{ result: string; errors?: { path: string; message: string }[] }>;
    expectServing: () => Promise<void>;
  }> {
    const web = await freePort();
    const t = await startDaemon(basicConfig({ port: web, body: 'good' }));
    return {
      apply: (text) => t.apply(text),
      expectServing: async () => {
        expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
        expect(t.daemon.reloader.active!.id).to.equal(1);
      },
    };
  }

  it('cannot pollute prototypes: __proto__, constructor and prototype keys are refused at their path', async () => {
    const d = await daemonServing();
    const cases: [string, string][] = [
      ['listeners: []\n__proto__: {polluted: yes}\n', '__proto__'],
      ['{"listeners": [], "__proto__": {"polluted": "yes"}}', '__proto__'],
      ['listeners: []\ntracing: {exporter: none, headers: {__proto__: {polluted: yes}}}\n', 'tracing.headers.__proto__'],
      ['listeners: []\ntracing: {exporter: none, headers: {constructor: x}}\n', 'tracing.headers.constructor'],
      [
        'listeners: [{name: a, listen: "127.0.0.1:1", routes: [{path_prefix: /, respond: {status: 200, headers: {__proto__: x}}}]}]\n',
        'listeners.0.routes.0.respond.headers.__proto__',
      ],
      [
        'listeners: [{name: a, listen: "127.0.0.1:1", routes: [{path_prefix: /, respond: {status: 200, headers: {prototype: x}}}]}]\n',
        'listeners.0.routes.0.respond.headers.prototype',
      ],
    ];
    for (const [text, path] of cases) {
      const result = await d.apply(text);
      expect(result.result, text).to.equal('invalid');
      expect(
        result.errors!.map((e) => e.path),
        text,
      ).to.include(path);
    }
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.getPrototypeOf({})).to.equal(Object.prototype);
    await d.expectServing();
  });

  it('refuses a tracing endpoint with credentials in its URL as invalid: they never reach /config or the logs', async () => {
    const web = await freePort();
    const t = await startDaemon(basicConfig({ port: web, body: 'good' }));
    const password = `S3cr3t-${randomUUID()}`;
    const result = await t.apply(
      basicConfig({ port: web, body: 'bad', tracing: { exporter: 'otlp-http', endpoint: `http://hotconf:${password}@127.0.0.1:4318/v1/traces` } }),
    );
    expect(result.result).to.equal('invalid');
    expect(result.errors).to.deep.equal([
      {
        path: 'tracing.endpoint',
        message: 'must not contain credentials (user:password@): send them in tracing.headers (e.g. authorization), which are kept secret',
      },
    ]);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
    const shown = [(await httpRequest(`${t.admin}/config`)).body, (await httpRequest(`${t.admin}/leaks`)).body, t.logs.text(), JSON.stringify(result)];
    for (const text of shown) expect(text).to.not.contain(password);
  });

  it('refuses listen hosts that end in a number but are not IPv4 as invalid at their path, not failed at bind time', async () => {
    const d = await daemonServing();
    for (const [address, path] of [
      ['256.1.1.1:80', 'listeners.0.listen'],
      ['1.2.3.4.5:80', 'listeners.0.listen'],
      ['127.1:80', 'listeners.0.listen'],
      ['999.999.999.999:9901', 'admin.listen'],
    ] as const) {
      const config = basicConfig({ port: 1 });
      if (path === 'admin.listen') config.admin = { listen: address };
      else (config.listeners as Record<string, unknown>[])[0]!.listen = address;
      const result = await d.apply(stringify(config));
      expect(result.result, address).to.equal('invalid');
      expect(result.errors, address).to.deep.equal([
        { path, message: `${address.slice(0, address.lastIndexOf(':'))} is not a valid IPv4 address (a host ending in a number must be one, e.g. 127.0.0.1)` },
      ]);
    }
    await d.expectServing();
  });

  it('rejects a billion-laughs document by its alias limit, and keeps serving', async () => {
    const d = await daemonServing();
    const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 10; i += 1) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    const result = await d.apply(`${lines.join('\n')}\nlisteners: []\n`);
    expect(result.result).to.equal('invalid');
    expect(result.errors![0]!.message).to.match(/^cannot expand document: .*alias/i);
    await d.expectServing();
  });

  it('rejects deeply nested documents before they can exhaust the stack, and keeps serving', async () => {
    const d = await daemonServing();
    // 1000 then 10000 levels: on Node 20 the second one aborted the whole process (V8 fatal
    // error in the regexp compiler) when yaml composed it recursively.
    for (const depth of [MAX_NESTING_DEPTH + 1, 1000, 10_000, 100_000]) {
      for (const text of [
        `listeners: ${'['.repeat(depth)}${']'.repeat(depth)}`,
        `{"listeners": [], "x": ${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`,
        `listeners:\n${'- '.repeat(depth)}x\n`,
      ]) {
        const result = await d.apply(text);
        expect(result.result, `${depth}: ${text.slice(0, 30)}`).to.equal('invalid');
        expect(result.errors![0]!.message).to.equal(`document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`);
      }
    }
    await d.expectServing();
  });
});
