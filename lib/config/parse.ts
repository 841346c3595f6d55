import { type LoadOptions, load, type State, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { ConfigInvalidError, type ConfigIssue } from '../core/errors.js';
import { YAML_CORE_SCHEMA } from './core-schema.js';
import { decodeDocument } from './decode.js';
import { canonicalHash } from './hash.js';
import { scrubSecrets, secretValues } from './redact.js';
import { type ConfigReference, PROCESS_READER, type ReferenceReader, resolveReferences } from './references.js';
import { type Config, ConfigSchema } from './schema.js';

/** Documents larger than this are rejected before parsing (1 MiB, as etcd's default request limit). */
export const DEFAULT_MAX_DOCUMENT_BYTES = 1024 * 1024;

/**
 * Deepest nesting a document may have: a node inside N collections is at depth N (real configs
 * nest fewer than 10 levels). js-yaml composes recursively: a few thousand nested `[` (a 10 KiB
 * file) would overflow the stack, and an overflow that lands in V8's regexp compiler aborts the
 * process instead of throwing. Its `maxDepth` stops the descent a few calls past this limit
 * (`MAX_COMPOSE_CALLS`); `DocumentShape` refuses the exact depth, also where aliases add to it.
 */
export const MAX_NESTING_DEPTH = 64;

/**
 * Nested composeNode calls js-yaml may make: one per level, and one more where a block value
 * turns out not to be a block mapping, so a document within `MAX_NESTING_DEPTH` never reaches it.
 */
const MAX_COMPOSE_CALLS = 2 * MAX_NESTING_DEPTH + 2;

/**
 * Most nodes (keys, values and collections; an alias counts once) a document may have. A 1 MiB
 * document can hold about 500 000 (`[[],[],...]`): 8000 copies of a 60-deep list (480 000) took
 * 10 s and over a gigabyte to be refused with the yaml library. A real config of 1 MiB, the size
 * limit, has fewer (16 000 routes in JSON are about 115 000), so this refuses only documents
 * shaped to cost, and bounds the work of every later step (counted while the document is read).
 */
export const MAX_DOCUMENT_NODES = 250_000;

/** Most keys one map may have (a `headers` map, `upstreams`), counted like `MAX_DOCUMENT_NODES`. */
export const MAX_MAP_KEYS = 10_000;

/**
 * Most nodes a document may stand for once its aliases are expanded. js-yaml shares an aliased
 * value instead of copying it, but every later step (reference resolution, validation, hashing,
 * freezing) walks the data as a tree, so a "billion laughs" document (ten aliases of ten aliases
 * of ...) is refused by what it expands to, as it is read. The same bound as the document's own
 * nodes: aliases may not make a document costlier than the largest allowed one.
 */
const MAX_EXPANDED_NODES = MAX_DOCUMENT_NODES;

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
 * data: objects, arrays, strings, numbers (also Infinity and NaN), booleans and null. Read by
 * js-yaml 4 with the YAML 1.2 core schema (`YAML_CORE_SCHEMA`: `yes`, `no`, `on` stay strings,
 * `0o17` is 15, `.inf` is Infinity, `~` is null); a null key becomes `""` and a `__proto__` key an
 * own property (both as the yaml library's `toJS` made them); merge keys (`<<`) are plain keys,
 * which the strict schema refuses; an alias is the same object as its anchor, not a copy. Bytes
 * are decoded by `decodeDocument` (UTF-8 only).
 *
 * Refused: documents over the size limit (checked first), with a NUL character, nested deeper
 * than `MAX_NESTING_DEPTH` (also through aliases), with more than `MAX_DOCUMENT_NODES` nodes or a
 * map of more than `MAX_MAP_KEYS` keys, empty, with duplicate keys (also `1` beside `"1"`, which
 * would become one key), with a key that is a collection, with a tag the core schema does not know
 * (`!foo`; YAML 1.1's `!!binary`, `!!set`, `!!timestamp`, `!!merge` are unknown too), with several
 * documents, with an alias inside the node it refers to, or whose aliases expand it to more than
 * `MAX_EXPANDED_NODES` nodes.
 *
 * The work is linear in the document's size: js-yaml reads the text once, and a listener on each
 * node it composes (`DocumentShape`) counts nodes, depth and keys, finds duplicate keys with one
 * map per mapping and stops the reading as soon as a limit is passed.
 *
 * @throws ConfigInvalidError with one issue per problem (path ''; the message says where: `line L,
 *   column C`, 1-based, columns in UTF-16 code units)
 */
export function parseDocument(text: string | Uint8Array, options: ParseOptions = {}): unknown {
  return readDocument(text, options, false).data;
}

/**
 * A block-sequence item a parse saw (`splice.ts` re-reads one alone): the line it starts on is
 * `<indent spaces>- ` and its content starts on that line.
 */
export interface SequenceItem {
  /** Offset of the item's line start. */
  start: number;
  /** Spaces before its `-`. */
  indent: number;
  /** Its nodes (keys, values and collections). */
  nodes: number;
  /** Keys and indexes from the document's root to it (`['listeners', 0, 'routes', 9999]`). */
  path: (string | number)[];
}

/** What `parseDocumentShape` saw besides the data. */
export interface DocumentRecord {
  /** Nodes of the document (aliases counted once). */
  nodes: number;
  /** The root's height (levels below it, scalars included; 0 for a scalar). */
  height: number;
  /** No anchor, alias, non-plain tag or directive anywhere. */
  plain: boolean;
  /** Block-sequence items (see `SequenceItem`), by `start`; empty when not `plain`. */
  items: SequenceItem[];
}

/**
 * `parseDocument` of a string that also returns its `DocumentRecord` (for `SpliceParser`).
 * @throws ConfigInvalidError as `parseDocument`
 */
export function parseDocumentShape(text: string, options: ParseOptions = {}): { data: unknown; record: DocumentRecord } {
  const { data, shape } = readDocument(text, options, true);
  const record = shape.record!;
  record.plain &&= !text.startsWith('%') && !text.includes('\n%') && !text.startsWith('\uFEFF');
  if (!record.plain) record.items = [];
  else record.items.sort((a, b) => a.start - b.start);
  return { data, record };
}

function readDocument(text: string | Uint8Array, options: ParseOptions, record: boolean): { data: unknown; shape: DocumentShape } {
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const invalid = (messages: string[]) =>
    new ConfigInvalidError(
      messages.map((message) => ({ path: '', message })),
      options.origin,
    );
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  if (size > maxBytes) throw invalid([`document is ${size} bytes; the limit is ${maxBytes} bytes`]);
  const source = typeof text === 'string' ? text : decodeDocument(text, options.origin);
  const shape = new DocumentShape(source, record);
  const nul = source.indexOf('\0');
  if (nul >= 0) throw invalid([`document looks binary: it has a NUL character at ${shape.where(nul)}; hotconf reads UTF-8 text`]);
  let data: unknown;
  try {
    // json: duplicate keys are DocumentShape's to find (all of them, naming both places).
    const loadOptions: LoadOptions & { maxDepth: number } = { schema: YAML_CORE_SCHEMA, json: true, maxDepth: MAX_COMPOSE_CALLS, listener: shape.listener };
    data = load(source, loadOptions);
  } catch (error) {
    throw invalid(shape.refusal(error));
  }
  if (shape.problems.length > 0) throw invalid(shape.problems.sort((a, b) => a[0] - b[0]).map(([, message]) => message));
  if (data === null || data === undefined) throw invalid(['document is empty']);
  return { data, shape };
}

const DEPTH_MESSAGE = `document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels`;

/** A limit passed while js-yaml reads: thrown from the listener, which stops the reading. */
class LimitPassed extends Error {}

/** A node js-yaml is composing (one composeNode call), while its children are read. */
interface Frame {
  /** js-yaml's position when the node opened (before any separating space). */
  open: number;
  /** Nodes counted, aliases expanded, when it opened. */
  expandedAtOpen: number;
  children: number;
  /** Deepest child height (-1: none). */
  childHeight: number;
  /** The last child's value, end and height: a call whose one child is itself only wraps it. */
  lastValue: unknown;
  lastEnd: number;
  lastHeight: number;
  /** Keys seen (as the object keys they become) with their offsets, their count, and the problems of keys (kept if the node is a map). */
  keys: Map<string, number> | undefined;
  keyCount: number;
  keyProblems: [offset: number, message: string][] | undefined;
  nullKey: boolean;
  /** Recording only: nodes counted when it opened; where it starts if it is a block-sequence item; its children's items. */
  nodesAtOpen: number;
  item: { start: number; indent: number } | undefined;
  groups: ItemGroup[] | undefined;
}

/** The items found in one child of a node: their paths (reversed) start below `value`, the child at `index` (if the node is a sequence). */
interface ItemGroup {
  value: unknown;
  index: number;
  items: SequenceItem[];
}

/** What an anchored collection stands for: its nodes (aliases expanded) and its height (collections nested below it). */
interface Extent {
  nodes: number;
  height: number;
}

/**
 * js-yaml's `listener`, called when each node opens and closes: counts nodes, measures heights
 * (collections nested below a node) and the extent of every collection so aliases are charged
 * for what they expand to, counts and compares map keys, and names where in the text. js-yaml
 * gives no event per key: a node is a key when the text after it (past spaces and line breaks)
 * is `:`, which is where a value can never end.
 */
class DocumentShape {
  /** Problems that do not stop the reading, with their offsets. */
  readonly problems: [offset: number, message: string][] = [];
  readonly #source: string;
  readonly #frames: Frame[] = [];
  readonly #extents = new Map<object, Extent>();
  #lineStarts: number[] | undefined;
  #nodes = 0;
  #expanded = 0;
  /** Where the first document's root node ended, to say where a second one starts. */
  #firstDocumentEnd: number | undefined;

  /** Set when recording (`parseDocumentShape`). */
  readonly record: DocumentRecord | undefined;

  constructor(source: string, record: boolean) {
    this.#source = source;
    if (record) this.record = { nodes: 0, height: 0, plain: true, items: [] };
  }

  readonly listener = (event: 'open' | 'close', state: State): void => {
    if (event === 'open') {
      this.#frames.push({
        open: state.position,
        expandedAtOpen: this.#expanded,
        children: 0,
        childHeight: -1,
        lastValue: undefined,
        lastEnd: -1,
        lastHeight: 0,
        keys: undefined,
        keyCount: 0,
        keyProblems: undefined,
        nullKey: false,
        nodesAtOpen: this.#nodes,
        item: this.record ? this.#itemAt(state.position) : undefined,
        groups: undefined,
      });
    } else {
      this.#close(state);
    }
  };

  #close(state: State): void {
    const frame = this.#frames.pop()!;
    const value: unknown = state.result;
    const end = state.position;
    const collection = value !== null && typeof value === 'object';
    let height = 0;
    if (frame.children === 1 && frame.lastEnd === end && Object.is(frame.lastValue, value)) {
      height = frame.lastHeight; // a wrapper: its child was counted
    } else if (collection && state.kind === null && this.#source.charCodeAt(this.#contentStart(frame.open)) === 42) {
      // An alias (`*name`) of a collection: charged for its extent.
      const extent = this.#extents.get(value);
      if (!extent) throw new LimitPassed(`cannot expand document: the alias at ${this.#start(frame)} is inside the node it refers to`);
      this.#count(1, extent.nodes);
      height = extent.height;
      if (height > MAX_NESTING_DEPTH) throw new LimitPassed(`${DEPTH_MESSAGE} once the alias at ${this.#start(frame)} is expanded`);
    } else {
      this.#count(1, 1);
      if (collection) {
        height = frame.children > 0 ? frame.childHeight + 1 : 0;
        if (height > MAX_NESTING_DEPTH) throw new LimitPassed(DEPTH_MESSAGE);
        // Only an anchored collection can be aliased (js-yaml restores a collection's own anchor before it closes).
        if ((state as State & { anchor: string | null }).anchor !== null) this.#extents.set(value, { nodes: this.#expanded - frame.expandedAtOpen, height });
        if (state.kind === 'mapping') this.#closeMap(frame, value as Record<string, unknown>);
      }
    }
    const parent = this.#frames.at(-1);
    if (this.record) this.#recordClose(frame, parent, state, height);
    if (!parent) {
      this.#firstDocumentEnd ??= end;
      return;
    }
    parent.children += 1;
    parent.lastValue = value;
    parent.lastEnd = end;
    parent.lastHeight = height;
    if (height > parent.childHeight) parent.childHeight = height;
    if (this.#isKey(end)) this.#addKey(parent, frame, value, collection);
  }

  /**
   * Where a node opening at `position` starts if it is a block-sequence item whose content starts
   * on its `-` line: js-yaml opens it past `- `, and its line is `<spaces>- ` up to there (a key
   * opening at the item's own position is the item's content, not an item).
   */
  #itemAt(position: number): { start: number; indent: number } | undefined {
    const text = this.#source;
    let dash = position - 1;
    while (text.charCodeAt(dash) === 32) dash -= 1;
    if (dash === position - 1 || text.charCodeAt(dash) !== 45) return undefined;
    let start = dash;
    while (start > 0 && text.charCodeAt(start - 1) === 32) start -= 1;
    if (start > 0 && text.charCodeAt(start - 1) !== 10) return undefined;
    const parent = this.#frames.at(-1);
    if (!parent || parent.open === position) return undefined;
    return { start, indent: dash - start };
  }

  /** Recording: plainness, and the items of the closing node (with the steps from it to them) handed to its parent. */
  #recordClose(frame: Frame, parent: Frame | undefined, state: State, height: number): void {
    const record = this.record!;
    // An alias needs an anchor; a tag (`!`) starts its node's text, where no plain scalar can start.
    if ((state as State & { anchor: string | null }).anchor !== null || this.#source.charCodeAt(this.#contentStart(frame.open)) === 33) record.plain = false;
    const value: unknown = state.result;
    let items = frame.groups ? this.#stepInto(frame, value) : undefined;
    if (frame.item) (items ??= []).push({ start: frame.item.start, indent: frame.item.indent, nodes: this.#nodes - frame.nodesAtOpen, path: [] });
    if (parent) {
      if (items && items.length > 0) (parent.groups ??= []).push({ value, index: parent.children, items });
      return;
    }
    record.nodes = this.#nodes;
    record.height = height;
    record.items = items ?? [];
    for (const item of record.items) item.path.reverse();
  }

  /** The items of a node's children with the step to each child added; those whose step is unsure are dropped. */
  #stepInto(frame: Frame, value: unknown): SequenceItem[] {
    const out: SequenceItem[] = [];
    // A map's keys by their collection values, read once (a map of 1000 upstreams each with items).
    let keys: Map<unknown, string> | undefined;
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && frame.groups!.length > 1) {
      keys = new Map();
      for (const [key, child] of Object.entries(value)) if (child !== null && typeof child === 'object' && !keys.has(child)) keys.set(child, key);
    }
    for (const group of frame.groups!) {
      let step: string | number | undefined;
      if (frame.children === 1 && Object.is(group.value, value)) {
        for (const item of group.items) out.push(item); // a wrapper
        continue;
      }
      if (Array.isArray(value)) {
        // A `- ` with nothing after it is an item without a node of its own: indexes would be off.
        if (frame.children === value.length && Object.is(value[group.index], group.value)) step = group.index;
      } else if (keys) {
        step = keys.get(group.value);
      } else if (value !== null && typeof value === 'object' && group.value !== null && typeof group.value === 'object') {
        for (const key of Object.keys(value)) {
          if ((value as Record<string, unknown>)[key] === group.value) {
            step = key;
            break;
          }
        }
      }
      if (step === undefined) continue;
      for (const item of group.items) {
        item.path.push(step);
        out.push(item);
      }
    }
    return out;
  }

  #count(nodes: number, expanded: number): void {
    this.#nodes += nodes;
    this.#expanded += expanded;
    if (this.#nodes > MAX_DOCUMENT_NODES) throw new LimitPassed(`document has more than ${MAX_DOCUMENT_NODES} nodes (keys, values and collections), the limit`);
    if (this.#expanded > MAX_EXPANDED_NODES)
      throw new LimitPassed(`cannot expand document: its aliases expand it to more than ${MAX_EXPANDED_NODES} nodes, the limit`);
  }

  #closeMap(frame: Frame, map: Record<string, unknown>): void {
    if (frame.keyCount > MAX_MAP_KEYS) throw new LimitPassed(`the map at ${this.#start(frame)} has ${frame.keyCount} keys; the limit is ${MAX_MAP_KEYS}`);
    if (frame.keyProblems) this.problems.push(...frame.keyProblems);
    if (!frame.nullKey) return;
    // js-yaml names a null key "null", as it names the key "null": the yaml library named it "".
    if (frame.keys!.has('null'))
      this.problems.push([frame.open, `the map at ${this.#start(frame)} has a null key (~) and the key "null", which would become one key`]);
    else {
      map[''] = map.null;
      delete map.null;
    }
  }

  /** Whether the node that ended at `end` is a key: the next text past spaces and line breaks is `:`. */
  #isKey(end: number): boolean {
    const text = this.#source;
    let at = end;
    for (let c = text.charCodeAt(at); c === 32 || c === 9 || c === 10 || c === 13; c = text.charCodeAt(at)) at += 1;
    return text.charCodeAt(at) === 58;
  }

  #addKey(map: Frame, frame: Frame, value: unknown, collection: boolean): void {
    const at = this.#contentStart(frame.open);
    if (collection) {
      (map.keyProblems ??= []).push([at, `the map key at ${this.where(at)} is a collection; hotconf keys are plain text`]);
      return;
    }
    const key = value === null ? '' : String(value);
    map.keyCount += 1;
    if (value === null) map.nullKey = true;
    map.keys ??= new Map();
    const first = map.keys.get(key);
    if (first === undefined) map.keys.set(key, at);
    else (map.keyProblems ??= []).push([at, `Map keys must be unique: ${JSON.stringify(key)} at ${this.where(at)} repeats the key at ${this.where(first)}`]);
  }

  /** The messages for what stopped js-yaml: a limit, or one of its errors, naming where. */
  refusal(error: unknown): string[] {
    if (error instanceof LimitPassed) return [error.message];
    if (!(error instanceof YAMLException)) throw error;
    const reason = error.reason;
    if (reason.startsWith('nesting exceeded maxDepth')) return [DEPTH_MESSAGE];
    const tag = /^unknown tag !<(.*)>$/.exec(reason);
    // The node being composed carries the tag; js-yaml points past it.
    const top = this.#frames.at(-1);
    if (tag && top) return [`unknown tag: ${tag[1]} at ${this.#start(top)}`];
    const unfit = /^cannot resolve a node with !<(.*)> explicit tag$/.exec(reason);
    if (unfit && top) return [`the value at ${this.#start(top)} is not a valid ${unfit[1]}`];
    if (reason.startsWith('expected a single document')) {
      const second = this.#firstDocumentEnd === undefined ? '' : `: the second starts at ${this.where(this.#contentStart(this.#firstDocumentEnd))}`;
      return [`multiple documents${second}; hotconf reads one document per file or key`];
    }
    const mark = error.mark as { line: number; column: number } | undefined;
    return [`syntax error: ${reason}${mark ? ` at line ${mark.line + 1}, column ${mark.column + 1}` : ''}`];
  }

  /** `line L, column C` (1-based) of an offset. */
  where(offset: number): string {
    // Built on first use: only documents that are refused need it.
    if (!this.#lineStarts) {
      this.#lineStarts = [0];
      for (let at = this.#source.indexOf('\n'); at >= 0; at = this.#source.indexOf('\n', at + 1)) this.#lineStarts.push(at + 1);
    }
    const starts = this.#lineStarts;
    let low = 0;
    let high = starts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if (starts[mid]! <= offset) low = mid;
      else high = mid - 1;
    }
    return `line ${low + 1}, column ${offset - starts[low]! + 1}`;
  }

  #start(frame: Frame): string {
    return this.where(this.#contentStart(frame.open));
  }

  /** The first offset from `at` past spaces, line breaks and comments: where a node's text starts. */
  #contentStart(at: number): number {
    const text = this.#source;
    let offset = at;
    for (;;) {
      const c = text.charCodeAt(offset);
      if (c === 32 || c === 9 || c === 10 || c === 13) offset += 1;
      else if (c === 35) {
        const eol = text.indexOf('\n', offset);
        if (eol < 0) return text.length;
        offset = eol + 1;
      } else return offset;
    }
  }
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
  const { value: config, references } = resolveThenValidate(parseDocument(text, options), options, validateConfig);
  return { config, hash: canonicalHash(config), ...(references.length > 0 ? { references } : {}) };
}

/**
 * `resolveReferences` of parsed `data`, then `validate` of the resolved data, whose issues are
 * scrubbed of the values references resolved to (a refused value must not be quoted in an error
 * or log). The step between parse and validation, of a document (`loadConfig`) and of a fragment.
 * @throws ConfigInvalidError as `resolveReferences` and `validate`, naming `options.origin`
 */
export function resolveThenValidate<T>(
  data: unknown,
  options: ParseOptions,
  validate: (data: unknown, origin?: string) => T,
): { value: T; references: readonly ConfigReference[] } {
  const resolved = resolveReferences(data, options.origin, options.references ?? PROCESS_READER);
  try {
    return { value: validate(resolved.data, options.origin), references: resolved.references };
  } catch (error) {
    const secrets = secretValues(resolved.data, [], resolved.references);
    if (!(error instanceof ConfigInvalidError) || secrets.length === 0) throw error;
    throw new ConfigInvalidError(
      error.issues.map((issue) => ({ path: issue.path, message: scrubSecrets(issue.message, secrets) })),
      error.origin,
    );
  }
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

/** One issue per `PROTOTYPE_KEYS` key found in plain data (own keys only, any depth); fragments are checked with it too. */
export function prototypeKeyIssues(data: unknown, path: string[] = [], out: ConfigIssue[] = [], seen = new Set<object>()): ConfigIssue[] {
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
