import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { LogLevel, MirrorConfig } from '../config/types.js';
import type { CutReason, RouteEffect } from '../mirror/plan.js';

/** What a data-plane loop is started with (worker_threads workerData). */
export interface LoopData {
  readonly loop: number;
  /** 0 for the loop started with the daemon; each replacement of a dead one adds 1. */
  readonly incarnation: number;
  /** Rows of the shared counts in use (the loop count). */
  readonly loops: number;
  readonly logLevel: LogLevel;
  /** `log.sessions`: each loop logs the sessions it served. */
  readonly sessionLog: boolean;
  readonly hotPath: boolean;
}

/** One mirror as a loop serves it: config, its shared state, its member slots. */
export interface MirrorPart {
  readonly config: MirrorConfig;
  readonly state: SharedArrayBuffer;
  readonly slots: ReadonlyArray<readonly [string, number]>;
}

/** Control plane → loop. Requests carry an `id` the answer repeats. */
export type ToLoop =
  | { readonly t: 'bind'; readonly id: number; readonly part: MirrorPart; readonly port: number }
  | { readonly t: 'serve'; readonly mirror: string }
  | {
      readonly t: 'apply';
      readonly mirror: string;
      readonly generation: number;
      readonly reasons: Readonly<Record<string, CutReason>>;
    }
  | { readonly t: 'update'; readonly mirror: string; readonly generation: number; readonly part: MirrorPart }
  | { readonly t: 'close'; readonly mirror: string }
  | { readonly t: 'drain'; readonly id: number; readonly mirror: string; readonly timeoutMs: number }
  | {
      readonly t: 'cut';
      readonly id: number;
      readonly mirror: string;
      readonly reason: 'removed' | 'shutdown';
    }
  | { readonly t: 'metrics'; readonly id: number };

/** Loop → control plane. */
export type FromLoop =
  | { readonly t: 'ready' }
  | {
      readonly t: 'bound';
      readonly id: number;
      readonly port: number;
      readonly fastAccept: boolean | null;
    }
  | { readonly t: 'failed'; readonly id: number; readonly message: string; readonly code?: string }
  | {
      readonly t: 'applied';
      readonly mirror: string;
      readonly generation: number;
      readonly effect: RouteEffect;
      /** performance.timeOrigin + performance.now() when it was acted on (ms, sub-ms precise). */
      readonly at: number;
    }
  | { readonly t: 'done'; readonly id: number; readonly n: number }
  | {
      readonly t: 'metrics';
      readonly id: number;
      readonly metrics: Array<MetricObjectWithValues<MetricValue<string>>>;
    }
  | { readonly t: 'connectFailed'; readonly mirror: string; readonly member: string };
