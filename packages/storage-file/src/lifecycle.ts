import {
  afterForkRemoved,
  batchBytes,
  type CreateStreamResult,
  checkCreateLimits,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  forkPrefix,
  type Offset,
  orphanedTombstone,
  planDelete,
  planExpiry,
  planFork,
  planNameClaim,
  StorageError,
  type StreamConfig,
  type ValidatedFork,
} from '@streamkeep/storage';
import { dropPending } from './carry.js';
import { CatalogRecord, encodeCatalogOp } from './catalog.js';
import { exclusive } from './commit.js';
import type { Core } from './core.js';
import { encodeLogHeader, GroupEncoder, LOG_HEADER_SIZE, MAX_BODY, newSalt } from './format.js';
import { classifyIoError } from './fs.js';
import { writeAll } from './journal.js';
import { ancestors, collect } from './lineage.js';
import { journaledLog } from './log-writer.js';
import { StreamEntry } from './stream-entry.js';

/**
 * Creates, forks, tombstones and deletes. Each holds the lifecycle lock of the names it decides on (so decisions on
 * one name are serial), makes its change durable as a catalog entry of the journal, and applies it in memory when
 * that entry is durable. Operations on different names run concurrently: their entries share the journal's sync
 * rounds, so a burst of creates costs about one sync per round, like appends.
 */

/** Creates a root stream from its validated config (see `validateCreateStream`). */
export async function createStream(
  core: Core,
  name: string,
  config: StreamConfig,
  messages: readonly Uint8Array[],
  now: number,
): Promise<CreateStreamResult> {
  let replaced: CatalogRecord | undefined;
  const result = await core.withNames([name], async () => {
    const { existing, replace } = await claimName(core, name, { config, fork: null }, now);
    replaced = replace;
    if (existing !== undefined) return answerOf(existing);
    return { created: true, ...(await writeNewStream(core, name, config, now, null, messages, replace)) };
  });
  // The expired stream the create replaced may have been a tombstoned source's last fork.
  if (replaced?.removed) await cascade(core, replaced);
  return result;
}

/** Creates a fork from its validated request (see `validateCreateFork`). */
export async function createFork(
  core: Core,
  name: string,
  options: ForkOptions,
  requested: ValidatedFork,
  now: number,
): Promise<CreateStreamResult> {
  let replaced: CatalogRecord | undefined;
  const result = await core.withNames([name, options.source], async () => {
    const source = await core.load(options.source);
    const plan = planFork(
      options,
      requested,
      { config: source.config, tombstone: source.tombstone, nextOffset: source.tail() },
      now,
    );
    let after: readonly Uint8Array[] = [];
    if (plan.prefixMessages > 0) {
      const lineage = await ancestors(core, source);
      const at = { seq: plan.baseSeq, bytes: plan.baseBytes };
      after = (await collect(core, source, lineage, at.seq, at.bytes, undefined, plan.prefixMessages))
        .messages;
    }
    const prefix = forkPrefix(plan, after);
    const { existing, replace } = await claimName(core, name, plan, now);
    replaced = replace;
    if (existing !== undefined) return answerOf(existing);
    const messages = prefix.concat(options.messages ?? []);
    return {
      created: true,
      ...(await writeNewStream(core, name, plan.config, now, plan.fork, messages, replace)),
    };
  });
  if (replaced?.removed) await cascade(core, replaced);
  return result;
}

export async function deleteStream(core: Core, name: string): Promise<DeleteResult> {
  let removed: CatalogRecord | undefined;
  const result = await core.withNames([name], async () => {
    const record = core.catalog.get(name);
    if (record === undefined) core.missing(name);
    const removal = planDelete(name, { tombstone: record.tombstone, refCount: record.refs });
    if (removal === 'tombstone') {
      await tombstone(core, record);
      // Its last fork went while the tombstone was being written (that removal's cascade found no tombstone yet).
      if (isOrphan(record)) {
        await remove(core, record);
        removed = record;
      }
      return { softDeleted: true };
    }
    await remove(core, record);
    removed = record;
    return { softDeleted: false };
  });
  if (removed !== undefined) await cascade(core, removed);
  return result;
}

/** Removes or tombstones every expired stream; the removals share sync rounds. */
export async function cleanupExpired(core: Core): Promise<number> {
  const now = core.clock.now();
  const candidates: string[] = [];
  // A record's deadline is a lower bound of the true one (reads renew it in the log): only those it calls expired
  // can be, and those are loaded to decide.
  for (const r of core.catalog.expirable()) {
    if (!r.removed && planExpiry({ config: r.config, tombstone: r.tombstone, refCount: r.refs }, now)) {
      candidates.push(r.name);
    }
  }
  const done = await Promise.all(
    candidates.map(async (name) => {
      const removed = await core
        .withNames([name], async () => {
          const record = core.catalog.get(name);
          if (record === undefined || record.quarantined !== undefined) return undefined;
          const entry = await core.load(name);
          if (entry.removed) return undefined;
          const removal = planExpiry(
            { config: entry.config, tombstone: record.tombstone, refCount: record.refs },
            now,
          );
          if (removal === undefined) return undefined;
          if (removal === 'tombstone') {
            await tombstone(core, record);
            // As in a delete: its last fork may have expired alongside and gone while the tombstone was written.
            if (!isOrphan(record)) return record;
          }
          await remove(core, record);
          return record;
        })
        .catch(() => undefined);
      if (removed?.removed) await cascade(core, removed);
      return removed !== undefined;
    }),
  );
  return done.filter(Boolean).length;
}

/**
 * Decides a create's or fork's name (`planNameClaim`) without changing anything: `existing` is the equal live entry
 * to answer with; `replace` an expired, unreferenced stream the create will remove once every other check passed.
 */
async function claimName(
  core: Core,
  name: string,
  requested: { readonly config: StreamConfig; readonly fork: ForkInfo | null },
  now: number,
): Promise<{ existing?: StreamEntry; replace?: CatalogRecord }> {
  const record = core.catalog.get(name);
  if (record === undefined) return {};
  if (record.quarantined !== undefined) core.missing(name);
  // A tombstone is decided from its record, without loading its log.
  const entry = record.tombstone ? undefined : await core.load(name);
  const claim = planNameClaim(
    name,
    {
      config: entry?.config ?? record.config,
      closed: entry?.closed ?? false,
      tombstone: record.tombstone,
      refCount: record.refs,
      fork: record.fork,
    },
    requested,
    now,
  );
  if (claim === 'existing') return { existing: entry };
  return claim === 'replace' ? { replace: record } : {};
}

function answerOf(existing: StreamEntry): CreateStreamResult {
  return { created: false, nextOffset: existing.tail(), closed: existing.closed };
}

/**
 * Creates a stream: its catalog entry and, with initial messages, its log (header plus the first commit), whose
 * bytes go into the same journal round, log entry first: a crash keeps both, neither, or only the log entry, which
 * without its catalog entry is ignored. The stream is visible once that round is durable.
 */
async function writeNewStream(
  core: Core,
  name: string,
  config: StreamConfig,
  createdAt: number,
  fork: ForkInfo | null,
  messages: readonly Uint8Array[],
  replace: CatalogRecord | undefined,
): Promise<{ nextOffset: Offset; closed: boolean }> {
  const n = batchBytes(messages);
  if (n + messages.length * 4 + 256 > MAX_BODY) {
    throw new StorageError('MESSAGE_TOO_LARGE', 'a commit may hold at most 4 GiB');
  }
  checkCreateLimits(core.settings.limits, core.total + core.reserved, replace?.bytes ?? 0, messages);
  // The expired stream goes first (it is invisible already); its log shares the new stream's file name. What its
  // removal cascades to is done by the caller, once it holds no lock.
  if (replace !== undefined && !replace.removed) await remove(core, replace);
  const salt = newSalt();
  const record = new CatalogRecord(name, { ...config }, createdAt, fork, false, salt, messages.length > 0);
  const entry = new StreamEntry(record, core.root, 0);
  const encoder = new GroupEncoder(LOG_HEADER_SIZE, salt);
  if (messages.length > 0) {
    encoder.commit(
      { closed: config.createdClosed, updatedAt: null, expiresAt: config.expiresAt, lastSeq: null },
      messages,
    );
  }
  const what = `creating ${JSON.stringify(name)}`;
  core.reserved += n;
  try {
    const pending: Promise<void>[] = [];
    if (messages.length > 0) {
      const parts = [encodeLogHeader(salt), ...encoder.finish()];
      const fh = await core.createLogFile(record);
      core.handles.adopt(entry, fh);
      try {
        let total = 0;
        for (const p of parts) total += p.byteLength;
        await writeAll(fh, parts, 0, total);
      } catch (err) {
        core.handles.release(entry);
        core.handles.discard(entry);
        await core.fs.unlink(entry.path).catch(() => undefined);
        throw err;
      }
      core.handles.release(entry);
      entry.journaled = journaledLog(core, entry);
      core.journal.touch(entry.journaled);
      pending.push(core.journal.submit(record.id, salt, 0, parts));
    }
    const op = encodeCatalogOp({
      op: 'create',
      name,
      config,
      createdAt,
      fork,
      salt,
      hasLog: messages.length > 0,
    });
    pending.push(
      core.journal.submitCatalog(op, () => {
        record.noFile = messages.length === 0;
        core.catalog.set(name, record);
        core.catalogDirty = true;
        if (fork !== null) {
          const src = core.catalog.get(fork.source);
          if (src !== undefined) src.refs++;
        }
      }),
    );
    const settled = await Promise.allSettled(pending);
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) {
      if (core.catalog.get(name) !== record && messages.length > 0) {
        entry.removed = true;
        core.handles.discard(entry);
        await core.fs.unlink(entry.path).catch(() => undefined);
      }
      throw (failed as PromiseRejectedResult).reason;
    }
  } catch (err) {
    core.reserved -= n;
    throw classifyIoError(err, what);
  }
  core.reserved -= n;
  if (messages.length === 0) {
    // Nothing to index: the stream is loaded (without I/O, see `noFile`) when first used.
    return { nextOffset: entry.tail(), closed: entry.closed };
  }
  entry.logSize = encoder.pos;
  let cum = 0;
  let k = 0;
  for (const m of messages) {
    cum += m.byteLength;
    entry.index.push(encoder.positions[k++]!, cum);
  }
  entry.bytes = cum;
  record.bytes = cum;
  record.count = messages.length;
  core.total += cum;
  core.adopt(entry);
  return { nextOffset: entry.tail(), closed: entry.closed };
}

/** Journals the tombstone flag after every commit admitted before it. */
async function tombstone(core: Core, record: CatalogRecord): Promise<void> {
  const run = async (): Promise<void> => {
    await core.journal.submitCatalog(encodeCatalogOp({ op: 'tombstone', name: record.name }), () => {
      record.tombstone = true;
      core.catalogDirty = true;
    });
  };
  const entry = await loadedOrNone(core, record);
  if (entry === undefined) return run();
  await exclusive(core, entry, async () => {
    try {
      await run();
    } catch (err) {
      throw classifyIoError(err, `deleting ${JSON.stringify(record.name)}`);
    }
    core.notify(entry);
    entry.listeners.clear();
  });
}

/**
 * Hard-deletes a stream: journals the delete (durable: the stream is gone for good), then unlinks its log, which the
 * next checkpoint makes durable too (a crash before it leaves an orphan file the name's next create replaces).
 */
async function remove(core: Core, record: CatalogRecord): Promise<void> {
  const entry = await loadedOrNone(core, record);
  const run = async (): Promise<void> => {
    let settle!: () => void;
    if (entry !== undefined) {
      entry.deleting = new Promise<void>((resolve) => {
        settle = resolve;
      });
    }
    try {
      await core.journal.submitCatalog(encodeCatalogOp({ op: 'delete', name: record.name }), () => {
        if (record.inline !== undefined || record.carried !== undefined) core.setInline(record, undefined);
        record.removed = true;
        core.catalogDirty = true;
        if (core.catalog.get(record.name) === record) core.catalog.delete(record.name);
        const src = record.fork === null ? undefined : core.catalog.get(record.fork.source);
        if (src !== undefined)
          src.refs = afterForkRemoved({ tombstone: src.tombstone, refCount: src.refs }).refCount;
        core.quarantine.delete(record.name);
        if (entry !== undefined) {
          entry.removed = true;
          entry.touchPending = false;
          dropPending(core, entry);
        }
      });
    } catch (err) {
      throw classifyIoError(err, `deleting ${JSON.stringify(record.name)}`);
    } finally {
      if (entry !== undefined) {
        entry.deleting = null;
        settle();
      }
    }
    core.total -= record.bytes;
    if (entry !== undefined) {
      core.drop(entry);
      core.handles.discard(entry);
      core.tailCache.clear(entry.cached);
      core.notify(entry);
      entry.listeners.clear();
    }
    const unlinked = await core.fs.unlink(core.logPath(record)).then(
      () => true,
      () => false,
    );
    if (unlinked) core.dirtyDirs.add(core.logDir(record));
  };
  if (entry === undefined) await run();
  else await exclusive(core, entry, run);
}

/** Finishes cascades a crash interrupted: a tombstone nobody forks any more is removed (with its lineage). */
export async function removeOrphanTombstones(core: Core): Promise<void> {
  // Tombstones are always decoded: no need to decode every record to find them.
  const orphans = [...core.catalog.decoded()].filter(isOrphan);
  for (const r of orphans) {
    const gone = await core.withNames([r.name], async () => {
      if (core.catalog.get(r.name) !== r || !isOrphan(r)) return false;
      await remove(core, r);
      return true;
    });
    if (gone) await cascade(core, r);
  }
}

/** After `removed` went: a tombstoned source left without forks goes too, and so on up the lineage. */
async function cascade(core: Core, removed: CatalogRecord): Promise<void> {
  const source = removed.fork?.source;
  if (source === undefined) return;
  const src = core.catalog.get(source);
  if (src === undefined || !isOrphan(src)) return;
  const gone = await core
    .withNames([source], async () => {
      if (core.catalog.get(source) !== src || !isOrphan(src)) return false;
      await remove(core, src);
      return true;
    })
    .catch(() => false);
  if (gone) await cascade(core, src);
}

function isOrphan(record: CatalogRecord): boolean {
  return orphanedTombstone({ tombstone: record.tombstone, refCount: record.refs });
}

async function loadedOrNone(core: Core, record: CatalogRecord): Promise<StreamEntry | undefined> {
  const loading = core.loadingOf(record.name);
  if (loading !== undefined) await loading.catch(() => undefined);
  const e = core.entries.get(record.name);
  return e?.record === record ? e : undefined;
}
