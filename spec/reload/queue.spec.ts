import { expect } from 'chai';
import sinon from 'sinon';
import { turnsUntil } from '../../harness/wait.js';
import { type ReloadJob, ReloadQueue } from '../../lib/reload/queue.js';
import type { RawDocument } from '../../lib/sources/source.js';

function doc(version: string): RawDocument {
  return { text: `# ${version}`, version, source: { kind: 'file', path: '/etc/hotconf.yaml' } };
}

/**
 * A `run` whose jobs finish only when the spec says so: `jobs` records what each run was asked,
 * `finish(result)` ends the oldest unfinished one.
 */
function gatedRun() {
  const jobs: ReloadJob[] = [];
  const gates: ((result: string) => void)[] = [];
  let running = 0;
  let maxRunning = 0;
  const run = sinon.spy((job: ReloadJob) => {
    jobs.push(job);
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    return new Promise<string>((resolve) => gates.push(resolve)).finally(() => (running -= 1));
  });
  /** Wait until the `n`th job has started: it starts within a few microtask turns, never on a timer. */
  const started = (n: number) => turnsUntil(`job ${n} to start`, () => jobs.length >= n);
  const finish = (result: string) => gates.shift()!(result);
  return { run, jobs, started, finish, maxRunning: () => maxRunning };
}

describe('ReloadQueue', () => {
  it('runs a request as a job and resolves with its result', async () => {
    const { run, jobs, started, finish } = gatedRun();
    const queue = new ReloadQueue(run);
    const result = queue.enqueue('start', { pull: true });
    await started(1);
    expect(jobs).to.deep.equal([{ pull: true, doc: undefined, trigger: 'start' }]);
    finish('applied');
    expect(await result).to.equal('applied');
  });

  it('coalesces the requests that arrive while a job runs into one next job: any pull, the latest document, the latest trigger', async () => {
    const { run, jobs, started, finish } = gatedRun();
    const queue = new ReloadQueue(run);
    const first = queue.enqueue('start', { pull: true });
    await started(1);
    const during = [
      queue.enqueue('watch', { pull: false, doc: doc('v1') }),
      queue.enqueue('signal', { pull: true }),
      queue.enqueue('watch', { pull: false, doc: doc('v2') }),
      queue.enqueue('api', { pull: false }),
    ];
    finish('first');
    expect(await first).to.equal('first');
    await started(2);
    expect(jobs[1]).to.deep.equal({ pull: true, doc: doc('v2'), trigger: 'api' });
    finish('second');
    expect(await Promise.all(during)).to.deep.equal(['second', 'second', 'second', 'second']);
    expect(run.callCount).to.equal(2);
  });

  it('keeps a pushed document without a pull when no request asked to re-read', async () => {
    const { run, jobs, started, finish } = gatedRun();
    const queue = new ReloadQueue(run);
    void queue.enqueue('start', { pull: true });
    await started(1);
    const next = queue.enqueue('watch', { pull: false, doc: doc('v3') });
    finish('first');
    await started(2);
    expect(jobs[1]).to.deep.equal({ pull: false, doc: doc('v3'), trigger: 'watch' });
    finish('second');
    expect(await next).to.equal('second');
  });

  it('runs one job at a time: a burst of 100 requests costs two jobs', async () => {
    const { run, started, finish, maxRunning } = gatedRun();
    const queue = new ReloadQueue(run);
    const results = Array.from({ length: 100 }, (_, i) => queue.enqueue('signal', { pull: i % 2 === 0 }));
    await started(1);
    finish('one');
    await started(2);
    finish('two');
    const settled = await Promise.all(results);
    expect(settled[0]).to.equal('one');
    expect(new Set(settled.slice(1))).to.deep.equal(new Set(['two']));
    expect(run.callCount).to.equal(2);
    expect(maxRunning()).to.equal(1);
  });

  it('reports busy while a job runs or waits, exposes the running job, and idle() waits for the follow-up too', async () => {
    const { run, started, finish } = gatedRun();
    const queue = new ReloadQueue(run);
    expect(queue.busy).to.equal(false);
    expect(queue.running).to.equal(undefined);
    await queue.idle();
    void queue.enqueue('start', { pull: true });
    await started(1);
    expect(queue.busy).to.equal(true);
    expect(queue.running).to.be.instanceOf(Promise);
    void queue.enqueue('api', { pull: true });
    let idle = false;
    const idling = queue.idle().then(() => (idle = true));
    finish('one');
    await started(2);
    expect(idle).to.equal(false);
    expect(queue.busy).to.equal(true);
    finish('two');
    await idling;
    expect(queue.busy).to.equal(false);
    expect(queue.running).to.equal(undefined);
  });

  describe('close', () => {
    it('answers queued requests with the close result at once, lets the running job finish, and runs nothing more', async () => {
      const { run, started, finish } = gatedRun();
      const queue = new ReloadQueue(run);
      const running = queue.enqueue('start', { pull: true });
      await started(1);
      const queued = [queue.enqueue('watch', { pull: false, doc: doc('v1') }), queue.enqueue('api', { pull: true })];
      queue.close(() => 'stopped');
      expect(await Promise.all(queued)).to.deep.equal(['stopped', 'stopped']);
      expect(queue.busy).to.equal(true);
      finish('applied');
      expect(await running).to.equal('applied');
      await queue.idle();
      expect(run.callCount).to.equal(1);
      expect(queue.busy).to.equal(false);
    });

    it('answers every later request with the close result without running it', async () => {
      const run = sinon.spy(async () => 'ran');
      const queue = new ReloadQueue(run);
      const result = sinon.spy(() => 'stopped');
      queue.close(result);
      expect(await queue.enqueue('api', { pull: true })).to.equal('stopped');
      expect(await queue.enqueue('watch', { pull: false, doc: doc('v1') })).to.equal('stopped');
      expect(queue.busy).to.equal(false);
      expect(run.called).to.equal(false);
      expect(result.callCount).to.equal(2);
    });

    it('is idempotent: the first close result stays', async () => {
      const queue = new ReloadQueue(async () => 'ran');
      queue.close(() => 'first');
      queue.close(() => 'second');
      expect(await queue.enqueue('api', { pull: true })).to.equal('first');
    });
  });
});
