import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, isRecoverableError } from 'etcd3';
import type { Daemon } from '../lib/daemon/daemon.js';
import { EtcdSource, type EtcdSourceOptions } from '../lib/sources/etcd/etcd.js';
import { onCleanup } from './cleanup.js';
import { type MemoryLogs, memoryLogger, specDaemon } from './daemon.js';
import { httpRequest } from './http.js';
import { sampleValue } from './metrics.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';
import { waitFor } from './wait.js';

/** The etcd binary the specs run: `$ETCD_BIN`, else `etcd` on PATH (Debian's `etcd-server`). */
const ETCD_BIN = process.env.ETCD_BIN ?? 'etcd';

/** How long a started etcd may take to answer `/health`, in ms (a safety net on a busy machine). */
const READY_TIMEOUT_MS = 30_000;

/** Bytes of etcd's own output kept for error messages. */
const OUTPUT_TAIL_BYTES = 16 * 1024;

/** PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client certificate. */
export interface TlsFiles {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Make a CA, a server certificate (SAN IP:127.0.0.1) and a client certificate with openssl in `dir`. */
async function makeCertificates(dir: string): Promise<TlsFiles> {
  const openssl = (...args: string[]) => promisify(execFile)('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=hotconf-spec-ca');
  for (const [name, cn] of [
    ['server', '127.0.0.1'],
    ['client', 'hotconf'],
  ] as const) {
    await writeFile(join(dir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
    await openssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    await openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
  }
  const at = (file: string) => join(dir, file);
  return { ca: at('ca.crt'), serverCert: at('server.crt'), serverKey: at('server.key'), clientCert: at('client.crt'), clientKey: at('client.key') };
}

/**
 * A real single-member etcd server (Debian's `etcd-server` 3.4) on free loopback ports with a
 * temp data dir, for specs. It can be killed with SIGKILL, restarted on the same data dir (and
 * the same ports, so clients reconnect), wiped (same ports, empty data dir: revisions start
 * over), and is stopped after the test through `onCleanup`.
 *
 * If etcd cannot be started (binary missing, never healthy) `start()` rejects naming the binary
 * and quoting etcd's output: the spec fails, it is never skipped.
 */
export class EtcdServer {
  readonly clientUrl: string;
  readonly dataDir: string;
  /** With `start({tls: true})`: https only, client certificates required. */
  readonly tls: TlsFiles | undefined;
  readonly #peerUrl: string;
  readonly #name: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #output = '';
  #client: Etcd3 | undefined;
  /** Set by `enableAuth`: the spec's own client authenticates as this user from then on. */
  #auth: { username: string; password: string } | undefined;
  /** Cluster token: changed by `wipe({newCluster: true})` so the cluster ID changes too. */
  #token = 'hotconf-spec';

  private constructor(clientPort: number, peerPort: number, dataDir: string, tls: TlsFiles | undefined) {
    this.tls = tls;
    this.clientUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
    this.#peerUrl = `http://127.0.0.1:${peerPort}`;
    this.dataDir = dataDir;
    this.#name = `spec-${clientPort}`;
  }

  /**
   * Start a fresh etcd and wait until it is healthy; stopped and removed after the test. With
   * `tls`, clients must speak TLS and present a certificate signed by `server.tls.ca`.
   */
  static async start(options: { tls?: boolean } = {}): Promise<EtcdServer> {
    const dir = await tempDir('hotconf-etcd-');
    const tls = options.tls ? await makeCertificates(dir) : undefined;
    const server = new EtcdServer(await freePort(), await freePort(), join(dir, 'data'), tls);
    onCleanup(() => server.stop());
    await server.#spawn();
    return server;
  }

  /**
   * A client for the spec's own writes (puts, compactions), closed after the test. Recoverable
   * failures are retried with backoff (no circuit breaker), so writes right after a restart land.
   */
  client(): Etcd3 {
    if (!this.#client) {
      const tls = this.tls;
      const client = new Etcd3({
        hosts: this.clientUrl,
        ...(tls
          ? { credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.clientCert), privateKey: readFileSync(tls.clientKey) } }
          : {}),
        ...(this.#auth ? { auth: { ...this.#auth } } : {}),
        faultHandling: {
          host: () => noop,
          global: retry(handleWhen(isRecoverableError), { maxAttempts: 20, backoff: new ExponentialBackoff({ initialDelay: 20, maxDelay: 500 }) }),
        },
      });
      this.#client = client;
      onCleanup(() => client.close());
    }
    return this.#client;
  }

  /**
   * Turn on etcd's user/password auth: creates user `root` (etcd requires it) with `password`
   * and role `root`. Every client must authenticate from then on; the spec's own `client()`
   * does, as `root`. The setting lives in the data dir: it survives `restart`, not `wipe`.
   */
  async enableAuth(password: string): Promise<void> {
    const client = this.client();
    await client.role('root').create();
    await client.user('root').create(password);
    await client.user('root').addRole('root');
    await client.auth.authEnable();
    // A fresh client for the spec's own calls, authenticated (the old one is closed in cleanup).
    this.#auth = { username: 'root', password };
    this.#client = undefined;
  }

  /** Put `value` at `key`; resolves with the new mod revision. */
  async put(key: string, value: string | Buffer): Promise<number> {
    const res = await this.client().put(key).value(value).exec();
    return Number(res.header.revision);
  }

  /** Delete `key`; resolves with the store revision after the delete. */
  async delete(key: string): Promise<number> {
    const res = await this.client().delete().key(key).exec();
    return Number(res.header.revision);
  }

  /** The store's current revision (a linearizable read). */
  async revision(): Promise<number> {
    const res = await this.client().kv.range({ key: Buffer.from('\0'), keys_only: true });
    return Number(res.header.revision);
  }

  /** Compact history up to `revision` (default: the current one), physically (waits for it). */
  async compact(revision?: number): Promise<number> {
    const rev = revision ?? (await this.revision());
    await this.client().kv.compact({ revision: String(rev), physical: true });
    return rev;
  }

  /** SIGSTOP: the server keeps its sockets open and answers nothing. */
  freeze(): void {
    this.#child?.kill('SIGSTOP');
  }

  /** SIGCONT after `freeze`. */
  thaw(): void {
    this.#child?.kill('SIGCONT');
  }

  /** SIGKILL the server (no graceful shutdown) and wait for it to exit. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.#exited;
  }

  /** Start again on the same data dir and ports (after `kill`), and wait until healthy. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn();
  }

  /**
   * Kill, delete the data dir and start an empty etcd on the same ports: revisions start over
   * (the store goes backwards). With `newCluster`, the cluster token changes so the cluster ID
   * does as well; without it, etcd derives the same cluster ID from the same flags.
   */
  async wipe(options: { newCluster?: boolean } = {}): Promise<void> {
    await this.kill();
    await rm(this.dataDir, { recursive: true, force: true });
    if (options.newCluster) this.#token = `hotconf-spec-${Date.now()}`;
    await this.#spawn();
  }

  /** SIGTERM and wait; SIGKILL if it does not exit within 10 s. Idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
  }

  /**
   * Range requests etcd has answered since it started (any outcome), from its own Prometheus
   * metrics (`grpc_server_handled_total{grpc_method="Range"}`): every get any client made.
   */
  async rangesServed(): Promise<number> {
    const { status, body } = await this.#get('/metrics');
    if (status !== 200) throw new Error(`etcd /metrics answered ${status}`);
    return sampleValue(body, 'grpc_server_handled_total', { grpc_method: 'Range' }) ?? 0;
  }

  /** GET `path` on the client URL (with the client certificate over TLS). */
  async #get(path: string): Promise<{ status: number; body: string }> {
    const tls = this.tls;
    if (!tls) return httpRequest(`${this.clientUrl}${path}`);
    const [ca, cert, key] = await Promise.all([readFile(tls.ca), readFile(tls.clientCert), readFile(tls.clientKey)]);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${this.clientUrl}${path}`, { ca, cert, key, agent: false, servername: '' }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
  }

  async #spawn(): Promise<void> {
    const args = [
      `--name=${this.#name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.clientUrl}`,
      `--advertise-client-urls=${this.clientUrl}`,
      `--listen-peer-urls=${this.#peerUrl}`,
      `--initial-advertise-peer-urls=${this.#peerUrl}`,
      `--initial-cluster=${this.#name}=${this.#peerUrl}`,
      `--initial-cluster-token=${this.#token}`,
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-outputs=stderr',
      '--log-level=warn',
      ...(this.tls ? [`--cert-file=${this.tls.serverCert}`, `--key-file=${this.tls.serverKey}`, `--trusted-ca-file=${this.tls.ca}`, '--client-cert-auth'] : []),
    ];
    const child = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString('utf8')).slice(-OUTPUT_TAIL_BYTES);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    let spawnError: Error | undefined;
    this.#exited = new Promise<void>((resolve) => {
      child.once('error', (error) => {
        spawnError = error;
        resolve();
      });
      child.once('exit', () => resolve());
    }).then(() => {
      if (this.#child === child) this.#child = undefined;
    });
    try {
      await waitFor(
        `etcd at ${this.clientUrl} to become healthy`,
        async () => {
          if (spawnError || !this.#child) return 'gone';
          const res = await this.#get('/health');
          return res.status === 200 && (JSON.parse(res.body) as { health?: string }).health === 'true' ? 'ok' : undefined;
        },
        READY_TIMEOUT_MS,
        50,
      ).then((state) => {
        if (state === 'gone') throw spawnError ?? new Error('etcd exited');
      });
    } catch (error) {
      await this.stop();
      const hint = (error as NodeJS.ErrnoException).code === 'ENOENT' ? ` (is etcd installed? apt-get install etcd-server)` : '';
      throw new Error(`cannot start ${ETCD_BIN}${hint}: ${(error as Error).message}\n--- etcd output ---\n${this.#output}`);
    }
  }
}

export interface EtcdDaemon {
  daemon: Daemon;
  source: EtcdSource;
  /** The etcd3 client the source uses (specs stub its calls to inject faults). */
  client: Etcd3;
  logs: MemoryLogs;
  /** Admin base URL, e.g. `http://127.0.0.1:41234`. */
  admin: string;
}

/**
 * An in-process daemon (`specDaemon`) on `key` of `etcd` (or every key under `{prefix}`), with
 * short backoff and check intervals so recoveries happen quickly. Stopped after the test.
 * `start: false` returns it unstarted (admin bound by `daemon.start()`).
 */
export async function startEtcdDaemon(
  etcd: EtcdServer | { clientUrl: string },
  key: string | { prefix: string },
  options: Partial<EtcdSourceOptions> & { start?: boolean; watch?: boolean } = {},
): Promise<EtcdDaemon> {
  const logs = memoryLogger();
  let client: Etcd3 | undefined;
  const { start, watch, ...sourceOptions } = options;
  const source = new EtcdSource({
    endpoints: [etcd.clientUrl],
    ...(typeof key === 'string' ? { key } : key),
    logger: logs.logger,
    backoff: { initialMs: 20, maxMs: 500 },
    consistencyCheckIntervalMs: 1000,
    clientFactory: (o) => (client = new Etcd3(o)),
    ...sourceOptions,
  });
  const adminListen = `127.0.0.1:${await freePort()}`; // known before the start, for `admin`
  const daemon = await specDaemon(source, logs, { adminListen, watch: watch ?? true });
  if (start ?? true) await daemon.start();
  return { daemon, source, client: client!, logs, admin: `http://${adminListen}` };
}

/** `source` of a daemon's `GET /config`: `revision` is the mod revision of the value it serves. */
export interface ServedSource {
  kind: string;
  endpoints: string[];
  key: string;
  revision: number;
}

export async function servedSource(admin: string): Promise<ServedSource> {
  return (JSON.parse((await httpRequest(`${admin}/config`)).body) as { source: ServedSource }).source;
}

/** Reload log lines (`msg: "reload"`) of a daemon. */
export function reloadLines(logs: MemoryLogs, trigger?: string): Record<string, unknown>[] {
  return logs.lines().filter((l) => l.msg === 'reload' && (trigger === undefined || l.trigger === trigger));
}
