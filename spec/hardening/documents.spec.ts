import { expect } from 'chai';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig, startDaemon, type TestDaemon } from '../../harness/daemon.js';
import { workerThreadCount } from '../../harness/handles.js';
import { getText, httpRequest } from '../../harness/http.js';
import { freePort } from '../../harness/ports.js';
import { MAX_DOCUMENT_NODES, MAX_MAP_KEYS } from '../../lib/config/parse.js';
import { ConfigParser } from '../../lib/reload/parser.js';
import type { ReloadResult } from '../../lib/reload/reloader.js';

/** A 1 MiB-class document of one listener whose route has `entries` response headers (a 40 000-entry one is 509 KB of YAML). */
function headerMap(port: number, entries: number): string {
  const headers = Array.from({ length: entries }, (_, i) => `            x-h${i}: v`).join('\n');
  return `listeners:\n  - name: web\n    listen: 127.0.0.1:${port}\n    routes:\n      - path_prefix: /\n        respond:\n          status: 200\n          body: big\n          headers:\n${headers}\n`;
}

/** 8000 copies of a 60-deep nested list: 10 s and 1.4 GB to be refused before. */
function nestedListBomb(): string {
  return `listeners: [${Array(8000)
    .fill(`${'['.repeat(60)}${']'.repeat(60)}`)
    .join(',')}]\n`;
}

/** A large valid document (about 80 000 nodes, 600 KB): a second or more of parsing and validation. */
function heavyValid(port: number, body: string): string {
  const routes = Array.from({ length: 8 }, (_, r) => ({
    path_prefix: `/r${r}`,
    respond: { status: 200, body, headers: Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`x-h${i}`, 'v'])) },
  }));
  return JSON.stringify({
    shutdown_timeout_ms: 2000,
    listeners: [{ name: 'web', listen: `127.0.0.1:${port}`, routes: [...routes, { path_prefix: '/', respond: { status: 200, body } }] }],
  });
}

describe('hardening: documents that are expensive to parse', function () {
  this.timeout(120_000);

  let parser: ConfigParser;
  let t: TestDaemon;
  let web: number;

  beforeEach(async () => {
    // A parser of this daemon's own, so that `pending` tells when this daemon is parsing.
    parser = new ConfigParser();
    onCleanup(() => parser.close());
    web = await freePort();
    t = await startDaemon(basicConfig({ port: web, body: 'good' }), { parser });
  });

  /**
   * Reload `text` while asking `/healthz` and the listener in turn, and count the answers that
   * arrived while the parse was still running on the parser's worker: with parsing on the serving
   * thread there can be none.
   */
  async function reloadWhileServing(text: string): Promise<{ result: ReloadResult; answeredDuringParse: number }> {
    await t.write(text);
    let settled = false;
    const reload = t.daemon.reload('api').finally(() => {
      settled = true;
    });
    let answeredDuringParse = 0;
    while (!settled) {
      const [health, served] = await Promise.all([httpRequest(`${t.admin}/healthz`), httpRequest(`http://127.0.0.1:${web}/`)]);
      expect(health.status).to.equal(200);
      expect(served.status).to.equal(200);
      if (parser.pending > 0) answeredDuringParse += 1;
    }
    return { result: await reload, answeredDuringParse };
  }

  it('refuses a 40 000-entry header map by its key limit, answering requests while it is parsed', async () => {
    const { result, answeredDuringParse } = await reloadWhileServing(headerMap(web, 40_000));
    expect(result).to.deep.include({ result: 'invalid', generation: 1 });
    expect(result.errors).to.deep.equal([{ path: '', message: `the map at line 10, column 13 has 40000 keys; the limit is ${MAX_MAP_KEYS}` }]);
    expect(answeredDuringParse).to.be.at.least(1);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
  });

  it('refuses the nested-list bomb by its node limit, answering requests while it is parsed', async () => {
    const { result, answeredDuringParse } = await reloadWhileServing(nestedListBomb());
    expect(result).to.deep.include({ result: 'invalid', generation: 1 });
    expect(result.errors).to.deep.equal([
      { path: '', message: `document has more than ${MAX_DOCUMENT_NODES} nodes (keys, values and collections), the limit` },
    ]);
    expect(answeredDuringParse).to.be.at.least(1);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('good');
  });

  it('applies a large valid document, answering /healthz and requests all the while it is parsed and validated', async () => {
    const { result, answeredDuringParse } = await reloadWhileServing(heavyValid(web, 'heavy'));
    expect(result).to.deep.include({ result: 'applied', generation: 2 });
    expect(answeredDuringParse).to.be.at.least(3);
    expect(await getText(`http://127.0.0.1:${web}/`)).to.equal('heavy');
  });

  it('a daemon parses on one worker of its own, made by its first reload and terminated by its stop', async () => {
    const before = workerThreadCount();
    const port = await freePort();
    const own = await startDaemon(basicConfig({ port, body: 'own' }), { parser: undefined });
    expect(workerThreadCount()).to.equal(before + 1);
    for (let i = 0; i < 5; i += 1) expect((await own.apply(basicConfig({ port, body: `b${i}` }))).result).to.equal('applied');
    expect((await own.apply('listeners: [')).result).to.equal('invalid');
    expect(workerThreadCount()).to.equal(before + 1);
    await own.daemon.stop();
    expect(workerThreadCount()).to.equal(before);
  });
});
