import { expect } from 'chai';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { MAX_DOCUMENT_NODES, MAX_NESTING_DEPTH, parseDocument } from '../../lib/config/parse.js';
import { ConfigInvalidError } from '../../lib/core/errors.js';

function messagesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigInvalidError) return error.issues.map((i) => i.message);
    throw error;
  }
  throw new Error('expected a ConfigInvalidError');
}

/** Config-shaped data: maps and lists of strings, numbers (any double), booleans and null, a map at the root. */
const configData = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.string({ unit: 'grapheme' }),
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom('yes', 'no', 'on', 'off', '0o17', '0x1F', '0b11', '012', '1_000', '.inf', '-.5', '~', 'Null', 'TRUE', '<<', '1e3', '2001-01-01', '12:30'),
    tie('list'),
    tie('map'),
  ),
  list: fc.array(tie('value'), { maxLength: 4 }),
  map: fc.dictionary(fc.oneof(fc.string({ unit: 'grapheme' }), fc.constantFrom('__proto__', 'constructor', '<<', '1', 'null', '')), tie('value'), {
    maxKeys: 4,
  }),
})).map;

describe('parseDocument with js-yaml', () => {
  it('reads what the yaml library writes as the yaml library reads it (YAML 1.2 core schema), and JSON as JSON.parse does', () => {
    fc.assert(
      fc.property(configData, fc.constantFrom('block', 'flow'), (data, style) => {
        const yamlText = stringify(data, style === 'flow' ? { collectionStyle: 'flow' } : {});
        expect(parseDocument(yamlText)).to.deep.equal(parse(yamlText));
        const jsonText = JSON.stringify(data);
        expect(parseDocument(jsonText)).to.deep.equal(JSON.parse(jsonText));
      }),
      { numRuns: 400 },
    );
  });

  it('returns data or refuses with ConfigInvalidError whatever the text, never another error', () => {
    const yamlish = fc.string({ unit: fc.constantFrom(...'ab1 :-?[]{},&*!|>\'"#%@`~.\n\t\\<'), maxLength: 60 });
    fc.assert(
      fc.property(yamlish, (text) => {
        try {
          parseDocument(text);
        } catch (error) {
          if (!(error instanceof ConfigInvalidError)) throw error;
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('reads scalars by the YAML 1.2 core schema: YAML 1.1 booleans, binary and sexagesimal numbers stay strings', () => {
    const text =
      'a: yes\nb: on\nc: 0o17\nd: 0x1F\ne: 012\nf: .inf\ng: -.inf\nh: ~\ni: 0b11\nj: 1_000\nk: -.5\nl: 12:30\nm: 2001-01-01\nn: !!str 5\no: !!int "7"\n';
    expect(parseDocument(text)).to.deep.equal({
      a: 'yes',
      b: 'on',
      c: 15,
      d: 31,
      e: 12,
      f: Number.POSITIVE_INFINITY,
      g: Number.NEGATIVE_INFINITY,
      h: null,
      i: '0b11',
      j: '1_000',
      k: -0.5,
      l: '12:30',
      m: '2001-01-01',
      n: '5',
      o: 7,
    });
    expect(Object.is((parseDocument('a: -0\n') as { a: number }).a, -0)).to.equal(true);
    expect(Number.isNaN((parseDocument('a: .nan\n') as { a: number }).a)).to.equal(true);
    // An explicitly tagged empty value.
    expect(parseDocument('a: !!null\nb: !!str\n')).to.deep.equal({ a: null, b: '' });
    for (const tag of ['int', 'float', 'bool']) {
      expect(messagesOf(() => parseDocument(`a: !!${tag}\n`))).to.deep.equal([`the value at line 1, column 4 is not a valid tag:yaml.org,2002:${tag}`]);
    }
  });

  it('keeps merge keys, a null key and __proto__ as plain keys', () => {
    expect(parseDocument('base: &b {x: 1}\nuse:\n  <<: *b\n')).to.deep.equal({ base: { x: 1 }, use: { '<<': { x: 1 } } });
    expect(parseDocument('a:\n  ~: z\n')).to.deep.equal({ a: { '': 'z' } });
    expect(messagesOf(() => parseDocument('a:\n  ~: z\n  "null": y\n'))).to.deep.equal([
      'the map at line 2, column 3 has a null key (~) and the key "null", which would become one key',
    ]);
    const polluted = parseDocument('__proto__: {polluted: yes}\n') as Record<string, unknown>;
    expect(Object.keys(polluted)).to.deep.equal(['__proto__']);
    expect(Object.getPrototypeOf(polluted)).to.equal(Object.prototype);
  });

  it('finds repeated keys in flow maps, after explicit keys and in JSON, naming both places', () => {
    expect(messagesOf(() => parseDocument('{a: 1, b: 2, a: 3}'))).to.deep.equal([
      'Map keys must be unique: "a" at line 1, column 14 repeats the key at line 1, column 2',
    ]);
    expect(messagesOf(() => parseDocument('? a\n: 1\n? a\n: 2\n'))).to.deep.equal([
      'Map keys must be unique: "a" at line 3, column 3 repeats the key at line 1, column 3',
    ]);
    expect(messagesOf(() => parseDocument('{"x": {"k": 1,\n "k": 2}}'))).to.deep.equal([
      'Map keys must be unique: "k" at line 2, column 2 repeats the key at line 1, column 8',
    ]);
    // Pairs in a flow list are maps of their own.
    expect(parseDocument('[a: 1, a: 2]')).to.deep.equal([{ a: 1 }, { a: 2 }]);
  });

  it('refuses a key that is a collection, naming where', () => {
    expect(messagesOf(() => parseDocument('a: 1\n[1, 2]: x\n'))).to.deep.equal([
      'the map key at line 2, column 1 is a collection; hotconf keys are plain text',
    ]);
    expect(messagesOf(() => parseDocument('? {k: v}\n: x\n'))).to.deep.equal(['the map key at line 1, column 3 is a collection; hotconf keys are plain text']);
  });

  it('shares an aliased value, and refuses an alias inside its own node or one that nests past the depth limit', () => {
    const data = parseDocument('a: &x [1, 2]\nb: *x\n') as { a: unknown; b: unknown };
    expect(data).to.deep.equal({ a: [1, 2], b: [1, 2] });
    expect(data.b).to.equal(data.a);
    expect(parseDocument('a: !!map\nb: []\n')).to.deep.equal({ a: {}, b: [] });
    expect(messagesOf(() => parseDocument('a: &x [1, *x]\n'))).to.deep.equal([
      'cannot expand document: the alias at line 1, column 11 is inside the node it refers to',
    ]);
    expect(messagesOf(() => parseDocument('a: &x {k: *x}\n'))).to.deep.equal([
      'cannot expand document: the alias at line 1, column 11 is inside the node it refers to',
    ]);
    const half = MAX_NESTING_DEPTH / 2;
    const deep = `a: &x ${'['.repeat(half)}${']'.repeat(half)}\nb: &y ${'['.repeat(half)}*x${']'.repeat(half)}\nc: [*y]\n`;
    expect(messagesOf(() => parseDocument(deep))).to.deep.equal([`document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`]);
    expect(() => parseDocument(deep.replace('c: [*y]\n', 'c: *y\n'))).to.not.throw();
  });

  it('charges an alias for what it expands to: a "billion laughs" is refused as it is read', () => {
    const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 10; i += 1) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    expect(messagesOf(() => parseDocument(`${lines.join('\n')}\n`))).to.deep.equal([
      `cannot expand document: its aliases expand it to more than ${MAX_DOCUMENT_NODES} nodes, the limit`,
    ]);
    // 10 aliases of 10 of 10 (about 12 000 nodes) are fine.
    expect(() => parseDocument(`${lines.slice(0, 3).join('\n')}\n`)).to.not.throw();
  });

  it('allows nesting up to the depth limit, in flow and block style, and refuses one level more', () => {
    for (const depth of [MAX_NESTING_DEPTH, MAX_NESTING_DEPTH + 1]) {
      const flow = `a: ${'['.repeat(depth - 1)}x${']'.repeat(depth - 1)}\n`;
      const block = `a:\n${'- '.repeat(depth - 1)}x\n`;
      for (const text of [flow, block]) {
        if (depth === MAX_NESTING_DEPTH) expect(() => parseDocument(text), text).to.not.throw();
        else
          expect(
            messagesOf(() => parseDocument(text)),
            text,
          ).to.deep.equal([`document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`]);
      }
    }
  });
});
