import { expect } from 'chai';
import sinon from 'sinon';
import { stringify } from 'yaml';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, memoryLogger } from '../../harness/daemon.js';
import { type EtcdDaemon, EtcdServer, reloadLines, servedSource, startEtcdDaemon } from '../../harness/etcd.js';
import { handleCount } from '../../harness/handles.js';
import { getText, httpRequest } from '../../harness/http.js';
import { metricValue, sampleValue } from '../../harness/metrics.js';
import { freePort } from '../../harness/ports.js';
import { rejectionOf, waitFor } from '../../harness/wait.js';
import { SourceUnavailableError } from '../../lib/core/errors.js';
import { EtcdSource } from '../../lib/sources/etcd/etcd.js';
import { muteNextWatch } from './etcd-faults.js';

const KEY = '/hotconf/config';

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
    expect(await servedSource(admin)).to.deep.equal({ kind: 'etcd', endpoints: [etcd.clientUrl], key: KEY, revision: first });

    const second = await etcd.put(KEY, stringify(basicConfig({ port, body: 'two' })));
    await waitFor('the put to be served', async () => (await getText(`http://127.0.0.1:${port}/`)) === 'two');
    expect((await servedSource(admin)).revision).to.equal(second);
    const line = reloadLines(logs, 'watch').at(-1)!;
    expect(line).to.include({ result: 'applied' });
    expect((line.source as { revision: number }).revision).to.equal(second);
    const { body: text } = await httpRequest(`${admin}/metrics`);
    expect(sampleValue(text, 'hotconf_source_revision')).to.equal(second);
    expect(sampleValue(text, 'hotconf_source_connected')).to.equal(1);
    expect(sampleValue(text, 'hotconf_source_events_total', { event: 'put' })).to.equal(1);
  });

  it('converges a fleet of three daemons on one key to the revision of every put', async () => {
    // Port 0: each daemon of the fleet binds its own listener from the same document.
    await etcd.put(KEY, stringify(basicConfig({ port: 0, body: 'v0' })));
    const fleet = await Promise.all([1, 2, 3].map(() => startEtcdDaemon(etcd, KEY)));
    const listenerPort = (d: EtcdDaemon) => [...d.daemon.reloader.active!.listeners().values()][0]!.handle.address.port;
    for (let i = 1; i <= 3; i += 1) {
      const revision = await etcd.put(KEY, stringify(basicConfig({ port: 0, body: `v${i}` })));
      await waitFor(
        `all three daemons at revision ${revision}`,
        async () => (await Promise.all(fleet.map((d) => servedSource(d.admin)))).every((s) => s.revision === revision),
        20_000,
      );
      const bodies = await Promise.all(fleet.map((d) => getText(`http://127.0.0.1:${listenerPort(d)}/`)));
      expect(bodies).to.deep.equal([`v${i}`, `v${i}`, `v${i}`]);
    }
  });

  const body = (text: string) => stringify(basicConfig({ port, body: text }));
  const served = () => getText(`http://127.0.0.1:${port}/`);

  it('rejects an invalid value like an invalid file and keeps serving the last good config', async () => {
    await etcd.put(KEY, body('good'));
    const { admin, logs } = await startEtcdDaemon(etcd, KEY);
    const bad = await etcd.put(KEY, 'listeners: [{name: web, listen: nowhere}]\n');
    await waitFor('the invalid put to be rejected', () => reloadLines(logs, 'watch').some((l) => l.result === 'invalid'));
    const line = reloadLines(logs, 'watch').find((l) => l.result === 'invalid')!;
    expect(JSON.stringify(line.errors)).to.match(/listeners\.0\.listen/);
    expect(await served()).to.equal('good');
    expect(await metricValue(admin, 'hotconf_reloads_total', { result: 'invalid' })).to.equal(1);
    // The served config is still the last good one, with its own revision.
    expect((await servedSource(admin)).revision).to.be.below(bad);

    const fixed = await etcd.put(KEY, body('fixed'));
    await waitFor('the next valid put to be served', async () => (await served()) === 'fixed');
    expect((await servedSource(admin)).revision).to.equal(fixed);
  });

  it('keeps serving when the key is deleted, warns and counts the delete', async () => {
    const first = await etcd.put(KEY, body('kept'));
    const { admin, logs } = await startEtcdDaemon(etcd, KEY);
    const deleted = await etcd.delete(KEY);
    await waitFor('the delete to be logged', () => logs.lines().find((l) => l.msg === 'key_deleted'));
    expect(logs.lines().find((l) => l.msg === 'key_deleted')).to.include({ level: 40, key: KEY, revision: deleted });
    expect(await metricValue(admin, 'hotconf_source_events_total', { event: 'delete' })).to.equal(1);
    expect(await served()).to.equal('kept');
    expect((await servedSource(admin)).revision).to.equal(first);
    // A reload re-reads the key: absent, so nothing to apply and the config keeps serving.
    const reload = await httpRequest(`${admin}/reload`, { method: 'POST' });
    expect(reload.status).to.equal(422);
    expect(reload.body).to.match(/does not exist/);
    expect(await served()).to.equal('kept');

    const again = await etcd.put(KEY, body('back'));
    await waitFor('the recreated key to be served', async () => (await served()) === 'back');
    expect((await servedSource(admin)).revision).to.equal(again);
  });

  it('names the revision it serves in key_deleted, not a newer one it rejected', async () => {
    const first = await etcd.put(KEY, body('kept'));
    const { logs } = await startEtcdDaemon(etcd, KEY);
    const bad = await etcd.put(KEY, 'listeners: [{name: web, listen: nowhere}]\n');
    await waitFor('the invalid put to be rejected', () => reloadLines(logs, 'watch').some((l) => l.result === 'invalid'));
    const deleted = await etcd.delete(KEY);
    const line = await waitFor('the delete to be logged', () => logs.lines().find((l) => l.msg === 'key_deleted'));
    expect(line).to.include({ key: KEY, revision: deleted, serving_revision: first, last_revision: bad });
    expect(await served()).to.equal('kept');
  });

  it('refuses a value that is not UTF-8 text, saying so, and keeps serving', async () => {
    await etcd.put(KEY, body('kept'));
    const { admin } = await startEtcdDaemon(etcd, KEY, { watch: false });
    await etcd.put(KEY, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(body('utf-16'), 'utf16le')]));
    const res = await httpRequest(`${admin}/reload`, { method: 'POST' });
    expect(res.status).to.equal(422);
    expect(JSON.parse(res.body).errors).to.deep.equal([
      {
        path: '',
        message: 'document is UTF-16LE text (it starts with the byte order mark FF FE); hotconf reads UTF-8: convert it (iconv -f UTF-16LE -t UTF-8)',
      },
    ]);
    expect(await served()).to.equal('kept');
  });

  it('re-reads the key on POST /reload and fails (not invalid) while etcd is down, serving on', async () => {
    await etcd.put(KEY, body('one'));
    const { admin, client } = await startEtcdDaemon(etcd, KEY, { watch: false });
    const range = sinon.spy(client.kv, 'range');
    const second = await etcd.put(KEY, body('two'));
    const res = await httpRequest(`${admin}/reload`, { method: 'POST' });
    expect(res.status).to.equal(200);
    expect(JSON.parse(res.body)).to.include({ result: 'applied' });
    expect(range.callCount).to.equal(1);
    expect(range.firstCall.args[0]).to.not.have.property('serializable');
    expect((await servedSource(admin)).revision).to.equal(second);

    await etcd.kill();
    const down = await httpRequest(`${admin}/reload`, { method: 'POST' });
    expect(down.status).to.equal(500);
    const result = JSON.parse(down.body) as { result: string; error: string };
    expect(result.result).to.equal('failed');
    expect(result.error).to.include(etcd.clientUrl).and.include(KEY);
    expect(await served()).to.equal('two');
  });

  it('resumes after kill -9 and a restart from the last revision + 1: writes during the outage are each applied once, nothing missed', async () => {
    await etcd.put(KEY, body('before'));
    const { admin, logs, client, source } = await startEtcdDaemon(etcd, KEY);
    await etcd.kill();
    await waitFor('the daemon to see the watch lost', () => !source.stats().connected);
    // Keep the daemon from reconnecting (its gets fail) until the writes are done: they happen
    // while it is away and must come from the resumed watch, not from a fresh read.
    const range = sinon.stub(client.kv, 'range').rejects(new Error('injected: etcd unreachable'));
    await etcd.restart();
    const revisions: number[] = [];
    for (const text of ['during-1', 'during-2', 'during-3']) revisions.push(await etcd.put(KEY, body(text)));
    range.restore();
    await waitFor('the last write of the outage to be served', async () => (await served()) === 'during-3', 30_000);
    expect((await servedSource(admin)).revision).to.equal(revisions.at(-1));
    await waitFor('the reconnect to be counted', () => source.stats().reconnects === 1);
    const afterOutage = reloadLines(logs, 'watch');
    // One reload per change delivered, never a second one for the same revision.
    expect(afterOutage.filter((l) => l.result === 'unchanged')).to.have.length(0);
    const applied = afterOutage.map((l) => (l.source as { revision: number }).revision);
    expect(new Set(applied).size).to.equal(applied.length);
    expect(applied.every((r) => revisions.includes(r))).to.equal(true);
    expect(source.stats().resyncs).to.deep.include({ compacted: 0, revision_backwards: 0, cluster_id_changed: 0 });

    const after = await etcd.put(KEY, body('after'));
    await waitFor('a put after the reconnect to be served', async () => (await served()) === 'after');
    expect((await servedSource(admin)).revision).to.equal(after);
    expect(await metricValue(admin, 'hotconf_source_reconnects_total')).to.equal(1);
  });

  it('loses no write between the initial get and the watch', async () => {
    const first = await etcd.put(KEY, body('read'));
    const { daemon, source, admin } = await startEtcdDaemon(etcd, KEY, { start: false });
    const revisions: number[] = [];
    // Writes land after start's read (revision `first`) and before the watch is created.
    const watch = source.watch.bind(source);
    sinon.stub(source, 'watch').callsFake(async (handlers) => {
      for (const text of ['between-1', 'between-2']) revisions.push(await etcd.put(KEY, body(text)));
      return watch(handlers);
    });
    const started = await daemon.start();
    expect(started.result).to.equal('applied');
    await waitFor('the writes made before the watch to be served', async () => (await served()) === 'between-2');
    expect((await servedSource(admin)).revision).to.equal(revisions[1]);
    expect(revisions[0]).to.equal(first + 1);
  });

  it('counts and logs a delete that reaches the watch in one response with a later put', async () => {
    await etcd.put(KEY, body('read'));
    const { daemon, source, logs } = await startEtcdDaemon(etcd, KEY, { start: false });
    // Both land after start's read and before the watch: its catch-up response holds both events.
    let deleted = 0;
    let recreated = 0;
    const watch = source.watch.bind(source);
    sinon.stub(source, 'watch').callsFake(async (handlers) => {
      deleted = await etcd.delete(KEY);
      recreated = await etcd.put(KEY, body('recreated'));
      return watch(handlers);
    });
    expect((await daemon.start()).result).to.equal('applied');
    await waitFor('the recreated key to be served', async () => (await served()) === 'recreated');
    expect(source.stats().events).to.deep.equal({ put: 1, delete: 1 });
    expect(logs.lines().filter((l) => l.msg === 'key_deleted'))
      .to.have.length(1)
      .and.to.have.nested.property('[0].revision', deleted);
    expect(source.stats().revision).to.equal(recreated);
  });

  it('coalesces a burst of 100 puts within a second to the final value, seeing every event', async () => {
    await etcd.put(KEY, body('start'));
    const { logs, source, admin } = await startEtcdDaemon(etcd, KEY);
    const before = reloadLines(logs, 'watch').length;
    const puts = await Promise.all(Array.from({ length: 100 }, (_, i) => etcd.put(KEY, body(`burst-${i}`))));
    const last = Math.max(...puts);
    const final = `burst-${puts.indexOf(last)}`;
    await waitFor('the final value of the burst to be served', async () => (await served()) === final);
    expect((await servedSource(admin)).revision).to.equal(last);
    await waitFor('every put event to be seen', () => source.stats().events.put === 100);
    const reloads = reloadLines(logs, 'watch').slice(before);
    console.log(`      burst: 100 puts -> ${reloads.length} reloads (${reloads.filter((l) => l.result === 'applied').length} applied)`);
    expect(reloads.length).to.be.within(1, 100);
    expect(reloads.every((l) => l.result === 'applied')).to.equal(true);
    const order = reloads.map((l) => (l.source as { revision: number }).revision);
    expect(order).to.deep.equal([...order].sort((a, b) => a - b));
  });

  it('folds a burst of 100 puts that arrives during a slow reload into one next reload of the final value', async () => {
    await etcd.put(KEY, body('start'));
    const { daemon, logs, source, admin } = await startEtcdDaemon(etcd, KEY);
    // Fault: a re-read that takes until the burst is over keeps the reloader busy throughout.
    let burstDone!: () => void;
    const done = new Promise<void>((resolve) => (burstDone = resolve));
    const read = source.read.bind(source);
    sinon.stub(source, 'read').callsFake(async () => {
      await done;
      return read();
    });
    const slow = daemon.reload('api');
    const puts = await Promise.all(Array.from({ length: 100 }, (_, i) => etcd.put(KEY, body(`burst-${i}`))));
    await waitFor('every put event to be seen', () => source.stats().events.put === 100);
    burstDone();
    const last = Math.max(...puts);
    expect((await slow).result).to.equal('applied');
    await daemon.reloader.idle();
    expect(await served()).to.equal(`burst-${puts.indexOf(last)}`);
    expect((await servedSource(admin)).revision).to.equal(last);
    // The slow re-read already read the final value; the 100 pushed documents became one reload.
    const watchReloads = reloadLines(logs, 'watch');
    expect(watchReloads).to.have.length(1);
    expect(watchReloads[0]).to.include({ result: 'unchanged' });
  });

  it('resyncs when etcd comes back with a wiped data dir (revision went backwards)', async () => {
    for (const text of ['old-1', 'old-2', 'old-3', 'old-4', 'old-5']) await etcd.put(KEY, body(text));
    const { source, admin } = await startEtcdDaemon(etcd, KEY);
    await etcd.wipe();
    const fresh = await etcd.put(KEY, body('fresh'));
    await waitFor('the value of the new history to be served', async () => (await served()) === 'fresh', 30_000);
    expect((await servedSource(admin)).revision).to.equal(fresh);
    expect(source.stats().resyncs.revision_backwards).to.equal(1);
    expect(await metricValue(admin, 'hotconf_source_resyncs_total', { reason: 'revision_backwards' })).to.equal(1);
    const next = await etcd.put(KEY, body('next'));
    await waitFor('puts after the resync to be served', async () => (await served()) === 'next');
    expect((await servedSource(admin)).revision).to.equal(next);
  });

  it('resyncs when the cluster ID changed (cluster rebuilt)', async () => {
    await etcd.put(KEY, body('old'));
    const { source, admin } = await startEtcdDaemon(etcd, KEY);
    await etcd.wipe({ newCluster: true });
    for (let i = 0; i < 5; i += 1) await etcd.put('/other', String(i));
    const fresh = await etcd.put(KEY, body('rebuilt'));
    await waitFor('the value of the new cluster to be served', async () => (await served()) === 'rebuilt', 30_000);
    expect((await servedSource(admin)).revision).to.equal(fresh);
    expect(source.stats().resyncs.cluster_id_changed).to.equal(1);
  });

  it('resyncs a watch that silently stopped delivering, found by the periodic consistency check', async () => {
    await etcd.put(KEY, body('one'));
    const { source, client, admin, logs } = await startEtcdDaemon(etcd, KEY, { consistencyCheckIntervalMs: 300 });
    // Fault: the next watch stream delivers its `created` response and swallows every event, as
    // a stream stuck behind a broken proxy would.
    const muted = muteNextWatch(client);
    // Restart the session so the muted watcher is the one in use.
    await etcd.restart();
    await waitFor('the muted watcher to be in use', () => muted() && source.stats().connected, 30_000);
    const stuck = await etcd.put(KEY, body('stuck'));
    await waitFor('the stalled watch to be resynced and the value served', async () => (await served()) === 'stuck', 30_000);
    expect(source.stats().resyncs.watch_stalled).to.equal(1);
    expect((await servedSource(admin)).revision).to.equal(stuck);
    expect(logs.lines().find((l) => l.msg === 'resync')).to.include({ reason: 'watch_stalled' });
    const next = await etcd.put(KEY, body('flowing'));
    await waitFor('the new watcher to deliver', async () => (await served()) === 'flowing');
    expect((await servedSource(admin)).revision).to.equal(next);
  });

  it('stops promptly and leaves nothing open while etcd is frozen (SIGSTOP)', async () => {
    await etcd.put(KEY, body('one'));
    // grpc-js unrefs idle connections: an open socket here is a call still running (the watch).
    const sockets = () => handleCount('TCPSocketWrap');
    const before = sockets();
    const { daemon, source } = await startEtcdDaemon(etcd, KEY);
    expect(sockets()).to.be.above(before);
    etcd.freeze();
    const report = await daemon.stop();
    expect(report.ok).to.equal(true);
    expect(source.stats().connected).to.equal(false);
    await waitFor('the watch connection to be released while etcd is still frozen', () => sockets() <= before);
    etcd.thaw();
  });
});

describe('EtcdSource options', () => {
  it('refuses an endpoint with credentials in its URL without quoting them: they belong in auth', () => {
    for (const endpoint of ['http://root:pa55word@127.0.0.1:2379', 'https://pa55word@etcd:2379']) {
      expect(() => new EtcdSource({ endpoints: ['http://127.0.0.1:2379', endpoint], key: KEY }))
        .to.throw('EtcdSource endpoints[1] contains credentials (user:password@): pass them as auth')
        .with.property('message')
        .that.does.not.contain('pa55word');
    }
  });
});

describe('EtcdSource closed while it waits for etcd at start', () => {
  /** A delay far beyond the test: a close can only land during the backoff sleep. */
  const LONG_BACKOFF = { initialMs: 600_000, maxMs: 600_000 };

  it('rejects the pending read with SourceUnavailableError, as a closed source does', async () => {
    const logs = memoryLogger();
    const source = new EtcdSource({ endpoints: [`http://127.0.0.1:${await freePort()}`], key: KEY, logger: logs.logger, backoff: LONG_BACKOFF });
    onCleanup(() => source.close());
    const read = rejectionOf(source.read());
    await waitFor('a startup retry', () => logs.lines().some((l) => l.msg === 'etcd_startup_retry'));
    await source.close();
    const error = await read;
    expect(error).to.be.instanceOf(SourceUnavailableError);
    expect(error.message).to.equal(`${KEY}: the etcd source is closed`);
  });

  it('lets a daemon stopped meanwhile give up its start without logging a crashed reload', async () => {
    const { daemon, logs } = await startEtcdDaemon({ clientUrl: `http://127.0.0.1:${await freePort()}` }, KEY, { start: false, backoff: LONG_BACKOFF });
    const start = rejectionOf(daemon.start());
    await waitFor('a startup retry', () => logs.lines().some((l) => l.msg === 'etcd_startup_retry'));
    expect((await daemon.stop()).ok).to.equal(true);
    expect((await start).message).to.equal(`cannot start: failed config: ${KEY}: the etcd source is closed`);
    expect(logs.lines().filter((l) => Number(l.level) >= 50)).to.deep.equal([]);
  });
});
