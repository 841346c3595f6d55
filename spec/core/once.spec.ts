import { expect } from 'chai';
import sinon from 'sinon';
import { rejectionOf } from '../../harness/wait.js';
import { Once } from '../../lib/core/once.js';

describe('Once', () => {
  it('does nothing until the first call', () => {
    const fn = sinon.spy(() => 1);
    const once = new Once(fn);
    expect(once.called).to.equal(false);
    expect(fn.called).to.equal(false);
  });

  it('runs fn once and hands every caller, concurrent or later, the same promise', async () => {
    const fn = sinon.spy(async () => 'closed');
    const once = new Once(fn);
    const first = once.call();
    const second = once.call();
    expect(second).to.equal(first);
    expect(once.called).to.equal(true);
    expect(await first).to.equal('closed');
    expect(once.call()).to.equal(first);
    expect(fn.callCount).to.equal(1);
  });

  it('makes a second caller wait until the work started by the first has finished', async () => {
    let finish!: () => void;
    const once = new Once(() => new Promise<void>((resolve) => (finish = resolve)));
    const order: string[] = [];
    const first = once.call().then(() => order.push('first'));
    const second = once.call().then(() => order.push('second'));
    order.push('work finishing');
    finish();
    await Promise.all([first, second]);
    expect(order).to.deep.equal(['work finishing', 'first', 'second']);
  });

  it('turns a synchronous throw into the rejection every caller gets, without running fn again', async () => {
    const boom = new Error('close failed');
    const fn = sinon.spy((): void => {
      throw boom;
    });
    const once = new Once(fn);
    let promise: Promise<void> | undefined;
    expect(() => {
      promise = once.call();
    }).to.not.throw();
    expect(await rejectionOf(promise!)).to.equal(boom);
    expect(await rejectionOf(once.call())).to.equal(boom);
    expect(fn.callCount).to.equal(1);
  });

  it('passes a synchronous value through', async () => {
    expect(await new Once(() => 42).call()).to.equal(42);
  });
});
