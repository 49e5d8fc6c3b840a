import type { Storage, StorageCapabilities } from '@streamkeep/storage';
import { parseOffset } from '@streamkeep/storage';
import fc from 'fast-check';
import { ensure, hex, project } from '../compare.js';
import { probeCapabilities, type Session, type StorageHarness, withSession } from '../harness.js';
import { type ConformanceOptions, fcParameters, resolveOptions } from '../options.js';

/** One named property of an area: a plain async check that rejects with a counterexample, gated on capabilities. */
export interface PropertyCheck {
  readonly title: string;
  /** Why the check does not apply to a backend, or `undefined` when it does. */
  readonly skip?: (capabilities: StorageCapabilities, session: { canReopen: boolean }) => string | undefined;
  readonly run: (harness: StorageHarness, options?: ConformanceOptions) => Promise<void>;
}

/**
 * Asserts a fast-check property whose body gets a fresh session per run. `limits` may depend on the generated value.
 */
export async function assertOverSessions<T>(
  harness: StorageHarness,
  options: ConformanceOptions | undefined,
  arb: fc.Arbitrary<T>,
  body: (session: Session, value: T, capabilities: StorageCapabilities) => Promise<void>,
  limits: (value: T, capabilities: StorageCapabilities) => Session['limits'] = () => ({}),
): Promise<void> {
  const resolved = resolveOptions(options);
  const capabilities = await probeCapabilities(harness);
  const property = fc.asyncProperty(arb, async (value) => {
    await withSession(harness, limits(value, capabilities), (session) => body(session, value, capabilities));
  });
  await fc.assert(property, fcParameters(resolved));
}

/** The position an offset names, as numbers. */
export function position(offset: string): { seq: number; bytes: number } {
  const p = parseOffset(offset);
  if (p.kind !== 'position') throw new Error(`expected a concrete offset, got ${offset}`);
  return { seq: p.readSeq, bytes: p.byteOffset };
}

/** `offset` moved forward over `messages`. */
export function advanceOffset(
  offset: string,
  messages: readonly Uint8Array[],
): { seq: number; bytes: number } {
  const p = position(offset);
  let bytes = p.bytes;
  for (const m of messages) bytes += m.byteLength;
  return { seq: p.seq + messages.length, bytes };
}

export function samePosition(offset: string, p: { seq: number; bytes: number }): boolean {
  const q = position(offset);
  return q.seq === p.seq && q.bytes === p.bytes;
}

/** Reads a whole stream from the start and returns its payloads as hex. */
export async function readAll(storage: Storage, name: string): Promise<string[]> {
  const r = await storage.read(name, '-1');
  ensure(r.upToDate, `read(${JSON.stringify(name)}, "-1") without a budget must reach the tail`);
  return r.messages.map(hex);
}

/** A head projected onto the contract's fields, for before/after comparisons. */
export async function headOf(storage: Storage, name: string) {
  return project.metadata(await storage.head(name));
}

/** Labels a value for failure messages. */
export function show(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (v instanceof Uint8Array ? hex(v) : v));
}
