import { expect } from 'chai';
import { Client } from 'undici';
import { startDaemon } from '../../harness/daemon.js';
import { openFds } from '../../harness/handles.js';
import { freePort } from '../../harness/ports.js';
import { proxyConfig, TestUpstream } from '../../harness/upstream.js';
import { sleep, waitFor } from '../../harness/wait.js';
import { leftoverHandles } from '../helpers/root-hooks.js';

/** Handles the code under test holds (the runner's own stdio left out). */
const handleCount = () => leftoverHandles().length;

const CONNECTIONS = 8;
const RELOADS = 30;
const RELOAD_SPACING_MS = 100;
/** Upper bound on requests, whatever the machine's speed. */
const MAX_REQUESTS = 50_000;

describe('proxy under load while reloading', () => {
  it('serves a keepalive load through 30 reloads at 10/s with zero failures, zero dropped connections and nothing left over', async function () {
    this.timeout(120_000);
    // mocha arms this test's timeout timer once the test function has returned its promise: count
    // the baseline after that, so the timer is in both counts.
    await Promise.resolve();
    const handlesBefore = handleCount();
    const fdsBefore = openFds();

    const targets = [await TestUpstream.start(), await TestUpstream.start()];
    const port = await freePort();
    // Each reload changes something: a static route (pools and checker reused), the health check
    // interval (one new checker, inheriting the state), or the pool settings (new pools; the old
    // ones close gracefully once their generation has drained).
    const config = (i: number) =>
      proxyConfig({
        port,
        upstreams: {
          api: {
            targets: targets.map((t) => t.origin),
            pool: { connections: 16, keep_alive_timeout_ms: 4000 + (Math.floor(i / 3) % 2) },
            health_check: { interval_ms: 50 + (Math.floor((i + 1) / 3) % 2), unhealthy_threshold: 2 },
          },
        },
        routes: [
          { path_prefix: '/static', respond: { status: 200, body: `reload ${i}` } },
          { path_prefix: '/', upstream: 'api' },
        ],
      });
    const d = await startDaemon(config(0));

    const clients = Array.from({ length: CONNECTIONS }, () => new Client(`http://127.0.0.1:${port}`, { pipelining: 1, keepAliveTimeout: 30_000 }));
    let connects = 0;
    let disconnects = 0;
    for (const client of clients) {
      client.on('connect', () => (connects += 1));
      client.on('disconnect', () => (disconnects += 1));
    }
    let sent = 0;
    let ok = 0;
    const failures: string[] = [];
    let stop = false;
    const load = clients.map(async (client, c) => {
      while (!stop && sent < MAX_REQUESTS) {
        sent += 1;
        try {
          const res = await client.request({ path: `/load/${c}/${sent}`, method: 'GET' });
          const body = await res.body.text();
          if (res.statusCode === 200 && body.includes('"method":"GET"')) ok += 1;
          else failures.push(`${res.statusCode} ${body.slice(0, 100)}`);
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    });

    await waitFor('load flowing', () => ok >= CONNECTIONS);
    const outcomes: string[] = [];
    for (let i = 1; i <= RELOADS; i += 1) {
      const [result] = await Promise.all([d.apply(config(i)), sleep(RELOAD_SPACING_MS)]);
      outcomes.push(result.result);
    }
    stop = true;
    await Promise.all(load);
    const droppedDuringLoad = disconnects;
    await Promise.all(clients.map((client) => client.close()));

    const stats = d.daemon.registry.stats();
    console.log(
      `      load: ${ok} requests ok, ${failures.length} failed, ${RELOADS} reloads, ${connects} connections, ${droppedDuringLoad} dropped; ` +
        `pools created ${stats.upstream_pool!.created}, checkers created ${stats.health_checker!.created}`,
    );
    expect(outcomes.filter((r) => r === 'applied')).to.have.length(RELOADS);
    expect(failures).to.deep.equal([]);
    expect(ok).to.equal(sent);
    expect(connects).to.equal(CONNECTIONS);
    expect(droppedDuringLoad).to.equal(0);
    // Every third reload rebuilt the pools and every third the checker: the swaps really happened.
    expect(stats.upstream_pool!.created).to.be.at.least(2 * 10);
    expect(stats.health_checker!.created).to.be.at.least(10);

    const report = await d.daemon.stop();
    expect(report.ok, JSON.stringify(report.suspects)).to.equal(true);
    for (const [kind, s] of Object.entries(report.resources)) {
      expect({ kind, live: s.live, refs: s.refs, leaked: s.leakedLeases }).to.deep.equal({ kind, live: 0, refs: 0, leaked: 0 });
      expect(s.destroyed, kind).to.equal(s.created);
    }
    await waitFor('upstream connections from the pools closed', () => targets.every((t) => t.openConnections === 0));
    await Promise.all(targets.map((t) => t.close()));
    await waitFor(`handles back to ${handlesBefore}`, () => handleCount() <= handlesBefore);
    await waitFor(`fds back to ${fdsBefore}`, () => openFds() <= fdsBefore);
    console.log(
      `      afterwards: handles ${handlesBefore} -> ${handleCount()}, fds ${fdsBefore} -> ${openFds()}, upstream connections open ${targets.map((t) => t.openConnections).join('/')}`,
    );
  });
});
