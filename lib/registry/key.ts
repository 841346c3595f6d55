import { canonicalHash } from '../config/hash.js';

/**
 * A registry key derived from a config section: the first 32 hex chars (128 bits) of the SHA-256
 * of its canonical JSON. Equal sections share a resource whatever their key order; any change
 * to the section builds a new one.
 *
 * @throws TypeError for sections JSON cannot represent (cycles)
 */
export function sectionKey(section: unknown): string {
  return canonicalHash(section).slice(0, 32);
}
