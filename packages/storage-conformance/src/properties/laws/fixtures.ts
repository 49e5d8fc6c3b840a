import type { Storage } from '@streamkeep/storage';
import fc from 'fast-check';
import { nonEmptyMessagesArb, payloadArb } from '../../arbitraries.js';
import { position } from '../common.js';

// What several laws share: the content type they create streams with, batch arbitraries, and filling a stream.

export const CT = 'application/octet-stream';
// Batches of any payload size (rarely up to 1 MiB), and of small payloads where a law sets byte limits of a few bytes.
export const batchesArb = fc.array(nonEmptyMessagesArb, { minLength: 1, maxLength: 6 });
export const smallBatchArb = fc.array(payloadArb, { minLength: 1, maxLength: 3 });
export const smallBatchesArb = fc.array(smallBatchArb, { minLength: 1, maxLength: 6 });

/** Appends `batches` to a fresh stream `name` and returns every message's offset (plus the tail at the end). */
export async function fill(storage: Storage, name: string, batches: readonly Uint8Array[][]) {
  await storage.createStream(name, { contentType: CT });
  const offsets: string[] = [];
  const messages: Uint8Array[] = [];
  let tail = '0000000000000000_0000000000000000';
  for (const batch of batches) {
    const r = await storage.append(name, { messages: batch, contentType: CT });
    let at = position(r.startOffset);
    for (const m of batch) {
      offsets.push(`${at.seq}:${at.bytes}`);
      at = { seq: at.seq + 1, bytes: at.bytes + m.byteLength };
      messages.push(m);
    }
    tail = r.nextOffset;
  }
  return { offsets, messages, tail };
}

/** The offset string of a `seq:bytes` key as {@link fill} returns them. */
export function offsetString(key: string): string {
  const [s, b] = key.split(':').map(Number) as [number, number];
  return `${s.toString(16).padStart(16, '0')}_${b.toString(16).padStart(16, '0')}`;
}
