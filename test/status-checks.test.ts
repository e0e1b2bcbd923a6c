// `mirrorlb status` shows each check URL's last answer and which one decided (issue 10).
import t from 'tap';
import type { StatusDoc } from '../src/admin/status.js';
import { renderStatus } from '../src/cli/status.js';

const GW1 = 'http://webgw1/ap1a/csp/mirror_status.cxw';
const GW2 = 'http://webgw2/ap1a/csp/mirror_status.cxw';

t.test('one broken gateway shows as one unexpected line beside the deciding one', async (t) => {
  const doc: StatusDoc = {
    version: '9.9.9',
    time: '2024-01-01T00:01:00.000Z',
    uptimeSeconds: 10,
    ready: true,
    eventCount: 0,
    mirrors: [
      {
        name: 'ap1',
        kind: 'iris',
        listen: '0.0.0.0:1972',
        primary: 'ap1a',
        accepting: true,
        conflict: [],
        heldClients: 0,
        sessions: 1,
        lastFailover: null,
        members: [
          {
            name: 'ap1a',
            address: 'ap1a:1972',
            check: [GW1, GW2],
            state: 'primary',
            role: 'primary',
            admin: 'enabled',
            reachable: true,
            lastCheck: { ageMs: 100, latencyMs: 1.2, result: 'primary' },
            sessions: 1,
            checks: [
              { url: GW1, outcome: 'unexpected', status: 500, code: null, latencyMs: 1, decided: false },
              { url: GW2, outcome: 'primary', status: 200, code: null, latencyMs: 1.2, decided: true },
            ],
            contradicted: false,
            fenced: false,
          },
          {
            name: 'ap1b',
            address: 'ap1b:1972',
            check: ['http://webgw1/ap1b/x'],
            state: 'unreachable',
            role: 'unreachable',
            admin: 'enabled',
            reachable: false,
            lastCheck: { ageMs: 100, latencyMs: 250, result: 'timeout' },
            sessions: 0,
            checks: [
              {
                url: 'http://webgw1/ap1b/x',
                outcome: 'timeout',
                status: null,
                code: null,
                latencyMs: null,
                decided: false,
              },
            ],
            contradicted: true,
            fenced: true,
          },
        ],
      },
    ],
  };
  const text = renderStatus(doc, [], { color: false });
  t.match(text, /CHECK\s+URL\s+LAST ANSWER\s+DECIDED/);
  t.match(text, new RegExp(`ap1a\\s+${GW1}\\s+500 unexpected\\s*\\n`));
  t.match(text, new RegExp(`\\s+${GW2}\\s+200 primary\\s+decided`));
  t.match(text, /ap1b\s+http:\/\/webgw1\/ap1b\/x\s+timeout/);
  t.match(text, /URLs contradict each other/);
  t.match(text, /fenced: no authoritative answer for fence_after/);
  // A daemon without per-URL answers: no CHECK table, nothing breaks.
  const old = JSON.parse(JSON.stringify(doc)) as { mirrors: { members: Record<string, unknown>[] }[] };
  for (const m of old.mirrors[0]!.members) {
    delete m.checks;
    m.contradicted = false;
    m.fenced = false;
  }
  t.notMatch(renderStatus(old as unknown as StatusDoc, [], { color: false }), /CHECK\s+URL/);
});
