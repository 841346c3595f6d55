import { expect } from 'chai';
import sinon from 'sinon';
import { type Deadlined, DeadlineList } from '../../lib/dataplane/proxy/deadline.js';

/** An entry that records when (fake ms since the start) it expired. */
function entry(name: string, expired: string[]): Deadlined {
  return { deadlineAt: 0, prevDeadline: undefined, nextDeadline: undefined, expire: () => expired.push(name) };
}

describe('DeadlineList', () => {
  let clock: sinon.SinonFakeTimers;
  beforeEach(() => {
    clock = sinon.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => clock.restore());

  it('expires each entry once its budget passed, in the order they started, with one timer', () => {
    const list = new DeadlineList(100);
    const expired: string[] = [];
    list.add(entry('a', expired));
    clock.tick(30);
    list.add(entry('b', expired));
    expect(clock.countTimers()).to.equal(1);
    clock.tick(69);
    expect(expired).to.deep.equal([]);
    clock.tick(1);
    expect(expired).to.deep.equal(['a']);
    clock.tick(29);
    expect(expired).to.deep.equal(['a']);
    clock.tick(1);
    expect(expired).to.deep.equal(['a', 'b']);
    expect(clock.countTimers()).to.equal(0);
  });

  it('never expires an entry removed before its deadline, wherever it is in the list', () => {
    const list = new DeadlineList(100);
    const expired: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((name) => entry(name, expired)) as [Deadlined, Deadlined, Deadlined];
    list.add(a);
    list.add(b);
    list.add(c);
    list.remove(b);
    list.remove(a);
    list.remove(a);
    clock.tick(100);
    expect(expired).to.deep.equal(['c']);
    // Removing an entry no longer listed changes nothing.
    list.remove(c);
    const d = entry('d', expired);
    list.add(d);
    clock.tick(100);
    expect(expired).to.deep.equal(['c', 'd']);
  });

  it('lets an expiring entry add another, which gets a full budget of its own', () => {
    const list = new DeadlineList(50);
    const expired: string[] = [];
    const again = entry('again', expired);
    const first = entry('first', expired);
    list.add({
      ...first,
      expire: () => {
        first.expire();
        list.add(again);
      },
    });
    clock.tick(50);
    expect(expired).to.deep.equal(['first']);
    clock.tick(49);
    expect(expired).to.deep.equal(['first']);
    clock.tick(1);
    expect(expired).to.deep.equal(['first', 'again']);
  });

  it('stops its timer on close: nothing listed expires after', () => {
    const list = new DeadlineList(100);
    const expired: string[] = [];
    list.add(entry('a', expired));
    list.close();
    expect(clock.countTimers()).to.equal(0);
    clock.tick(1000);
    expect(expired).to.deep.equal([]);
  });
});
