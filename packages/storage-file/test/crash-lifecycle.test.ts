import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatOffset, isStorageError, parseOffset, type Storage } from '@streamkeep/storage';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { buildForChildren, mulberry32, runAndKill } from './crash-harness.js';

// Lifecycle crash test: a child runs creates, forks, closes, deletes and appends over thousands of stream names, the
// parent SIGKILLs it at a random moment, reopens the directory and checks every name against a model built from what
// the child reported: acknowledged operations all happened, operations in flight at the kill happened whole or not at
// all, and nothing else exists. The same directory serves every round, so damage accumulates.
//
// Each round's operations are bounded by time (the random kill), not by count. 12 rounds by default; more with
// STREAMKEEP_CRASH_LIFECYCLE_ROUNDS, another namespace size with STREAMKEEP_CRASH_LIFECYCLE_NAMES, another schedule
// with STREAMKEEP_CRASH_SEED (the seed is printed; the child's operations also depend on timing, so a seed pins the
// kill schedule and the random choices, not the exact interleaving).
const ROUNDS = Number(process.env.STREAMKEEP_CRASH_LIFECYCLE_ROUNDS ?? 12);
const SEED = Number(process.env.STREAMKEEP_CRASH_SEED ?? 20261203);
const NAME_COUNT = Number(process.env.STREAMKEEP_CRASH_LIFECYCLE_NAMES ?? 4000);
/** Operations the child keeps in flight. */
const CONCURRENCY = 48;
const here = dirname(fileURLToPath(import.meta.url));
const BUILD = join(here, '..', 'node_modules', '.cache', 'crash-lifecycle-build');

/** Hierarchical names, a few of them non-ASCII, so that listings have to sort by UTF-8 bytes. */
const NAMES = Array.from({ length: NAME_COUNT }, (_, i) =>
  i % 97 === 0 ? `ünï/${i}` : i % 89 === 0 ? `Ω/${i}` : `t${i % 16}/s${i}`,
);

// ---------------------------------------------------------------------------------------------------------------
// What the child reports
// ---------------------------------------------------------------------------------------------------------------

/** A message: its body is `<key>|` followed by `pad` times `x`. Keys are unique across the whole test. */
type Msg = readonly [key: string, pad: number];
const msgLength = (m: Msg): number => Buffer.byteLength(m[0]) + 1 + m[1];

type Op =
  | { op: 'create'; name: string; ct: string; exp: number | null; closed: boolean; msgs: Msg[] }
  | {
      op: 'fork';
      name: string;
      source: string;
      offset?: string;
      exp: number | null;
      closed: boolean;
      msgs: Msg[];
    }
  | { op: 'append'; name: string; ct: string; msgs: Msg[] }
  | { op: 'pappend'; name: string; ct: string; seq: number; msgs: Msg[] }
  | { op: 'close'; name: string }
  | { op: 'delete'; name: string };

type Line =
  | { k: 'ready' }
  | ({ k: 'i'; id: number } & Op)
  | { k: 'a'; id: number; r: Record<string, unknown> }
  | { k: 'e'; id: number; code: string };

// ---------------------------------------------------------------------------------------------------------------
// The model: what the store must hold
// ---------------------------------------------------------------------------------------------------------------

interface Stream {
  /** false: a tombstone (soft-deleted, kept for its forks). */
  live: boolean;
  ct: string;
  exp: number | null;
  createdClosed: boolean;
  closed: boolean;
  /** The fork point, as a position in the source's content. */
  fork: { source: string; count: number; bytes: number } | null;
  /** The stream's own messages. */
  own: Msg[];
  /** The last seq of producer `p` (epoch 0), -1 when unknown. */
  pseq: number;
}

class Model {
  readonly streams = new Map<string, Stream>();
  private children = new Map<string, Set<string>>();
  private memo = new Map<string, Msg[]>();

  clone(): Model {
    const m = new Model();
    for (const [name, s] of this.streams) m.set(name, { ...s, own: s.own.slice() });
    return m;
  }

  set(name: string, s: Stream): void {
    this.memo.clear();
    this.streams.set(name, s);
    if (s.fork !== null) {
      let set = this.children.get(s.fork.source);
      if (set === undefined) this.children.set(s.fork.source, (set = new Set()));
      set.add(name);
    }
  }

  remove(name: string): Stream {
    this.memo.clear();
    const s = this.streams.get(name)!;
    this.streams.delete(name);
    if (s.fork !== null) this.children.get(s.fork.source)?.delete(name);
    return s;
  }

  touch(): void {
    this.memo.clear();
  }

  /** Forks, live or tombstoned, that read `name`. */
  refs(name: string): number {
    return this.children.get(name)?.size ?? 0;
  }

  /** The name and its ancestors: everything a delete of `name` may remove. */
  lineage(name: string): string[] {
    const out = [name];
    for (let s = this.streams.get(name); s?.fork; s = this.streams.get(s.fork.source))
      out.push(s.fork.source);
    return out;
  }

  /** What a read from `-1` returns: the inherited prefix, then the stream's own messages. */
  content(name: string): Msg[] {
    const hit = this.memo.get(name);
    if (hit !== undefined) return hit;
    const s = this.streams.get(name)!;
    const out = s.fork === null ? [] : this.content(s.fork.source).slice(0, s.fork.count);
    out.push(...s.own);
    this.memo.set(name, out);
    return out;
  }

  tail(s: Stream): string {
    const base = s.fork ?? { count: 0, bytes: 0 };
    return formatOffset(base.count + s.own.length, base.bytes + bytesOf(s.own));
  }

  /** One name's expected observable state, in the form {@link observe} produces. */
  describe(name: string): string {
    const s = this.streams.get(name);
    if (s === undefined) return 'absent';
    if (!s.live) return 'tomb';
    return JSON.stringify({
      ct: s.ct,
      ttl: null,
      exp: s.exp,
      createdClosed: s.createdClosed,
      closed: s.closed,
      fork: s.fork && [s.fork.source, formatOffset(s.fork.count, s.fork.bytes), 0],
      count: s.own.length,
      bytes: bytesOf(s.own),
      tail: this.tail(s),
      content: this.content(name)
        .map((m) => `${m[0]}:${msgLength(m)}`)
        .join(' '),
    });
  }
}

const bytesOf = (msgs: readonly Msg[]): number => msgs.reduce((n, m) => n + msgLength(m), 0);

type Expect = { ok: true; r: Record<string, unknown> } | { ok: false; code: string };

interface Stats {
  rounds: number;
  killedAfterReady: number;
  issued: number;
  acked: number;
  created: number;
  createdClosed: number;
  createdWithMessages: number;
  forked: number;
  forkedFromStart: number;
  idempotentCreates: number;
  closed: number;
  appends: number;
  producerAppends: number;
  producerDuplicates: number;
  deleted: number;
  softDeleted: number;
  cascaded: number;
  recreated: number;
  rejected: Record<string, number>;
  inFlightAtKill: number;
  inFlightApplied: number;
  inFlightNotApplied: number;
  inFlightNoEffect: number;
  liveStreams: number;
  tombstones: number;
  maxLiveStreams: number;
  forkDepth: number;
  /** Time spent in the parent's opens and checks (for information only; nothing depends on it). */
  checkSeconds: number;
  violations: number;
}

/**
 * Applies an operation to the model as the contract says the store applies it, and returns the result or error the
 * store must have answered. Changes the model only on success.
 */
function step(m: Model, o: Op, stats?: Stats): Expect {
  const fail = (code: string): Expect => ({ ok: false, code });
  m.touch();
  const s = m.streams.get(o.name);
  switch (o.op) {
    case 'create': {
      if (s !== undefined) {
        if (!s.live) return fail('PATH_BLOCKED');
        if (s.fork === null && s.closed === o.closed && s.ct === o.ct && s.exp === o.exp) {
          return { ok: true, r: { created: false, nextOffset: m.tail(s), closed: s.closed } };
        }
        return fail('CONFIG_MISMATCH');
      }
      const ns: Stream = {
        live: true,
        ct: o.ct,
        exp: o.exp,
        createdClosed: o.closed,
        closed: o.closed,
        fork: null,
        own: o.msgs.slice(),
        pseq: -1,
      };
      m.set(o.name, ns);
      return { ok: true, r: { created: true, nextOffset: m.tail(ns), closed: o.closed } };
    }
    case 'fork': {
      const src = m.streams.get(o.source);
      if (src === undefined) return fail('NOT_FOUND');
      if (!src.live) return fail('FORK_FROM_TOMBSTONE');
      const content = m.content(o.source);
      let base = { count: content.length, bytes: bytesOf(content) };
      if (o.offset === '-1') base = { count: 0, bytes: 0 };
      else if (o.offset !== undefined) {
        const p = parseOffset(o.offset);
        if (p.kind !== 'position') throw new Error(`harness: fork offset ${o.offset}`);
        base = { count: p.readSeq, bytes: p.byteOffset };
        if (base.count > content.length) return fail('FORK_OFFSET_BEYOND_TAIL');
        if (bytesOf(content.slice(0, base.count)) !== base.bytes) {
          throw new Error(`harness: fork offset ${o.offset} is not a message boundary of ${o.source}`);
        }
      }
      const exp = o.exp ?? src.exp;
      if (s !== undefined) {
        if (!s.live) return fail('PATH_BLOCKED');
        const same =
          s.closed === o.closed &&
          s.ct === src.ct &&
          s.exp === exp &&
          s.fork !== null &&
          s.fork.source === o.source &&
          s.fork.count === base.count &&
          s.fork.bytes === base.bytes;
        if (!same) return fail('CONFIG_MISMATCH');
        return { ok: true, r: { created: false, nextOffset: m.tail(s), closed: s.closed } };
      }
      const ns: Stream = {
        live: true,
        ct: src.ct,
        exp,
        createdClosed: o.closed,
        closed: o.closed,
        fork: { source: o.source, ...base },
        own: o.msgs.slice(),
        pseq: -1,
      };
      m.set(o.name, ns);
      if (stats !== undefined && o.offset === '-1') stats.forkedFromStart++;
      return { ok: true, r: { created: true, nextOffset: m.tail(ns), closed: o.closed } };
    }
    case 'append':
    case 'pappend': {
      if (s === undefined) return fail('NOT_FOUND');
      if (!s.live) return fail('GONE');
      const tail = m.tail(s);
      if (o.op === 'pappend') {
        if (s.ct !== o.ct) return fail('CONTENT_TYPE_MISMATCH');
        if (s.pseq >= 0 && o.seq <= s.pseq) {
          return {
            ok: true,
            r: { startOffset: tail, nextOffset: tail, closed: s.closed, duplicate: true, seq: s.pseq },
          };
        }
        if (s.closed) return fail('STREAM_CLOSED');
        if (o.seq !== s.pseq + 1) return fail('PRODUCER_SEQ_GAP');
        s.pseq = o.seq;
      } else {
        if (s.closed) return fail('STREAM_CLOSED');
        if (s.ct !== o.ct) return fail('CONTENT_TYPE_MISMATCH');
      }
      s.own.push(...o.msgs);
      const r: Record<string, unknown> = { startOffset: tail, nextOffset: m.tail(s), closed: false };
      if (o.op === 'pappend') Object.assign(r, { duplicate: false, seq: o.seq });
      return { ok: true, r };
    }
    case 'close': {
      if (s === undefined) return fail('NOT_FOUND');
      if (!s.live) return fail('GONE');
      s.closed = true;
      const tail = m.tail(s);
      return { ok: true, r: { startOffset: tail, nextOffset: tail, closed: true } };
    }
    case 'delete': {
      if (s === undefined) return fail('NOT_FOUND');
      if (!s.live) return fail('GONE');
      if (m.refs(o.name) > 0) {
        s.live = false;
        return { ok: true, r: { softDeleted: true } };
      }
      // Removed, and with it every tombstoned ancestor left without forks.
      let gone = m.remove(o.name);
      while (gone.fork !== null) {
        const src = m.streams.get(gone.fork.source);
        if (src === undefined || src.live || m.refs(gone.fork.source) > 0) break;
        gone = m.remove(gone.fork.source);
        if (stats !== undefined) stats.cascaded++;
      }
      return { ok: true, r: { softDeleted: false } };
    }
  }
}

/** The names an operation reads or changes (the child never runs two operations sharing one at once). */
function lockOf(m: Model, o: Op): string[] {
  if (o.op === 'delete') return m.lineage(o.name);
  if (o.op === 'fork') return [...new Set([o.name, o.source])];
  return [o.name];
}

// ---------------------------------------------------------------------------------------------------------------
// Observing the store
// ---------------------------------------------------------------------------------------------------------------

const codeOf = (err: unknown): string => {
  if (isStorageError(err)) return err.code;
  throw err;
};

/** One name's observable state: `absent`, `tomb`, or a live stream's config, lineage, tail and full content. */
async function observe(st: Storage, name: string): Promise<string> {
  const exists = await st.exists(name);
  let head: Awaited<ReturnType<Storage['head']>>;
  try {
    head = await st.head(name);
  } catch (err) {
    const code = codeOf(err);
    const kind = code === 'NOT_FOUND' ? 'absent' : code === 'GONE' ? 'tomb' : `head failed: ${code}`;
    const readCode = await st.read(name, '-1').then(
      () => 'ok',
      (e) => codeOf(e),
    );
    if (exists || readCode !== code) return `${kind}, but exists: ${exists}, read: ${readCode}`;
    return kind;
  }
  const read = await st.read(name, '-1');
  if (!exists || read.nextOffset !== head.nextOffset || read.closed !== head.closed || !read.upToDate) {
    return `incoherent: exists ${exists}, head ${head.nextOffset}/${head.closed}, read ${read.nextOffset}/${read.closed}/${read.upToDate}`;
  }
  return JSON.stringify({
    ct: head.config.contentType,
    ttl: head.config.ttlSeconds,
    exp: head.config.expiresAt,
    createdClosed: head.config.createdClosed,
    closed: head.closed,
    fork: head.fork && [head.fork.source, head.fork.offset, head.fork.subOffset],
    count: head.messageCount,
    bytes: head.totalBytes,
    tail: head.nextOffset,
    content: read.messages
      .map((b) => `${Buffer.from(b.subarray(0, 48)).toString('latin1').split('|')[0]}:${b.byteLength}`)
      .join(' '),
  });
}

async function observeAll(st: Storage, names: readonly string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < names.length; i += 32) {
    const batch = names.slice(i, i + 32);
    const seen = await Promise.all(batch.map((n) => observe(st, n)));
    batch.forEach((n, k) => {
      out.set(n, seen[k]!);
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Running a child
// ---------------------------------------------------------------------------------------------------------------

interface RoundOutcome {
  lines: Line[];
  stderr: string;
  killed: boolean;
}

/** Runs one child and SIGKILLs it `delay` ms after it reported being ready, or after it was spawned. */
function runChild(arg: object, input: object, afterReady: boolean, delay: number): Promise<RoundOutcome> {
  return runAndKill('crash-lifecycle-child.mjs', arg, {
    afterReady,
    delay,
    ready: '{"k":"ready"}',
    input,
  }) as Promise<RoundOutcome>;
}

const same = (expected: Record<string, unknown>, actual: Record<string, unknown>): boolean =>
  Object.entries(expected).every(([k, v]) => actual[k] === v);

const clip = (s: string): string => (s.length > 1500 ? `${s.slice(0, 1500)}…` : s);

describe('lifecycle crash safety under SIGKILL', () => {
  beforeAll(() => {
    buildForChildren(BUILD);
  }, 120_000);

  it(
    `keeps creates, forks, closes and deletes of ${NAME_COUNT} names over ${ROUNDS} kill rounds (seed ${SEED})`,
    async () => {
      console.log(
        `crash-lifecycle test: seed ${SEED} (STREAMKEEP_CRASH_SEED), ${ROUNDS} rounds, ${NAME_COUNT} names`,
      );
      const rootDir = await mkdtemp(join(tmpdir(), 'sk-file-crash-lifecycle-'));
      const rng = mulberry32(SEED);
      const model = new Model();
      const violations: string[] = [];
      const stats: Stats = {
        rounds: 0,
        killedAfterReady: 0,
        issued: 0,
        acked: 0,
        created: 0,
        createdClosed: 0,
        createdWithMessages: 0,
        forked: 0,
        forkedFromStart: 0,
        idempotentCreates: 0,
        closed: 0,
        appends: 0,
        producerAppends: 0,
        producerDuplicates: 0,
        deleted: 0,
        softDeleted: 0,
        cascaded: 0,
        recreated: 0,
        rejected: {},
        inFlightAtKill: 0,
        inFlightApplied: 0,
        inFlightNotApplied: 0,
        inFlightNoEffect: 0,
        liveStreams: 0,
        tombstones: 0,
        maxLiveStreams: 0,
        forkDepth: 0,
        checkSeconds: 0,
        violations: 0,
      };
      /** Names that existed at some point: a create of one of them after it was removed is a re-creation. */
      const everCreated = new Set<string>();
      let retries: Op[] = [];
      const started = Date.now();
      try {
        for (let round = 0; round < ROUNDS && violations.length === 0; round++) {
          const violation = (what: string) => violations.push(clip(`seed ${SEED}, round ${round}: ${what}`));
          const afterReady = rng() < 0.85;
          const delay = Math.floor(afterReady ? 100 + rng() * 1900 : rng() * 1500);
          const module = pathToFileURL(join(BUILD, 'index.js')).href;
          const input = {
            names: NAMES,
            streams: [...model.streams].map(([name, s]) => [
              name,
              s.live ? 1 : 0,
              s.fork?.source ?? null,
              s.ct,
              s.exp,
              s.closed ? 1 : 0,
              s.pseq,
            ]),
            retries,
          };
          const { lines, stderr, killed } = await runChild(
            { module, rootDir, round, seed: SEED, concurrency: CONCURRENCY },
            input,
            afterReady,
            delay,
          );
          if (!killed) throw new Error(`round ${round}: the child exited on its own:\n${stderr}`);
          stats.rounds++;

          // Replay the round on the model in the order the child reported it: an acknowledged operation took effect
          // between its `i` and its `a` line, and no other operation on its names was in flight meanwhile.
          const inflight = new Map<number, { o: Op; lock: string[] }>();
          const held = new Set<string>();
          for (const l of lines) {
            if (l.k === 'ready') stats.killedAfterReady++;
            else if (l.k === 'i') {
              const { k: _k, id, ...o } = l;
              const lock = lockOf(model, o as Op);
              for (const n of lock) {
                if (held.has(n)) throw new Error(`harness: operation ${id} on ${n} overlaps another one`);
                held.add(n);
              }
              inflight.set(id, { o: o as Op, lock });
              stats.issued++;
            } else {
              const f = inflight.get(l.id);
              if (f === undefined) throw new Error(`harness: answer to unknown operation ${l.id}`);
              inflight.delete(l.id);
              for (const n of f.lock) held.delete(n);
              const o = f.o;
              const wasThere = model.streams.has(o.name);
              const expected = step(model, o, stats);
              const what = `${o.op} ${JSON.stringify(o.name)} (${JSON.stringify({ ...o, msgs: undefined })})`;
              if (l.k === 'e') {
                stats.rejected[l.code] = (stats.rejected[l.code] ?? 0) + 1;
                if (expected.ok || expected.code !== l.code) {
                  violation(`${what} was rejected with ${l.code}, expected ${JSON.stringify(expected)}`);
                }
                continue;
              }
              stats.acked++;
              if (!expected.ok || !same(expected.r, l.r)) {
                violation(`${what} answered ${JSON.stringify(l.r)}, expected ${JSON.stringify(expected)}`);
                continue;
              }
              if (o.op === 'create' || o.op === 'fork') {
                if (l.r.created) {
                  if (o.op === 'create') stats.created++;
                  else stats.forked++;
                  if (o.closed) stats.createdClosed++;
                  if (o.msgs.length > 0) stats.createdWithMessages++;
                  if (!wasThere && everCreated.has(o.name)) stats.recreated++;
                  everCreated.add(o.name);
                } else stats.idempotentCreates++;
              } else if (o.op === 'append') stats.appends++;
              else if (o.op === 'pappend') {
                stats.producerAppends++;
                if (l.r.duplicate) stats.producerDuplicates++;
              } else if (o.op === 'close') stats.closed++;
              else if (l.r.softDeleted) stats.softDeleted++;
              else stats.deleted++;
            }
          }

          // Operations in flight at the kill: each either happened whole or not at all. Their names are disjoint, so
          // each is decided on its own names.
          const pending = [...inflight.values()].map(({ o, lock }) => {
            const after = model.clone();
            const expected = step(after, o);
            return { o, lock, after, effect: expected.ok };
          });
          stats.inFlightAtKill += pending.length;

          const checkStarted = Date.now();
          const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
          try {
            expect(storage.quarantined()).toEqual([]);
            const seen = await observeAll(storage, NAMES);
            // Logs may be verified lazily, on first access: nothing the reads touched may have been refused.
            expect(storage.quarantined()).toEqual([]);
            const decided = new Set<string>();
            for (const p of pending) {
              for (const n of p.lock) decided.add(n);
              const found = p.lock.map((n) => seen.get(n)!);
              const before = p.lock.map((n) => model.describe(n));
              const after = p.lock.map((n) => p.after.describe(n));
              const was = found.every((f, i) => f === before[i]);
              const now = found.every((f, i) => f === after[i]);
              if (!p.effect || (was && now)) stats.inFlightNoEffect++;
              else if (was) stats.inFlightNotApplied++;
              else if (now) {
                stats.inFlightApplied++;
                for (const n of p.lock) {
                  const s = p.after.streams.get(n);
                  if (s === undefined) {
                    if (model.streams.has(n)) model.remove(n);
                  } else model.set(n, s);
                }
              }
              if (!was && !now) {
                p.lock.forEach((n, i) => {
                  if (found[i] !== before[i] || found[i] !== after[i]) {
                    violation(
                      `after ${p.o.op} ${JSON.stringify(p.o.name)} in flight at the kill (${JSON.stringify(p.o)}), ` +
                        `${JSON.stringify(n)} is ${found[i]}; expected ${before[i]} (not done) or ${after[i]} (done)`,
                    );
                  }
                });
              }
            }
            // Everything else is exactly as acknowledged.
            for (const n of NAMES) {
              if (decided.has(n)) continue;
              const expected = model.describe(n);
              if (seen.get(n) !== expected)
                violation(`${JSON.stringify(n)} is ${seen.get(n)}; expected ${expected}`);
            }
            // The listing holds the live streams and nothing else, in UTF-8 byte order.
            const listed = (await storage.listStreams()).map((m) => m.name);
            const live = [...model.streams].filter(([, s]) => s.live).map(([n]) => n);
            live.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
            if (JSON.stringify(listed) !== JSON.stringify(live)) {
              const extra = listed.filter((n) => !model.streams.get(n)?.live);
              const missing = live.filter((n) => !listed.includes(n));
              violation(
                `listStreams: unexpected ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`,
              );
            }
          } finally {
            await storage.close();
          }
          stats.checkSeconds += (Date.now() - checkStarted) / 1000;

          retries = pending.filter((p) => p.o.op === 'pappend').map((p) => p.o);
          stats.liveStreams = [...model.streams.values()].filter((s) => s.live).length;
          stats.tombstones = model.streams.size - stats.liveStreams;
          stats.maxLiveStreams = Math.max(stats.maxLiveStreams, stats.liveStreams);
          for (const n of model.streams.keys())
            stats.forkDepth = Math.max(stats.forkDepth, model.lineage(n).length - 1);
        }

        // The store keeps working after the last crash: a create, a fork, deletes with a cascade.
        if (violations.length === 0) {
          const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
          const body = Buffer.from('after');
          await storage.createStream('after/source', { contentType: 'text/plain', messages: [body] });
          await storage.createFork('after/fork', { source: 'after/source', messages: [body] });
          expect(await storage.delete('after/source')).toEqual({ softDeleted: true });
          expect((await storage.read('after/fork', '-1')).messages.length).toBe(2);
          expect(await storage.delete('after/fork')).toEqual({ softDeleted: false });
          expect(await storage.exists('after/source')).toBe(false);
          await expect(storage.head('after/source')).rejects.toMatchObject({ code: 'NOT_FOUND' });
          await storage.close();
        }
        stats.violations = violations.length;
        stats.checkSeconds = Math.round(stats.checkSeconds * 10) / 10;
        console.log(
          `crash-lifecycle test: seed ${SEED}, ${stats.rounds} rounds in ${((Date.now() - started) / 1000).toFixed(1)} s,` +
            ` ${stats.acked} of ${stats.issued} operations acknowledged (${stats.created} creates, ${stats.forked} forks,` +
            ` ${stats.deleted} deletes + ${stats.softDeleted} soft + ${stats.cascaded} cascaded, ${stats.closed} closes,` +
            ` ${stats.recreated} re-creations, ${stats.appends + stats.producerAppends} appends),` +
            ` ${stats.inFlightAtKill} in flight at kills (${stats.inFlightApplied} done, ${stats.inFlightNotApplied} not),` +
            ` ${stats.liveStreams} live streams + ${stats.tombstones} tombstones at the end, ${stats.violations} violations`,
          stats,
        );
        expect(violations).toEqual([]);
        // How much a round does depends on the machine's speed: only require that something was acknowledged.
        expect(stats.acked).toBeGreaterThan(0);
      } finally {
        await rm(rootDir, { recursive: true, force: true, maxRetries: 5 });
      }
    },
    Math.max(900_000, ROUNDS * 30_000),
  );
});
