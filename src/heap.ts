/**
 * V8 heap sizing for the long-running daemon: its memory at rest.
 *
 * The health checks allocate steadily (every member, every interval), and V8 grows its
 * young generation with every scavenge that sees survivors, up to 2 x 16 MiB, then never
 * shrinks it while allocation goes on: a daemon at rest ended up holding about 30 MiB of
 * mostly empty young generation. Keeping the young generation at its initial size (1 MiB
 * per semi-space) costs a scavenge per MiB allocated, well under a millisecond each.
 *
 * `--max-semi-space-size` only works on the command line, which `node bin/mirrorlb.js`,
 * the image's ENTRYPOINT and every other way of starting the daemon would each have to
 * repeat; the growth factor is read each time V8 considers growing, so setting it here,
 * before the daemon's modules load, applies to every way of starting it. Called by
 * src/cli/main.ts for the daemon and the demo only.
 */
import { setFlagsFromString } from 'node:v8';

/** Node options that size the young generation: given one, the user's choice stands. */
const USER_SEMI_SPACE = /--(min|max)[-_]semi[-_]space[-_]size/;

/**
 * Stops the young generation from growing beyond its initial size, unless the command line
 * or NODE_OPTIONS sizes it (`--max-semi-space-size=16`, for a busy balancer that prefers
 * fewer scavenges to less memory). Returns whether the limit was set.
 */
export function limitYoungGeneration(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): boolean {
  if (execArgv.some((a) => USER_SEMI_SPACE.test(a)) || USER_SEMI_SPACE.test(nodeOptions)) return false;
  setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}
