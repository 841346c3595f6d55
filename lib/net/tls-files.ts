import { createHash, createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { Config, TlsCertificateConfig } from '../config/schema.js';
import { ConfigInvalidError, type ConfigIssue, errorCode } from '../core/errors.js';

/**
 * One certificate of a TLS listener as read from its files: the PEM bytes (the key is a secret:
 * never logged, never shown), the names it serves and the facts metrics and logs may show.
 */
export interface CertificateMaterial {
  /** Config path of the entry, `listeners.0.tls.certificates.1`. */
  readonly path: string;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  /** Lowercase names it is chosen for by SNI: `server_names`, else its DNS subject alternative names. */
  readonly names: readonly string[];
  /** End of validity, ms since epoch. */
  readonly notAfterMs: number;
  /** SHA-256 fingerprint of the leaf, `AB:CD:...` as Node prints it. */
  readonly fingerprint256: string;
  /** SHA-256 hex of the chain and key bytes: identifies the contents, never reveals them. */
  readonly digest: string;
}

/** The certificate files a config uses, read and checked: per listener index, its certificates in config order. */
export interface TlsMaterial {
  readonly byListener: ReadonlyMap<number, readonly CertificateMaterial[]>;
  /** SHA-256 hex over every certificate's digest, in config order; '' without TLS listeners. */
  readonly digest: string;
  /**
   * Directories to watch, each with the config path of the first file in it: the files'
   * directories, and those of their targets when they are symlinks.
   */
  readonly watch: readonly { readonly dir: string; readonly path: string }[];
}

/** A config without TLS listeners has no material. */
export const NO_TLS_MATERIAL: TlsMaterial = Object.freeze({ byListener: new Map(), digest: '', watch: [] });

/**
 * Read and check every TLS listener's certificate and key files. Problems are config issues at
 * the path of the file that has them (`listeners.0.tls.certificates.1.cert_file`), naming the
 * file: missing or unreadable, no certificate or key in the PEM, a key that does not match its
 * certificate, a certificate expired or not yet valid at `nowMs`. Key bytes are never quoted.
 *
 * @throws ConfigInvalidError with one issue per problem (`origin` as given)
 */
export async function loadTlsMaterial(config: Config, origin?: string, nowMs: number = Date.now()): Promise<TlsMaterial> {
  if (!config.listeners.some((l) => l.tls)) return NO_TLS_MATERIAL;
  const issues: ConfigIssue[] = [];
  const byListener = new Map<number, CertificateMaterial[]>();
  const watch = new Map<string, string>();
  const digest = createHash('sha256');
  for (const [i, listener] of config.listeners.entries()) {
    if (!listener.tls) continue;
    const out: CertificateMaterial[] = [];
    for (const [j, entry] of listener.tls.certificates.entries()) {
      const path = `listeners.${i}.tls.certificates.${j}`;
      for (const [file, at] of [
        [entry.cert_file, `${path}.cert_file`],
        [entry.key_file, `${path}.key_file`],
      ] as const) {
        for (const dir of await watchedDirs(file)) if (!watch.has(dir)) watch.set(dir, at);
      }
      const material = await readCertificate(path, entry, nowMs, issues);
      if (!material) continue;
      out.push(material);
      digest.update(material.digest);
    }
    byListener.set(i, out);
  }
  if (issues.length > 0) throw new ConfigInvalidError(issues, origin);
  return { byListener, digest: digest.digest('hex'), watch: [...watch].map(([dir, path]) => ({ dir, path })) };
}

async function readCertificate(path: string, entry: TlsCertificateConfig, nowMs: number, issues: ConfigIssue[]): Promise<CertificateMaterial | undefined> {
  const certPath = `${path}.cert_file`;
  const keyPath = `${path}.key_file`;
  const [certPem, keyPem] = await Promise.all([readPem(entry.cert_file, certPath, issues), readPem(entry.key_file, keyPath, issues)]);
  if (!certPem || !keyPem) return undefined;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    issues.push({ path: certPath, message: `${entry.cert_file}: no PEM certificate could be parsed` });
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    // The parser's message may quote the file's contents: never repeated.
    issues.push({ path: keyPath, message: `${entry.key_file}: no PEM private key could be parsed` });
    return undefined;
  }
  if (!cert.checkPrivateKey(key)) {
    issues.push({ path: keyPath, message: `${entry.key_file}: the key does not match the certificate in ${entry.cert_file}` });
    return undefined;
  }
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (nowMs < notBefore) {
    issues.push({ path: certPath, message: `${entry.cert_file}: the certificate is not valid before ${new Date(notBefore).toISOString()}` });
    return undefined;
  }
  if (nowMs > notAfter) {
    issues.push({ path: certPath, message: `${entry.cert_file}: the certificate expired at ${new Date(notAfter).toISOString()}` });
    return undefined;
  }
  const names = (entry.server_names ?? dnsNames(cert)).map((n) => n.toLowerCase());
  const digest = createHash('sha256').update(certPem).update('\0').update(keyPem).digest('hex');
  return { path, certPem, keyPem, names, notAfterMs: notAfter, fingerprint256: cert.fingerprint256, digest };
}

/**
 * The directories to watch for changes of `file`: its own, and its target's when it is a symlink
 * elsewhere (a Kubernetes Secret mount's `token` → `..data/token` → `..2026_…/token`: the swap
 * of `..data` shows in the first, an in-place rewrite in the last).
 */
export async function watchedDirs(file: string): Promise<string[]> {
  const absolute = resolve(file);
  const target = await realpath(absolute).catch(() => absolute);
  return [...new Set([dirname(absolute), dirname(target)])];
}

async function readPem(file: string, path: string, issues: ConfigIssue[]): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (error) {
    const reason =
      errorCode(error) === 'ENOENT' ? 'no such file' : errorCode(error) === 'EISDIR' ? 'is a directory' : `cannot read (${errorCode(error) ?? 'error'})`;
    issues.push({ path, message: `${file}: ${reason}` });
    return undefined;
  }
}

/** The DNS names of a certificate's subject alternative names, lowercase. */
export function dnsNames(cert: X509Certificate): string[] {
  const san = cert.subjectAltName;
  if (!san) return [];
  return san
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
}
