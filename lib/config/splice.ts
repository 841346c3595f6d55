import {
  DEFAULT_MAX_DOCUMENT_BYTES,
  MAX_DOCUMENT_NODES,
  MAX_NESTING_DEPTH,
  type ParseOptions,
  parseDocument,
  parseDocumentShape,
  type SequenceItem,
} from './parse.js';

/** What the last document parsed left to the next one. */
interface Previous {
  readonly source: string;
  readonly data: unknown;
  readonly origin: string | undefined;
  readonly maxBytes: number;
  readonly nodes: number;
  /** Its block-sequence items, by `start`. */
  readonly items: SequenceItem[];
}

/** How the last `parse` read its document. */
export interface SpliceCounts {
  /** 1 when one item was read alone and spliced into the previous data, 0 when the whole document was read. */
  spliced: number;
  /** Nodes read (of the item's piece when spliced, of the whole document otherwise). */
  nodes: number;
}

/** Block scalars with an explicit indentation indicator (`|2`) are read relative to their parent's indent: left to the full parse. */
const INDENTATION_INDICATOR = /[|>][+-]?[1-9]/;

/**
 * `parseDocument` for a sequence of documents that differ a little each time (one file, saved
 * again): a document that differs from the last one parsed only inside one block-sequence item
 * (a route of a listener, typically) is read by parsing that item alone (its lines, indentation
 * kept, are a one-item block sequence) and putting it in place of the old item, copy-on-write
 * along its path: everything else is the previous data's very objects, so `IncrementalLoader`
 * recognises them by identity. A change that spans items is read by the innermost item holding
 * all of it (the listener, for two of its routes), if any. The result is always `parseDocument(text, options)`'s (deeply
 * equal data, or the same `ConfigInvalidError`): whenever anything is unsure the whole document
 * is read. Unsure: the previous document had an anchor, alias, tag or directive (or was not
 * parsed, or refused); another `origin` or size limit; a change not inside one item whose line is
 * `<spaces>- ` with content after it; an item ended by a line at its own indent that is not the
 * next item; tabs, carriage returns or explicit block-scalar indentation in the item; the item's
 * piece refused or not exactly one plain item (errors always come from the full parse, never
 * relative to the piece). Document limits are kept by difference: nodes (old total − old item +
 * new item), depth (the item's depth + its height), size and NUL over the whole new text.
 *
 * Cost of a splice: linear scans of the text (common prefix and suffix), the piece's parse, and
 * O(items) integer work to move the recorded item offsets.
 *
 * Memory: the last document's text, data and item offsets. Not safe for concurrent use.
 */
export class SpliceParser {
  #previous: Previous | undefined;
  #counts: SpliceCounts = { spliced: 0, nodes: 0 };

  /** How the last `parse` read its document. */
  get counts(): Readonly<SpliceCounts> {
    return this.#counts;
  }

  /**
   * `parseDocument(text, options)`.
   * @throws ConfigInvalidError as `parseDocument`
   */
  parse(text: string | Uint8Array, options: ParseOptions = {}): unknown {
    if (typeof text !== 'string') {
      this.#previous = undefined;
      this.#counts = { spliced: 0, nodes: 0 };
      return parseDocument(text, options);
    }
    const spliced = this.#splice(text, options);
    if (spliced !== undefined) return spliced.data;
    // A document that does not parse leaves the last one that did as the base of the next splice:
    // an editor's save caught half-written (a watch event between truncation and write) must
    // not cost the next, complete save a full parse.
    const { data, record } = parseDocumentShape(text, options);
    this.#counts = { spliced: 0, nodes: record.nodes };
    this.#previous = record.plain
      ? {
          source: text,
          data,
          origin: options.origin,
          maxBytes: options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES,
          nodes: record.nodes,
          items: record.items,
        }
      : undefined;
    return data;
  }

  /** The new document's data by splicing, or undefined when unsure. */
  #splice(text: string, options: ParseOptions): { data: unknown } | undefined {
    const previous = this.#previous;
    const maxBytes = options.maxDocumentBytes ?? DEFAULT_MAX_DOCUMENT_BYTES;
    if (!previous || previous.origin !== options.origin || previous.maxBytes !== maxBytes) return undefined;
    if (Buffer.byteLength(text) > maxBytes || text.includes('\0')) return undefined;
    const old = previous.source;
    if (text === old) {
      this.#counts = { spliced: 1, nodes: 0 };
      return { data: previous.data };
    }
    const region = changedLines(old, text);
    if (!region) return undefined;
    const found = enclosingItem(old, text, previous.items, region);
    if (!found) return undefined;
    const { index, oldEnd, newEnd } = found;
    const item = previous.items[index]!;
    const piece = text.slice(item.start, newEnd);
    if (piece.includes('\t') || piece.includes('\r') || INDENTATION_INDICATOR.test(piece)) return undefined;
    let parsed: ReturnType<typeof parseDocumentShape>;
    try {
      parsed = parseDocumentShape(piece, { origin: options.origin, maxDocumentBytes: Number.POSITIVE_INFINITY });
    } catch {
      return undefined; // the full parse names the problem where it is in the document
    }
    const { data, record } = parsed;
    if (!record.plain || !Array.isArray(data) || data.length !== 1) return undefined;
    const nodes = previous.nodes - item.nodes + (record.nodes - 1);
    if (nodes > MAX_DOCUMENT_NODES || item.path.length + record.height - 1 > MAX_NESTING_DEPTH) return undefined;
    const next = replaceAt(previous.data, item.path, data[0]);
    if (next === undefined) return undefined;
    this.#previous = {
      source: text,
      data: next,
      origin: options.origin,
      maxBytes,
      nodes,
      items: movedItems(previous.items, index, oldEnd, record.items, item, newEnd - oldEnd),
    };
    this.#counts = { spliced: 1, nodes: record.nodes };
    return { data: next };
  }
}

/** Characters compared at once while looking for the common prefix and suffix. */
const CHUNK = 1024;

/** The lines that differ: from the line start before the common prefix to the line start after it, in both texts (the rest is common). */
function changedLines(old: string, text: string): { start: number; oldEnd: number; newEnd: number } | undefined {
  const shorter = Math.min(old.length, text.length);
  // Whole chunks compare as strings (memcmp), the differing one char by char.
  let prefix = 0;
  while (prefix + CHUNK <= shorter && old.slice(prefix, prefix + CHUNK) === text.slice(prefix, prefix + CHUNK)) prefix += CHUNK;
  while (prefix < shorter && old.charCodeAt(prefix) === text.charCodeAt(prefix)) prefix += 1;
  let suffix = 0;
  while (
    suffix + CHUNK <= shorter - prefix &&
    old.slice(old.length - suffix - CHUNK, old.length - suffix) === text.slice(text.length - suffix - CHUNK, text.length - suffix)
  )
    suffix += CHUNK;
  while (suffix < shorter - prefix && old.charCodeAt(old.length - 1 - suffix) === text.charCodeAt(text.length - 1 - suffix)) suffix += 1;
  const start = prefix === 0 ? 0 : old.lastIndexOf('\n', prefix - 1) + 1;
  let oldEnd = old.length - suffix;
  let newEnd = text.length - suffix;
  if (!(oldEnd > 0 && old.charCodeAt(oldEnd - 1) === 10 && newEnd > 0 && text.charCodeAt(newEnd - 1) === 10 && oldEnd > start && newEnd > start)) {
    // Forward to the next line start inside the common suffix.
    const eol = old.indexOf('\n', Math.max(oldEnd, start));
    if (eol < 0) {
      oldEnd = old.length;
      newEnd = text.length;
    } else {
      newEnd += eol + 1 - oldEnd;
      oldEnd = eol + 1;
    }
  }
  if (start > oldEnd || start > newEnd) return undefined;
  return { start, oldEnd, newEnd };
}

/**
 * The innermost recorded item whose lines hold the changed lines in both texts: its line starts
 * at or before them, reads `<indent spaces>- ` in both, and its lines (those indented more than
 * it, blank or comments) reach past the change in both; the text after the change is common, so
 * the item's remainder is too.
 */
function enclosingItem(
  old: string,
  text: string,
  items: readonly SequenceItem[],
  region: { start: number; oldEnd: number; newEnd: number },
): { index: number; oldEnd: number; newEnd: number } | undefined {
  let low = 0;
  let high = items.length - 1;
  let index = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (items[mid]!.start <= region.start) {
      index = mid;
      low = mid + 1;
    } else high = mid - 1;
  }
  let outer = Number.POSITIVE_INFINITY;
  for (; index >= 0 && outer > 0; index -= 1) {
    const item = items[index]!;
    if (item.indent >= outer) continue;
    outer = item.indent;
    const oldEnd = itemEnd(old, item.start, item.indent);
    if (oldEnd < region.oldEnd) continue;
    if (!isItemLine(text, item.start, item.indent)) return undefined;
    const newEnd = itemEnd(text, item.start, item.indent);
    if (newEnd < region.newEnd) continue;
    if (oldEnd - region.oldEnd !== newEnd - region.newEnd) return undefined;
    return { index, oldEnd, newEnd };
  }
  return undefined;
}

/** Whether the line at `start` reads `<indent spaces>- ` followed by content. */
function isItemLine(text: string, start: number, indent: number): boolean {
  for (let at = start; at < start + indent; at += 1) if (text.charCodeAt(at) !== 32) return false;
  const after = text.charCodeAt(start + indent + 2);
  return text.charCodeAt(start + indent) === 45 && text.charCodeAt(start + indent + 1) === 32 && after !== 10 && after !== 35 && after !== 32;
}

/**
 * Where the item whose line starts at `start` ends: the first later line, not blank nor a
 * comment, indented `indent` spaces or fewer; the text's end. -1 (unsure) when that line is at
 * the item's indent and is not the next item, starts with `:` or `?`, or a line has a tab or
 * carriage return in its indentation.
 */
function itemEnd(text: string, start: number, indent: number): number {
  let line = text.indexOf('\n', start) + 1;
  while (line > 0 && line < text.length) {
    let at = line;
    while (text.charCodeAt(at) === 32) at += 1;
    const c = text.charCodeAt(at);
    if (c === 9 || c === 13) return -1;
    const blank = c === 10 || c === 35 || at === text.length;
    if (!blank && at - line <= indent) {
      // Past a node's end the full parse looks for `:` (a key): the piece, read alone, would not see it.
      if (at - line < indent) return c === 58 || c === 63 ? -1 : line;
      return c === 45 && text.charCodeAt(at + 1) === 32 ? line : -1;
    }
    line = text.indexOf('\n', at) + 1;
  }
  return text.length;
}

/** `data` with the value at `path` replaced, copying only the collections along the path; undefined if the path is not there. */
function replaceAt(data: unknown, path: readonly (string | number)[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [step, ...rest] = path;
  if (Array.isArray(data) && typeof step === 'number' && step < data.length) {
    const copy = data.slice();
    const inner = replaceAt(data[step], rest, value);
    if (inner === undefined) return undefined;
    copy[step] = inner;
    return copy;
  }
  if (data !== null && typeof data === 'object' && !Array.isArray(data) && typeof step === 'string' && Object.hasOwn(data, step)) {
    const inner = replaceAt((data as Record<string, unknown>)[step], rest, value);
    if (inner === undefined) return undefined;
    // Spread defines own properties: a `__proto__` key stays a key, as js-yaml made it.
    return { ...(data as Record<string, unknown>), [step]: inner };
  }
  return undefined;
}

/** The items after a splice: the old item's (from `index`, up to `oldEnd`) replaced by the piece's, those after moved by `shift` (in place: they are the previous document's, no longer used). */
function movedItems(items: SequenceItem[], index: number, oldEnd: number, piece: readonly SequenceItem[], item: SequenceItem, shift: number): SequenceItem[] {
  let after = index;
  while (after < items.length && items[after]!.start < oldEnd) after += 1;
  const out = items.slice(0, index);
  for (const inner of piece)
    out.push({ start: item.start + inner.start, indent: inner.indent, nodes: inner.nodes, path: [...item.path, ...inner.path.slice(1)] });
  for (let i = after; i < items.length; i += 1) {
    const moved = items[i]!;
    moved.start += shift;
    out.push(moved);
  }
  return out;
}
