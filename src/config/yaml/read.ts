/** Reading a config file as UTF-8 text, refusing anything too big or not text before parsing. */
import { open } from 'node:fs/promises';
import { lineCol, MAX_BYTES } from './prescan.js';
import { START, type Pos } from './positions.js';

export type ReadResult =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly pos: Pos; readonly message: string };

/** Reads at most MAX_BYTES + 1 bytes, so a pipe or /dev/zero cannot make it read forever. */
export async function readConfigText(path: string): Promise<ReadResult> {
  let bytes: Buffer;
  try {
    bytes = await readBounded(path, MAX_BYTES + 1);
  } catch (e) {
    return { ok: false, pos: START, message: `cannot read: ${(e as Error).message}` };
  }
  if (bytes.length > MAX_BYTES) {
    return {
      ok: false,
      pos: START,
      message: `file is larger than ${MAX_BYTES} bytes (1 MiB); refusing to read it`,
    };
  }
  return decodeUtf8(bytes);
}

async function readBounded(path: string, limit: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < limit) {
      const buf = Buffer.alloc(Math.min(64 * 1024, limit - total));
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
    }
    return Buffer.concat(chunks);
  } finally {
    await fh.close();
  }
}

function decodeUtf8(bytes: Buffer): ReadResult {
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    const lossy = new TextDecoder('utf-8').decode(bytes);
    const at = lossy.indexOf('\uFFFD');
    return {
      ok: false,
      pos: lineCol(lossy, Math.max(0, at)),
      message: 'not UTF-8 text (an invalid byte sequence here); is this a binary file?',
    };
  }
}
