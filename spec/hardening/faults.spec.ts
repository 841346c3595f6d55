import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, memoryLogger, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { connectionRefused, getText } from '../../harness/http.js';
import { sampleValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { TestCa } from '../../harness/tls.js';
import { tempDir } from '../../harness/tmp.js';
import { waitFor } from '../../harness/wait.js';
import { ResourceRegistry } from '../../lib/registry/registry.js';
import { type CreateFault, FaultyKinds, KIND_NAMES, type KindName } from './faulty-kinds.js';

const CREATE_TIMEOUT_MS = 300;
const DESTROY_TIMEOUT_MS = 300;

/** An upstream section; its targets need not answer (probes failing is fine here). */
function upstream(targets: number[], healthCheck?: Record<string, unknown>): Record<string, unknown> {
  return { targets: targets.map((p) => `http://127.0.0.1:${p}`), ...(healthCheck ? { health_check: healthCheck } : {}) };
}

/** The live registry entries, as sorted `kind key refs` strings. */
function liveEntries(t: TestDaemon): string[] {
  return t.daemon.registry
    .entries()
    .filter((e) => e.state === 'live')
    .map((e) => `${e.kind} ${e.key} ${e.refs}`)
    .sort();
}

/** What the active generation holds, in the same form (one lease per entry). */
function activeHolds(t: TestDaemon): string[] {
  return t.daemon.reloader
    .active!.holds()
    .map((h) => `${h.kind} ${h.key} 1`)
    .sort();
}

async function faultyDaemon(config: Record<string, unknown>) {
  const logs = memoryLogger();
  const registry = new ResourceRegistry({ createTimeoutMs: CREATE_TIMEOUT_MS, destroyTimeoutMs: DESTROY_TIMEOUT_MS, logger: logs.logger });
  onCleanup(() => registry.close()); // after the daemon stops (cleanups run newest first)
  const faults = new FaultyKinds();
  const t = await startDaemon(config, { registry, kinds: faults.kinds, logs });
  return { t, faults, registry, logs };
}

describe('hardening: faults while provisioning', function () {
  this.timeout(30_000);

  /**
   * Generation 1 has tracing `a` and listener `web`; generation 2 changes tracing, adds an
   * upstream with a health check and adds two listeners (the first logging to a file), so it creates, in provisioning order,
   * one resource per position below (and reuses `web`). Every kind must have a position: add one
   * here when adding a kind.
   */
  const POSITIONS: { kind: KindName; path: string }[] = [
    { kind: 'tracer_provider', path: 'tracing' },
    { kind: 'target_health', path: 'upstreams.api.targets.0' },
    { kind: 'health_checker', path: 'upstreams.api.health_check' },
    { kind: 'upstream_pool', path: 'upstreams.api.targets.0' },
    { kind: 'listener', path: 'listeners.1.listen' },
    { kind: 'http_stack', path: 'listeners.1' },
    { kind: 'listener', path: 'listeners.2.listen' },
    { kind: 'tls_certificate', path: 'listeners.2.tls.certificates.0' },
    { kind: 'http_stack', path: 'listeners.2' },
    { kind: 'access_log_file', path: 'listeners.1.access_log.path' },
    { kind: 'file_watch', path: 'listeners.2.tls.certificates.0.cert_file' },
  ];

  it('has a provisioning position for every resource kind', () => {
    expect([...new Set(POSITIONS.map((p) => p.kind))].sort()).to.deep.equal([...KIND_NAMES].sort());
  });

  async function twoGenerations() {
    const [web, second, third, target] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const ca = await TestCa.create();
    const cert = await ca.issue('third', ['third.test']);
    const first = basicConfig({ port: web, body: 'one', tracing: { exporter: 'none', service_name: 'a' } });
    const next = basicConfig({
      port: web,
      body: 'two',
      tracing: { exporter: 'none', service_name: 'b' },
      extra: { upstreams: { api: upstream([target], { interval_ms: 60_000 }) } },
    });
    (next.listeners as unknown[]).push(
      {
        name: 'second',
        listen: `127.0.0.1:${second}`,
        access_log: { path: join(await tempDir(), 'access.log') },
        routes: [{ path_prefix: '/', respond: { status: 200, body: 'second' } }],
      },
      { name: 'third', listen: `127.0.0.1:${third}`, tls: { certificates: [{ cert_file: cert.certFile, key_file: cert.keyFile }] }, routes: [] },
    );
    return { web, added: [second, third], first, next };
  }

  for (const mode of ['throw', 'hang', 'late'] as const) {
    POSITIONS.forEach(({ kind, path }, at) => {
      it(`${mode} at position ${at} (${path}): releases exactly the new generation's leases; the old one keeps serving`, async () => {
        const { web, added, first, next } = await twoGenerations();
        const { t, faults, registry } = await faultyDaemon(first);
        const before = liveEntries(t);
        const statsBefore = registry.stats();
        const createsBefore = faults.creates.length;

        const fault: CreateFault = { mode, at, lateMs: CREATE_TIMEOUT_MS * 2 };
        faults.armCreate(fault);
        const result = await t.apply(next);

        expect(result).to.include({ result: 'failed', generation: 1, path });
        expect(result.error).to.match(mode === 'throw' ? /injected create failure/ : new RegExp(`did not finish within ${CREATE_TIMEOUT_MS} ms`));
        expect(faults.creates.slice(createsBefore).map((c) => c.outcome)).to.deep.equal([
          ...Array(at).fill('ok'),
          { throw: 'threw', hang: 'hung', late: 'late' }[mode],
        ]);
        expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('one');
        if (mode === 'late') await waitFor('the late value to be destroyed', () => faults.lateDestroyed.includes(kind));

        // Exactly generation 1's resources are live, each held once by it.
        expect(t.daemon.reloader.generations().map((g) => g.id)).to.deep.equal([1]);
        expect(liveEntries(t)).to.deep.equal(before);
        expect(liveEntries(t)).to.deep.equal(activeHolds(t));
        for (const port of added) expect(await connectionRefused(port)).to.equal(true);
        const stats = registry.stats();
        const registryKind = kind;
        expect(stats[registryKind]!.createFailures).to.equal((statsBefore[registryKind]?.createFailures ?? 0) + 1);
        for (const [name, s] of Object.entries(stats)) {
          // What generation 2 created before the fault is destroyed again.
          expect(s.created - s.destroyed, name).to.equal(s.live);
          expect(s.leakedLeases, name).to.equal(0);
        }
        expect(t.daemon.leaks().ok).to.equal(true);

        // The next reload, without the fault, applies the same config.
        const retry = await t.daemon.reload();
        expect(retry).to.include({ result: 'applied', generation: 2 });
        expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('two');
        expect(await getText(`http://127.0.0.1:${added[0]}/`)).to.equal('second');
        await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
        expect(liveEntries(t)).to.deep.equal(activeHolds(t));
      });
    });
  }

  /** Per kind: two configs whose swap destroys a resource of that kind. */
  /** A config on `web` whose listener serves TLS with a certificate issued into `dir`. */
  async function tlsOn(web: number, dir: string, body: string): Promise<Record<string, unknown>> {
    await mkdir(dir, { recursive: true });
    const cert = await (await TestCa.create()).issue(body, ['site.test'], dir);
    const config = basicConfig({ port: web, body });
    (config.listeners as Record<string, unknown>[])[0]!.tls = { certificates: [{ cert_file: cert.certFile, key_file: cert.keyFile }] };
    return config;
  }

  const REPLACING: Record<KindName, (web: number, other: number) => Promise<[Record<string, unknown>, Record<string, unknown>]>> = {
    tracer_provider: async (web) => [
      basicConfig({ port: web, body: 'one', tracing: { exporter: 'none', service_name: 'a' } }),
      basicConfig({ port: web, body: 'two', tracing: { exporter: 'none', service_name: 'b' } }),
    ],
    listener: async (web, other) => [basicConfig({ port: web, body: 'one' }), basicConfig({ port: other, body: 'two' })],
    // Its listener goes too (a stack is keyed by its listener's address).
    http_stack: async (web, other) => [basicConfig({ port: web, body: 'one' }), basicConfig({ port: other, body: 'two' })],
    // Another target: its health state (and checker and pool) go.
    target_health: async (web, other) => [
      basicConfig({ port: web, body: 'one', extra: { upstreams: { api: upstream([other], { interval_ms: 60_000 }) } } }),
      basicConfig({ port: web, body: 'two', extra: { upstreams: { api: upstream([other + 1], { interval_ms: 60_000 }) } } }),
    ],
    // Other probe settings, same target: only the checker goes.
    health_checker: async (web, other) => [
      basicConfig({ port: web, body: 'one', extra: { upstreams: { api: upstream([other], { interval_ms: 60_000 }) } } }),
      basicConfig({ port: web, body: 'two', extra: { upstreams: { api: upstream([other], { interval_ms: 50_000 }) } } }),
    ],
    upstream_pool: async (web, other) => [
      basicConfig({ port: web, body: 'one', extra: { upstreams: { api: upstream([other]) } } }),
      basicConfig({ port: web, body: 'two', extra: { upstreams: { api: upstream([other + 1]) } } }),
    ],
    // Another certificate in the same directory: only its context goes.
    tls_certificate: async (web) => {
      const dir = await tempDir();
      return [await tlsOn(web, dir, 'one'), await tlsOn(web, dir, 'two')];
    },
    // Another path: the old file is closed.
    access_log_file: async (web) => {
      const dir = await tempDir();
      const logging = (body: string) => {
        const config = basicConfig({ port: web, body });
        (config.listeners as Record<string, unknown>[])[0]!.access_log = { path: join(dir, `${body}.log`) };
        return config;
      };
      return [logging('one'), logging('two')];
    },
    // The certificate moves to another directory: the old directory's watch goes.
    file_watch: async (web) => [await tlsOn(web, await tempDir(), 'one'), await tlsOn(web, await tempDir(), 'two')],
  };

  for (const kind of KIND_NAMES) {
    it(`a ${kind} destroy that hangs is cut at the destroy timeout, counted, and the daemon keeps working`, async () => {
      const [web, other] = [await freePort(), await freePort()];
      const [first, second] = await REPLACING[kind](web, other);
      const { t, faults, registry, logs } = await faultyDaemon(first);
      const release = faults.hangDestroys(kind);
      onCleanup(release); // let the real destroy finish after the test, so nothing stays open

      expect(await t.apply(second)).to.include({ result: 'applied', generation: 2 });
      await waitFor('generation 1 to be released', () => t.daemon.reloader.generations().length === 1);
      const registryKind = kind;
      expect(registry.stats()[registryKind]!.destroyFailures).to.equal(1);
      const failure = logs.lines().find((l) => l.msg === 'resource_destroy_failed') as { kind: string; err: { code: string } } | undefined;
      expect(failure?.kind).to.equal(registryKind);
      expect(failure?.err.code).to.equal('E_DESTROY_TIMEOUT');
      const metrics = await getText(`${t.admin}/metrics`);
      expect(metrics).to.contain(`hotconf_resource_destroy_failures_total{kind="${registryKind}"} 1`);

      // Still working: serves, reloads, and reports nothing leaked.
      const served = kind === 'listener' || kind === 'http_stack' ? other : web;
      if (kind === 'tls_certificate' || kind === 'file_watch') expect(t.daemon.reloader.active!.sni(`127.0.0.1:${web}`)).to.not.equal(undefined);
      else expect(await getText(`http://127.0.0.1:${served}/`)).to.equal('two');
      const third = { ...second, shutdown_timeout_ms: 1500 };
      expect(await t.apply(third)).to.include({ result: 'applied', generation: 3 });
      await waitFor('generation 2 to be released', () => t.daemon.reloader.generations().length === 1);
      expect(liveEntries(t)).to.deep.equal(activeHolds(t));
      expect(t.daemon.leaks()).to.include({ ok: true });
    });
  }
});

describe('hardening: errors in background work', function () {
  this.timeout(30_000);

  it('counts span exports that fail (collector down) without crashing, and keeps serving', async () => {
    const [web, down] = [await freePort(), await freePort()]; // nothing listens on `down`
    const tracing = { exporter: 'otlp-http', endpoint: `http://127.0.0.1:${down}/v1/traces`, batch: { scheduled_delay_ms: 20, export_timeout_ms: 1000 } };
    const t = await startDaemon(basicConfig({ port: web, tracing }));
    const exported = async () => sampleValue(await getText(`${t.admin}/metrics`), 'hotconf_background_errors_total', { component: 'exporter' });
    expect(await exported()).to.equal(undefined);

    for (let i = 0; i < 3; i += 1) expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
    await waitFor('a failed export to be counted', async () => ((await exported()) ?? 0) >= 1);
    const line = t.logs.lines().find((l) => l.msg === 'background_error') as { component: string; background: string; err: { message: string } } | undefined;
    expect(line?.component).to.equal('reload');
    expect(line?.background).to.equal('exporter');
    expect(line?.err.message).to.match(/ECONNREFUSED|connect/i);

    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('hello');
    expect((await t.apply(basicConfig({ port: web, body: 'next', tracing }))).result).to.equal('applied');
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('next');
  });
});
