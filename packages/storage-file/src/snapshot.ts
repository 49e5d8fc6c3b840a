import { crc32 } from 'node:zlib';
import { CarriedRegion, readFully } from './carried-region.js';
import type { CarriedRef, CatalogRecord } from './catalog.js';
import { crc32Range } from './crc.js';
import type { FileSystem } from './fs.js';
import {
  CATALOG_MAGIC,
  checked,
  decodeRecord,
  encodeRecord,
  FIXED,
  HEADER,
  HEADER_3,
  hashBytes,
  headerCrc,
  keyBuf,
  mayExpire,
  nameOffset,
  Out,
  S_FORK,
  S_TOMBSTONE,
  sameBytes,
  scan,
  skipRecord,
  snapshotVersion,
  writeKey,
} from './snapshot-format.js';

/**
 * The catalog in memory, and its snapshot file.
 *
 * Opening a root of 100,000 streams must not build 100,000 records: the snapshot is kept as one buffer, and a name
 * maps to its record's offset in it until the record is first needed (then decoded once). Records of forks and
 * tombstones are decoded at once (opening counts forks and finishes cascades). A snapshot is written by copying the
 * bytes of the records never decoded and encoding the others.
 *
 * The carried logs of small streams (`carry.ts`) follow the records, in a region of their own (`carried-region.ts`):
 * opening reads the records only, and a stream's carried bytes are read when it is first loaded.
 */

export class Catalog {
  /** Records decoded from the snapshot or made in this process. A name is here or live in the index, never both. */
  private readonly map = new Map<string, CatalogRecord>();
  private raw: Buffer = Buffer.alloc(0);
  private rawTypes: string[] = [];
  /** Whether records decoded from the snapshot have exact summaries (a clean shutdown preceded the open). */
  private exact = true;
  /**
   * The snapshot's records never decoded, found by name without a string per record: their offsets (by ordinal),
   * the hashes of their names' UTF-8 bytes, an open-addressed table of ordinal + 1 (0: empty), and a mark for each
   * ordinal that left the index (decoded into `map`, replaced or deleted).
   */
  private offsets = new Uint32Array(0);
  private hashes = new Uint32Array(0);
  private slots = new Uint32Array(0);
  private gone = new Uint8Array(0);
  private live = 0;
  /** Ordinals of the snapshot's records with a carried log, and where each one's bytes start in the region. */
  private inlineOrds: number[] = [];
  private carriedPos = new Float64Array(0);
  /** The snapshot's carried logs, read on demand (none in a snapshot of an earlier version, which holds them inline). */
  region: CarriedRegion | undefined;
  /** The snapshot read is of an earlier version: its records are re-encoded, not copied, by {@link encode}. */
  private legacy = false;
  /** Payload bytes of all streams, as the snapshot recorded them. */
  snapshotBytes = 0;
  /** Bytes of the carried logs in the snapshot read at open. */
  inlineBytes = 0;

  get size(): number {
    return this.map.size + this.live;
  }

  get(name: string): CatalogRecord | undefined {
    const r = this.map.get(name);
    if (r !== undefined || this.live === 0) return r;
    const ord = this.find(name);
    return ord < 0 ? undefined : this.take(ord, name);
  }

  has(name: string): boolean {
    return this.map.has(name) || (this.live > 0 && this.find(name) >= 0);
  }

  set(name: string, record: CatalogRecord): this {
    if (this.live > 0 && !this.map.has(name)) {
      const ord = this.find(name);
      if (ord >= 0) this.drop(ord);
    }
    this.map.set(name, record);
    return this;
  }

  delete(name: string): boolean {
    if (this.map.delete(name)) return true;
    if (this.live === 0) return false;
    const ord = this.find(name);
    if (ord < 0) return false;
    this.drop(ord);
    return true;
  }

  clear(): void {
    this.map.clear();
    void this.region?.close();
    this.region = undefined;
    this.legacy = false;
    this.raw = Buffer.alloc(0);
    this.offsets = new Uint32Array(0);
    this.hashes = new Uint32Array(0);
    this.slots = new Uint32Array(0);
    this.gone = new Uint8Array(0);
    this.live = 0;
    this.inlineOrds = [];
  }

  /** Every name (the snapshot's not yet decoded are read from its bytes). */
  *keys(): IterableIterator<string> {
    yield* this.map.keys();
    for (let i = 0; i < this.gone.length; i++) if (this.gone[i] === 0) yield this.nameAt(i);
  }

  /** The records decoded so far (forks and tombstones always are), without decoding any. */
  decoded(): IterableIterator<CatalogRecord> {
    return this.map.values();
  }

  /** Every record, decoding those not yet decoded. */
  values(): IterableIterator<CatalogRecord> {
    return this.records(() => true);
  }

  /**
   * Every record that may expire: those decoded, and of the others those with a TTL or a deadline (decoded now). A
   * sweep for expired streams leaves the records that cannot expire in the snapshot's bytes.
   */
  expirable(): IterableIterator<CatalogRecord> {
    return this.records((p) => mayExpire(this.raw, p));
  }

  /** The decoded records, then those of the snapshot at whose offset `pick` says yes (decoded now). */
  private *records(pick: (p: number) => boolean): IterableIterator<CatalogRecord> {
    // The records decoded below join `map`: collected first, so that its iteration does not meet them.
    const known = [...this.map.values()];
    yield* known;
    for (let i = 0; i < this.gone.length; i++) {
      if (this.gone[i] === 0 && pick(this.offsets[i]!)) yield this.take(i, this.nameAt(i));
    }
  }

  /** The records of the snapshot read at open that carried a log (decoding them). */
  *carried(): IterableIterator<CatalogRecord> {
    for (const ord of this.inlineOrds) {
      const name = this.nameAt(ord);
      const r = this.gone[ord] === 0 ? this.take(ord, name) : this.map.get(name);
      if (r !== undefined) yield r;
    }
  }

  /**
   * The carried bytes of `record` (decoded from the snapshot, not loaded yet) checked against their checksum, when
   * the region is in memory: undefined when they must be read first ({@link readCarried}), `damaged` when they fail.
   */
  carriedNow(ref: CarriedRef): Buffer | 'damaged' | undefined {
    const bytes = this.region?.bytes;
    if (bytes === undefined) return undefined;
    return checked(bytes.subarray(ref.pos, ref.pos + ref.len), ref.crc);
  }

  /** The carried bytes of `ref`, read from the region and checked against their checksum. */
  async readCarried(ref: CarriedRef): Promise<Buffer | 'damaged'> {
    const region = this.region;
    if (region === undefined) return 'damaged';
    return checked(await region.read(ref.pos, ref.len), ref.crc);
  }

  /** Reads every carried log not loaded yet into memory: {@link encode} needs them. */
  async loadRegion(): Promise<void> {
    await this.region?.load();
  }

  /**
   * The snapshot of this catalog: records never decoded are copied as they were read (those of an earlier version
   * are decoded and encoded anew). Carried logs not loaded yet must be in memory ({@link loadRegion}).
   */
  encode(): Buffer[] {
    if (this.legacy) {
      for (const _ of this.values());
      this.legacy = false;
    }
    const types = new Map<string, number>();
    for (const t of this.rawTypes) types.set(t, types.size);
    const out = new Out();
    const carried: Buffer[] = [];
    let count = 0;
    let total = 0;
    const raw = this.raw;
    for (let i = 0; i < this.gone.length; i++) {
      if (this.gone[i] !== 0) continue;
      const v = this.offsets[i]!;
      const end = skipRecord(raw, v, true);
      out.room(end - v);
      raw.copy(out.cur, out.p, v, end);
      out.p += end - v;
      if (scan.inline > 0) carried.push(this.regionBytes(this.carriedPos[i]!, scan.inline));
      total += raw.readDoubleLE(v + 14);
      count++;
    }
    for (const [name, v] of this.map) {
      if (v.removed || v.name !== name) continue;
      const bytes =
        v.inline ?? (v.carried === undefined ? undefined : this.regionBytes(v.carried.pos, v.carried.len));
      // A carried log not loaded keeps the checksum it was read with: damage stays detectable, never blessed.
      encodeRecord(v, types, out, bytes, v.inline === undefined ? v.carried?.crc : undefined);
      if (bytes !== undefined) carried.push(bytes);
      total += v.bytes;
      count++;
    }
    const chunks = out.finish();
    let tableLen = 8 + 2;
    for (const k of types.keys()) tableLen += 2 + Buffer.byteLength(k, 'utf8');
    const table = Buffer.allocUnsafe(tableLen);
    table.writeDoubleLE(total, 0);
    table.writeUInt16LE(types.size, 8);
    let q = 10;
    for (const k of types.keys()) {
      const n = table.write(k, q + 2, 'utf8');
      table.writeUInt16LE(n, q);
      q += 2 + n;
    }
    let crc = crc32Range(table, 0, table.length, 0);
    let recordBytes = 0;
    for (const ch of chunks) {
      crc = crc32Range(ch, 0, ch.length, crc);
      recordBytes += ch.length;
    }
    const trailer = Buffer.allocUnsafe(4);
    trailer.writeUInt32LE(crc, 0);
    let regionLength = 0;
    for (const b of carried) regionLength += b.byteLength;
    const header = Buffer.alloc(HEADER);
    CATALOG_MAGIC.copy(header, 0);
    header.writeUInt32LE(count, 8);
    header.writeDoubleLE(HEADER + table.length + recordBytes + 4, 16);
    header.writeDoubleLE(regionLength, 24);
    header.writeUInt32LE(headerCrc(header), 12);
    return [header, table, ...chunks, trailer, ...carried];
  }

  private regionBytes(pos: number, len: number): Buffer {
    const bytes = this.region?.bytes;
    if (bytes === undefined) throw new Error('a carried log is not in memory: load the region first');
    return bytes.subarray(pos, pos + len);
  }

  /**
   * Reads a snapshot: checks it whole, then indexes each record by the bytes of its name (no string, no record made
   * until a name is looked up). `exact`: the snapshot was written by a clean shutdown, so its summaries are exact.
   * Throws an `Error` saying what is wrong when it is damaged.
   */
  static decode(b: Buffer, exact: boolean, region?: CarriedRegion): Catalog {
    const version = snapshotVersion(b);
    if (version === 0) throw new Error('the catalog snapshot has no valid header');
    const legacy = version < 4;
    const start = legacy ? HEADER_3 : HEADER;
    if (b.length < start + 14) throw new Error('the catalog snapshot has no valid header');
    const headerOk = legacy
      ? crc32(b.subarray(0, 12)) === b.readUInt32LE(12)
      : headerCrc(b) === b.readUInt32LE(12);
    if (!headerOk) throw new Error('the catalog snapshot header is damaged');
    const count = b.readUInt32LE(8);
    const end = b.length - 4;
    if (!legacy && (b.readDoubleLE(16) !== b.length || b.readDoubleLE(24) !== (region?.length ?? 0))) {
      throw new Error('the catalog snapshot is malformed');
    }
    if (crc32Range(b, start, end, 0) !== b.readUInt32LE(end)) {
      throw new Error('the catalog snapshot failed its checksum');
    }
    // Each record takes at least FIXED bytes: a count the file cannot hold is damage, not a table to allocate.
    if (count > (end - start) / FIXED) throw new Error('the catalog snapshot is malformed');
    const c = new Catalog();
    c.raw = b;
    c.exact = exact;
    c.legacy = legacy;
    c.region = region;
    let p = start;
    c.snapshotBytes = b.readDoubleLE(p);
    const nTypes = b.readUInt16LE(p + 8);
    p += 10;
    for (let i = 0; i < nTypes; i++) {
      const n = b.readUInt16LE(p);
      c.rawTypes.push(b.toString('utf8', p + 2, p + 2 + n));
      p += 2 + n;
    }
    let cap = 16;
    while (cap < count * 2) cap *= 2;
    const offsets = new Uint32Array(count);
    const hashes = new Uint32Array(count);
    const slots = new Uint32Array(cap);
    const mask = cap - 1;
    const eager: number[] = [];
    const carriedPos = legacy ? new Float64Array(0) : new Float64Array(count);
    let regionPos = 0;
    for (let i = 0; i < count; i++) {
      if (p + FIXED > end) throw new Error('the catalog snapshot is malformed');
      const next = skipRecord(b, p, !legacy);
      if (next > end) throw new Error('the catalog snapshot is malformed');
      const start = scan.name;
      const len = scan.nameLen;
      const h = hashBytes(b, start, start + len);
      let s = h & mask;
      for (let o = slots[s]!; o !== 0; o = slots[s]!) {
        if (hashes[o - 1] === h && sameBytes(b, start, len, offsets[o - 1]!)) {
          throw new Error('the catalog snapshot names a stream twice');
        }
        s = (s + 1) & mask;
      }
      slots[s] = i + 1;
      offsets[i] = p;
      hashes[i] = h;
      if ((b[p]! & (S_FORK | S_TOMBSTONE)) !== 0) eager.push(i);
      if (scan.inline > 0) {
        c.inlineBytes += scan.inline;
        c.inlineOrds.push(i);
        if (!legacy) {
          carriedPos[i] = regionPos;
          regionPos += scan.inline;
        }
      }
      p = next;
    }
    if (p !== end || (!legacy && regionPos !== (region?.length ?? 0))) {
      throw new Error('the catalog snapshot is malformed');
    }
    c.carriedPos = carriedPos;
    c.offsets = offsets;
    c.hashes = hashes;
    c.slots = slots;
    c.gone = new Uint8Array(count);
    c.live = count;
    for (const i of eager) c.take(i, c.nameAt(i));
    return c;
  }

  /** A catalog from a whole snapshot file's bytes, its carried region included (in memory). */
  static fromBytes(all: Buffer, exact: boolean): Catalog {
    if (snapshotVersion(all) !== 4) return Catalog.decode(all, exact);
    const recordsEnd = all.length >= HEADER ? all.readDoubleLE(16) : 0;
    if (!Number.isSafeInteger(recordsEnd) || recordsEnd < HEADER || recordsEnd > all.length) {
      throw new Error('the catalog snapshot header is damaged');
    }
    const length = all.length - recordsEnd;
    const region = length > 0 ? new CarriedRegion(undefined, recordsEnd, length) : undefined;
    if (region !== undefined) region.bytes = all.subarray(recordsEnd);
    return Catalog.decode(all.subarray(0, recordsEnd), exact, region);
  }

  /** The ordinal of `name`'s record in the index, or -1 (also once it left the index). */
  private find(name: string): number {
    const n = writeKey(name);
    const key = keyBuf;
    const h = hashBytes(key, 0, n);
    const mask = this.slots.length - 1;
    const b = this.raw;
    for (let s = h & mask, o = this.slots[s]!; o !== 0; s = (s + 1) & mask, o = this.slots[s]!) {
      const ord = o - 1;
      if (this.hashes[ord] !== h) continue;
      const at = this.offsets[ord]!;
      const q = nameOffset(b, at);
      const len = b.readUInt32LE(q - 4);
      if (len !== n || b.compare(key, 0, n, q, q + n) !== 0) continue;
      // Two strings share UTF-8 bytes only when one has a lone surrogate (never a valid name): not this one.
      return this.gone[ord] === 0 && this.nameAt(ord) === name ? ord : -1;
    }
    return -1;
  }

  /** Decodes the record at `ord` into `map`, where it stays. */
  private take(ord: number, name: string): CatalogRecord {
    const pos = this.legacy ? undefined : this.carriedPos[ord];
    const r = decodeRecord(this.raw, this.offsets[ord]!, name, this.rawTypes, this.exact, pos);
    this.drop(ord);
    this.map.set(name, r);
    return r;
  }

  private drop(ord: number): void {
    this.gone[ord] = 1;
    this.live--;
  }

  private nameAt(ord: number): string {
    const q = nameOffset(this.raw, this.offsets[ord]!);
    return this.raw.toString('utf8', q, q + this.raw.readUInt32LE(q - 4));
  }
}

/**
 * Reads the snapshot at `path`: its header and records, leaving the carried region in the file until needed (its
 * handle is kept by the catalog's `region`). A snapshot of an earlier version is read whole.
 */
export async function readCatalog(fs: FileSystem, path: string, exact: boolean): Promise<Catalog> {
  const fh = await fs.open(path, 'r');
  let keep = false;
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(Math.min(size, HEADER));
    await readFully(fh, head, 0);
    if (snapshotVersion(head) !== 4) {
      const all = Buffer.allocUnsafe(size);
      await readFully(fh, all, 0);
      return Catalog.decode(all, exact);
    }
    if (head.length < HEADER || headerCrc(head) !== head.readUInt32LE(12)) {
      throw new Error('the catalog snapshot header is damaged');
    }
    const recordsEnd = head.readDoubleLE(16);
    const regionLength = head.readDoubleLE(24);
    if (!Number.isSafeInteger(recordsEnd) || recordsEnd < HEADER || recordsEnd + regionLength !== size) {
      throw new Error(
        `the catalog snapshot has ${size} bytes where its header says ${recordsEnd + regionLength}`,
      );
    }
    const b = Buffer.allocUnsafe(recordsEnd);
    head.copy(b, 0);
    await readFully(fh, b.subarray(HEADER), HEADER);
    const region = regionLength > 0 ? new CarriedRegion(fh, recordsEnd, regionLength) : undefined;
    const c = Catalog.decode(b, exact, region);
    keep = region !== undefined;
    return c;
  } finally {
    if (!keep) await fh.close();
  }
}
