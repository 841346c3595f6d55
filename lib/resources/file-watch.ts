import { type FSWatcher, watch } from 'chokidar';
import type { ResourceFactory } from '../registry/registry.js';
import type { ResourceKind } from './kind.js';

/** Registry kind (and metric label) of directory watches (certificate and key files, files secret references name). */
export const FILE_WATCH_KIND = 'file_watch';

/** What a watch is built from: the directory, and what to call (debounced) when anything in it changes. */
export interface FileWatchInput {
  /** Absolute directory path. */
  readonly dir: string;
}

/** A live watch of one directory. */
export interface FileWatch {
  readonly dir: string;
}

export interface FileWatchFactoryOptions {
  /** Called once per burst of events, `debounceMs` after the last. */
  onChange: (dir: string) => void;
  onError: (error: Error) => void;
  /** Quiet period after the last event, in ms. Default 50. */
  debounceMs?: number;
}

/**
 * The registry factory for a watch of one directory, at depth 0 with chokidar, as `FileSource`
 * watches the config: editors' rename-saves, delete and recreate, and the Kubernetes Secret
 * mount's atomic `..data` symlink swap all show as events in the directory (symlinks are not
 * followed, so the swap is a change of the link). Keyed by the directory, so a watch outlives
 * every reload that keeps using it. `create` resolves once the watch is ready; `destroy`
 * closes it and clears its timer.
 */
export function fileWatchFactory(
  input: FileWatchInput,
  options: FileWatchFactoryOptions,
): ResourceFactory<FileWatch & { watcher: FSWatcher; timer?: NodeJS.Timeout }> {
  const debounceMs = options.debounceMs ?? 50;
  return {
    async create() {
      const watcher = watch(input.dir, { depth: 0, ignoreInitial: true, atomic: false, followSymlinks: false });
      const value: FileWatch & { watcher: FSWatcher; timer?: NodeJS.Timeout } = { dir: input.dir, watcher };
      const schedule = () => {
        clearTimeout(value.timer);
        value.timer = setTimeout(() => options.onChange(input.dir), debounceMs).unref();
      };
      watcher.on('all', schedule);
      watcher.on('raw', schedule);
      watcher.on('error', (error) => options.onError(error instanceof Error ? error : new Error(String(error))));
      await new Promise<void>((resolve) => watcher.once('ready', resolve));
      return value;
    },
    async destroy(value) {
      clearTimeout(value.timer);
      await value.watcher.close();
    },
  };
}

/**
 * The `file_watch` kind: one watch per directory holding certificate or key files or files
 * secret references name; changes request a reload (trigger `files`).
 */
export const fileWatchKind: ResourceKind<FileWatchInput, FileWatch> = {
  kind: FILE_WATCH_KIND,
  key: (input) => input.dir,
  factory: (input, deps) =>
    fileWatchFactory(input, {
      onChange: () => deps.requestReload?.('files'),
      onError: (error) => deps.onBackgroundError('file_watch', error),
    }),
};
