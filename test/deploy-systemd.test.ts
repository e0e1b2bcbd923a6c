/**
 * deploy/systemd/mirrorlb.service, checked by systemd's own tools without a running systemd
 * (this machine's PID 1 is not systemd): `systemd-analyze verify` loads the unit file as
 * systemd would and `systemd-analyze security --offline` rates its sandbox. verify reports an
 * unknown key or a bad value only as a warning with exit 0, so any output fails the test.
 * Its ExecStart binary must exist for verify: the test points the unit at a stub in a
 * temporary directory, changing nothing else.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseDuration } from '../src/config/duration.js';
import { SHUTDOWN_KEYS } from '../src/config/keys.js';
import { needs } from './helpers/real-run.js';

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)));
const UNIT = readFileSync(join(ROOT, 'deploy', 'systemd', 'mirrorlb.service'), 'utf8');
const BIN = '/usr/local/bin/mirrorlb';

/** key → values of one section (a key may repeat), comments and blank lines left out. */
function section(text: string, name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const head = /^\[(.+)\]$/.exec(line);
    if (head) current = head[1]!;
    else if (current === name) {
      const i = line.indexOf('=');
      const key = line.slice(0, i);
      out.set(key, [...(out.get(key) ?? []), line.slice(i + 1)]);
    }
  }
  return out;
}

/** A copy of the unit whose commands run a stub that exists, in a directory removed at teardown. */
function staged(t: Tap.Test, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'mlb-systemd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const stub = join(dir, 'mirrorlb');
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  const file = join(dir, 'mirrorlb.service');
  writeFileSync(file, text.replaceAll(BIN, stub));
  return file;
}

function analyze(args: string[]): { status: number | null; out: string } {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

t.test('the unit says what the daemon needs', async (t) => {
  const s = section(UNIT, 'Service');
  const one = (key: string) => s.get(key)?.at(-1);
  t.equal(one('ExecStart'), `${BIN} --config /etc/mirrorlb/mirrorlb.yml`);
  t.same(
    s.get('ExecReload'),
    [`${BIN} check --config /etc/mirrorlb/mirrorlb.yml`, '/bin/kill -HUP $MAINPID'],
    'reload: the config is checked, then SIGHUP',
  );
  t.equal(one('KillSignal'), 'SIGTERM');
  const stopMs = parseDuration(one('TimeoutStopSec')!);
  const graceMs = parseDuration(SHUTDOWN_KEYS.grace.default);
  const drainMs = parseDuration(SHUTDOWN_KEYS.drain_timeout.default);
  t.ok(
    stopMs > graceMs + drainMs,
    `TimeoutStopSec ${stopMs} ms is above the default shutdown.grace + drain_timeout (${graceMs + drainMs} ms)`,
  );
  t.ok(Number(one('LimitNOFILE')) >= 65536, 'LimitNOFILE');
  // Its own user, no new privileges, one capability, nothing of the system writable.
  t.equal(one('DynamicUser'), 'yes');
  t.equal(one('NoNewPrivileges'), 'yes');
  t.equal(one('CapabilityBoundingSet'), 'CAP_NET_BIND_SERVICE');
  t.equal(one('AmbientCapabilities'), 'CAP_NET_BIND_SERVICE');
  t.equal(one('ProtectSystem'), 'strict');
  t.equal(one('ProtectHome'), 'yes');
  t.equal(one('PrivateTmp'), 'yes');
  t.notOk(s.has('MemoryDenyWriteExecute'), 'V8 needs writable code pages');
  t.same(section(UNIT, 'Install').get('WantedBy'), ['multi-user.target']);
});

t.test('systemd-analyze verify accepts the unit without a warning', needs('systemd-analyze'), async (t) => {
  const r = analyze(['verify', '--man=no', staged(t, UNIT)]);
  t.equal(r.status, 0, r.out);
  t.equal(r.out, '', 'no warning');
  // What verify only warns about is caught by the empty-output check: a misspelt key.
  const typo = analyze([
    'verify',
    '--man=no',
    staged(t, UNIT.replace('NoNewPrivileges=yes', 'NoNewPrivilege=yes')),
  ]);
  t.equal(typo.status, 0, 'verify exits 0 on an unknown key');
  t.match(typo.out, /Unknown key 'NoNewPrivilege'/, '…but says so');
});

t.test('systemd-analyze security rates the sandbox OK', needs('systemd-analyze'), async (t) => {
  const r = analyze(['security', '--offline=yes', '--no-pager', staged(t, UNIT)]);
  t.equal(r.status, 0, r.out.slice(-500));
  const level = /Overall exposure level for \S+: ([\d.]+)/.exec(r.out)?.[1];
  t.ok(level !== undefined && Number(level) <= 2, `exposure ${level} (0 is the best, 10 the worst)`);
});
