import t from 'tap';
import { DeadlineQueue, type Deadlined } from '../src/proxy/deadline-queue.js';

// The one timer behind raw connect timeouts (deadline-queue.ts). The clock is the test's:
// `now` returns what the test set, so expiry order is asserted without waiting on time.
// The queue's timer is unref'd (connects keep the daemon alive by their own handles), so
// this keeps the test process alive while it waits.
const keepAlive = setInterval(() => undefined, 1000);
t.teardown(() => clearInterval(keepAlive));

interface Item extends Deadlined {
  readonly name: string;
  deadline: number;
  done: boolean;
  queueSlot: number;
}

function setup(): {
  q: DeadlineQueue<Item>;
  expired: string[];
  clock: { now: number };
  next: () => Promise<void>;
} {
  const clock = { now: 0 };
  const expired: string[] = [];
  let wake: (() => void) | null = null;
  const q = new DeadlineQueue<Item>(
    (item) => {
      expired.push(item.name);
      wake?.();
    },
    () => clock.now,
  );
  const next = (): Promise<void> => new Promise((resolve) => (wake = resolve));
  return { q, expired, clock, next };
}

const item = (name: string, deadline: number): Item => ({ name, deadline, done: false, queueSlot: -1 });

t.test('entries expire in order; finished ones never do', async (t) => {
  const { q, expired, next } = setup();
  const a = item('a', 0);
  const b = item('b', 0);
  const c = item('c', 0);
  q.push(a);
  q.push(b);
  q.push(c);
  b.done = true;
  const fired = next();
  await fired;
  t.same(expired, ['a', 'c'], 'a and c expired (deadline reached), b had finished');
  t.equal(q.size, 0, 'nothing left');
});

t.test('an entry not yet due waits for its time; the ones before it expire', async (t) => {
  const { q, expired, clock, next } = setup();
  q.push(item('due', 0));
  const later = item('later', 20);
  q.push(later);
  await next();
  t.same(expired, ['due']);
  t.equal(q.size, 1, 'the later one still waits');
  clock.now = 25;
  await next();
  t.same(expired, ['due', 'later'], 'expired once its deadline passed on the clock');
});

t.test('clear drops every entry and the timer', async (t) => {
  const { q, expired } = setup();
  q.push(item('x', 0));
  q.clear();
  t.equal(q.size, 0);
  // A timer left armed would have fired by then (its deadline was already due).
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.same(expired, [], 'nothing expired after clear');
});

t.test('thousands of finished entries are skipped and the array is compacted', async (t) => {
  const { q, expired, clock, next } = setup();
  const items = Array.from({ length: 5000 }, (_, i) => item(`i${i}`, 100));
  for (const it of items) q.push(it);
  for (const it of items.slice(0, 4999)) it.done = true;
  clock.now = 100;
  await next();
  t.same(expired, ['i4999'], 'only the one still pending expired');
  t.equal(q.size, 0);
});

t.test('a removed entry never expires and leaves the queue at once', async (t) => {
  const { q, expired, next } = setup();
  const a = item('a', 0);
  const b = item('b', 0);
  q.push(a);
  q.push(b);
  q.remove(a);
  t.equal(q.size, 1, 'counted out as soon as it is removed');
  q.remove(a);
  q.remove(item('never-queued', 0));
  t.equal(q.size, 1, 'removing twice, or an entry never queued, changes nothing');
  await next();
  t.same(expired, ['b']);
  t.equal(q.size, 0);
});

t.test('removal finds its entry after the array was compacted', async (t) => {
  const { q, expired, clock, next } = setup();
  const first = Array.from({ length: 3000 }, (_, i) => item(`f${i}`, 100));
  const second = Array.from({ length: 2000 }, (_, i) => item(`s${i}`, 200));
  for (const it of [...first, ...second]) q.push(it);
  clock.now = 100;
  await next();
  t.equal(expired.length, 3000, 'the first 3,000 expired');
  t.equal(q.size, 2000);
  // The queue compacted its array past the expired head; slots must still point right.
  q.remove(second[1000]!);
  q.remove(first[5]!);
  t.equal(q.size, 1999, 'only the queued entry counted out');
  expired.length = 0;
  // One wake per expiry: wait for the last one.
  const last = second[1999]!.name;
  clock.now = 200;
  while (!expired.includes(last)) await next();
  t.equal(expired.length, 1999);
  t.notOk(expired.includes('s1000'), 'the removed entry did not expire');
  t.equal(q.size, 0);
});
