import type { Logger } from 'pino';
import type { ErrorCode } from '../errors.js';

/** The types of a simulated member: its options, what it can be told to be, how its status page can fail. */
export type SimRole = 'primary' | 'backup' | 'down' | 'hang';
export type StatusMode = 'normal' | 'dead' | 'slow' | 'garbage' | 'huge' | 'redirect';

export const SIM_ROLES: readonly SimRole[] = ['primary', 'backup', 'down', 'hang'];
export const STATUS_MODES: readonly StatusMode[] = ['normal', 'dead', 'slow', 'garbage', 'huge', 'redirect'];

export class SimError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'SimError';
    this.code = code;
  }
}

export function isSimRole(s: string): s is SimRole {
  return (SIM_ROLES as readonly string[]).includes(s);
}

/** Parses the body of `POST /sim/status`: `normal|dead|slow:<ms>|garbage|huge|redirect`. */
export function parseStatusMode(text: string): { mode: StatusMode; delayMs?: number } | null {
  const m = /^(normal|dead|slow|garbage|huge|redirect)(?::(\d{1,9}))?$/.exec(text.trim());
  if (!m) return null;
  const mode = m[1] as StatusMode;
  if (m[2] !== undefined && mode !== 'slow') return null;
  return m[2] !== undefined ? { mode, delayMs: Number(m[2]) } : { mode };
}

/** How a simulated member is made (member.ts). */
export interface SimOptions {
  name: string;
  /** Address all listeners bind to; default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port; the real one is on the instance after start(). */
  superserverPort: number;
  webPort: number;
  role?: 'primary' | 'backup';
  /** A side port serving only /sim/*, answering in every role (so a 'down' sim can be revived). */
  controlPort?: number;
  /** Delay added to every status page answer (all modes); default 0. */
  statusDelayMs?: number;
  logger?: Logger;
}

export interface AcceptedConnection {
  /** performance.now() when the SuperServer connection was accepted. */
  readonly at: number;
  readonly role: SimRole;
}
