import { type CST, Parser, parseDocument as parseYamlDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigInvalidError, type ConfigIssue } from '../core/errors.js';
import { canonicalHash } from './hash.js';
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

export interface ParseOptions {
  /** Where the document came from (file path, etcd key), named in every error. */
  origin?: string;
  /** Size limit in bytes. Default `DEFAULT_MAX_DOCUMENT_BYTES`. */
  maxDocumentBytes?: number;
}

/** A validated config and its canonical hash (SHA-256 hex of the defaults-filled config). */
export interface LoadedConfig {
  config: Config;
  hash: string;
}

/**
 * Parse a YAML or JSON document (JSON is parsed as YAML 1.2, of which it is a subset) into plain
 * data. Rejects documents over the size limit, nested deeper than `MAX_NESTING_DEPTH`, empty
 * documents, duplicate keys, multiple documents and alias bombs.
 *
 * @throws ConfigInvalidError with one issue per syntax error (path '', message with line/column)
 */
export function parseDocument(text: string | Uint8Array, options: ParseOptions = {}): unknown {
  const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
  const size = typeof text === 'string' ? Buffer.byteLength(text) : text.byteLength;
  if (size > maxBytes) {
    throw new ConfigInvalidError([{ path: '', message: `document is ${size} bytes; the limit is ${maxBytes} bytes` }], options.origin);
  }
  const source = typeof text === 'string' ? text : Buffer.from(text).toString('utf8');
  const depth = nestingDepth(source);
  if (depth > MAX_NESTING_DEPTH) {
    throw new ConfigInvalidError([{ path: '', message: `document nests deeper than the limit of ${MAX_NESTING_DEPTH} levels` }], options.origin);
  }
  const doc = parseYamlDocument(source, { uniqueKeys: true, prettyErrors: true, strict: true });
  if (doc.errors.length > 0) {
    throw new ConfigInvalidError(
      doc.errors.map((e) => ({ path: '', message: `syntax error: ${e.message.split('\n')[0]}` })),
      options.origin,
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (error) {
    throw new ConfigInvalidError([{ path: '', message: `cannot expand document: ${(error as Error).message}` }], options.origin);
  }
  if (data === null || data === undefined) throw new ConfigInvalidError([{ path: '', message: 'document is empty' }], options.origin);
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
  if (!result.success) throw new ConfigInvalidError(zodIssues(result.error), origin);
  return deepFreeze(result.data);
}

/** `parseDocument` + `validateConfig` + canonical hash. Throws like both. */
export function loadConfig(text: string | Uint8Array, options: ParseOptions = {}): LoadedConfig {
  const config = validateConfig(parseDocument(text, options), options.origin);
  return { config, hash: canonicalHash(config) };
}

/** Flatten zod issues to `{path, message}`; unknown keys get one issue each, at their own path. */
export function zodIssues(error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const base = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: [...base, key].join('.'), message: 'unknown key' });
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      out.push({ path: base.join('.'), message: `required (${issue.expected})` });
    } else {
      out.push({ path: base.join('.'), message: issue.message });
    }
  }
  return out;
}

/**
 * Deepest collection nesting in `source`, from yaml's concrete syntax tree, walked with an
 * explicit stack. Stops counting once past the limit.
 */
function nestingDepth(source: string): number {
  let deepest = 0;
  const stack: [CST.Token | undefined, number][] = [];
  for (const token of new Parser().parse(source)) {
    stack.push([token, 0]);
    while (stack.length > 0) {
      const [node, depth] = stack.pop()!;
      if (!node) continue;
      if (depth > deepest) deepest = depth;
      if (deepest > MAX_NESTING_DEPTH) return deepest;
      if (node.type === 'document') stack.push([node.value, depth]);
      else if (node.type === 'block-map' || node.type === 'block-seq' || node.type === 'flow-collection') {
        for (const item of node.items) stack.push([item.key ?? undefined, depth + 1], [item.value, depth + 1]);
      }
    }
  }
  return deepest;
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
