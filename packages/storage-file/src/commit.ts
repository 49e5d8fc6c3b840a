import {
  batchBytes,
  checkByteLimits,
  committedResult,
  duplicateResult,
  formatOffset,
  notFound,
  type ProducerAppendResult,
  type ProducerState,
  planCommit,
  renewedDeadline,
  reportCommit,
  StorageError,
  type StreamStateView,
} from '@streamkeep/storage';
import type { Core } from './core.js';
import { copiedBytes, GroupEncoder, LOG_HEADER_SIZE, MAX_BODY } from './format.js';
import { writeAt } from './log-writer.js';
import type { CommitJob, StreamEntry } from './stream-entry.js';
import { StreamTail } from './tail-cache.js';

/**
 * Group commit per stream: appends queued while a write is in flight form the next group (one write, one sync).
 * Across streams, groups meet in the journal's rounds (see log-writer.ts).
 */

const MAX_GROUP_JOBS = 4096;
/** Groups committed back to back without I/O before a stream's queue yields to the event loop. */
const INLINE_RUN = 16;

export function enqueueCommit(
  core: Core,
  entry: StreamEntry,
  job: Omit<CommitJob, 'kind' | 'resolve' | 'reject'>,
) {
  return new Promise<ProducerAppendResult>((resolve, reject) => {
    entry.queue.push({ kind: 'commit', request: job.request, now: job.now, resolve, reject });
    kick(core, entry);
  });
}

/** Runs `fn` in the stream's queue, after every commit admitted before it. */
export function exclusive(core: Core, entry: StreamEntry, fn: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    entry.queue.push({ kind: 'exclusive', run: fn, resolve, reject });
    kick(core, entry);
  });
}

export function kick(core: Core, entry: StreamEntry): void {
  if (entry.draining) return;
  entry.draining = true;
  const p = drain(core, entry);
  core.drains.add(p);
  void p.finally(() => core.drains.delete(p));
}

/** Runs a stream's queue: exclusive jobs alone, consecutive commits as groups (one write, one sync each). */
async function drain(core: Core, entry: StreamEntry): Promise<void> {
  try {
    while (entry.queue.length > 0 || (entry.touchPending && !entry.removed)) {
      const head = entry.queue[0];
      if (head === undefined) {
        await writeTouch(core, entry);
        continue;
      }
      if (head.kind === 'exclusive') {
        entry.queue.shift();
        try {
          await head.run();
          head.resolve();
        } catch (err) {
          head.reject(err);
        }
        continue;
      }
      // Inline writes complete without leaving the microtask queue: a caller awaiting each append in a loop would
      // otherwise starve timers and I/O, so every so many groups of a stream one waits for the event loop.
      if (++entry.inlineRun >= INLINE_RUN) {
        entry.inlineRun = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      const group: CommitJob[] = [];
      let bytes = 0;
      while (group.length < MAX_GROUP_JOBS) {
        const next = entry.queue[0];
        if (next === undefined || next.kind !== 'commit') break;
        const n = batchBytes(next.request.messages);
        if (group.length > 0 && bytes + n > core.settings.maxGroupBytes) break;
        entry.queue.shift();
        group.push(next);
        bytes += n;
      }
      await commitGroup(core, entry, group);
      // Several writers were waiting: give the ones just acknowledged one turn of the event loop to submit their
      // next appends, so that they join the next group instead of forming one of their own after it (a commit
      // delay of one turn, only under concurrency).
      if (group.length > 1) {
        entry.inlineRun = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    entry.draining = false;
    // An emptied array keeps its grown backing store: released, a loaded idle stream holds ~150 bytes less.
    if (entry.queue.length === 0) entry.queue.length = 0;
  }
}

async function commitGroup(core: Core, entry: StreamEntry, jobs: CommitJob[]): Promise<void> {
  let seq = entry.tailSeq;
  let bytes = entry.bytes;
  let closed = entry.closed;
  let lastSeq = entry.lastSeq;
  let overlay: Map<string, ProducerState> | undefined;
  const producers = {
    get: (id: string) => overlay?.get(id) ?? entry.producers.get(id),
  } as unknown as ReadonlyMap<string, ProducerState>;
  let groupBytes = 0;
  let hint = 0;
  for (const job of jobs) hint += copiedBytes(job.request.messages) + 96;
  let encoder: GroupEncoder | undefined;
  let applied = 0;
  const ttl = entry.config.ttlSeconds !== null;
  // Commits carry the newest deadline; reads that renew it during the write set the flag again.
  entry.touchPending = false;
  for (const job of jobs) {
    try {
      if (entry.removed) notFound(entry.name);
      const view: StreamStateView = {
        name: entry.name,
        config: entry.config,
        closed,
        tombstone: entry.tombstone,
        lastSeq,
        nextOffset: formatOffset(seq, entry.baseBytes + bytes),
        producers,
      };
      const plan = planCommit(view, job.request, job.now);
      if (plan.kind === 'duplicate') {
        job.result = duplicateResult(plan, formatOffset(seq, entry.baseBytes + bytes), closed);
        continue;
      }
      const messages = job.request.messages;
      const n = batchBytes(messages);
      if (n + messages.length * 4 + 256 > MAX_BODY) {
        throw new StorageError('MESSAGE_TOO_LARGE', 'a commit may hold at most 4 GiB');
      }
      checkByteLimits(core.settings.limits, core.total + core.reserved, bytes, n);
      core.reserved += n;
      groupBytes += n;
      const expiresAt =
        ttl && plan.expiresAt !== null && entry.config.expiresAt !== null
          ? Math.max(plan.expiresAt, entry.config.expiresAt)
          : plan.expiresAt;
      // Messages below 16 KiB are copied into the encoder's buffer: size it for the whole group. A stream without a
      // log yet gets one whose header the writer puts in front.
      encoder ??= new GroupEncoder(entry.logSize || LOG_HEADER_SIZE, entry.salt, hint);
      job.posStart = encoder.positions.length;
      encoder.commit(
        {
          closed: plan.closed,
          updatedAt: plan.updatedAt,
          expiresAt,
          lastSeq: plan.lastSeq,
          producer: plan.producer,
        },
        messages,
      );
      job.plan = plan;
      job.expiresAt = expiresAt;
      const start = formatOffset(seq, entry.baseBytes + bytes);
      seq += messages.length;
      bytes += n;
      closed = plan.closed;
      lastSeq = plan.lastSeq;
      if (plan.producer !== undefined) {
        overlay ??= new Map();
        overlay.set(plan.producer.id, plan.producer.state);
      }
      job.result = committedResult(job.request, plan, start, formatOffset(seq, entry.baseBytes + bytes));
    } catch (err) {
      job.error = err;
    }
  }
  if (encoder !== undefined) {
    const writeStarted = core.settings.onCommit === undefined ? 0 : performance.now();
    try {
      await writeAt(
        core,
        entry,
        encoder.finish(),
        encoder.startPos,
        `appending to ${JSON.stringify(entry.name)}`,
      );
    } catch (err) {
      core.reserved -= groupBytes;
      for (const job of jobs) job.reject(err);
      return;
    }
    const positions = encoder.positions;
    const cache = core.tailCache.enabled && entry.unwritten === null && !entry.pendingCarry;
    let cum = entry.bytes;
    for (const job of jobs) {
      const plan = job.plan;
      if (plan === undefined) continue;
      const messages = job.request.messages;
      let k = job.posStart!;
      if (cache) core.tailCache.add((entry.cached ??= new StreamTail()), entry.index.count, cum, messages);
      for (const m of messages) {
        cum += m.byteLength;
        entry.index.push(positions[k++]!, cum);
      }
      entry.closed = plan.closed;
      entry.lastSeq = plan.lastSeq;
      entry.updatedAt = plan.updatedAt;
      if (job.expiresAt !== undefined && job.expiresAt !== null) {
        if (!ttl || entry.config.expiresAt === null || job.expiresAt > entry.config.expiresAt) {
          entry.config.expiresAt = job.expiresAt;
        }
      }
      if (plan.producer !== undefined) entry.setProducer(plan.producer.id, plan.producer.state);
      applied++;
    }
    entry.logSize = encoder.pos;
    entry.bytes = cum;
    const record = entry.record;
    record.bytes = cum;
    record.count = entry.index.count;
    record.closed = entry.closed;
    record.updatedAt = entry.updatedAt;
    record.lastSeq = entry.lastSeq;
    core.catalogDirty = true;
    core.total += groupBytes;
    core.reserved -= groupBytes;
    if (core.settings.onCommit !== undefined && applied > 0) {
      const syncMs = core.settings.syncOnAppend ? performance.now() - writeStarted : 0;
      reportCommit(core.settings.onCommit, { entries: applied, bytes: groupBytes, syncMs });
    }
  }
  for (const job of jobs) {
    if (job.error !== undefined) job.reject(job.error);
    else job.resolve(job.result!);
  }
  if (applied > 0) core.notify(entry);
}

/** Writes a deadline renewed by reads, so that it survives a restart. Failures only cost the renewal. */
async function writeTouch(core: Core, entry: StreamEntry): Promise<void> {
  entry.touchPending = false;
  const expiresAt = entry.config.expiresAt;
  if (expiresAt === null) return;
  const encoder = new GroupEncoder(entry.logSize || LOG_HEADER_SIZE, entry.salt);
  encoder.touch(expiresAt);
  try {
    await writeAt(core, entry, encoder.finish(), encoder.startPos, 'renewing a deadline');
    entry.logSize = encoder.pos;
    core.catalogDirty = true;
  } catch {
    // The in-memory deadline stays renewed; the next commit or touch persists it.
  }
}

/** Renews a TTL stream's deadline on a read; the renewal is written by the stream's queue. */
export function renewOnRead(core: Core, entry: StreamEntry, now: number): void {
  if (entry.config.ttlSeconds === null || entry.removed) return;
  const deadline = renewedDeadline(entry.config, now);
  if (deadline === null || (entry.config.expiresAt !== null && deadline <= entry.config.expiresAt)) return;
  entry.config.expiresAt = deadline;
  entry.touchPending = true;
  kick(core, entry);
}
