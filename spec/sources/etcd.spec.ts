import { expect } from 'chai';
import { stringify } from 'yaml';
import { basicConfig } from '../helpers/daemon.js';
import { EtcdServer, metricValue, reloadLines, startEtcdDaemon } from '../helpers/etcd.js';
import { getText, httpRequest } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { waitFor } from '../helpers/wait.js';

const KEY = '/hotconf/config';

async function configOf(admin: string): Promise<{ generation: number; source: { kind: string; key: string; revision: number; endpoints: string[] } }> {
  const res = await httpRequest(`${admin}/config`);
  return JSON.parse(res.body);
}

async function metrics(admin: string): Promise<string> {
  return (await httpRequest(`${admin}/metrics`)).body;
}

describe('EtcdSource with a real etcd', function () {
  this.timeout(60_000);
  let etcd: EtcdServer;
  let port: number;
  beforeEach(async () => {
    etcd = await EtcdServer.start();
    port = await freePort();
  });

  it('applies a put of the key and reports its mod revision in /config and the reload log', async () => {
    const first = await etcd.put(KEY, stringify(basicConfig({ port, body: 'one' })));
    const { admin, logs } = await startEtcdDaemon(etcd, KEY);
    expect(await getText(`http://127.0.0.1:${port}/`)).to.equal('one');
    expect((await configOf(admin)).source).to.deep.equal({ kind: 'etcd', endpoints: [etcd.clientUrl], key: KEY, revision: first });

    const second = await etcd.put(KEY, stringify(basicConfig({ port, body: 'two' })));
    await waitFor('the put to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'two');
    expect((await configOf(admin)).source.revision).to.equal(second);
    const line = reloadLines(logs, 'watch').at(-1)!;
    expect(line).to.include({ result: 'applied' });
    expect((line.source as { revision: number }).revision).to.equal(second);
    const text = await metrics(admin);
    expect(metricValue(text, 'hotconf_source_revision')).to.equal(second);
    expect(metricValue(text, 'hotconf_source_connected')).to.equal(1);
    expect(metricValue(text, 'hotconf_source_events_total{event="put"}')).to.equal(1);
  });
});
