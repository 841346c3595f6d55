/** Where a command writes: `out` for its result, `err` for errors and diagnostics. */
export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** The process's stdout and stderr. */
export const processIo: Io = { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s) };
