import { type LoadedConfig, loadConfig, type ParseOptions } from '../config/parse.js';
import type { RawDocument } from '../sources/source.js';

/** What the serving side already has: the hash and document version of the active config. */
export interface ServedConfig {
  readonly hash: string;
  readonly version: string;
  readonly source: RawDocument['source'];
}

/** `unchanged`: the document produces the config already served; `loaded`: a new config to provision. */
export type LoadOutcome = { kind: 'unchanged' } | { kind: 'loaded'; loaded: LoadedConfig };

/** Parse, validate and hash a document, as `loadConfig` (a `ConfigParser` does it on its worker thread). */
export type ParseConfig = (text: string, options: ParseOptions) => Promise<LoadedConfig>;

/**
 * The primary's half of a reload: document → parse → validate → canonical hash, compared with
 * what is served. A document whose version equals the served one's (same source kind) is
 * `unchanged` without being parsed; so is one whose canonical hash is the served hash.
 * `options.parse` does the parsing (default: `loadConfig`, on the calling thread); the
 * worker's half is `Applier.apply`.
 *
 * @throws ConfigInvalidError for a document that does not parse or validate, naming the origin
 *   (file path, etcd key) and the config path of every issue
 */
export async function loadDocument(
  doc: RawDocument,
  served: ServedConfig | undefined,
  options: { maxDocumentBytes?: number; parse?: ParseConfig } = {},
): Promise<LoadOutcome> {
  if (served && served.source.kind === doc.source.kind && served.version === doc.version) return { kind: 'unchanged' };
  const origin = String(doc.source.path ?? doc.source.key ?? doc.source.kind);
  const parse = options.parse ?? (async (text, parseOptions) => loadConfig(text, parseOptions));
  const loaded = await parse(doc.text, { origin, maxDocumentBytes: options.maxDocumentBytes });
  if (served && served.hash === loaded.hash) return { kind: 'unchanged' };
  return { kind: 'loaded', loaded };
}
