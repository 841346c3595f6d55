import { runCleanups } from './cleanup.js';

/** Handle types that belong to the test runner itself (stdio), not to the code under test. */
const RUNNER_HANDLES = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'FileHandleCloseReq', 'StatWatcher']);

function leftoverHandles(): string[] {
  return process.getActiveResourcesInfo().filter((type) => !RUNNER_HANDLES.has(type));
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
  async afterAll(): Promise<void> {
    const deadline = Date.now() + 5000;
    let left = leftoverHandles();
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      left = leftoverHandles();
    }
    if (left.length > 0) {
      setTimeout(() => process.exit(1), 2000).unref();
      throw new Error(`the specs left handles open: ${left.join(', ')}`);
    }
  },
};
