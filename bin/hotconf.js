#!/usr/bin/env node
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (error) {
  // A checkout installed with --omit=dev has no compiled dist/ (and no TypeScript to build it).
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('dist/cli/main.js')) {
    process.stderr.write('hotconf: dist/ is not built: run `npm ci` (with dev dependencies) in this checkout, or install the packed package (npm pack)\n');
    process.exit(1);
  }
  throw error;
}
await cli.main();
