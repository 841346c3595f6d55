import { expect } from 'chai';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { IncrementalLoader } from '../../lib/config/incremental.js';
import { parseDocument } from '../../lib/config/parse.js';
import { SpliceParser } from '../../lib/config/splice.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

/** `parseDocument`'s outcome, comparable: the data (and its JSON, for key order), or the error's origin, issues and message. */
function outcome(parse: () => unknown): unknown {
  try {
    const data = parse();
    return { data, json: JSON.stringify(data) };
  } catch (error) {
    if (!(error instanceof ConfigInvalidError)) throw error;
    return { origin: error.origin, issues: error.issues, message: error.message };
  }
}

/** `routes` routes on listener `web`; route `changed` responds `body`. */
function routesDocument(routes: number, changed = -1, body = 'changed'): string {
  const list = Array.from({ length: routes }, (_, i) => ({ path_prefix: `/r${i}`, respond: { status: 200, body: i === changed ? body : `route ${i}` } }));
  return stringify({ upstreams: { u: { targets: ['http://127.0.0.1:1'] } }, listeners: [{ name: 'web', listen: '127.0.0.1:8080', routes: list }] });
}

const scalar = fc.oneof(
  fc.string({ unit: fc.constantFrom('a', 'b', ' ', '-', ':', '#', "'", '"', '\n', '&', '*', '!', '|', '>', '[', '{', ',', '%', '@', '`'), maxLength: 12 }),
  fc.constantFrom('', 'null', '~', 'true', 'yes', '0o17', '.inf', '-0', '1e3', '0x1f'),
  fc.integer({ min: -1000, max: 100_000 }),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
);

const route = fc.record(
  {
    path_prefix: scalar,
    methods: fc.array(scalar, { maxLength: 3 }),
    respond: fc.record({ status: fc.integer({ min: 100, max: 599 }), body: scalar }, { requiredKeys: ['status'] }),
    upstream: scalar,
    headers: fc.dictionary(fc.constantFrom('x-a', 'x-b', 'null', '__proto__', '1'), scalar, { maxKeys: 2 }),
  },
  { requiredKeys: ['path_prefix'] },
);

const config = fc.record(
  {
    upstreams: fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.record({ targets: fc.array(scalar, { minLength: 1, maxLength: 2 }) }), { maxKeys: 3 }),
    listeners: fc.array(fc.record({ name: scalar, listen: scalar, routes: fc.array(route, { minLength: 1, maxLength: 6 }) }), { minLength: 1, maxLength: 2 }),
    shutdown_timeout_ms: fc.integer({ min: 0, max: 5000 }),
  },
  { requiredKeys: ['listeners'] },
);

/** A document (up to some KB): `yaml`'s block style (sequences indented or not; some with shared objects as anchors), then comment and blank lines put in. */
const document = fc
  .record({
    config,
    indentSeq: fc.boolean(),
    share: fc.boolean(),
    padding: fc.nat({ max: 120 }),
    extra: fc.array(fc.record({ at: fc.nat(), line: fc.constantFrom('', '   ', '# note', '  # note', '      # deep', '#') }), { maxLength: 4 }),
  })
  .map(({ config: value, indentSeq, share, padding, extra }) => {
    // Padding routes make documents longer than the chunks the common prefix and suffix are compared by.
    value.listeners[0]!.routes.unshift(...Array.from({ length: padding }, (_, i) => ({ path_prefix: `/padding/${i}` })));
    if (share && value.listeners.length > 0) {
      const first = value.listeners[0]!.routes[0]!;
      value.listeners[0]!.routes.push(first); // the same object twice: an anchor and an alias
    }
    const lines = stringify(value, { indentSeq, aliasDuplicateObjects: share }).split('\n');
    for (const { at, line } of extra) lines.splice(at % lines.length, 0, line);
    return lines.join('\n');
  });

const token = fc.constantFrom(
  'a',
  '1',
  ' ',
  '  ',
  '\n',
  '- ',
  '-',
  ':',
  ': ',
  '#',
  "'",
  '"',
  '[',
  ']',
  '{',
  '}',
  ',',
  '&a ',
  '*a',
  '!t ',
  '|',
  '>',
  '\t',
  'x: y',
  '\n  - z',
  '\n- ',
  '\n    b: 2',
  '~',
  'null',
  '.inf',
  '|2',
  '\r\n',
  '---',
  '\n...',
);

/** One edit of a text: a replaced substring, an inserted or removed line, or a line's indentation changed. */
const edit = fc.oneof(
  fc.record({
    kind: fc.constant('replace' as const),
    at: fc.nat(),
    remove: fc.nat({ max: 40 }),
    insert: fc.array(token, { maxLength: 4 }).map((parts) => parts.join('')),
  }),
  fc.record({ kind: fc.constant('insert line' as const), at: fc.nat(), line: fc.array(token, { maxLength: 4 }).map((parts) => parts.join('')) }),
  fc.record({ kind: fc.constant('remove line' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('indent' as const), at: fc.nat(), by: fc.integer({ min: -3, max: 3 }) }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), value: scalar.map((value) => stringify(value).trimEnd()) }),
);

function applyEdit(text: string, change: { kind: string; at: number; [key: string]: unknown }): string {
  if (change.kind === 'replace') {
    const at = change.at % (text.length + 1);
    return text.slice(0, at) + (change.insert as string) + text.slice(at + (change.remove as number));
  }
  const lines = text.split('\n');
  const at = change.at % lines.length;
  if (change.kind === 'value') {
    // A key's value on one line, replaced by another scalar as yaml writes it (maybe a block scalar over lines).
    const keyed = lines.map((line, i) => [line, i] as const).filter(([line]) => /^ *(- )?[\w"]+: \S/.test(line));
    if (keyed.length === 0) return text;
    const [line, i] = keyed[change.at % keyed.length]!;
    const indent = ' '.repeat(line.indexOf(': ') + 2);
    lines[i] = `${line.slice(0, line.indexOf(': ') + 2)}${(change.value as string).split('\n').join(`\n${indent}`)}`;
    return lines.join('\n');
  }
  if (change.kind === 'insert line') lines.splice(at, 0, change.line as string);
  else if (change.kind === 'remove line') lines.splice(at, 1);
  else {
    const by = change.by as number;
    lines[at] = by >= 0 ? ' '.repeat(by) + lines[at] : lines[at]!.replace(new RegExp(`^ {0,${-by}}`), '');
  }
  return lines.join('\n');
}

describe('SpliceParser', () => {
  it('reads every document as parseDocument does, data or error, whatever the edits since the last one', () => {
    let spliced = 0;
    let documents = 0;
    fc.assert(
      fc.property(document, fc.array(edit, { minLength: 1, maxLength: 6 }), fc.boolean(), (start, edits, chain) => {
        const parser = new SpliceParser();
        const options = { origin: 'routes.yaml' };
        expect(outcome(() => parser.parse(start, options))).to.deep.equal(outcome(() => parseDocument(start, options)));
        let text = start;
        for (const change of edits) {
          // Chained edits build on each other (the parser's last document may be one that failed); others each start again from the first document.
          const next = applyEdit(chain ? text : start, change);
          if (!chain) outcome(() => parser.parse(start, options));
          expect(
            outcome(() => parser.parse(next, options)),
            JSON.stringify({ start, next }),
          ).to.deep.equal(outcome(() => parseDocument(next, options)));
          documents += 1;
          if (next !== (chain ? text : start)) spliced += parser.counts.spliced;
          text = next;
        }
      }),
      { numRuns: 400 },
    );
    // The property is about splices: a good share of the edits must have been read by one.
    expect(spliced).to.be.greaterThan(documents / 10);
  });

  it('reads a one-route edit of an N-route document by parsing O(1) nodes, not N, and keeps the other routes the same objects', () => {
    for (const routes of [100, 2000]) {
      const parser = new SpliceParser();
      const first = parser.parse(routesDocument(routes)) as { listeners: { routes: unknown[] }[] };
      expect(parser.counts).to.deep.equal({ spliced: 0, nodes: parser.counts.nodes });
      expect(parser.counts.nodes).to.be.greaterThan(routes * 8);
      const text = routesDocument(routes, routes >> 1, 'one changed route\nover two lines');
      const next = parser.parse(text) as { listeners: { routes: unknown[] }[] };
      expect(parser.counts.spliced).to.equal(1);
      expect(parser.counts.nodes).to.be.within(1, 12); // the piece: a sequence, the route's map and its keys and values
      expect(next).to.deep.equal(parseDocument(text));
      expect(next.listeners[0]!.routes[routes >> 1]).to.not.equal(first.listeners[0]!.routes[routes >> 1]);
      expect(next.listeners[0]!.routes.filter((item, i) => item === first.listeners[0]!.routes[i])).to.have.length(routes - 1);
    }
  });

  it('splices against the last document that parsed when one in between did not (a save caught half-written)', () => {
    const parser = new SpliceParser();
    const text = routesDocument(200);
    parser.parse(text);
    const truncated = `${text.slice(0, text.indexOf('route 120'))}"unterminated`;
    expect(outcome(() => parser.parse(truncated))).to.deep.equal(outcome(() => parseDocument(truncated)));
    expect(outcome(() => parser.parse(''))).to.deep.equal(outcome(() => parseDocument('')));
    const edited = routesDocument(200, 150);
    expect(parser.parse(edited)).to.deep.equal(parseDocument(edited));
    expect(parser.counts.spliced).to.equal(1);
    expect(parser.counts.nodes).to.be.within(1, 12);
  });

  it('makes IncrementalLoader validate only the edited route', () => {
    const parser = new SpliceParser();
    const loader = new IncrementalLoader();
    loader.loadParsed(parser.parse(routesDocument(500)));
    const { config } = loader.loadParsed(parser.parse(routesDocument(500, 7)));
    expect(parser.counts.spliced).to.equal(1);
    expect(loader.counts).to.deep.equal({ routes: 1, upstreams: 0, rest: 0, full: 0 });
    expect(config.listeners[0]!.routes[7]).to.have.nested.property('respond.body', 'changed');
  });

  it('reads the enclosing item (the listener) when the edit spans two routes, and the whole document when the last one had an anchor or the origin differs', () => {
    const parser = new SpliceParser();
    const text = routesDocument(20);
    parser.parse(text);
    const across = text.replace('route 3\n', 'route 3x\n').replace('route 4\n', 'route 4x\n');
    expect(parser.parse(across)).to.deep.equal(parseDocument(across));
    expect(parser.counts.spliced).to.equal(1);
    expect(parser.counts.nodes).to.be.greaterThan(20 * 8); // every route of the listener
    parser.parse(text, { origin: 'a.yaml' });
    parser.parse(text, { origin: 'a.yaml' });
    parser.parse(routesDocument(20, 2), { origin: 'b.yaml' });
    expect(parser.counts.spliced).to.equal(0);
    const anchored = `x: &shared {a: 1}\n${text}`;
    parser.parse(anchored);
    parser.parse(anchored.replace('route 3\n', 'route 33\n'));
    expect(parser.counts.spliced).to.equal(0);
  });

  it('names a bad edit where it is in the document, as the full parse does', () => {
    const parser = new SpliceParser();
    const text = routesDocument(50);
    parser.parse(text, { origin: 'routes.yaml' });
    const bad = text.replace('path_prefix: /r40\n', 'path_prefix: /r40\n        path_prefix: /again\n');
    const error = (() => {
      try {
        parser.parse(bad, { origin: 'routes.yaml' });
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).to.be.instanceOf(ConfigInvalidError);
    expect((error as ConfigInvalidError).issues).to.deep.equal(
      outcome(() => parseDocument(bad, { origin: 'routes.yaml' })) &&
        (outcome(() => parseDocument(bad, { origin: 'routes.yaml' })) as { issues: unknown }).issues,
    );
    expect((error as ConfigInvalidError).issues[0]!.message).to.match(/line \d{3}/);
  });
});
