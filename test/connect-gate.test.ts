// The connect gate (proxy.max_connecting) as pure bookkeeping, no sockets: at most `limit`
// connects in flight per member, the rest wait in arrival order and start one per completed
// connect; members are independent; a waiting item can leave, be taken out (re-routed or
// closed) and a reload's new limit lets waiters start at once.
import t from 'tap';
import { ConnectGate } from '../src/proxy/connect-gate.js';

t.test('past the limit items wait and start in arrival order, one per completion', async (t) => {
  const g = new ConnectGate<string>(2);
  t.same(
    ['c1', 'c2', 'c3', 'c4', 'c5'].map((c) => g.enter('a', c)),
    [true, true, false, false, false],
  );
  t.equal(g.inFlight('a'), 2);
  t.equal(g.waiting, 3);
  t.equal(g.done('a'), 'c3', 'the oldest waiter starts when a connect completes');
  t.equal(g.inFlight('a'), 2, 'and counts in flight');
  t.equal(g.done('a'), 'c4');
  t.equal(g.done('a'), 'c5');
  t.equal(g.waiting, 0);
  t.equal(g.done('a'), undefined, 'none waiting');
  t.equal(g.inFlight('a'), 1);
  t.equal(g.done('a'), undefined);
  t.equal(g.inFlight('a'), 0);
  t.equal(g.done('a'), undefined, 'a done() too many never goes below zero');
  t.equal(g.inFlight('a'), 0);
  t.equal(g.enter('a', 'c6'), true, 'room again');
});

t.test('a new item never overtakes a waiting one', async (t) => {
  const g = new ConnectGate<number>(1);
  t.ok(g.enter('a', 1));
  t.notOk(g.enter('a', 2));
  t.equal(g.done('a'), 2);
  t.notOk(g.enter('a', 3), 'the slot went to the waiter, not to the newcomer');
  t.equal(g.done('a'), 3);
});

t.test('members are bounded each on its own', async (t) => {
  const g = new ConnectGate<string>(1);
  t.ok(g.enter('a', 'a1'));
  t.notOk(g.enter('a', 'a2'));
  t.ok(g.enter('b', 'b1'), "a's queue does not hold b back");
  t.notOk(g.enter('b', 'b2'));
  t.equal(g.done('b'), 'b2', "a completion on b starts b's waiter");
  t.equal(g.waiting, 1);
  t.equal(g.done('a'), 'a2');
});

t.test('limit 0: unbounded, nothing waits', async (t) => {
  const g = new ConnectGate<number>(0);
  let started = 0;
  for (let i = 0; i < 10_000; i++) if (g.enter('a', i)) started++;
  t.equal(started, 10_000, 'every connect starts at once');
  t.equal(g.waiting, 0);
  t.equal(g.inFlight('a'), 10_000);
  t.equal(g.done('a'), undefined);
});

t.test('a waiting item that leaves is never started', async (t) => {
  const g = new ConnectGate<string>(1);
  g.enter('a', 'c1');
  g.enter('a', 'c2');
  g.enter('a', 'c3');
  t.ok(g.drop('c2'));
  t.notOk(g.drop('c2'), 'dropped once');
  t.notOk(g.drop('c1'), 'an item in flight is not waiting');
  t.equal(g.waiting, 1);
  t.equal(g.done('a'), 'c3');
  t.equal(g.done('a'), undefined);
});

t.test('take: the waiters of the selected members, oldest first; in-flight counts stay', async (t) => {
  const g = new ConnectGate<string>(1);
  for (const c of ['a1', 'a2', 'a3']) g.enter('a', c);
  for (const c of ['b1', 'b2']) g.enter('b', c);
  t.same(
    g.take((m) => m !== 'b'),
    [
      ['a', 'a2'],
      ['a', 'a3'],
    ],
    'the waiters of a member that lost the role',
  );
  t.equal(g.waiting, 1);
  t.equal(g.inFlight('a'), 1, 'the connect still under way to a keeps its slot until it completes');
  t.equal(g.done('a'), undefined);
  t.same(g.take(), [['b', 'b2']], 'all the rest (shutdown)');
  t.equal(g.waiting, 0);
  t.equal(g.done('b'), undefined);
});

t.test('setLimit: a higher limit starts waiters at once, a lower one lets fewer start', async (t) => {
  const g = new ConnectGate<number>(1);
  for (let i = 1; i <= 6; i++) g.enter('a', i);
  g.enter('b', 10);
  g.enter('b', 11);
  t.same(g.setLimit(3), [
    ['a', 2],
    ['a', 3],
    ['b', 11],
  ]);
  t.equal(g.inFlight('a'), 3);
  t.same(g.setLimit(1), [], 'lowering starts nothing');
  t.equal(g.done('a'), undefined, 'still 2 in flight against a limit of 1: nothing starts');
  t.equal(g.done('a'), undefined);
  t.equal(g.done('a'), 4, 'below the new limit again: the next starts');
  t.same(
    g.setLimit(0),
    [
      ['a', 5],
      ['a', 6],
    ],
    'unbounded: every waiter starts',
  );
  t.equal(g.waiting, 0);
});

t.test('a table of random interleavings keeps the invariants', async (t) => {
  // A small deterministic generator: the same sequence every run.
  let seed = 14;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (let run = 0; run < 200; run++) {
    const limit = 1 + rand(4);
    const g = new ConnectGate<number>(limit);
    const inFlight = new Map<string, number[]>();
    const waiting = new Map<string, number[]>();
    let next = 0;
    let ok = true;
    for (let step = 0; step < 200 && ok; step++) {
      const member = rand(2) === 0 ? 'a' : 'b';
      const fl = inFlight.get(member) ?? [];
      const wt = waiting.get(member) ?? [];
      inFlight.set(member, fl);
      waiting.set(member, wt);
      const op = rand(3);
      if (op === 0) {
        const item = next++;
        if (g.enter(member, item)) fl.push(item);
        else wt.push(item);
      } else if (op === 1 && fl.length > 0) {
        fl.splice(rand(fl.length), 1);
        const started = g.done(member);
        const expected = wt.shift();
        ok = started === expected;
        if (expected !== undefined) fl.push(expected);
      } else if (op === 2 && wt.length > 0) {
        const [gone] = wt.splice(rand(wt.length), 1);
        ok = g.drop(gone!);
      }
      ok &&= g.inFlight(member) === fl.length && fl.length <= limit;
      ok &&= wt.length === 0 || fl.length === limit;
    }
    if (!ok) return t.fail(`run ${run}: the gate broke FIFO order or its bound`);
  }
  t.pass('200 runs of 200 steps: FIFO order, the bound, waiters only while full');
});
