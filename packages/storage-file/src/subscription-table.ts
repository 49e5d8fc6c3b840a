import { crc32 } from 'node:zlib';
import {
  freezeRecord,
  MemberIndex,
  parseSubscriptionRecord,
  StorageError,
  type SubscriptionRecord,
} from '@streamkeep/storage';

/**
 * The subscription records of an open root, in memory: a map of frozen records plus an index from member path to
 * subscription ids, so that routing an append to its subscribers does not scan every record.
 *
 * @remarks
 * Changed only by {@link SubscriptionTable.apply}, which the journal calls once a mutation's entry is durable (and
 * recovery calls for each journaled mutation), so the table always holds exactly the durable state. A checkpoint
 * writes it whole to the `subscriptions` file ({@link SubscriptionTable.encode}) before the journal is emptied.
 *
 * File format: a header line `streamkeep-subscriptions 1 <count> <crc32 of the body, hex>` then the body, one
 * record per line as JSON (the contract's plain JSON records; `JSON.stringify` escapes every newline). The file is
 * replaced atomically, so the checksum only guards against damage at rest: a mismatch is `CORRUPTED`.
 */
export class SubscriptionTable {
  readonly #records = new Map<string, SubscriptionRecord>();
  readonly #members = new MemberIndex();
  /** Changed since the table was last written to its file. */
  dirty = false;

  get size(): number {
    return this.#records.size;
  }

  get(id: string): SubscriptionRecord | undefined {
    return this.#records.get(id);
  }

  values(): IterableIterator<SubscriptionRecord> {
    return this.#records.values();
  }

  /** The records having `path` as a member (unordered). */
  withMember(path: string): SubscriptionRecord[] {
    return [...this.#members.ids(path)].map((id) => this.#records.get(id)!);
  }

  /** Sets the record of `id` (frozen), or removes it when `record` is `null`. */
  apply(id: string, record: SubscriptionRecord | null): void {
    const before = this.#records.get(id);
    if (record === null) this.#records.delete(id);
    else this.#records.set(id, freezeRecord(record));
    this.#members.move(id, before, record ?? undefined);
    this.dirty = true;
  }

  /** The whole table in the file format (records in no particular order). */
  encode(): Uint8Array[] {
    let body = '';
    for (const r of this.#records.values()) body += `${JSON.stringify(r)}\n`;
    const bytes = Buffer.from(body, 'utf8');
    const head = `${MAGIC} ${this.#records.size} ${crc32(bytes).toString(16)}\n`;
    return [Buffer.from(head, 'utf8'), bytes];
  }

  /**
   * Fills an empty table from a file's content.
   *
   * @throws StorageError `CORRUPTED` for a damaged file (header, checksum, count, or any record).
   */
  load(content: Buffer, where: string): void {
    function bad(why: string): never {
      throw new StorageError('CORRUPTED', `${where}: ${why}`);
    }
    const nl = content.indexOf(0x0a);
    if (nl < 0) bad('no header');
    const head = content.toString('utf8', 0, nl).split(' ');
    if (head.length !== 4 || `${head[0]} ${head[1]}` !== MAGIC) bad('unknown header');
    const count = Number(head[2]);
    const body = content.subarray(nl + 1);
    if (crc32(body).toString(16) !== head[3]) bad('checksum mismatch');
    const lines = body.toString('utf8').split('\n');
    if (lines.pop() !== '' || lines.length !== count) bad(`expected ${head[2]} records`);
    for (const [i, line] of lines.entries()) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        bad(`record ${i} is not JSON`);
      }
      let record: SubscriptionRecord;
      try {
        record = parseSubscriptionRecord(parsed);
      } catch (err) {
        bad(`record ${i}: ${(err as Error).message}`);
      }
      if (this.#records.has(record.id)) bad(`record ${i} repeats ${JSON.stringify(record.id)}`);
      this.apply(record.id, record);
    }
    this.dirty = false;
  }
}

const MAGIC = 'streamkeep-subscriptions 1';
