import { availableParallelism } from 'node:os';

/** What `workers` may say in the file: a count of data-plane loops, or `auto`. */
export type WorkersSetting = 'auto' | number;

/** The most loops a process runs (the shared routing state is sized for this many). */
export const MAX_LOOPS = 64;

/** The Node releases whose `net.Server.listen()` takes `reusePort` (nodejs/node#55408). */
export const REUSE_PORT_NEEDED = 'Node.js 22.12 or 23.1 or later';

/** Whether this Node's listen() takes `reusePort`: several listeners on one port, spread by the kernel. */
export function hasReusePort(version: string = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (process.platform !== 'linux' && process.platform !== 'freebsd') return false;
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/**
 * The number of data-plane loops a setting means here. `auto`: one per core the process may
 * use, where reusePort exists; 1 otherwise (never refused, unlike an explicit count above 1).
 */
export function loopCount(setting: WorkersSetting, version?: string): number {
  if (setting !== 'auto') return setting;
  if (!hasReusePort(version)) return 1;
  return Math.max(1, Math.min(MAX_LOOPS, availableParallelism()));
}
