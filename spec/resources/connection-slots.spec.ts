import { expect } from 'chai';
import { ConnectionSlots, type QueuedRequest } from '../../lib/resources/connection-slots.js';

/** A queued request that records when it was admitted. */
function waiter(name: string, streaming: boolean, admitted: string[]): QueuedRequest {
  return { streaming, admit: () => admitted.push(name) };
}

describe('ConnectionSlots', () => {
  it('admits up to capacity, then hands each freed slot to the longest waiting request', () => {
    const slots = new ConnectionSlots(2);
    const admitted: string[] = [];
    expect([slots.tryAcquire(false), slots.tryAcquire(false), slots.tryAcquire(false)]).to.deep.equal([true, true, false]);
    expect(slots.enqueue(waiter('a', false, admitted), 2)).to.equal(true);
    expect(slots.enqueue(waiter('b', false, admitted), 2)).to.equal(true);
    expect(slots.enqueue(waiter('c', false, admitted), 2)).to.equal(false);
    slots.release(false);
    expect(admitted).to.deep.equal(['a']);
    expect([slots.active, slots.pending]).to.deep.equal([2, 1]);
    slots.release(false);
    slots.release(false);
    expect(admitted).to.deep.equal(['a', 'b']);
    expect([slots.active, slots.pending]).to.deep.equal([1, 0]);
  });

  it('lets streaming requests hold half the slots, and lets others pass the streaming ones that wait', () => {
    const slots = new ConnectionSlots(4);
    const admitted: string[] = [];
    expect(slots.streamingCapacity).to.equal(2);
    expect([slots.tryAcquire(true), slots.tryAcquire(true), slots.tryAcquire(true)]).to.deep.equal([true, true, false]);
    slots.enqueue(waiter('s1', true, admitted), 10);
    expect(slots.tryAcquire(false)).to.equal(true);
    slots.enqueue(waiter('s2', true, admitted), 10);
    expect(slots.tryAcquire(false)).to.equal(true);
    slots.enqueue(waiter('n1', false, admitted), 10);
    // A plain request frees a slot: the streaming waiters ahead still may not take it, n1 does.
    slots.release(false);
    expect(admitted).to.deep.equal(['n1']);
    slots.release(true);
    expect(admitted).to.deep.equal(['n1', 's1']);
    expect([slots.active, slots.streaming, slots.pending]).to.deep.equal([4, 2, 1]);
  });

  it('forgets a cancelled waiter, and a single slot is never reserved away from streaming requests', () => {
    const slots = new ConnectionSlots(1);
    const admitted: string[] = [];
    expect(slots.streamingCapacity).to.equal(1);
    expect(slots.tryAcquire(true)).to.equal(true);
    const gone = waiter('gone', false, admitted);
    slots.enqueue(gone, 5);
    slots.enqueue(waiter('next', false, admitted), 5);
    slots.cancel(gone);
    slots.release(true);
    expect(admitted).to.deep.equal(['next']);
  });
});
