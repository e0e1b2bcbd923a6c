/**
 * The contract's smallest config, as a user copies it (no `kind`: the seed's own
 * `mirror_status.cxw` URLs, here through two Web Gateways as the seed checks them), under the
 * partial failure that cuts a healthy primary under `kind: generic`: one gateway answers 503 with its own
 * HTML error page. The kind is inferred as IRIS, so that answer is a broken path, not the
 * member's "not primary": the primary keeps the role and its 4 open sessions.
 */
import type net from 'node:net';
import t from 'tap';
import { withGatewayMirror } from './helpers/gateway.js';
import { connect, eventually, readGreeting, readUpTo } from './helpers/sim.js';

t.test('smallest config, one gateway answers 503 HTML: the primary and its sessions stay', async (t) => {
  // The contract's example, with loopback ports: no kind, no health or proxy keys.
  const { gw1, lb } = await withGatewayMirror(t, null);
  const snap = () => lb.daemon.snapshots().get('ap1')!;
  t.match(snap().config, { kind: 'iris', kindSource: 'inferred' }, 'the kind is inferred: iris');
  t.ok(await eventually(() => snap().decision.accepting, 10_000), 'a primary takes clients');

  const sessions: net.Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = await connect(lb.port('ap1'));
    t.equal(await readGreeting(s), 'ap1a', `session ${i} on the primary`);
    sessions.push(s);
  }
  gw1.mode = '503html';
  const ap1a = () => snap().members.find((m) => m.config.name === 'ap1a')!;
  t.ok(
    await eventually(() => ap1a().health.lastAnswers.some((x) => x.outcome === 'unexpected'), 10_000),
    "the gateway's 503 page is read as unexpected, not as the member's not-primary",
  );
  // Several more rounds of the primary's checks (the condition, not a sleep).
  const seen = new Set<number>();
  t.ok(
    await eventually(
      () => {
        const at = ap1a().health.lastCheckAt;
        if (at !== null) seen.add(at);
        return seen.size > 8;
      },
      15_000,
      10,
    ),
    'eight more probe rounds',
  );
  t.equal(ap1a().health.role, 'primary', 'still primary');
  for (const [i, s] of sessions.entries()) {
    s.write(`still ${i}\n`);
    t.equal((await readUpTo(s, 8, 5000)).data.toString(), `still ${i}\n`, `session ${i} untouched`);
  }
  const cut = (await lb.daemon.metrics.sessionsCut.get()).values.reduce((n, v) => n + v.value, 0);
  t.equal(cut, 0, 'no session cut');
  const c = await connect(lb.port('ap1'));
  t.equal(await readGreeting(c), 'ap1a', 'a new client is served by the primary');
  c.destroy();
  for (const s of sessions) s.destroy();
});
