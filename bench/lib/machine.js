// What the figures were measured on: they mean little without the machine, the versions and
// how busy it was.
import fs from 'node:fs';
import os from 'node:os';
import { has, run } from './proc.js';

/**
 * The first line a tool prints (its version), or null.
 * @param {string} cmd
 * @param {string[]} args
 */
async function firstLine(cmd, args) {
  if (!has(cmd)) return null;
  const r = await run(cmd, args, { timeoutMs: 10_000 }).catch(() => null);
  if (!r) return null;
  return `${r.stdout}${r.stderr}`.trim().split('\n')[0] || null;
}

function cpuModel() {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return m[1].trim();
  } catch {
    // not Linux
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

/** @param {string} repoRoot */
export async function describeMachine(repoRoot) {
  const git = await run('git', ['-C', repoRoot, 'describe', '--always', '--dirty'], {
    timeoutMs: 10_000,
  }).catch(() => null);
  let mirrorlbVersion = null;
  try {
    mirrorlbVersion = JSON.parse(fs.readFileSync(`${repoRoot}/package.json`, 'utf8')).version;
  } catch {
    // keep null
  }
  return {
    cpu: cpuModel(),
    cores: os.cpus().length,
    memory_gib: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    haproxy: (await firstLine('haproxy', ['-v']))?.replace(/ - https?:.*$/, '') ?? null,
    nginx: (await firstLine('nginx', ['-v']))?.replace(/^nginx version: /, '') ?? null,
    wrk: (await firstLine('wrk', ['--version']))?.replace(/ Copyright.*$/, '') ?? null,
    iperf3: await firstLine('iperf3', ['--version']),
    sockperf: await firstLine('sockperf', ['--version']),
    mirrorlb: mirrorlbVersion,
    commit: git && git.code === 0 ? git.stdout.trim() : null,
    loadavg_at_start: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
