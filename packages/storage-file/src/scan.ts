import { crc32Range } from './crc.js';
import {
  decodeBody,
  LOG_HEADER_SIZE,
  plausibleRecord,
  RECORD_HEADER_SIZE,
  type RecordSink,
} from './format.js';
import type { FileHandleLike } from './fs.js';

const WINDOW = 8 * 1024 * 1024;
/** CRC work spent looking for valid records after a bad one before giving up (and calling it corruption). */
const RESYNC_BUDGET = 256 * 1024 * 1024;

function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 0x1000000;
}

export type ScanResult =
  | { readonly kind: 'ok'; readonly end: number }
  /**
   * A torn or unverifiable tail from `end` on, with nothing valid after it, or a zero-filled hole (unsynced writes
   * lost in a power failure): truncate there.
   */
  | { readonly kind: 'torn'; readonly end: number }
  /** A bad record at `at` followed by valid ones: the log is corrupt in the middle. */
  | { readonly kind: 'corrupt'; readonly at: number; readonly reason: string };

/**
 * Reads a log sequentially in large windows, verifying every record's CRC and replaying it through `cb`. Stops at
 * the first bad record and decides whether it is a torn tail (nothing verifiable follows) or mid-log corruption.
 */
export async function scanLog(
  fh: FileHandleLike,
  size: number,
  salt: number,
  cb: RecordSink,
): Promise<ScanResult> {
  let buf = Buffer.allocUnsafe(Math.min(WINDOW, Math.max(size, 64)));
  let dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let winStart = 0;
  let winLen = 0;

  // Makes [p, p + n) available in buf; callers ensure p + n <= size.
  const ensure = async (p: number, n: number): Promise<void> => {
    if (p >= winStart && p + n <= winStart + winLen) return;
    if (n > buf.length) {
      buf = Buffer.allocUnsafe(Math.max(n, WINDOW));
      dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    const want = Math.min(buf.length, size - p);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, p + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    winStart = p;
    winLen = got;
    if (got < n) throw new Error(`log shrank while being read (wanted ${n} bytes at ${p}, got ${got})`);
  };

  // True when a complete record with a valid CRC starts at p.
  const validAt = async (p: number): Promise<boolean> => {
    if (p + RECORD_HEADER_SIZE > size) return false;
    await ensure(p, RECORD_HEADER_SIZE);
    const o = p - winStart;
    const len = buf.readUInt32LE(o + 4);
    if (len < 1 || p + RECORD_HEADER_SIZE + len > size) return false;
    await ensure(p, RECORD_HEADER_SIZE + len);
    const s = p - winStart;
    return crc32Range(buf, s + 4, s + RECORD_HEADER_SIZE + len, salt, dv) === buf.readUInt32LE(s);
  };

  const zeroFilled = async (from: number, to: number): Promise<boolean> => {
    for (let p = from; p < to; ) {
      const n = Math.min(to - p, WINDOW);
      await ensure(p, n);
      const o = p - winStart;
      for (let i = 0; i < n; i++) if (buf[o + i] !== 0) return false;
      p += n;
    }
    return true;
  };

  const classify = async (at: number, reason: string): Promise<ScanResult> => {
    let budget = RESYNC_BUDGET;
    for (let q = at + 1; q + RECORD_HEADER_SIZE < size; q++) {
      if (q + RECORD_HEADER_SIZE + 4 > size) break;
      if (q < winStart || q + RECORD_HEADER_SIZE + 4 > winStart + winLen)
        await ensure(q, RECORD_HEADER_SIZE + 4);
      const o = q - winStart;
      const len = u32(buf, o + 4);
      if (len < 4 || q + RECORD_HEADER_SIZE + len > size || !plausibleRecord(buf, o, len)) continue;
      budget -= len;
      if (budget < 0) return { kind: 'corrupt', at, reason: `${reason}; the rest could not be verified` };
      if (await validAt(q)) {
        // Zeros up to the next good record: blocks the OS never wrote back before a power loss (possible for
        // unsynced appends). Everything from the hole on is cut, so what remains is a prefix of whole commits.
        return (await zeroFilled(at, q)) ? { kind: 'torn', end: at } : { kind: 'corrupt', at, reason };
      }
    }
    return { kind: 'torn', end: at };
  };

  let p = LOG_HEADER_SIZE;
  while (p < size) {
    if (size - p < RECORD_HEADER_SIZE) return classify(p, 'short record header');
    // The fast path stays synchronous: only a record crossing the window's end waits for a refill.
    if (p < winStart || p + RECORD_HEADER_SIZE > winStart + winLen) await ensure(p, RECORD_HEADER_SIZE);
    let o = p - winStart;
    const len = dv.getUint32(o + 4, true);
    const recEnd = p + RECORD_HEADER_SIZE + len;
    if (len < 1 || recEnd > size) return classify(p, 'record length runs past the end of the log');
    if (recEnd > winStart + winLen) {
      await ensure(p, RECORD_HEADER_SIZE + len);
      o = p - winStart;
    }
    if (crc32Range(buf, o + 4, o + RECORD_HEADER_SIZE + len, salt, dv) !== dv.getUint32(o, true)) {
      return classify(p, `checksum mismatch in the record at byte ${p}`);
    }
    if (!decodeBody(buf, o + RECORD_HEADER_SIZE, o + RECORD_HEADER_SIZE + len, winStart, cb)) {
      return { kind: 'corrupt', at: p, reason: `malformed record at byte ${p}` };
    }
    p = recEnd;
  }
  return { kind: 'ok', end: p };
}

/**
 * Replays a log held in memory (a carried stream's bytes) through `cb`, synchronously. The bytes passed a checksum
 * already (the catalog snapshot's at open, or they were made in this process), so record checksums are checked only
 * when `verify` is set; the structure is always checked, and any bad record makes the whole log `corrupt` (a carried
 * log is never torn: it is replaced as a whole).
 */
export function scanBytes(bytes: Buffer, salt: number, cb: RecordSink, verify: boolean): ScanResult {
  const size = bytes.byteLength;
  let p = LOG_HEADER_SIZE;
  while (p < size) {
    if (size - p < RECORD_HEADER_SIZE) return { kind: 'corrupt', at: p, reason: 'short record header' };
    const len = u32(bytes, p + 4);
    const recEnd = p + RECORD_HEADER_SIZE + len;
    if (len < 1 || recEnd > size)
      return { kind: 'corrupt', at: p, reason: 'record length runs past the end' };
    if (verify && crc32Range(bytes, p + 4, recEnd, salt) !== u32(bytes, p)) {
      return { kind: 'corrupt', at: p, reason: `checksum mismatch in the record at byte ${p}` };
    }
    if (!decodeBody(bytes, p + RECORD_HEADER_SIZE, recEnd, 0, cb)) {
      return { kind: 'corrupt', at: p, reason: `malformed record at byte ${p}` };
    }
    p = recEnd;
  }
  return { kind: 'ok', end: p };
}
