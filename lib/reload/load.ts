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

/** Parse, validate and hash a document, as `loadConfig` does (a `ConfigParser` does it on its worker thread). */
export type ParseConfig = (text: string, options: ParseOptions) => Promise<LoadedConfig>;

/**
 * The primary's half of a reload: document → parse → validate → canonical hash, compared with
 * what is served. A document whose version equals the served one's (same source kind) is
 * `unchanged` without being parsed; so is one whose canonical hash is the served hash. With
 * `preloaded` (a cluster worker, given the config the primary validated; a reloader, given what
 * its `ConfigParser` parsed), nothing is parsed. Pure but for the parsing cost; the worker's
 * half is `Applier.apply`.
 *
 * @throws ConfigInvalidError for a document that does not parse or validate, naming the origin
 *   (file path, etcd key) and the config path of every issue
 */
export function loadDocument(
  doc: RawDocument,
  served: ServedConfig | undefined,
  options: { maxDocumentBytes?: number; preloaded?: LoadedConfig } = {},
): LoadOutcome {
  if (isServedVersion(doc, served)) return { kind: 'unchanged' };
  const loaded = options.preloaded ?? loadConfig(doc.text, { origin: documentOrigin(doc), maxDocumentBytes: options.maxDocumentBytes });
  if (served && served.hash === loaded.hash) return { kind: 'unchanged' };
  return { kind: 'loaded', loaded };
}

/**
 * `loadDocument` with the parsing done by `parse`: a `ConfigParser`, which parses and validates
 * on its worker thread so that no document stalls the thread serving requests. A document of
 * the served version is `unchanged` without being sent there.
 *
 * @throws ConfigInvalidError as `loadDocument`, and whatever `parse` throws
 */
export async function loadDocumentWith(
  parse: ParseConfig,
  doc: RawDocument,
  served: ServedConfig | undefined,
  options: { maxDocumentBytes?: number } = {},
): Promise<LoadOutcome> {
  if (isServedVersion(doc, served)) return { kind: 'unchanged' };
  const preloaded = await parse(doc.text, { origin: documentOrigin(doc), maxDocumentBytes: options.maxDocumentBytes });
  return loadDocument(doc, served, { preloaded });
}

/** `doc` is the version served, from the same kind of source: its config is the one served. */
function isServedVersion(doc: RawDocument, served: ServedConfig | undefined): boolean {
  return served !== undefined && served.source.kind === doc.source.kind && served.version === doc.version;
}

/** What errors name as the document's origin: the file path, the etcd key, or else the source kind. */
function documentOrigin(doc: RawDocument): string {
  return String(doc.source.path ?? doc.source.key ?? doc.source.kind);
}
