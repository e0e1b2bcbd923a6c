import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, eventually, httpRequest, readGreeting, readUpTo } from './helpers/sim.js';

const BIN = fileURLToPath(new URL('../bin/mirrorlb.js', import.meta.url));

t.test('mirrorlb demo: prints its recipe, and the recipe moves clients to ap1b', async (t) => {
  const child = spawn(
    process.execPath,
    [BIN, 'demo', '--ap1', '127.0.0.1:0', '--ap2', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  t.ok(await eventually(() => out.includes('Ctrl-C'), 15000), 'the demo printed its recipe');
  const ap1Port = Number(/mirror ap1\s+127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  const adminPort = Number(/status page http:\/\/127\.0\.0\.1:(\d+)\//.exec(out)?.[1]);
  const recipe =
    /curl -sd backup http:\/\/127\.0\.0\.1:(\d+)\/sim\/role; curl -sd primary http:\/\/127\.0\.0\.1:(\d+)\/sim\/role/.exec(
      out,
    );
  t.ok(ap1Port > 0 && adminPort > 0 && recipe, `ports and recipe found in:\n${out}`);

  const s = await connect(ap1Port);
  t.equal(await readGreeting(s), 'ap1a');
  await httpRequest(Number(recipe![1]), '/sim/role', { method: 'POST', body: 'backup' });
  await httpRequest(Number(recipe![2]), '/sim/role', { method: 'POST', body: 'primary' });
  t.ok((await readUpTo(s, 1, 5000)).ended, 'the ap1a session was closed');
  t.ok(
    await eventually(async () => {
      const c = await connect(ap1Port);
      const who = await readGreeting(c);
      c.destroy();
      return who === 'ap1b';
    }, 5000),
    'new clients reach ap1b',
  );
  const status = JSON.parse((await httpRequest(adminPort, '/status')).body) as {
    mirrors: Array<{ name: string; primary: string }>;
  };
  t.same(
    status.mirrors.map((m) => [m.name, m.primary]),
    [
      ['ap1', 'ap1b'],
      ['ap2', 'ap2a'],
    ],
  );
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  t.equal(code, 0, 'Ctrl-C stops the demo cleanly');
});
