import t from 'tap';
import type { StatusDoc } from '../src/admin/status.js';
import { renderStatus } from '../src/cli/status.js';

const ESC = String.fromCharCode(27);

t.test('mirrorlb status lists each read pool with its members in words', async (t) => {
  const doc = {
    version: '9.9.9',
    time: '2024-01-01T00:01:00.000Z',
    uptimeSeconds: 60,
    ready: true,
    phase: 'running',
    eventCount: 0,
    mirrors: [
      {
        name: 'pg',
        listen: '0.0.0.0:5432',
        primary: 'pg1',
        accepting: true,
        conflict: [],
        heldClients: 0,
        sessions: 1,
        lastFailover: null,
        members: [],
        pools: [
          {
            name: 'replicas',
            listen: { host: '0.0.0.0', port: 5433 },
            open: 'pg2',
            sessions: 3,
            held: 0,
            members: [
              { name: 'pg1', state: 'primary', takesClients: false, lagBytes: null, sessions: 0 },
              { name: 'pg2', state: 'in', takesClients: true, lagBytes: 512, sessions: 2 },
              { name: 'pg3', state: 'lagging', takesClients: false, lagBytes: 20 * 1024 * 1024, sessions: 1 },
              { name: 'pg4', state: 'not_streaming', takesClients: false, lagBytes: null, sessions: 0 },
              { name: 'pg5', state: 'down', takesClients: false, lagBytes: 2048, sessions: 0 },
            ],
          },
          {
            name: 'hold',
            listen: null,
            open: null,
            sessions: 0,
            held: 2,
            members: [],
          },
        ],
      },
    ],
  } as unknown as StatusDoc;
  const text = renderStatus(doc, [], { color: false });
  t.match(
    text,
    /\n {2}pool replicas {2}listen 0\.0\.0\.0:5433 {2}new reads to pg2 {2}sessions 3 {2}held 0\n/,
  );
  t.match(text, /\n {4}MEMBER +POOL STATE +LAG +SESSIONS\n/);
  t.match(text, /\n {4}pg1 +primary +- +0\n/, 'the primary, in words');
  t.match(text, /\n {4}pg2 +in +512 B +2\n/);
  t.match(text, /\n {4}pg3 +lagging +20\.0 MB +1\n/);
  t.match(text, /\n {4}pg4 +not streaming +- +0\n/);
  t.match(text, /\n {4}pg5 +down +2\.0 kB +0\n/);
  t.match(
    text,
    /\n {2}pool hold {2}listen not listening {2}new reads to none, holding clients {2}sessions 0 {2}held 2\n/,
  );
  const coloured = renderStatus(doc, [], { color: true });
  t.match(coloured, new RegExp(`\\n {4}pg1 +primary `), 'the primary is not coloured as an error');
  t.match(coloured, new RegExp(`${ESC}\\[31mdown`), 'down is red');
  t.equal(coloured.replace(new RegExp(`${ESC}\\[[0-9;]*m`, 'g'), ''), text, 'colour adds escape codes only');
});
