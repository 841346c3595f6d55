import { expect } from 'chai';
import { startDaemon } from '../../harness/daemon.js';
import { getText, httpRequest } from '../../harness/http.js';
import { sampleValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { TestUpstream } from '../../harness/upstream.js';
import { waitFor } from '../../harness/wait.js';

const RELOADS = 200;

/** The distinct `label` values of the series of `metric` in a Prometheus exposition. */
function labelValues(exposition: string, metric: string, label: string): Set<string> {
  const out = new Set<string>();
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const value = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1];
    if (value !== undefined) out.add(value);
  }
  return out;
}

describe('metric series of destroyed resources', () => {
  it(`are removed: ${RELOADS} reloads that each add a target and remove the last leave the series of the targets in use only`, async function () {
    this.timeout(120_000);
    const upstream = await TestUpstream.start();
    const stable = upstream.origin;
    const port = await freePort();
    // A new target per reload: another loopback address on the upstream's port, where nothing
    // listens (the upstream is bound to 127.0.0.1), so its attempt fails fast and the retry goes
    // to the stable target. Either way the attempt makes a series for it.
    const target = (i: number) => `http://127.0.0.${2 + (i % 250)}:${upstream.port}`;
    const config = (i: number, name = 'api') => ({
      shutdown_timeout_ms: 2000,
      upstreams: { [name]: { targets: [stable, target(i)], retries: 1 } },
      listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [{ path_prefix: '/', upstream: name }] }],
    });
    const t = await startDaemon(config(0));
    let stableAttempts = 0;
    for (let i = 0; i <= RELOADS; i++) {
      if (i > 0) expect((await t.apply(config(i))).result).to.equal('applied');
      // Round robin over two targets: two requests try both.
      for (let r = 0; r < 2; r++) expect((await httpRequest(`http://127.0.0.1:${port}/`)).status).to.equal(200);
      stableAttempts += 2;
    }
    await waitFor('old generations to be released', () => t.daemon.reloader.generations().length === 1);
    const metrics = () => getText(`${t.admin}/metrics`);
    await waitFor('the series of targets no generation uses to be removed', async () => {
      const targets = labelValues(await metrics(), 'hotconf_upstream_requests_total', 'target');
      return targets.size === 2;
    });
    const exposition = await metrics();
    expect([...labelValues(exposition, 'hotconf_upstream_requests_total', 'target')]).to.have.members([stable, target(RELOADS)]);
    expect([...labelValues(exposition, 'hotconf_upstream_request_duration_seconds_count', 'target')]).to.have.members([stable, target(RELOADS)]);
    // The series of a target still in use are kept, not reset: they count every attempt since the start.
    expect(sampleValue(exposition, 'hotconf_upstream_requests_total', { upstream: 'api', target: stable, code_class: '2xx' })).to.equal(stableAttempts);

    // An upstream no generation has any more loses its series too.
    await t.apply(config(RELOADS + 1, 'other'));
    await httpRequest(`http://127.0.0.1:${port}/`);
    await waitFor("the removed upstream's series to go", async () => {
      const upstreams = labelValues(await metrics(), 'hotconf_upstream_requests_total', 'upstream');
      return upstreams.size === 1 && upstreams.has('other');
    });
  });
});
