import { type LoadedConfig, loadConfig, type ParseOptions } from '../config/parse.js';
import type { ConfigReference } from '../config/references.js';
import { loadTlsMaterial, type TlsMaterial } from '../net/tls-files.js';
import type { RawDocument } from '../sources/source.js';

/** What the serving side already has: the hash and document version of the active config, and the digest of its certificate files. */
export interface ServedConfig {
  readonly hash: string;
  readonly version: string;
  readonly source: RawDocument['source'];
  readonly tls: Pick<TlsMaterial, 'digest'>;
  /** The secret references the served config resolved: their values may have changed under the same document. */
  readonly references?: readonly ConfigReference[];
}

/** `unchanged`: the document and the files it names produce what is already served; `loaded`: a new config to provision. */
export type LoadOutcome = { kind: 'unchanged' } | { kind: 'loaded'; loaded: LoadedConfig; tls: TlsMaterial };

/** Parse, validate and hash a document, as `loadConfig` does (a `ConfigParser` does it on its worker thread). */
export type ParseConfig = (text: string, options: ParseOptions) => Promise<LoadedConfig>;

/**
 * The primary's half of a reload: document → parse → validate → canonical hash → certificate
 * files read and checked, compared with what is served. A document whose version equals the
 * served one's (same source kind) is `unchanged` without being parsed, unless the served config
 * reads certificate files or holds secret references (they may have changed under the same
 * document: the document is parsed and its references resolved again); a config whose hash
 * and certificate digest equal the served ones is `unchanged`. With `preloaded` (a cluster
 * worker, given the config the primary validated; a reloader, given what its `ConfigParser`
 * parsed), nothing is parsed; the certificate files are still read here. Pure but for the
 * parsing and file-reading cost; the worker's half is `Applier.apply`.
 *
 * @throws ConfigInvalidError for a document that does not parse or validate, or names
 *   certificate files that cannot be used, naming the origin (file path, etcd key) and the
 *   config path of every issue
 */
export async function loadDocument(
  doc: RawDocument,
  served: ServedConfig | undefined,
  options: { maxDocumentBytes?: number; preloaded?: LoadedConfig } = {},
): Promise<LoadOutcome> {
  if (isServedVersion(doc, served)) return { kind: 'unchanged' };
  const origin = documentOrigin(doc);
  const loaded = options.preloaded ?? loadConfig(doc.text, { origin, maxDocumentBytes: options.maxDocumentBytes });
  const tls = await loadTlsMaterial(loaded.config, origin);
  if (served && served.hash === loaded.hash && served.tls.digest === tls.digest) return { kind: 'unchanged' };
  return { kind: 'loaded', loaded, tls };
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

/**
 * `doc` is the version served, from the same kind of source, and the served config reads no
 * certificate files and holds no secret references (either may have changed under the same
 * document): its config is the one served.
 */
function isServedVersion(doc: RawDocument, served: ServedConfig | undefined): boolean {
  return (
    served !== undefined && served.tls.digest === '' && !served.references?.length && served.source.kind === doc.source.kind && served.version === doc.version
  );
}

/** What errors name as the document's origin: the file path, the etcd key, or else the source kind. */
function documentOrigin(doc: RawDocument): string {
  return String(doc.source.path ?? doc.source.key ?? doc.source.kind);
}
