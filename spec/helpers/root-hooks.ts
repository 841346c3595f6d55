import { runCleanups } from '../../harness/cleanup.js';
import { sleep } from '../../harness/wait.js';

/** Handle types that belong to the test runner itself (stdio), not to the code under test. */
const RUNNER_HANDLES = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'FileHandleCloseReq', 'StatWatcher']);

/** Active handles minus the runner's own: what code under test holds open. */
export function leftoverHandles(): string[] {
  return process.getActiveResourcesInfo().filter((type) => !RUNNER_HANDLES.has(type));
}

function withoutOne(types: string[], type: string): string[] {
  const i = types.indexOf(type);
  return i < 0 ? types : [...types.slice(0, i), ...types.slice(i + 1)];
}

/**
 * Root hooks: per-test cleanup, and a final check that the whole run left no handle open
 * (servers, sockets, timers, watchers, child processes). mocha runs without `exit: true`, so a
 * leaked handle would otherwise hang the run; here it fails it, listing what was left, and an
 * unref'd timer ends the process if the leak keeps it alive.
 */
export const mochaHooks = {
  async afterEach(): Promise<void> {
    await runCleanups();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(15_000); // the wait below is bounded at 5 s on its own
    const deadline = Date.now() + 5000;
    let left = leftoverHandles();
    while (left.length > 0 && Date.now() < deadline) {
      await sleep(50);
      // Once this hook has returned its promise, mocha arms its own timeout timer for it (even
      // with this.timeout(0)); that one Timeout is the runner's, not a leak.
      left = withoutOne(leftoverHandles(), 'Timeout');
    }
    if (left.length > 0) {
      setTimeout(() => process.exit(1), 2000).unref();
      throw new Error(`the specs left handles open: ${left.join(', ')}`);
    }
  },
};
