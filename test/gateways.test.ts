/**
 * Issue 10's Done-when over real sockets: two stand-in Web Gateways in front of two
 * simulated IRIS members (kind: iris). A gateway's own failure (500, 503 with an HTML page,
 * a hang, or both gateways answering 500 while the SuperServer port is fine) never takes the
 * role from a healthy primary: no session cut, every new client served by it. An
 * authoritative 503 FAILED through either gateway still demotes at once.
 */
import type net from 'node:net';
import t from 'tap';
import type { Balancer } from './helpers/balancer.js';
import { withGatewayMirror, type GatewayMode } from './helpers/gateway.js';
import { connect, eventually, readGreeting, readUpTo } from './helpers/sim.js';

const setup = (t: Tap.Test) => withGatewayMirror(t, 'iris');

const mirror = (lb: Balancer) => lb.daemon.snapshots().get('ap1')!;
const member = (lb: Balancer, name: string) => mirror(lb).members.find((m) => m.config.name === name)!;

async function greetedBy(port: number): Promise<{ member: string; socket: net.Socket }> {
  const s = await connect(port);
  return { member: await readGreeting(s), socket: s };
}

/** Waits until `n` more probe rounds of `name` have ended (the condition, not a sleep). */
async function rounds(lb: Balancer, name: string, n: number): Promise<boolean> {
  const seen = new Set<number>();
  return eventually(
    () => {
      const at = member(lb, name).health.lastCheckAt;
      if (at !== null) seen.add(at);
      return seen.size > n;
    },
    15_000,
    10,
  );
}

async function counter(lb: Balancer, name: 'failovers' | 'sessionsCut'): Promise<number> {
  const m = await lb.daemon.metrics[name].get();
  return m.values.reduce((s, v) => s + v.value, 0);
}

async function echoes(s: net.Socket, text: string): Promise<boolean> {
  s.write(text);
  const r = await readUpTo(s, text.length, 5000);
  return r.data.toString() === text;
}

const FAULTS: [string, GatewayMode, GatewayMode, string][] = [
  ['one gateway answers 500', '500', 'forward', 'unexpected'],
  ['one gateway answers 503 with an HTML page', '503html', 'forward', 'unexpected'],
  ['one gateway hangs', 'hang', 'forward', 'timeout'],
  ['both gateways answer 500, the SuperServer port is fine', '500', '500', 'unexpected'],
];

for (const [name, mode1, mode2, outcome] of FAULTS) {
  t.test(`${name}: the primary keeps the role, no session cut, every new client served`, async (t) => {
    const { gw1, gw2, lb, port } = await setup(t);
    const old = await greetedBy(port);
    t.equal(old.member, 'ap1a');
    gw1.mode = mode1;
    gw2.mode = mode2;
    t.ok(
      await eventually(
        () => member(lb, 'ap1a').health.lastAnswers.some((x) => x.outcome === outcome),
        10_000,
      ),
      `the fault is seen: a URL's answer is ${outcome}`,
    );
    t.ok(await rounds(lb, 'ap1a', 8), 'eight more probe rounds of the primary');
    t.equal(member(lb, 'ap1a').health.role, 'primary', 'still primary');
    t.match(mirror(lb).decision, { primary: 'ap1a', accepting: true });
    for (let i = 0; i < 5; i++) {
      const c = await greetedBy(port);
      t.equal(c.member, 'ap1a', `new client ${i} served by the primary`);
      c.socket.destroy();
    }
    t.ok(await echoes(old.socket, 'still here\n'), 'the open session is untouched');
    t.equal(await counter(lb, 'sessionsCut'), 0, '0 sessions cut');
    t.equal(await counter(lb, 'failovers'), 0, 'no failover');
    const unexpectedLogs = lb.logs.records.filter((r) =>
      String(r.msg).startsWith('check URL answered unexpectedly'),
    );
    if (outcome === 'unexpected') t.ok(unexpectedLogs.length >= 1, 'the unexpected answer is logged');
    t.ok(unexpectedLogs.length <= 4, `logged once per change, not per probe (${unexpectedLogs.length})`);
    // The /status document shows which URL is broken and which one decided.
    const status = await (await fetch(`http://127.0.0.1:${lb.adminPort()}/status`)).json();
    const checks = status.mirrors[0].members[0].checks;
    t.equal(checks.length, 2);
    if (mode2 === 'forward')
      t.match(checks[1], { url: gw2.url('ap1a'), outcome: 'primary', status: 200, decided: true });
    t.match(checks[0], { url: gw1.url('ap1a'), outcome });
    old.socket.destroy();
  });
}

for (const broken of ['gw1', 'gw2'] as const) {
  t.test(
    `an authoritative 503 FAILED through ${broken === 'gw1' ? 'gw2' : 'gw1'} (with ${broken} answering 500) demotes at once`,
    async (t) => {
      const { a, b, gw1, gw2, lb, port } = await setup(t);
      const old = await greetedBy(port);
      t.equal(old.member, 'ap1a');
      (broken === 'gw1' ? gw1 : gw2).mode = '500';
      t.ok(
        await eventually(
          () => member(lb, 'ap1a').health.lastAnswers.some((x) => x.outcome === 'unexpected'),
          10_000,
        ),
      );
      await a.setRole('backup');
      t.ok(await eventually(() => member(lb, 'ap1a').health.role === 'backup', 5000), 'demoted');
      t.ok((await readUpTo(old.socket, 1, 5000)).ended, 'its session is closed');
      await b.setRole('primary');
      t.ok(
        await eventually(() => mirror(lb).decision.primary === 'ap1b' && mirror(lb).decision.accepting, 5000),
      );
      const c = await greetedBy(port);
      t.equal(c.member, 'ap1b', 'new clients go to the new primary');
      c.socket.destroy();
      t.equal((await lb.daemon.metrics.primaryConflicts.get()).values[0]?.value ?? 0, 0, 'no conflict');
    },
  );
}
