import { expect } from 'chai';
import { stringify } from 'yaml';
import { onCleanup } from '../../harness/cleanup.js';
import { basicConfig } from '../../harness/daemon.js';
import { workerThreadCount } from '../../harness/handles.js';
import { rejectionOf } from '../../harness/wait.js';
import { loadFragment } from '../../lib/config/fragments.js';
import { loadConfig } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';
import { ConfigParser, ParserClosedError } from '../../lib/reload/parser.js';

describe('ConfigParser', function () {
  this.timeout(30_000);

  function newParser(options: ConstructorParameters<typeof ConfigParser>[0] = {}): ConfigParser {
    const parser = new ConfigParser(options);
    onCleanup(() => parser.close());
    return parser;
  }

  it('gives what loadConfig gives, deeply frozen, from one worker started by the first parse', async () => {
    const workers = workerThreadCount();
    const parser = newParser();
    expect(workerThreadCount(), 'no worker before the first parse').to.equal(workers);
    const text = stringify(basicConfig({ port: 8080, body: 'one' }));
    const loaded = await parser.parse(text, { origin: 'a.yaml' });
    expect(loaded).to.deep.equal(loadConfig(text));
    expect(Object.isFrozen(loaded.config.listeners[0]!.routes[0]!.respond)).to.equal(true);
    const all = await Promise.all([1, 2, 3].map((i) => parser.parse(stringify(basicConfig({ port: 8080, body: `b${i}` })))));
    expect(all.map((l) => l.config.listeners[0]!.routes[0]!.respond!.body)).to.deep.equal(['b1', 'b2', 'b3']);
    expect(workerThreadCount(), 'one worker for every parse').to.equal(workers + 1);
    expect(parser.pending).to.equal(0);
  });

  it('sends a one-route change as what changed: the rest are the last config’s frozen objects', async () => {
    const parser = newParser();
    const doc = (body: string) =>
      JSON.stringify({
        upstreams: { a: { targets: ['http://127.0.0.1:1'] }, b: { targets: ['http://127.0.0.1:2'] } },
        listeners: [
          {
            name: 'web',
            listen: '127.0.0.1:8080',
            routes: Array.from({ length: 50 }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === 7 ? body : `r${i}` } })),
          },
          { name: 'api', listen: '127.0.0.1:8081', routes: [{ path_prefix: '/', upstream: 'a' }] },
        ],
      });
    const first = await parser.parse(doc('one'));
    const text = doc('two');
    const second = await parser.parse(text);
    expect(second).to.deep.equal(loadConfig(text));
    const [before, after] = [first.config.listeners[0]!.routes, second.config.listeners[0]!.routes];
    expect(after.filter((route, i) => route !== before[i]).map((route) => route.path_prefix)).to.deep.equal(['/r7']);
    expect(second.config.listeners[1]).to.equal(first.config.listeners[1]);
    expect(second.config.upstreams).to.equal(first.config.upstreams);
    expect(Object.isFrozen(second.config.listeners[0]) && Object.isFrozen(after[7]!.respond)).to.equal(true);
    expect((await parser.parse(text)).config, 'an unchanged document is the same config').to.equal(second.config);
    const removed = JSON.stringify({ ...JSON.parse(text), listeners: [JSON.parse(text).listeners[1]] });
    const third = await parser.parse(removed);
    expect(third).to.deep.equal(loadConfig(removed));
    expect(third.config.listeners[0]).to.equal(first.config.listeners[1]);
  });

  it('sends a one-route change of a fragment as what changed: its unchanged routes are the last version’s frozen objects', async () => {
    const parser = newParser();
    const fragment = (body: string) =>
      stringify({
        upstreams: { a: { targets: ['http://127.0.0.1:1'] } },
        listeners: [
          { name: 'web', routes: Array.from({ length: 200 }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === 7 ? body : `r${i}` } })) },
        ],
      });
    const other = { name: 'conf.d/b.yaml', text: stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080' }] }) };
    const loaded = async (fragments: { name: string; text: string }[], options?: { removed?: string[] }) =>
      (await parser.parseFragments(fragments, options)).map((parsed) => {
        if (!parsed.ok) throw new Error(JSON.stringify(parsed.issues));
        return parsed.loaded;
      });
    await loaded([{ name: 'conf.d/a.yaml', text: fragment('zero') }, other]);
    const [first] = await loaded([{ name: 'conf.d/a.yaml', text: fragment('one') }]);
    const text = fragment('two');
    const [second] = await loaded([{ name: 'conf.d/a.yaml', text }]);
    expect(second).to.deep.equal(loadFragment(text, { origin: 'conf.d/a.yaml' }));
    const [before, after] = [first!.config.listeners![0]!.routes, second!.config.listeners![0]!.routes];
    expect(after.filter((route, i) => route !== before[i]).map((route) => route.path_prefix)).to.deep.equal(['/r7']);
    expect(second!.config.upstreams, 'unchanged upstreams are the same object').to.equal(first!.config.upstreams);
    expect(Object.isFrozen(second!.config.listeners![0]) && Object.isFrozen(after[7]!.respond)).to.equal(true);
    // A fragment removed, then added again, comes whole: the worker forgot it.
    await loaded([], { removed: ['conf.d/a.yaml'] });
    const [again] = await loaded([{ name: 'conf.d/a.yaml', text }]);
    expect(again).to.deep.equal(second);
    expect(again!.config.listeners![0]!.routes[0]).not.to.equal(after[0]);
  });

  it('rejects an invalid document with the ConfigInvalidError loadConfig throws, naming its origin', async () => {
    const parser = newParser();
    const error = await rejectionOf(parser.parse('listeners: [{name: web}]\n', { origin: '/etc/hotconf.yaml' }));
    expect(error).to.be.instanceOf(ConfigInvalidError);
    expect(error).to.deep.include({ origin: '/etc/hotconf.yaml', issues: [{ path: 'listeners.0.listen', message: 'required (string)' }] });
    expect(error.message).to.contain('/etc/hotconf.yaml');
    const big = await rejectionOf(parser.parse('a: 1\n', { maxDocumentBytes: 3 }));
    expect((big as ConfigInvalidError).issues).to.deep.equal([{ path: '', message: 'document is 5 bytes; the limit is 3 bytes' }]);
  });

  it('terminates its worker on close, rejecting what is pending and every later parse with ParserClosedError', async () => {
    const workers = workerThreadCount();
    const parser = new ConfigParser();
    await parser.parse(stringify(basicConfig({ port: 8080 })));
    const pending = rejectionOf(parser.parse(stringify(basicConfig({ port: 8081 }))));
    expect(parser.pending).to.equal(1);
    await Promise.all([parser.close(), parser.close()]);
    expect(await pending).to.be.instanceOf(ParserClosedError);
    expect(await rejectionOf(parser.parse('a: 1\n')))
      .to.be.instanceOf(ParserClosedError)
      .and.have.property('code', 'E_PARSER_CLOSED');
    expect(workerThreadCount()).to.equal(workers);
  });

  it('reports a parse that exhausts the worker heap as invalid, and parses the next document with a new worker', async () => {
    const workers = workerThreadCount();
    const parser = newParser({ maxHeapMb: 16 });
    await parser.parse(stringify(basicConfig({ port: 8080, body: 'before' })));
    const fragment = (body: string) => ({
      name: 'conf.d/a.yaml',
      text: stringify({ listeners: [{ name: 'web', routes: [{ path_prefix: '/', respond: { status: 200, body } }] }] }),
    });
    for (const body of ['zero', 'one', 'two']) await parser.parseFragments([fragment(body)]);
    // Within every document limit, yet more than 16 MiB of heap to compose and validate.
    const routes = Array.from({ length: 10 }, (_, r) => ({
      path_prefix: `/r${r}`,
      respond: { status: 200, headers: Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`x-h${i}`, 'v'])) },
    }));
    const error = await rejectionOf(parser.parse(JSON.stringify({ listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes }] }), { origin: 'heavy.json' }));
    expect(error).to.be.instanceOf(ConfigInvalidError);
    expect(error.message).to.equal("heavy.json: invalid config: parsing the document exhausted the parser's memory limit of 16 MiB");
    expect(workerThreadCount(), 'the worker that ran out is gone').to.equal(workers);
    const text = stringify(basicConfig({ port: 8080 }));
    expect(await parser.parse(text), 'the new worker sends its first config whole').to.deep.equal(loadConfig(text));
    const [parsed] = await parser.parseFragments([fragment('three')]);
    expect(parsed, 'and its first fragment whole').to.deep.equal({ ok: true, loaded: loadFragment(fragment('three').text, { origin: 'conf.d/a.yaml' }) });
    expect(workerThreadCount()).to.equal(workers + 1);
  });
});
