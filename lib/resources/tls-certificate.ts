import { createHash } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { CertificateMaterial } from '../net/tls-files.js';
import type { ResourceFactory } from '../registry/registry.js';
import type { StackTlsPolicy } from './http-stack.js';
import type { ResourceKind } from './kind.js';

/** Registry kind (and metric label) of TLS certificates (secure contexts). */
export const TLS_CERTIFICATE_KIND = 'tls_certificate';

/** What a certificate's context is built from: its files' contents and the listener's TLS policy. */
export interface TlsCertificateInput {
  readonly material: CertificateMaterial;
  readonly policy: Pick<StackTlsPolicy, 'min_version'>;
}

/**
 * One certificate ready to present: its `SecureContext` (built with the full policy) and the
 * facts SNI and metrics use. Shared by every generation, listener and SNI name that uses the
 * same contents under the same policy.
 */
export interface TlsCertificate {
  readonly context: SecureContext;
  readonly material: CertificateMaterial;
}

/**
 * Registry key: SHA-256 over the chain, the key and the policy (the material's digest is already
 * one over the bytes), so a rotation that changes either file builds a new context and anything
 * else reuses it. The key reveals nothing of the key bytes.
 */
export function tlsCertificateKey(input: TlsCertificateInput): string {
  return createHash('sha256').update(input.material.digest).update('\0').update(input.policy.min_version).digest('hex').slice(0, 32);
}

/**
 * The registry factory of a certificate: `create` builds the `SecureContext` (OpenSSL parses the
 * chain and key again; the material was checked when the config loaded). `destroy` drops it:
 * connections handshaken with it keep their copy in OpenSSL until they close.
 */
export function tlsCertificateFactory(input: TlsCertificateInput): ResourceFactory<TlsCertificate> {
  return {
    create: () => ({
      context: createSecureContext({ cert: input.material.certPem, key: input.material.keyPem, minVersion: input.policy.min_version }),
      material: input.material,
    }),
    destroy: () => {},
  };
}

/** The `tls_certificate` kind: one secure context per certificate contents and policy. */
export const tlsCertificateKind: ResourceKind<TlsCertificateInput, TlsCertificate> = {
  kind: TLS_CERTIFICATE_KIND,
  key: tlsCertificateKey,
  factory: (input) => tlsCertificateFactory(input),
};
