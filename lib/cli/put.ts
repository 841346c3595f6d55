import { resolve } from 'node:path';
import { Etcd3 } from 'etcd3';
import { DEFAULT_MAX_DOCUMENT_BYTES } from '../config/parse.js';
import { errorMessage, UsageError } from '../core/errors.js';
import { etcdClientOptions } from '../sources/etcd/etcd.js';
import { EXIT_UNREACHABLE } from './admin-client.js';
import { type EtcdCliOptions, EXIT_USAGE, etcdConnection } from './etcd-options.js';
import type { Io } from './io.js';
import { checkConfig, readConfigFile } from './validate.js';

export interface PutOptions extends EtcdCliOptions {
  /** Compare-and-swap: write only if the key's mod revision is still this (0: absent). */
  ifRevision?: string;
}

/** Deadline of each etcd call, in ms. */
const REQUEST_TIMEOUT_MS = 10_000;

/**
 * `hotconf put --etcd URLS --key KEY FILE [--if-revision N]`: validate FILE with the daemon's
 * schema and write it to KEY, so an invalid document never reaches the fleet.
 *
 * `--if-revision N` makes the write a transaction `if mod_revision(KEY) == N then put` (etcd's
 * compare-and-swap; `N = 0` means "the key does not exist"), so two operators editing from the
 * same revision cannot overwrite each other.
 *
 * Exit 0 written (the new revision on stdout); 1 invalid, over 1 MiB, or `--if-revision` did not
 * match, nothing written (the reason on stderr); 2 etcd unreachable; 64 bad flags.
 */
export async function putCommand(file: string, options: PutOptions, io: Io): Promise<number> {
  let connection: Awaited<ReturnType<typeof etcdConnection>>;
  let ifRevision: number | undefined;
  try {
    connection = await etcdConnection(options);
    if (!connection) throw new UsageError('--etcd is required (or $HOTCONF_ETCD_ENDPOINTS)');
    if (options.ifRevision !== undefined) {
      if (!/^\d+$/.test(options.ifRevision)) throw new UsageError(`--if-revision ${options.ifRevision}: expected a mod revision (0 or more)`);
      ifRevision = Number(options.ifRevision);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`hotconf put: ${error.message}\n`);
    return EXIT_USAGE;
  }

  const path = resolve(file);
  const text = await readConfigFile(
    path,
    io,
    (sizeBytes) =>
      `${sizeBytes} bytes; hotconf refuses config documents over 1 MiB (${DEFAULT_MAX_DOCUMENT_BYTES} bytes), below etcd's default request limit. Nothing written.`,
  );
  if (!text) return 1;
  const hash = checkConfig(path, text, io);
  if (!hash) {
    io.err(`${path}: invalid; nothing written to ${connection.key}\n`);
    return 1;
  }

  const { key, endpoints } = connection;
  const client = new Etcd3({ ...etcdClientOptions(connection), defaultCallOptions: () => ({ deadline: Date.now() + REQUEST_TIMEOUT_MS }) });
  try {
    if (ifRevision === undefined) {
      const res = await client.put(key).value(text).exec();
      io.out(`${key}: written at revision ${res.header.revision} (hash ${hash.slice(0, 12)})\n`);
      return 0;
    }
    const res = await client.if(key, 'Mod', '==', ifRevision).then(client.put(key).value(text)).else(client.get(key)).commit();
    if (!res.succeeded) {
      const current = res.responses[0]?.response_range?.kvs[0]?.mod_revision ?? '0';
      io.err(`${key}: its mod revision is ${current}, not ${ifRevision} (--if-revision): changed since; nothing written\n`);
      return 1;
    }
    io.out(`${key}: written at revision ${res.header.revision} (was ${ifRevision}; hash ${hash.slice(0, 12)})\n`);
    return 0;
  } catch (error) {
    io.err(`${key}: cannot write to etcd at ${endpoints.join(',')}: ${errorMessage(error)}\n`);
    return EXIT_UNREACHABLE;
  } finally {
    client.close();
  }
}
