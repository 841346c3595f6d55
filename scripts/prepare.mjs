// npm runs `prepare` after `npm install` / `npm ci` in a checkout, for git dependencies, and
// before `npm pack` / `npm publish`. It builds dist/ when TypeScript is installed (a development
// install), and skips with a note when it is not: `npm ci --omit=dev` must not fail for want of a
// dev dependency (it has no dist/ to run, though: a production install is the packed package).
// Packing builds in `prepack` (from a clean dist/), so it is not built twice here.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

if (process.env.npm_command === 'pack' || process.env.npm_command === 'publish') process.exit(0);
let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  process.stderr.write('hotconf prepare: TypeScript is not installed (an --omit=dev install): dist/ not built\n');
  process.exit(0);
}
const { status } = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
process.exit(status ?? 1);
