import { CST, type Document, isMap, isScalar, isSeq, Lexer, LineCounter, Parser, parseDocument as parseYamlDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigInvalidError, type ConfigIssue } from '../core/errors.js';
import { decodeDocument } from './decode.js';
import { canonicalHash } from './hash.js';
import { scrubSecrets, secretValues } from './redact.js';
import { type ConfigReference, PROCESS_READER, type ReferenceReader, resolveReferences } from './references.js';
import { type Config, ConfigSchema } from './schema.js';

/** Documents larger than this are rejected before parsing (1 MiB, as etcd's default request limit). */
export const DEFAULT_MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * YAML alias expansions allowed per document. The yaml library's own default; set explicitly so
 * a "billion laughs" document fails instead of exhausting memory.
 */
const MAX_ALIAS_COUNT = 100;

/**
 * Deepest collection nesting a document may have (real configs nest fewer than 10 levels).
 * The yaml library composes documents recursively: a few thousand nested `[` (a 10 KiB file)
 * overflow the stack, and when the overflow lands in V8's regexp compiler the process aborts
 * with a fatal out-of-memory error instead of throwing. Depth is measured on yaml's concrete
 * syntax tree, which its parser builds iteratively, before anything recursive runs.
 */
export const MAX_NESTING_DEPTH = 64;

/**
 * Most nodes (keys, values and collections; an alias counts once) a document may have. A 1 MiB
 * document can hold about 500 000 (`[[],[],...]`): 8000 copies of a 60-deep list (480 000) took
 * 10 s and over a gigabyte to be refused. A real config of 1 MiB, the size limit, has fewer
 * (16 000 routes in JSON are about 115 000), so this refuses only documents shaped to cost, and
 * bounds the work of every later step (counted before anything is composed).
 */
export const MAX_DOCUMENT_NODES = 250_000;

/** Most keys one map may have (a `headers` map, `upstreams`), counted like `MAX_DOCUMENT_NODES`. */
export const MAX_MAP_KEYS = 10_000;

export interface ParseOptions {
  /** Where the document came from (file path, etcd key), named in every error. */
  origin?: string;
  /** Size limit in bytes. Default `DEFAULT_MAX_DOCUMENT_BYTES`. */
  maxDocumentBytes?: number;
  /** Where `${env:NAME}` and `${file:/path}` references are read from. Default `PROCESS_READER`. */
  references?: ReferenceReader;
}

/** A validated config and its canonical hash (SHA-256 hex of the defaults-filled config). */
export interface LoadedConfig {
  config: Config;
  hash: string;
  /** The secret references the document held (their values are in `config`); absent: none. */
  references?: readonly ConfigReference[];
}

/**
 * Parse a YAML or JSON document (JSON is parsed as YAML 1.2, of which it is a subset) into plain
 * data; bytes are decoded by `decodeDocument` (UTF-8 only). Refused: documents over the size
 * limit, with a NUL character, nested deeper than `MAX_NESTING_DEPTH`, with more than
 * `MAX_DOCUMENT_NODES` nodes or a map of more than `MAX_MAP_KEYS` keys, empty, with duplicate
 * keys (also `1` beside `"1"`, which would become one key), with a tag the core schema does not
 * know (`!foo`: the yaml library only warns and keeps the value as a plain string; YAML 1.1's
 * `!!binary`, `!!set`, `!!timestamp` are unknown too), with several
 * documents, or expanding too many aliases.
 *
 * The work is linear in the document's size: the limits are checked on the concrete syntax tree
 * before anything is composed, and duplicate keys are found with one set per map (the yaml
 * library's own check compares each key with every earlier one: 25 s for a 40 000-key map).
 *
 * @throws ConfigInvalidError with one issue per problem (path ''; the message says where)
 */
export function parseDocument(text: string | Uint8Array, options: ParseOptions = {}): unknown {
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const invalid = (message: string) => new ConfigInvalidError([{ path: '', message }], options.origin);
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  if (size > maxBytes) throw invalid(`document is ${size} bytes; the limit is ${maxBytes} bytes`);
  const source = typeof text === 'string' ? text : decodeDocument(text, options.origin);
  const early = lexicalLimit(source);
  if (early === 'depth') throw invalid(`document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`);
  if (early === 'nodes') throw invalid(`document has more than ${MAX_DOCUMENT_NODES} nodes (keys, values and collections), the limit`);
  const lines = new LineCounter();
  const shape = documentShape(source, lines);
  if (shape.depth > MAX_NESTING_DEPTH) throw invalid(`document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`);
  if (shape.nodes > MAX_DOCUMENT_NODES) throw invalid(`document has more than ${MAX_DOCUMENT_NODES} nodes (keys, values and collections), the limit`);
  if (shape.largestMap.keys > MAX_MAP_KEYS) {
    throw invalid(`the map at ${where(lines, shape.largestMap.offset)} has ${shape.largestMap.keys} keys; the limit is ${MAX_MAP_KEYS}`);
  }
  const nul = source.indexOf('\0');
  if (nul >= 0) throw invalid(`document looks binary: it has a NUL character at ${where(lines, nul)}; hotconf reads UTF-8 text`);
  // resolveKnownTags: false: YAML 1.1's `!!binary`, `!!set`, `!!timestamp`... would build Buffers, Sets and Dates.
  const doc = parseYamlDocument(source, { uniqueKeys: false, prettyErrors: true, strict: true, resolveKnownTags: false });
  const problems = [
    ...doc.errors.map((e) => `syntax error: ${firstLine(e.message)}`),
    ...doc.warnings.map((w) => (w.code === 'TAG_RESOLVE_FAILED' ? firstLine(w.message).replace(/^Unresolved tag/, 'unknown tag') : firstLine(w.message))),
  ];
  if (problems.length === 0) problems.push(...duplicateKeys(doc, lines));
  if (problems.length > 0)
    throw new ConfigInvalidError(
      problems.map((message) => ({ path: '', message })),
      options.origin,
    );
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw invalid(`cannot expand document: ${(error as Error).message}`);
  }
  if (data === null || data === undefined) throw invalid('document is empty');
  return data;
}

/**
 * Keys that address an object's prototype machinery. Strict objects already reject them as
 * unknown keys, but record-typed sections (header maps) accept any token, and zod builds records
 * by assignment: a `__proto__` entry there silently replaced the record's prototype and skipped
 * the value's validation. They are refused anywhere in a document, before the schema runs.
 */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Validate parsed data against the strict schema and deep-freeze the result. Keys named
 * `__proto__`, `constructor` or `prototype` are rejected at any depth first.
 *
 * @throws ConfigInvalidError with one `{path, message}` per problem (`listeners.0.listen`)
 */
export function validateConfig(data: unknown, origin?: string): Config {
  const polluting = prototypeKeyIssues(data);
  if (polluting.length > 0) throw new ConfigInvalidError(polluting, origin);
  const result = ConfigSchema.safeParse(data);
  if (!result.success) throw new ConfigInvalidError(zodIssues(result.error, data), origin);
  return deepFreeze(result.data);
}

/**
 * `parseDocument` + `resolveReferences` + `validateConfig` + canonical hash (of the resolved
 * config: a changed secret is a changed config). Validation issues are scrubbed of the values
 * references resolved to. Throws like the three.
 */
export function loadConfig(text: string | Uint8Array, options: ParseOptions = {}): LoadedConfig {
  const { data, references } = resolveReferences(parseDocument(text, options), options.origin, options.references ?? PROCESS_READER);
  let config: Config;
  try {
    config = validateConfig(data, options.origin);
  } catch (error) {
    const secrets = secretValues(data, [], references);
    if (!(error instanceof ConfigInvalidError) || secrets.length === 0) throw error;
    throw new ConfigInvalidError(
      error.issues.map((issue) => ({ path: issue.path, message: scrubSecrets(issue.message, secrets) })),
      error.origin,
    );
  }
  return { config, hash: canonicalHash(config), ...(references.length > 0 ? { references } : {}) };
}

/**
 * Flatten zod issues to `{path, message}`; unknown keys get one issue each, at their own path.
 * zod 4 issues do not carry their input, so a wrong type is told from a missing value by looking
 * the path up in `data`, the input that was validated: `expected number, received string`, or
 * `required (number)` when nothing is there.
 */
export function zodIssues(error: z.ZodError, data?: unknown): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...base, key].join('.'), message: 'unknown key' });
    } else if (issue.code === 'invalid_type') {
      const found = valueAt(data, issue.path);
      out.push({
        path: base.join('.'),
        message: found.present ? `expected ${issue.expected}, received ${typeName(found.value)}` : `required (${issue.expected})`,
      });
    } else {
      out.push({ path: base.join('.'), message: issue.message });
    }
  }
  return out;
}

/** The value at `path` in plain data, own properties only; `present: false` when a step is missing or the value undefined. */
function valueAt(data: unknown, path: readonly PropertyKey[]): { present: boolean; value?: unknown } {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return { present: false };
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value === undefined ? { present: false } : { present: true, value };
}

/** The JSON type of a parsed value: `null`, `array`, `object`, `string`, `number`, `boolean`. */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  return Array.isArray(value) ? 'array' : typeof value;
}

/**
 * A first, cheap pass over yaml's token stream, before any tree is built: the limit a document
 * visibly passes, if any. Flow collections (`[`, `{`) are nested and counted as they come, and
 * so are scalars and aliases, so a bomb is refused after reading as far as its first excess (a
 * 1 MiB one of 60-deep lists: building its syntax tree took 3 s and 600 MB). Block collections
 * are not counted here (their nesting needs the tree): `documentShape` measures everything.
 */
function lexicalLimit(source: string): 'depth' | 'nodes' | undefined {
  let depth = 0;
  let nodes = 0;
  for (const token of new Lexer().lex(source)) {
    switch (CST.tokenType(token)) {
      case 'flow-seq-start':
      case 'flow-map-start':
        depth += 1;
        nodes += 1;
        if (depth > MAX_NESTING_DEPTH) return 'depth';
        break;
      case 'flow-seq-end':
      case 'flow-map-end':
        depth -= 1;
        break;
      case 'scalar':
      case 'single-quoted-scalar':
      case 'double-quoted-scalar':
      case 'alias':
        nodes += 1;
        break;
    }
    if (nodes > MAX_DOCUMENT_NODES) return 'nodes';
  }
  return undefined;
}

/** What `documentShape` measured; `largestMap.offset` is where that map starts in the text. */
interface DocumentShape {
  depth: number;
  nodes: number;
  largestMap: { keys: number; offset: number };
}

/**
 * Deepest collection nesting, node count and largest map of `source`, from yaml's concrete
 * syntax tree (which its parser builds iteratively), walked with an explicit stack: nothing
 * recursive runs before the depth is known. Stops once the nesting passes the limit. `lines`
 * learns where lines start, for messages.
 */
function documentShape(source: string, lines: LineCounter): DocumentShape {
  const shape: DocumentShape = { depth: 0, nodes: 0, largestMap: { keys: 0, offset: 0 } };
  const stack: [CST.Token | undefined, number][] = [];
  for (const token of new Parser(lines.addNewLine).parse(source)) {
    stack.push([token, 0]);
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (!node) continue;
      if (depth > shape.depth) shape.depth = depth;
      if (shape.depth > MAX_NESTING_DEPTH) return shape;
      if (node.type === 'document') {
        stack.push([node.value, depth]);
        continue;
      }
      shape.nodes += 1;
      if (node.type === 'block-map' || node.type === 'block-seq' || node.type === 'flow-collection') {
        const keyed = node.type === 'block-map' || (node.type === 'flow-collection' && node.start.source === '{');
        if (keyed && node.items.length > shape.largestMap.keys) shape.largestMap = { keys: node.items.length, offset: node.offset };
        for (const item of node.items) stack.push([item.key ?? undefined, depth + 1], [item.value, depth + 1]);
      }
    }
  }
  return shape;
}

/**
 * One message per key that repeats in its map, in linear time. Keys are compared as the object
 * keys they become (`1`, `"1"` and `1.0` are one key, and so are `~` and `""`); keys that are
 * collections are left to the schema, where no such key is valid.
 */
function duplicateKeys(doc: Document.Parsed, lines: LineCounter): string[] {
  const out: [offset: number, message: string][] = [];
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Map<string, number>();
      for (const pair of node.items) {
        stack.push(pair.value);
        if (!isScalar(pair.key) || (pair.key.value !== null && typeof pair.key.value === 'object')) continue;
        const key = pair.key.value === null ? '' : String(pair.key.value);
        const at = pair.key.range?.[0] ?? 0;
        const first = seen.get(key);
        if (first === undefined) seen.set(key, at);
        else out.push([at, `Map keys must be unique: ${JSON.stringify(key)} at ${where(lines, at)} repeats the key at ${where(lines, first)}`]);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return out.sort((a, b) => a[0] - b[0]).map(([, message]) => message);
}

/** `line L, column C` of `offset` in the text `lines` has seen (1-based). */
function where(lines: LineCounter, offset: number): string {
  const { line, col } = lines.linePos(offset);
  return `line ${line}, column ${col}`;
}

/** The first line of a yaml error, without the colon that introduced its excerpt of the document. */
function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/:$/, '');
}

/** One issue per `PROTOTYPE_KEYS` key found in plain data (own keys only, any depth). */
function prototypeKeyIssues(data: unknown, path: string[] = [], out: ConfigIssue[] = [], seen = new Set<object>()): ConfigIssue[] {
  // YAML aliases make shared and even cyclic graphs: visit each object once.
  if (data === null || typeof data !== 'object' || seen.has(data)) return out;
  seen.add(data);
  for (const key of Object.keys(data)) {
    const at = [...path, key];
    if (PROTOTYPE_KEYS.has(key)) out.push({ path: at.join('.'), message: `key "${key}" is not allowed` });
    else prototypeKeyIssues((data as Record<string, unknown>)[key], at, out, seen);
  }
  return out;
}

/** Freeze an object graph in place and return it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
