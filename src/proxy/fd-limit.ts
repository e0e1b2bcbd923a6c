import { readFileSync } from 'node:fs';

/**
 * The open-files soft limit (`ulimit -n`, LimitNOFILE) from the text of /proc/self/limits;
 * null when it is not there or says "unlimited" (Node has no getrlimit).
 */
export function parseOpenFilesLimit(text: string): number | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (m === null || m[1] === 'unlimited') return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** The process's open-files soft limit, read now; null where /proc is not Linux's. */
export function readOpenFilesLimit(): number | null {
  try {
    return parseOpenFilesLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}
