import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';

// Keys sorted at every depth; cycles are an error, never a silently different string.
const stableStringify = configure({ deterministic: true, circularValue: TypeError, bigint: false });

/**
 * Canonical JSON of a config section: object keys sorted at every depth, no whitespace, so two
 * sections that are deeply equal give the same text whatever their key order.
 *
 * @throws TypeError for cycles or values JSON cannot represent
 */
export function canonicalJson(section: unknown): string {
  const text = stableStringify(section);
  if (text === undefined) throw new TypeError('section has no JSON representation');
  return text;
}

/** SHA-256 of the canonical JSON, hex (64 chars): the config hash shown in `/config`. */
export function canonicalHash(section: unknown): string {
  return createHash('sha256').update(canonicalJson(section)).digest('hex');
}
