import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';
import { sameRange } from '../core/identity.js';
import type { Config } from './schema.js';

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

/**
 * `canonicalHash` of configs that share their sections: the canonical JSON of every listener,
 * route and upstream object is kept (a `WeakMap`, by identity) and reused by the next config
 * holding the same frozen object, so hashing a config that differs from the last one in one
 * route serialises that route and joins the rest (the cost of `canonicalHash` is the
 * serialisation; SHA-256 of 800 KB takes 2-3 ms). The value is `canonicalHash(config)`'s, byte
 * for byte: objects are written as `safe-stable-stringify` writes them (keys sorted by UTF-16
 * code units, undefined values left out, keys escaped as `JSON.stringify` escapes them).
 *
 * Sections are frozen and never mutated (config objects are deeply frozen), which is what makes
 * a cache by identity sound. Not safe for objects that change after they were hashed.
 */
export class ConfigHasher {
  readonly #json = new WeakMap<object, string>();
  /** Each listener's routes at the last `hash`, by position, and their JSON joined in blocks of `ROUTE_BLOCK`. */
  #blocks: RouteBlocks[] = [];

  /** `canonicalHash(config)`, of a config or a fragment config. @throws TypeError for cycles or values JSON cannot represent */
  hash(config: object): string {
    const blocks: RouteBlocks[] = [];
    const text = objectJson(config, (key, value) => {
      if (key === 'listeners') return arrayJson(value as Config['listeners'], (listener, i) => this.#listener(listener, i, blocks));
      if (key === 'upstreams') return this.#kept(value as object, () => objectJson(value as object, (_, upstream) => this.#kept(upstream as object)));
      return value === undefined ? undefined : canonicalJson(value);
    });
    this.#blocks = blocks;
    return createHash('sha256').update(text).digest('hex');
  }

  /** Listener `i`'s JSON; `blocks[i]` gets its routes' blocks. */
  #listener(listener: Config['listeners'][number], i: number, blocks: RouteBlocks[]): string {
    const routes = listener.routes as readonly object[];
    // Kept for the next hash whether or not this listener's JSON is (blocks are checked by identity before use).
    if (this.#blocks[i]) blocks[i] = this.#blocks[i];
    return this.#kept(listener, () =>
      objectJson(listener, (key, value) => {
        if (key !== 'routes') return value === undefined ? undefined : canonicalJson(value);
        // Joining 10,000 routes' JSON costs more than serialising one: a block whose routes are the
        // ones at its place last time is joined already.
        const before = this.#blocks[i];
        const texts: string[] = [];
        for (let from = 0; from < routes.length; from += ROUTE_BLOCK) {
          const to = Math.min(routes.length, from + ROUTE_BLOCK);
          const same = before !== undefined && to === Math.min(before.routes.length, from + ROUTE_BLOCK) && sameRange(routes, before.routes, from, to);
          texts.push(
            same
              ? before.texts[from / ROUTE_BLOCK]!
              : routes
                  .slice(from, to)
                  .map((route) => this.#kept(route))
                  .join(','),
          );
        }
        blocks[i] = { routes, texts };
        return `[${texts.join(',')}]`;
      }),
    );
  }

  /** The canonical JSON of `section`, kept by identity; `write` makes it the first time (default `canonicalJson`). */
  #kept(section: object, write: () => string = () => canonicalJson(section)): string {
    let text = this.#json.get(section);
    if (text === undefined) {
      text = write();
      this.#json.set(section, text);
    }
    return text;
  }
}

/** A listener's routes and their JSON joined in blocks of `ROUTE_BLOCK` routes. */
interface RouteBlocks {
  routes: readonly object[];
  texts: string[];
}

/** Routes per block of a listener's joined route JSON (`ConfigHasher`). */
const ROUTE_BLOCK = 256;

/** `{...}` as `canonicalJson` writes an object, each value written by `write` (undefined: left out). */
function objectJson(object: object, write: (key: string, value: unknown) => string | undefined): string {
  const parts: string[] = [];
  for (const key of Object.keys(object).sort()) {
    const text = write(key, (object as Record<string, unknown>)[key]);
    if (text !== undefined) parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}

/** `[...]` as `canonicalJson` writes an array, each item written by `write`. */
function arrayJson<T>(items: readonly T[], write: (item: T, index: number) => string): string {
  return `[${items.map(write).join(',')}]`;
}
