import type { ConnectReq, RawTcp, ShutdownReq, WriteReq } from './raw.js';

/**
 * Node's TCP and stream bindings, as much of them as the raw path (raw.ts) uses, checked at
 * load: `process.binding('tcp_wrap' / 'stream_wrap')`, stable in their shape since Node 12.
 * Anything missing or shaped otherwise, or `MIRRORLB_DATAPATH=stream|plain`, and the raw
 * path is off (the daemon's `data path` log record says why).
 */
export interface Bindings {
  readonly TCP: new (type: number) => RawTcp;
  readonly TCPConnectWrap: new () => ConnectReq;
  readonly WriteWrap: new () => WriteReq;
  readonly ShutdownWrap: new () => ShutdownReq;
  readonly SOCKET: number;
  /** Shared with C++: the result of the last read and whether the last write was queued. */
  readonly state: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kLastWriteWasAsync: number;
}

function loadBindings(): Bindings | null {
  const mode = process.env.MIRRORLB_DATAPATH;
  if (mode === 'plain' || mode === 'stream') return null;
  try {
    const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
    const tcp = binding('tcp_wrap') as {
      TCP?: Bindings['TCP'];
      TCPConnectWrap?: Bindings['TCPConnectWrap'];
      constants?: { SOCKET?: number };
    };
    const stream = binding('stream_wrap') as {
      WriteWrap?: Bindings['WriteWrap'];
      ShutdownWrap?: Bindings['ShutdownWrap'];
      streamBaseState?: unknown;
      kReadBytesOrError?: unknown;
      kLastWriteWasAsync?: unknown;
    };
    const proto = tcp.TCP?.prototype as Record<string, unknown> | undefined;
    const methods = [
      'readStart',
      'readStop',
      'useUserBuffer',
      'writeBuffer',
      'shutdown',
      'connect',
      'connect6',
      'setNoDelay',
      'close',
    ];
    if (
      !tcp.TCP ||
      !tcp.TCPConnectWrap ||
      typeof tcp.constants?.SOCKET !== 'number' ||
      !stream.WriteWrap ||
      !stream.ShutdownWrap ||
      !(stream.streamBaseState instanceof Int32Array) ||
      typeof stream.kReadBytesOrError !== 'number' ||
      typeof stream.kLastWriteWasAsync !== 'number' ||
      !methods.every((m) => typeof proto?.[m] === 'function')
    )
      return null;
    return {
      TCP: tcp.TCP,
      TCPConnectWrap: tcp.TCPConnectWrap,
      WriteWrap: stream.WriteWrap,
      ShutdownWrap: stream.ShutdownWrap,
      SOCKET: tcp.constants.SOCKET,
      state: stream.streamBaseState,
      kReadBytesOrError: stream.kReadBytesOrError,
      kLastWriteWasAsync: stream.kLastWriteWasAsync,
    };
  } catch {
    return null;
  }
}

/** The bindings, loaded once; null: the raw path is off. */
export const bindings = loadBindings();

/** Whether the raw path is in use (bindings as expected, not turned off by MIRRORLB_DATAPATH). */
export function rawAvailable(): boolean {
  return bindings !== null;
}
