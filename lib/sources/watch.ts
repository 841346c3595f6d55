import { type FSWatcher, watch } from 'chokidar';
import type { Logger } from '../core/log.js';
import type { RawDocument, SourceWatchHandlers } from './source.js';

/** What `watchConfigDirs` reports to. */
export interface ConfigDirWatch {
  /** Only paths this accepts are reported (chokidar's `ignored`, inverted); default every entry of the directories. */
  accept?: (path: string) => boolean;
  log: Logger;
  /** A chokidar event (add, change, unlink, ...) on `path`. */
  onEvent(path: string): void;
  /** A raw file-system event naming `name` (a file name, or nothing). */
  onRaw(name: unknown): void;
  onError(error: Error): void;
}

/**
 * Watch the entries directly in `dirs` with chokidar, as the file-backed sources (`FileSource`,
 * `DirectorySource`) do: no initial events; chokidar's unlink/add folding off (every event
 * re-reads what it names, so folding would only add delay); symlinks not followed, so a
 * replaced symlink (Kubernetes' `..data`) is a change of the link; raw events passed on too,
 * since a symlink renamed over another reaches us only as one. Returns the watcher at once, so
 * the caller holds it (and can close it) while it gets ready (`whenReady`).
 */
export function watchConfigDirs(dirs: readonly string[], watch_: ConfigDirWatch): FSWatcher {
  const { accept } = watch_;
  const watcher = watch([...dirs], {
    depth: 0,
    ignoreInitial: true,
    atomic: false,
    followSymlinks: false,
    ...(accept ? { ignored: (path: string) => !accept(path) } : {}),
  });
  watcher.on('all', (event, path) => {
    watch_.log.debug({ event, path }, 'file_event');
    watch_.onEvent(path);
  });
  watcher.on('raw', (_event, name) => watch_.onRaw(name));
  watcher.on('error', (error) => watch_.onError(error instanceof Error ? error : new Error(String(error))));
  return watcher;
}

/** Resolves once `watcher` has scanned what it watches: events from then on are reported. */
export function whenReady(watcher: FSWatcher): Promise<void> {
  return new Promise<void>((resolveReady) => watcher.once('ready', resolveReady));
}

/**
 * A watched source's check after its debounce: `read` the document and report it, unless the
 * source closed meanwhile (`closed`) or its version is `previous` (the last one read); a read
 * that fails is reported to `onError` and the last document stays in force.
 */
export async function reportIfChanged(
  read: () => Promise<RawDocument>,
  previous: string | undefined,
  closed: () => boolean,
  handlers: SourceWatchHandlers,
): Promise<void> {
  let doc: RawDocument;
  try {
    doc = await read();
  } catch (error) {
    handlers.onError(error as Error);
    return;
  }
  if (closed() || doc.version === previous) return;
  handlers.onDocument(doc);
}
