import { createServer, type Server } from 'node:net';
import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import type { LeakReport } from '../../lib/admin/leaks.js';
import { leaksCommand } from '../../lib/cli/leaks.js';
import type { ResourceKind } from '../../lib/resources/kind.js';
import { type TracingPipeline, tracerProviderKind } from '../../lib/resources/tracing.js';
import type { ResolvedTracing } from '../../lib/telemetry/otel-env.js';

const RELOADS = 50;

/** A config whose tracing pipeline differs at every `i`, so each reload builds one and releases the last. */
function config(port: number, i: number): Record<string, unknown> {
  return basicConfig({ port, body: `r${i}`, tracing: { exporter: 'none', service_name: `s${i}` } });
}

async function leaks(admin: string): Promise<LeakReport> {
  return JSON.parse((await httpRequest(`${admin}/leaks`)).body) as LeakReport;
}

describe('leaks found by trend', () => {
  it('names what a reload leaks once the window is full: in /leaks, hotconf leaks and hotconf_leak_trend_per_reload', async function () {
    this.timeout(60_000);
    // The planted leak: every pipeline created also opens a TCP server nobody closes (one handle, one fd).
    const leaked: Server[] = [];
    onCleanup(() => Promise.all(leaked.map((server) => new Promise((resolve) => server.close(resolve)))));
    const leaky: ResourceKind<ResolvedTracing, TracingPipeline> = {
      ...tracerProviderKind,
      factory(section, deps) {
        const inner = tracerProviderKind.factory(section, deps);
        return {
          async create() {
            const server = createServer();
            leaked.push(server);
            await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
            return inner.create();
          },
          destroy: (pipeline) => inner.destroy(pipeline),
        };
      },
    };
    const port = await freePort();
    const t = await startDaemon(config(port, 0), { kinds: { tracer_provider: leaky } });
    for (let i = 1; i < RELOADS - 1; i++) await t.apply(config(port, i));
    expect((await leaks(t.admin)).suspects, `${RELOADS - 1} reloads: the window is not full yet`).to.deep.equal([]);

    await t.apply(config(port, RELOADS));
    const report = await leaks(t.admin);
    expect(report.ok).to.equal(false);
    expect(report.trend).to.deep.include({ window: RELOADS, reloads: RELOADS, threshold_per_reload: 0.5 });
    expect(report.suspects.map((s) => s.resource)).to.have.members(['handles:TCPServerWrap', 'fds']);
    expect(report.trend!.slopes['handles:TCPServerWrap']).to.be.closeTo(1, 0.05);
    expect(report.trend!.slopes['live:tracer_provider']).to.be.closeTo(0, 0.05);
    expect(await metricValue(t.admin, 'hotconf_leak_trend_per_reload', { resource: 'handles:TCPServerWrap' })).to.be.closeTo(1, 0.05);

    let out = '';
    const code = await leaksCommand({ admin: t.admin }, { out: (s) => (out += s), err: (s) => (out += s) });
    expect(code).to.equal(1);
    expect(out).to.match(/^ {2}growing handles:TCPServerWrap: grows 1\.\d\d per reload over the last 50 reloads \(threshold 0\.5\)$/m);
  });

  it('finds nothing growing in 60 reloads that rebuild a pipeline each and serve requests', async function () {
    this.timeout(60_000);
    const port = await freePort();
    const t = await startDaemon(config(port, 0));
    for (let i = 1; i <= 60; i++) {
      await t.apply(config(port, i));
      expect(await getText(`http://127.0.0.1:${port}/`)).to.equal(`r${i}`);
    }
    const report = await leaks(t.admin);
    expect(report.trend).to.deep.include({ reloads: RELOADS, suspects: [] });
    expect(report.trend!.slopes).to.have.property('fds');
    expect(report.trend!.slopes['live:tracer_provider']).to.be.closeTo(0, 0.05);
    expect(report.ok).to.equal(true);
  });
});
