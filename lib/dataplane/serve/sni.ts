import type { TlsCertificate } from '../../resources/tls-certificate.js';

/**
 * The certificates of one TLS listener in one generation, by the names they serve: immutable,
 * built once per generation and read by `SNICallback` at every ClientHello. Lookup order: the
 * exact name, then a one-label wildcard (`*.example.com` serves `a.example.com`, not
 * `a.b.example.com` nor `example.com`, as RFC 6125 section 6.4.3), then the first certificate.
 * Between certificates naming the same name, the earlier one in the config wins.
 */
export class SniTable {
  readonly certificates: readonly TlsCertificate[];
  readonly #exact = new Map<string, TlsCertificate>();
  readonly #wildcard = new Map<string, TlsCertificate>();
  readonly #byFingerprint = new Map<string, TlsCertificate>();

  /** @throws Error when `certificates` is empty (the schema requires one) */
  constructor(certificates: readonly TlsCertificate[]) {
    if (certificates.length === 0) throw new Error('a TLS listener needs a certificate');
    this.certificates = certificates;
    for (const certificate of certificates) {
      this.#byFingerprint.set(certificate.material.fingerprint256, certificate);
      for (const name of certificate.material.names) {
        const table = name.startsWith('*.') ? this.#wildcard : this.#exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (!table.has(key)) table.set(key, certificate);
      }
    }
  }

  /** The certificate for clients without SNI or with a name no certificate serves. */
  get default(): TlsCertificate {
    return this.certificates[0]!;
  }

  /** The certificate for an SNI server name (any case, a trailing dot ignored). */
  lookup(servername: string): TlsCertificate {
    const name = servername.toLowerCase().replace(/\.$/, '');
    const exact = this.#exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    if (dot > 0) {
      const wildcard = this.#wildcard.get(name.slice(dot + 1));
      if (wildcard) return wildcard;
    }
    return this.default;
  }

  /** The certificate with this SHA-256 fingerprint (`AB:CD:...`), if this table has it. */
  byFingerprint(fingerprint256: string): TlsCertificate | undefined {
    return this.#byFingerprint.get(fingerprint256);
  }
}

/**
 * True when `host` (normalised: lowercase, no port) is one of `names` or matches one of their
 * one-label wildcards: whether a certificate serving `names` is authoritative for `host`.
 */
export function namesCover(names: readonly string[], host: string): boolean {
  for (const name of names) {
    if (name === host) return true;
    if (name.startsWith('*.')) {
      const dot = host.indexOf('.');
      if (dot > 0 && host.slice(dot + 1) === name.slice(2)) return true;
    }
  }
  return false;
}
