import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './tmp.js';

const run = promisify(execFile);
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A leaf certificate and its key, as files and bytes. */
export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
  certPem: Buffer;
  keyPem: Buffer;
  /** `AB:CD:...`, as `getPeerCertificate().fingerprint256` reports it. */
  fingerprint256: string;
}

let serial = 0;

/**
 * A throwaway certificate authority made with the `openssl` CLI (ECDSA P-256, SHA-256), for
 * specs and benches that need real TLS: clients trust `caPem` and verify every certificate,
 * nothing is ever accepted unverified.
 */
export class TestCa {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: Buffer;

  private constructor(dir: string, caPem: Buffer) {
    this.dir = dir;
    this.caFile = join(dir, 'ca.crt');
    this.caPem = caPem;
  }

  /** Make a CA in a temp dir (removed after the test), or in `dir`. */
  static async create(dir?: string): Promise<TestCa> {
    const at = dir ?? (await tempDir('hotconf-ca-'));
    await run('openssl', ['req', '-x509', ...EC, '-sha256', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=hotconf-test-ca'], { cwd: at });
    return new TestCa(at, await readFile(join(at, 'ca.crt')));
  }

  /**
   * Issue a leaf for `dnsNames` (and IP 127.0.0.1) valid for a day, signed by this CA, written as
   * `name.crt` and `name.key` into `outDir` (default: the CA's dir).
   */
  async issue(name: string, dnsNames: readonly string[], outDir: string = this.dir): Promise<IssuedCertificate> {
    serial += 1;
    const base = join(outDir, name);
    const ext = `${base}.ext`;
    const san = [...dnsNames.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
    await writeFile(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', ['req', ...EC, '-sha256', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${dnsNames[0] ?? name}`]);
    await run('openssl', [
      'x509',
      '-req',
      '-sha256',
      '-in',
      `${base}.csr`,
      '-CA',
      join(this.dir, 'ca.crt'),
      '-CAkey',
      join(this.dir, 'ca.key'),
      '-set_serial',
      String(Date.now() * 1000 + serial),
      '-out',
      `${base}.crt`,
      '-days',
      '1',
      '-extfile',
      ext,
    ]);
    const [certPem, keyPem] = await Promise.all([readFile(`${base}.crt`), readFile(`${base}.key`)]);
    return { certFile: `${base}.crt`, keyFile: `${base}.key`, certPem, keyPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
  }
}
