import { type LoadedConfig, loadConfig } from '../config/parse.js';
import type { RawDocument } from '../sources/source.js';

/** What the serving side already has: the hash and document version of the active config. */
export interface ServedConfig {
  readonly hash: string;
  readonly version: string;
  readonly source: RawDocument['source'];
}

/** `unchanged`: the document produces the config already served; `loaded`: a new config to provision. */
export type LoadOutcome = { kind: 'unchanged' } | { kind: 'loaded'; loaded: LoadedConfig };

/**
 * The primary's half of a reload: document → parse → validate → canonical hash, compared with
 * what is served. A document whose version equals the served one's (same source kind) is
 * `unchanged` without being parsed; so is one whose canonical hash is the served hash. With
 * `preloaded` (a cluster worker, given the config the primary validated), nothing is parsed.
 * Pure but for the parsing cost; the worker's half is `Applier.apply`.
 *
 * @throws ConfigInvalidError for a document that does not parse or validate, naming the origin
 *   (file path, etcd key) and the config path of every issue
 */
export function loadDocument(
  doc: RawDocument,
  served: ServedConfig | undefined,
  options: { maxDocumentBytes?: number; preloaded?: LoadedConfig } = {},
): LoadOutcome {
  if (served && served.source.kind === doc.source.kind && served.version === doc.version) return { kind: 'unchanged' };
  const origin = String(doc.source.path ?? doc.source.key ?? doc.source.kind);
  const loaded = options.preloaded ?? loadConfig(doc.text, { origin, maxDocumentBytes: options.maxDocumentBytes });
  if (served && served.hash === loaded.hash) return { kind: 'unchanged' };
  return { kind: 'loaded', loaded };
}
