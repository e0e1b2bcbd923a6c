#!/usr/bin/env node
// The version matrix: the tests that lean on Node's internals (the raw data path, the accept
// hook, the fast sockets) and the daemon's own life cycle, on each supported Node line besides
// the machine's own (`npm test` covers that one):
//
//   npm run test:node-matrix [-- MAJOR...] [-- --all]
//   node scripts/node-matrix.mjs [MAJOR...] [--all] [--skip-install]
//
// For each major: its newest official binary (scripts/node-versions.mjs), then `npm ci` in a
// scratch copy of the package with that Node first in PATH (npm itself, the lockfile's engines
// and the `prepare` build run on it), then tap on that Node over MATRIX_TESTS (--all: the
// whole suite). Test processes are spawned by tap with its own process.execPath, and anything
// a test spawns as `node` finds the same binary first in PATH; test/datapath-node.test.ts
// checks process.version against MIRRORLB_EXPECT_NODE. Exit 1 when any line failed; the
// summary names each version, its data path as the daemon logged it, and its time.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MATRIX_MAJORS, ensureNodes } from './node-versions.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The files run on every line: the data path in all its modes, and the daemon around it. */
const MATRIX_TESTS = [
  /^raw\.test\.ts$/,
  /^datapath.*\.test\.ts$/,
  /^nodelay\.test\.ts$/,
  /^proxy-data\.test\.ts$/,
  /^hold-leave.*\.test\.ts$/,
  /^connect-gate.*\.test\.ts$/,
  /^sessions\.test\.ts$/,
  /^resolver\.test\.ts$/,
  /^heap\.test\.ts$/,
  /^daemon-lifecycle\.test\.ts$/,
  /^failover\.test\.ts$/,
  /^readiness\.test\.ts$/,
  /^reload-atomic\.test\.ts$/,
  /^cli\.test\.ts$/,
  /^workers\.test\.ts$/,
];

const say = (msg) => process.stdout.write(`node-matrix: ${msg}\n`);

function parseArgs(argv) {
  const opts = { majors: [], all: false, install: true };
  for (const a of argv) {
    if (a === '--') continue;
    else if (a === '--all') opts.all = true;
    else if (a === '--skip-install') opts.install = false;
    else if (/^\d+$/.test(a)) opts.majors.push(a);
    else {
      process.stderr.write(
        `node-matrix: unknown argument ${a} (usage: node-matrix.mjs [MAJOR...] [--all] [--skip-install])\n`,
      );
      process.exit(2);
    }
  }
  if (opts.majors.length === 0) opts.majors = [...MATRIX_MAJORS];
  return opts;
}

function testFiles(all) {
  const names = readdirSync(path.join(ROOT, 'test')).filter((f) => f.endsWith('.test.ts'));
  const picked = all ? names : names.filter((f) => MATRIX_TESTS.some((re) => re.test(f)));
  return picked.sort().map((f) => `test/${f}`);
}

function envFor(node, major) {
  return {
    ...process.env,
    PATH: `${path.dirname(node.path)}${path.delimiter}${process.env.PATH}`,
    MIRRORLB_EXPECT_NODE: major,
  };
}

/** `npm ci` as a user runs it, from a scratch copy holding what the package build needs. */
function installCheck(node, major) {
  const dir = mkdtempSync(path.join(tmpdir(), `mlb-npm-ci-${major}-`));
  try {
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'bin', 'schema'])
      cpSync(path.join(ROOT, f), path.join(dir, f), { recursive: true });
    const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], {
      cwd: dir,
      env: envFor(node, major),
      encoding: 'utf8',
    });
    if (r.status !== 0)
      return `npm ci exited ${r.status ?? r.signal}:\n${(r.stdout + r.stderr).slice(-3000)}`;
    // The package's bin entry runs what `prepare` built (dist/).
    const built = spawnSync(node.path, [path.join(dir, 'bin/mirrorlb.js'), '--version'], {
      encoding: 'utf8',
    });
    if (built.status !== 0) return `the built CLI does not run: ${built.stderr.slice(-2000)}`;
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs tap's own bin on `node` over `files`; resolves with its exit code and the data path it saw. */
function runTap(node, major, files) {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/tap/package.json'), 'utf8'));
  const bin = path.join(ROOT, 'node_modules/tap', pkg.bin.tap);
  return new Promise((resolve) => {
    const child = spawn(node.path, [bin, '--disable-coverage', ...files], {
      cwd: ROOT,
      env: envFor(node, major),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let dataPath = null;
    let versionSeen = null;
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-4096);
      versionSeen ??= /# node (v[\d.]+) \(/.exec(tail)?.[1] ?? null;
      dataPath ??= /data_path (\w+) on v/.exec(tail)?.[1] ?? null;
    });
    child.on('exit', (code, signal) => resolve({ code: code ?? signal, dataPath, versionSeen }));
  });
}

const opts = parseArgs(process.argv.slice(2));
const files = testFiles(opts.all);
const nodes = ensureNodes(opts.majors);
const results = [];
for (const node of nodes) {
  const started = Date.now();
  say(`Node ${node.version} (${node.path}): ${files.length} test files`);
  const reported = spawnSync(node.path, ['--version'], { encoding: 'utf8' }).stdout.trim();
  let failure = reported === `v${node.version}` ? null : `the binary says ${reported}, not v${node.version}`;
  if (failure === null && opts.install) {
    failure = installCheck(node, node.major);
    say(
      `Node ${node.version}: npm ci and prepare ${failure === null ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(0)}s`,
    );
  }
  let tap = { code: null, dataPath: null, versionSeen: null };
  if (failure === null) {
    tap = await runTap(node, node.major, files);
    if (tap.code !== 0) failure = `tap exited ${tap.code}`;
    else if (tap.versionSeen !== `v${node.version}`)
      failure = `the tests ran on ${tap.versionSeen ?? 'an unknown Node'}`;
  }
  results.push({ node, failure, dataPath: tap.dataPath, seconds: (Date.now() - started) / 1000 });
  if (failure !== null) process.stderr.write(`node-matrix: Node ${node.version}: ${failure}\n`);
}
say('summary');
for (const r of results)
  say(
    `  Node ${r.node.version.padEnd(8)} ${r.failure === null ? 'ok    ' : 'FAILED'} data_path ${r.dataPath ?? '?'}  ${r.seconds.toFixed(0)}s`,
  );
process.exit(results.every((r) => r.failure === null) ? 0 : 1);
