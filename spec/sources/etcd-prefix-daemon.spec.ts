import { expect } from 'chai';
import { stringify } from 'yaml';
import type { MemoryLogs } from '../../harness/daemon.js';
import { EtcdServer, reloadLines, startEtcdDaemon } from '../../harness/etcd.js';
import { httpRequest } from '../../harness/http.js';
import { metricValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { waitFor } from '../../harness/wait.js';

const PREFIX = '/hotconf/routes/';
const ROUTES = 1000;

interface FragmentStatus {
  name: string;
  version: string | null;
  state: string;
  applied_version?: string;
  errors?: { path: string; message: string; origin?: string }[];
}

interface ConfigView {
  source: Record<string, unknown>;
  fragments: FragmentStatus[];
}

const name = (i: number) => `${PREFIX}route-${String(i).padStart(4, '0')}.yaml`;

/** The fragment of route `i`: one route on the listener `web`, answering `body`. */
const routeFragment = (i: number, body: string) =>
  stringify({ listeners: [{ name: 'web', routes: [{ path_prefix: `/r${i}/`, respond: { status: 200, body } }] }] });

describe('a daemon on an etcd prefix (real etcd, per-fragment last good)', function () {
  this.timeout(120_000);
  let etcd: EtcdServer;
  let port: number;
  let admin: string;
  let logs: MemoryLogs;

  /** GET `/r{i}/` on the listener: `status body`. */
  const served = async (i: number) => {
    const res = await httpRequest(`http://127.0.0.1:${port}/r${i}/`);
    return `${res.status} ${res.body}`;
  };
  const configView = async () => JSON.parse((await httpRequest(`${admin}/config`)).body) as ConfigView;
  const fragment = async (key: string) => (await configView()).fragments.find((f) => f.name === key);

  beforeEach(async () => {
    etcd = await EtcdServer.start();
    port = await freePort();
    // The listener, then 1000 keys of one route each, 100 per transaction.
    await etcd.put(
      `${PREFIX}0-listener.yaml`,
      stringify({ listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [{ path_prefix: '/base', respond: { status: 200, body: 'base' } }] }] }),
    );
    for (let chunk = 0; chunk < ROUTES / 100; chunk += 1) {
      await etcd.client().kv.txn({
        compare: [],
        success: Array.from({ length: 100 }, (_, j) => {
          const i = chunk * 100 + j;
          return { request_put: { key: Buffer.from(name(i)), value: Buffer.from(routeFragment(i, `r${i} v1`)) } };
        }),
        failure: [],
      });
    }
    ({ admin, logs } = await startEtcdDaemon(etcd, { prefix: PREFIX }));
  });

  it('keeps the last good version of a bad key among 1000 while a change in another key applies, and shows both in /config', async () => {
    expect(await served(999)).to.equal('200 r999 v1');
    const bad = await etcd.put(name(5), stringify({ listeners: [{ name: 'web', routes: [{ path_prefix: '/r5/', respond: { status: 'teapot' } }] }] }));
    await waitFor('the bad key to be refused', async () => (await fragment(name(5)))?.state === 'invalid-kept-last-good');
    const refused = (await fragment(name(5)))!;
    expect(refused.version).to.match(new RegExp(`^${bad}:`));
    expect(refused.applied_version).to.not.equal(refused.version);
    expect(JSON.stringify(refused.errors)).to.include('listeners.0.routes.0.respond.status');

    const good = await etcd.put(name(7), routeFragment(7, 'r7 v2'));
    await waitFor('the change of another key to be served', async () => (await served(7)) === '200 r7 v2');
    expect(await served(5)).to.equal('200 r5 v1');
    const view = await configView();
    expect(view.source).to.include({ kind: 'etcd', prefix: PREFIX, revision: good, fragments: ROUTES + 1 });
    expect(view.fragments).to.have.length(ROUTES + 1);
    expect(view.fragments.filter((f) => f.state !== 'ok').map((f) => f.name)).to.deep.equal([name(5)]);
    expect(view.fragments.find((f) => f.name === name(7))!.version).to.match(new RegExp(`^${good}:`));

    // The reload that applied the change names the refused key (the origin) and the path within it.
    const line = reloadLines(logs, 'watch').find((l) => (l.source as { revision: number }).revision === good)!;
    expect(line).to.include({ result: 'applied', level: 40 });
    expect(line.errors).to.deep.include({ origin: name(5), path: 'listeners.0.routes.0.respond.status', message: refused.errors![0]!.message });

    // Fixing the key applies it.
    await etcd.put(name(5), routeFragment(5, 'r5 v2'));
    await waitFor('the fixed key to be served', async () => (await served(5)) === '200 r5 v2');
    expect((await fragment(name(5)))!.state).to.equal('ok');
  });

  it('removes exactly the routes of a key deleted from etcd', async () => {
    const deleted = await etcd.delete(name(3));
    await waitFor('the deleted key to leave /config', async () => (await fragment(name(3))) === undefined);
    expect(await served(3)).to.match(/^404 /);
    expect([await served(2), await served(4), await served(999)]).to.deep.equal(['200 r2 v1', '200 r4 v1', '200 r999 v1']);
    expect((await configView()).source).to.include({ revision: deleted, fragments: ROUTES });
    expect(await metricValue(admin, 'hotconf_source_fragments')).to.equal(ROUTES);
  });

  it('leaves out a key that was never valid, listing it as invalid-never-applied', async () => {
    await etcd.put(`${PREFIX}new.yaml`, 'listeners: [{ name: web, routes: [] }]\n');
    const next = await etcd.put(name(1), routeFragment(1, 'r1 v2'));
    await waitFor('the other change to be served', async () => (await served(1)) === '200 r1 v2');
    const never = await waitFor('the new key listed', () => fragment(`${PREFIX}new.yaml`));
    expect(never.state).to.equal('invalid-never-applied');
    expect((await configView()).source).to.include({ revision: next });
  });
});
