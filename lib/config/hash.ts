import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';

// Keys sorted at every depth; cycles are an error, never a silently different string.
const stableStringify = configure({ deterministic: true, circularValue: TypeError, bigint: false });

/**
 * Canonical JSON of a config section: object keys sorted at every depth, no whitespace, so two
 * sections that are deeply equal give the same text whatever their key order. The string is
 * flat (see `flat`): generations keep one per route section.
 *
 * @throws TypeError for cycles or values JSON cannot represent
 */
export function canonicalJson(section: unknown): string {
  const text = stableStringify(section);
  if (text === undefined) throw new TypeError('section has no JSON representation');
  return flat(text);
}

/**
 * `text`, flattened. stableStringify builds its result by concatenation, which V8 keeps as a
 * rope: a tree of cons strings (32 bytes a node, about one per key and value) over the pieces.
 * Kept, a route section's rope weighs several times its text (at 100,000 routes, 1.8 million
 * nodes, 54 MB of a 206 MB heap). Reading a character flattens a rope in place (V8's
 * `String::Flatten`: one contiguous copy, the nodes left to the collector), as hashing or
 * comparing it would anyway; the `flatstr` trick, without the dependency.
 */
function flat(text: string): string {
  text.charCodeAt(0);
  return text;
}

/** SHA-256 of the canonical JSON, hex (64 chars): the config hash shown in `/config`. */
export function canonicalHash(section: unknown): string {
  return createHash('sha256').update(canonicalJson(section)).digest('hex');
}
