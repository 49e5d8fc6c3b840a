import type { FileHandleLike } from './fs.js';

/**
 * The carried logs of a catalog snapshot (small streams' log bytes, `carry.ts`), kept at the end of the snapshot
 * file after its records so that opening reads the records only. A stream's bytes are read from here when it is
 * first loaded (and checked against the checksum its record holds); a checkpoint, which copies every carried log into
 * the snapshot it writes, reads the whole region into memory once, after which the file is closed.
 *
 * The file stays open until then: a checkpoint replaces the snapshot by a rename, and the handle keeps reading the
 * file it was opened on.
 */
export class CarriedRegion {
  /** The whole region, once {@link load} read it. */
  bytes: Buffer | undefined;
  private loading: Promise<void> | undefined;
  /** Reads in flight: the file is closed only after them (a descriptor closed under a read may be reused). */
  private readonly reads = new Set<Promise<void>>();

  constructor(
    private fh: FileHandleLike | undefined,
    /** Where the region starts in the snapshot file, and its length. */
    readonly start: number,
    readonly length: number,
  ) {}

  /** The `len` bytes at `pos` of the region: a view of the region in memory, or a copy read from the file. */
  async read(pos: number, len: number): Promise<Buffer> {
    if (pos < 0 || len < 0 || pos + len > this.length)
      throw new Error('a carried log lies outside its region');
    if (this.bytes !== undefined) return this.bytes.subarray(pos, pos + len);
    const fh = this.fh;
    if (fh === undefined) throw new Error('the catalog snapshot is closed');
    const out = Buffer.allocUnsafe(len);
    const read = readFully(fh, out, this.start + pos);
    this.reads.add(read);
    try {
      await read;
    } finally {
      this.reads.delete(read);
    }
    return out;
  }

  /** Reads the whole region into memory (once; concurrent callers share the read), then closes the file. */
  load(): Promise<void> {
    this.loading ??= (async () => {
      const fh = this.fh;
      if (fh === undefined) throw new Error('the catalog snapshot is closed');
      const all = Buffer.allocUnsafe(this.length);
      await readFully(fh, all, this.start);
      // Set before the file closes: a read that starts from now on is served from memory.
      this.bytes = all;
      await this.close();
    })();
    return this.loading;
  }

  /** Closes the file (reads in flight finish first). Reads after this fail unless the region is in memory. */
  async close(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await Promise.allSettled([...this.reads]);
    await fh?.close();
  }
}

/** Fills `buf` from `fh` at `position`; a file that ends first is an error (a snapshot shorter than it says). */
export async function readFully(fh: FileHandleLike, buf: Buffer, position: number): Promise<void> {
  let got = 0;
  while (got < buf.byteLength) {
    const { bytesRead } = await fh.read(buf, got, buf.byteLength - got, position + got);
    if (bytesRead === 0) throw new Error('the catalog snapshot ends early');
    got += bytesRead;
  }
}
