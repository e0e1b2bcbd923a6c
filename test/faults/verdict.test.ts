/**
 * The fault suite's judge, tested without a network: the verdict rules on hand-made
 * balancer logs and sessions, and the load client (a real process on loopback) against
 * proxies that corrupt, drop, reorder, cut or stall the stream, so that "nothing lost"
 * in the matrix is a claim these checks could have refuted.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { startProc } from './lib/proc.js';
import {
  countSessions,
  demotions,
  firstGreeting,
  maxWaitMs,
  routableAfter,
  timeline,
  unroutableAfter,
  violations,
  type SessionRecord,
} from './lib/verdict.js';
import { withSim } from '../helpers/sim.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (ms: number): string => new Date(T0 + ms).toISOString();
const log = (ms: number, msg: string, extra: Record<string, unknown> = {}) => ({
  time: at(ms),
  mirror: 'ap1',
  msg,
  ...extra,
});

/** ap1a primary from 0 to 1000 (suspect from 600), nobody until 1500, then ap1b. */
const LOGS = [
  log(0, 'member promoted', { member: 'ap1a', from: 'unknown', to: 'primary' }),
  log(0, 'primary found', { from: null, to: 'ap1a' }),
  log(600, 'member demoted', { member: 'ap1a', from: 'primary', to: 'suspect' }),
  log(600, 'mirror not accepting: holding new clients', { primary: 'ap1a' }),
  log(1000, 'member role changed', { member: 'ap1a', from: 'suspect', to: 'unreachable' }),
  log(1500, 'member promoted', { member: 'ap1b', from: 'backup', to: 'primary' }),
  log(1500, 'failover', { from: 'ap1a', to: 'ap1b' }),
  { time: at(1600), mirror: 'ap2', msg: 'failover', from: 'ap2a', to: 'ap2b' },
];

let nextId = 0;
/** A session from offsets in ms after T0; greeted 1 ms after connecting unless told otherwise. */
function session(p: Partial<SessionRecord> & { tConnect: number; tEnd: number }): SessionRecord {
  const member = p.member === undefined ? 'ap1a' : p.member;
  const greet = p.tGreet === undefined ? (member === null ? null : p.tConnect + 1) : p.tGreet;
  return {
    id: ++nextId,
    mirror: 'ap1',
    kind: 'short',
    outcome: 'completed',
    rounds: 3,
    sent: 100,
    verified: 100,
    endedBy: 'fin',
    detail: null,
    ...p,
    member,
    tConnect: T0 + p.tConnect,
    tGreet: greet === null ? null : T0 + greet,
    tEnd: T0 + p.tEnd,
  };
}

t.test('timeline: who took new clients and who held the role, from the log alone', async (t) => {
  const tl = timeline(LOGS, 'ap1');
  t.same(tl.routable, [
    { member: 'ap1a', from: T0, to: T0 + 600 },
    { member: 'ap1b', from: T0 + 1500, to: Infinity },
  ]);
  t.same(tl.holder, [
    { member: 'ap1a', from: T0, to: T0 + 1000 },
    { member: 'ap1b', from: T0 + 1500, to: Infinity },
  ]);
  t.same(demotions(tl, 'ap1a'), [T0 + 1000]);
  t.equal(unroutableAfter(tl, 'ap1a', T0 + 100), 500);
  t.equal(unroutableAfter(tl, 'ap1b', T0 + 2000), null, 'still taking clients');
  t.equal(routableAfter(tl, 'ap1b', T0 + 1000), 500);
  t.same(timeline(LOGS, 'ap2').routable, [{ member: 'ap2b', from: T0 + 1600, to: Infinity }], 'per mirror');
});

t.test('violations: each rule can fail', async (t) => {
  const tl = timeline(LOGS, 'ap1');
  const clean = [
    session({ tConnect: 100, tEnd: 400 }),
    session({ tConnect: 200, tEnd: 1010, outcome: 'closed' }),
    session({ tConnect: 700, tGreet: 1520, tEnd: 1800, member: 'ap1b' }),
  ];
  t.same(violations(clean, tl, 100), { list: [], maxOutliveMs: 10 });

  const bad = violations(
    [
      session({ tConnect: 700, tGreet: 710, tEnd: 900 }),
      session({ tConnect: 200, tEnd: 1400, outcome: 'closed' }),
      session({ tConnect: 300, tEnd: 500, outcome: 'corrupt', detail: 'echo differs at byte 7' }),
      session({ tConnect: 300, tEnd: 5300, outcome: 'stalled', member: null, tGreet: null }),
    ],
    tl,
    100,
  );
  t.same(
    bad.list.map((v) => v.rule),
    ['to_demoted', 'outlived', 'corrupt', 'stalled'],
  );
  t.equal(bad.maxOutliveMs, 400);
});

t.test('a session is held to the demotion of the role span it was linked in', async (t) => {
  const flap = [
    log(0, 'primary found', { from: null, to: 'ap1a' }),
    log(1000, 'failover', { from: 'ap1a', to: 'ap1b' }),
    log(1100, 'failover', { from: 'ap1b', to: 'ap1a' }),
    log(1500, 'failover', { from: 'ap1a', to: 'ap1b' }),
  ];
  const tl = timeline(flap, 'ap1');
  const relinked = session({ tConnect: 1050, tGreet: 1105, tEnd: 1502, outcome: 'closed' });
  t.same(violations([relinked], tl, 100), { list: [], maxOutliveMs: 2 }, 'linked after the re-promotion');
  const kept = session({ tConnect: 900, tEnd: 1300, outcome: 'closed' });
  t.same(
    violations([kept], tl, 100).list.map((v) => v.rule),
    ['outlived'],
    'one that lived through a demotion is caught even if its member got the role back',
  );
});

t.test('counts, waits and first greetings', async (t) => {
  const s = [
    session({ tConnect: 0, tEnd: 10 }),
    session({ tConnect: 0, tEnd: 10, outcome: 'closed' }),
    session({ tConnect: 0, tEnd: 20, outcome: 'no_greeting', member: null, tGreet: null }),
    session({ tConnect: 0, tEnd: 10_000, outcome: 'no_greeting', member: null, tGreet: null }),
    session({ tConnect: 1000, tGreet: 1600, tEnd: 1700, member: 'ap1b' }),
  ];
  t.same(countSessions(s, 10_000), {
    total: 5,
    completed: 2,
    cut: 2,
    holdTimeouts: 1,
    refused: 0,
    corrupt: 0,
    stalled: 0,
  });
  t.equal(maxWaitMs(s), 10_000);
  t.equal(firstGreeting(s, 'ap1b', T0 + 1500), 100);
  t.equal(firstGreeting(s, 'ap1b', T0 + 1700), null);
});

// ---------------------------------------------------------------------------------------
// The load client against proxies that break the stream in each way it must notice.

const LOAD = fileURLToPath(new URL('./lib/load-client.mjs', import.meta.url));

type Tamper = (chunk: Buffer, n: number, down: net.Socket, up: net.Socket) => Buffer | null;

/** A TCP proxy to `port` that passes member → client chunks through `tamper` (null: swallow). */
async function tamperingProxy(t: Test, port: number, tamper: Tamper): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const member = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let n = 0;
    client.on('error', () => member.destroy());
    member.on('error', () => client.destroy());
    client.pipe(member);
    member.on('data', (c: Buffer) => {
      const out = tamper(c, n++, client, member);
      if (out && out.length > 0) client.write(out);
    });
    member.on('end', () => client.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  t.teardown(() => server.unref());
  return (server.address() as net.AddressInfo).port;
}

async function runLoad(t: Test, port: number): Promise<SessionRecord[]> {
  const cfg = {
    targets: [{ mirror: 'm', host: '127.0.0.1', port, short: 2 }],
    stallMs: 1000,
    greetTimeoutMs: 2000,
    frameMax: 4096,
  };
  const p = startProc('load', [process.execPath, LOAD, JSON.stringify(cfg)]);
  t.teardown(() => p.kill());
  await p.waitFor((l) => l.type === 'ready', 10_000, 'ready');
  await new Promise((r) => setTimeout(r, 700));
  p.send('stop');
  await p.waitFor((l) => l.type === 'done', 15_000, 'done');
  return p.lines.filter((l) => l.type === 'session') as unknown as SessionRecord[];
}

t.test('the load client notices every way a stream can break', async (t) => {
  const sim = await withSim(t, { name: 'ap1a', role: 'primary' });
  const outcomes = (ss: SessionRecord[]): string[] => [...new Set(ss.map((s) => s.outcome))].sort();

  const honest = await runLoad(t, await tamperingProxy(t, sim.superserverPort, (c) => c));
  t.ok(honest.length >= 2, `${honest.length} sessions through an honest proxy`);
  t.same(outcomes(honest), ['completed'], 'an honest stream completes');
  t.ok(honest.every((s) => s.member === 'ap1a' && s.verified === s.sent));

  const cases: Array<[string, Tamper, string, RegExp]> = [
    [
      'a flipped byte',
      (c, n) => (n === 2 ? Buffer.concat([c.subarray(0, 1), Buffer.from([c[1]! ^ 1]), c.subarray(2)]) : c),
      'corrupt',
      /differs/,
    ],
    ['a lost byte, the stream going on', (c, n) => (n === 2 ? c.subarray(1) : c), 'corrupt', /differs/],
    [
      'two bytes swapped',
      (c, n) => {
        // Two neighbours that differ (a frame header starts with zeros).
        const i = c.findIndex((b, k) => k + 1 < c.length && b !== c[k + 1]);
        if (n !== 2 || i < 0) return c;
        const out = Buffer.from(c);
        [out[i], out[i + 1]] = [c[i + 1]!, c[i]!];
        return out;
      },
      'corrupt',
      /differs/,
    ],
    [
      'bytes nobody sent',
      (c, n) => (n === 2 ? Buffer.concat([c, Buffer.from('extra')]) : c),
      'corrupt',
      /more bytes than were sent|differs at byte/,
    ],
    [
      'a cut mid-stream',
      (c, n, down, up) => {
        if (n !== 2) return c;
        down.destroy();
        up.destroy();
        return null;
      },
      'closed',
      /after/,
    ],
    ['a stream that stops', (c, n) => (n >= 2 ? null : c), 'stalled', /no progress/],
  ];
  for (const [what, tamper, outcome, detail] of cases) {
    const ss = await runLoad(t, await tamperingProxy(t, sim.superserverPort, tamper));
    const hit = ss.filter((s) => s.outcome === outcome);
    t.ok(hit.length > 0, `${what}: ${outcome} (${outcomes(ss).join(', ')})`);
    t.ok(
      hit.every((s) => detail.test(s.detail ?? '')),
      `${what}: says why`,
      { details: hit.map((s) => s.detail) },
    );
  }
});
