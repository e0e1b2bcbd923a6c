#!/usr/bin/env node
// Thin launcher: all logic lives in the compiled TypeScript (dist/, built by `npm ci` via prepare).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`mirrorlb: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
