import t from 'tap';
import { Writable } from 'node:stream';
import type { StatusDoc } from '../src/admin/status.js';
import { renderStatus, runStatus } from '../src/cli/status.js';
import type { TransitionEvent } from '../src/events.js';
import { withBalancer, yamlFor } from './helpers/balancer.js';
import { closedPort, withHttpServer, withTcpServer } from './helpers/http.js';
import { eventually, withSim } from './helpers/sim.js';

const ESC = String.fromCharCode(27);

/** A stream that keeps what is written; `isTTY` as a terminal would report it. */
class Capture extends Writable {
  text = '';
  constructor(readonly isTTY: boolean = false) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

async function run(argv: string[], tty = false): Promise<{ code: number; out: string; err: string }> {
  const out = new Capture(tty);
  const err = new Capture();
  const code = await runStatus(argv, out, err);
  return { code, out: out.text, err: err.text };
}

/** Runs with NO_COLOR set to `value` (undefined: unset), restoring it afterwards. */
async function withNoColor<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.NO_COLOR;
  if (value === undefined) delete process.env.NO_COLOR;
  else process.env.NO_COLOR = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.NO_COLOR;
    else process.env.NO_COLOR = saved;
  }
}

t.test('a table of a running balancer', async (t) => {
  const a = await withSim(t, { name: 'ap1a', role: 'primary' });
  const b = await withSim(t, { name: 'ap1b', role: 'backup' });
  const c = await withSim(t, { name: 'ap2a', role: 'backup' });
  const lb = await withBalancer(t, yamlFor({ ap1: [a, b], ap2: [c] }));
  t.ok(await eventually(() => lb.daemon.snapshots().get('ap1')!.decision.accepting, 5000));
  const admin = `http://127.0.0.1:${lb.adminPort()}`;

  const plain = await withNoColor(undefined, () => run(['--admin', admin]));
  t.equal(plain.code, 0, plain.err);
  t.equal(plain.err, '');
  t.notMatch(plain.out, ESC, 'no colour when stdout is not a terminal');
  const lines = plain.out.split('\n');
  t.match(lines[0], /^mirrorlb \S+ · up \S+ · ready · ap2 holding clients · http:\/\/127\.0\.0\.1:\d+$/);
  t.ok(
    lines.some((l) =>
      /^ap1 {2}listen 127\.0\.0\.1:\d+ {2}primary ap1a {2}accepting {2}sessions 0 {2}held 0$/.test(l),
    ),
    'a line per mirror',
  );
  t.ok(
    lines.some((l) => /^ap2 .*primary none {2}NO PRIMARY, holding clients/.test(l)),
    'a mirror without primary says so in words',
  );
  const header = lines.find((l) => l.includes('MEMBER'))!;
  t.match(header, /^ {2}MEMBER {2}STATE {4}REACHABLE {2}LAST CHECK {2}LATENCY +RESULT +SESSIONS {2}ADDRESS$/);
  const row = lines.find((l) => l.startsWith('  ap1a'))!;
  t.match(
    row,
    /^ {2}ap1a {4}primary {2}yes {8}\S+ ago +[\d.]+ ms +primary +0 +127\.0\.0\.1:\d+$/,
    'columns line up',
  );
  t.equal(row.indexOf('primary'), header.indexOf('STATE'));
  t.match(
    lines.find((l) => l.startsWith('  ap1b')),
    /backup .* not_primary 503/,
  );
  t.match(plain.out, /recent events\n.*ap1: primary found: ap1a/s);

  const colour = await withNoColor(undefined, () => run(['--admin', admin], true));
  t.equal(colour.code, 0);
  t.match(colour.out, `${ESC}[32mprimary${ESC}[0m`, 'colour on a terminal');
  t.notMatch(
    (await withNoColor('1', () => run(['--admin', admin], true))).out,
    ESC,
    'NO_COLOR wins over a terminal',
  );

  const json = await run([`--admin=${admin}/`, '--json']);
  t.equal(json.code, 0);
  t.match(JSON.parse(json.out), {
    mirrors: [
      { name: 'ap1', primary: 'ap1a' },
      { name: 'ap2', primary: null },
    ],
  });
  t.equal(
    (await run(['--admin', `127.0.0.1:${lb.adminPort()}`])).code,
    0,
    'host:port without a scheme is enough',
  );
});

t.test('unreachable or wrong admin URLs exit 1 with a clear message', async (t) => {
  const port = await closedPort();
  const refused = await run(['--admin', `http://127.0.0.1:${port}`]);
  t.equal(refused.code, 1);
  t.equal(refused.out, '');
  t.match(
    refused.err,
    `mirrorlb status: cannot reach the admin API at http://127.0.0.1:${port} (ECONNREFUSED); is mirrorlb running? Pass --admin URL`,
  );

  const notMirrorlb = await withHttpServer(t, (_req, res) => res.writeHead(404).end('nope'));
  const r404 = await run(['--admin', `http://127.0.0.1:${notMirrorlb.port}`]);
  t.equal(r404.code, 1);
  t.match(r404.err, /answered HTTP 404; is that a mirrorlb admin listener\?/);

  const html = await withHttpServer(t, (_req, res) =>
    res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'),
  );
  t.match((await run(['--admin', `http://127.0.0.1:${html.port}`])).err, /did not answer JSON/);
  const otherJson = await withHttpServer(t, (_req, res) => res.writeHead(200).end('{"hello":1}'));
  t.match(
    (await run(['--admin', `http://127.0.0.1:${otherJson.port}`])).err,
    /is not a mirrorlb status document/,
  );
});

t.test('an admin API that never answers: exit 1 after a bounded wait', { timeout: 20_000 }, async (t) => {
  const hung = await withTcpServer(t);
  const started = Date.now();
  const r = await run(['--admin', `http://127.0.0.1:${hung.port}`]);
  t.equal(r.code, 1);
  t.match(r.err, /no answer within 5 s/);
  t.ok(Date.now() - started < 15_000, 'gave up in time');
});

t.test('usage errors exit 2', async (t) => {
  for (const argv of [
    ['--admin'],
    ['--bogus'],
    ['extra'],
    ['--admin', 'ftp://x'],
    ['--admin', 'http://[bad'],
  ]) {
    const r = await run(argv);
    t.equal(r.code, 2, argv.join(' '));
    t.match(r.err, /^mirrorlb status: /);
  }
  const help = await run(['--help']);
  t.equal(help.code, 0);
  t.match(help.out, /Usage: mirrorlb status \[--admin URL\]/);
});

t.test('renderStatus shows every state in words', async (t) => {
  const states = ['primary', 'suspect', 'backup', 'unreachable', 'unknown', 'draining', 'disabled'] as const;
  const doc: StatusDoc = {
    version: '9.9.9',
    time: '2024-01-01T00:01:00.000Z',
    uptimeSeconds: 3725,
    ready: false,
    phase: 'running',
    eventCount: 2,
    mirrors: [
      {
        name: 'm',
        listen: '0.0.0.0:1972',
        primary: 'm0',
        accepting: false,
        conflict: ['m9'],
        heldClients: 4,
        sessions: 2,
        lastFailover: null,
        members: states.map((state, i) => ({
          name: `m${i}`,
          address: `10.0.0.${i}:1972`,
          check: [],
          state,
          role: state,
          admin: 'enabled',
          reachable: i !== 3,
          lastCheck: i === 4 ? null : { ageMs: 1500, latencyMs: 2.5, result: 'x' },
          sessions: i,
        })),
      },
    ],
  };
  const events: TransitionEvent[] = [
    {
      time: '2024-01-01T00:00:30.000Z',
      mirror: 'm',
      member: 'm1',
      kind: 'failover',
      from: 'm0',
      to: 'm1',
      detectionMs: 1234,
      heldClients: 3,
      cutSessions: 2,
    },
    {
      time: '2024-01-01T00:00:50.000Z',
      mirror: 'm',
      member: 'm5',
      kind: 'admin',
      from: null,
      to: 'draining',
      detectionMs: null,
      heldClients: 0,
      cutSessions: 0,
      detail: 'drain',
    },
  ];
  const text = renderStatus(doc, events, { color: false });
  t.match(text, /^mirrorlb 9\.9\.9 · up 1h02m · not ready · m holding clients\n/);
  t.match(
    text,
    /m {2}listen 0\.0\.0\.0:1972 {2}primary m0 {2}holding new clients {2}sessions 2 {2}held 4 {2}conflict: m9/,
  );
  for (const [i, s] of states.entries())
    t.match(text, new RegExp(`\\n {2}m${i} +${s} `), `state ${s} in words`);
  t.match(text, /\n {2}m3 +unreachable +no /, 'unreachable in words');
  t.match(text, /\n {2}m4 +unknown +yes +- +- +- +4 /, 'never checked');
  t.match(
    text,
    /30\.0s ago {2}m: failover m0 -> m1, 1\.2s without primary, 3 held clients released, 2 sessions cut/,
  );
  t.match(text, /10\.0s ago {2}m: m5 drain \(admin\)/);
  t.ok(text.indexOf('m5 drain') < text.indexOf('failover m0'), 'newest event first');
  t.notMatch(text, ESC);
  const coloured = renderStatus(doc, events, { color: true });
  t.match(coloured, ESC);
  t.equal(
    coloured.replace(new RegExp(`${ESC}\\[[0-9;]*m`, 'g'), ''),
    text,
    'colour adds escape codes, nothing else',
  );
  t.match(renderStatus({ ...doc, mirrors: [] }, [], { color: false }), /no mirrors configured/);
  t.notMatch(text, /loops/, 'one loop: no per-loop line');
  const perLoop = [
    { loop: 0, open: 12, accepted: 1030 },
    { loop: 1, open: 9, accepted: 990 },
  ];
  t.match(
    renderStatus({ ...doc, loops: 2, perLoop }, [], { color: false }),
    /\n2 data-plane loops · open 12 \/ 9 · accepted 1030 \/ 990\n/,
    'several loops: connections per loop',
  );
});
