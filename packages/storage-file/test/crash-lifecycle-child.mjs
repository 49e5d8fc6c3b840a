// Lifecycle crash-test child: runs many concurrent creates, forks, closes, deletes and appends over a namespace of
// thousands of stream names, and reports each operation on stdout, one JSON line each: `i` when it is issued (written
// before the call is made), then `a` with its result or `e` with its error code once it settles. Pipes are written
// synchronously on Linux, so a line the parent received was out of the process before the kill. Runs until the
// parent kills it with SIGKILL, against the compiled package the parent names; only the public Storage API is used.
//
// Operations touching the same names never overlap: each takes a set of names (the stream, a fork's source, and for
// a delete the whole lineage its cascade may remove) and is issued only when none of them is held by another
// operation in flight. The parent relies on that to know the state every operation saw.
//
// stdin: { names, streams: [[name, live, source, contentType, expiresAt, closed, producerSeq]], retries: [op] }
import { mulberry32, say } from './crash-child-lib.mjs';

const { module, rootDir, round, seed, concurrency } = JSON.parse(process.argv[2]);
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const { FileStorage } = await import(module);

const rng = mulberry32((seed ^ Math.imul(round + 1, 0x9e3779b1)) >>> 0);
const rint = (n) => Math.floor(rng() * n);
const pickOf = (xs) => xs[rint(xs.length)];

const CONTENT_TYPES = ['text/plain', 'application/octet-stream', 'application/x-ndjson'];
// Absolute deadlines far in the future: part of the config (and of its identity), never reached.
const DEADLINES = [4102444800000, 4133980800000, 4165516800000];

// The child's view of the store: the parent's resolved state at the start of the round, then every acknowledgement.
/** @type {string[]} */
const NAMES = input.names;
/** @type {Map<string, {live: boolean, source: string | null, ct: string, exp: number | null, closed: boolean, pseq: number, offsets: string[]}>} */
const state = new Map();
/** name → names of the forks (live or tombstoned) that read it */
const children = new Map();
const live = [];
const liveIndex = new Map();
const tombs = new Set();
const addLive = (n) => {
  liveIndex.set(n, live.length);
  live.push(n);
};
const dropLive = (n) => {
  const i = liveIndex.get(n);
  if (i === undefined) return;
  const last = live.pop();
  if (last !== n) {
    live[i] = last;
    liveIndex.set(last, i);
  }
  liveIndex.delete(n);
};
const put = (name, s) => {
  state.set(name, s);
  if (s.live) addLive(name);
  else tombs.add(name);
  if (s.source !== null) {
    if (!children.has(s.source)) children.set(s.source, new Set());
    children.get(s.source).add(name);
  }
};
for (const [name, isLive, source, ct, exp, closed, pseq] of input.streams) {
  put(name, { live: isLive === 1, source, ct, exp, closed: closed === 1, pseq, offsets: [] });
}

/** The name and every ancestor: what a delete of `name` may remove. */
const lineage = (name) => {
  const out = [name];
  for (let s = state.get(name); s?.source; s = state.get(s.source)) out.push(s.source);
  return out;
};

let nextKey = 0;
// Unique message bodies `<key>|xxx…`: mostly small, some of a few KiB, a few large enough to be torn by a kill.
const newMessages = (max, min = 0) => {
  const n = min + rint(max - min + 1);
  const out = [];
  for (let k = 0; k < n; k++) {
    const r = rng();
    const pad = r < 0.85 ? 4 + rint(96) : r < 0.98 ? 1024 + rint(7168) : 65536 + rint(98304);
    out.push([`${round}.${nextKey++}`, pad]);
  }
  return out;
};
const bodies = (msgs) => msgs.map(([key, pad]) => Buffer.from(`${key}|${'x'.repeat(pad)}`));

const locks = new Set();
const free = (names) => names.every((n) => !locks.has(n));

const randomName = () => NAMES[rint(NAMES.length)];
const absentName = () => {
  for (let i = 0; i < 8; i++) {
    const n = randomName();
    if (!state.has(n)) return n;
  }
  return randomName();
};

function createOp(name) {
  const s = state.get(name);
  // Sometimes the config of the existing stream (an idempotent create), otherwise a random one.
  if (s?.live && s.source === null && rng() < 0.5) {
    return { op: 'create', name, ct: s.ct, exp: s.exp, closed: s.closed, msgs: newMessages(2) };
  }
  return {
    op: 'create',
    name,
    ct: pickOf(CONTENT_TYPES),
    exp: rng() < 0.2 ? pickOf(DEADLINES) : null,
    closed: rng() < 0.15,
    msgs: rng() < 0.4 ? [] : newMessages(3, 1),
  };
}

function forkOp(source, name) {
  const s = state.get(source);
  const r = rng();
  // At the source's tail, from the start, or at an offset an append of this round returned.
  let offset;
  if (r < 0.3) offset = '-1';
  else if (r < 0.5 && s && s.offsets.length > 0) offset = pickOf(s.offsets);
  return {
    op: 'fork',
    name,
    source,
    offset,
    exp: rng() < 0.15 ? pickOf(DEADLINES) : null,
    closed: rng() < 0.1,
    msgs: rng() < 0.5 ? [] : newMessages(2, 1),
  };
}

/** Live descendants of a tombstone, those without forks first: deleting one may cascade the tombstone away. */
function liveDescendants(name) {
  const out = [];
  const todo = [name];
  while (todo.length > 0 && out.length < 64) {
    for (const f of children.get(todo.pop()) ?? []) {
      if (state.get(f).live) out.push(f);
      todo.push(f);
    }
  }
  const leaves = out.filter((f) => (children.get(f)?.size ?? 0) === 0);
  return leaves.length > 0 ? leaves : out;
}

/** A random operation whose names are all free, or undefined. */
function pick() {
  for (let tries = 0; tries < 16; tries++) {
    // Half of the time a live stream, a few times a tombstone, otherwise any name of the namespace.
    const w = rng();
    const name =
      w < 0.45 && live.length > 0
        ? pickOf(live)
        : w < 0.5 && tombs.size > 0
          ? pickOf([...tombs])
          : randomName();
    const s = state.get(name);
    const r = rng();
    let op;
    if (s === undefined) {
      if (r < 0.7) op = createOp(name);
      else if (r < 0.97 && live.length > 0) op = forkOp(pickOf(live), name);
      else
        op = { op: pickOf(['append', 'close', 'delete']), name, ct: 'text/plain', msgs: newMessages(1, 1) };
    } else if (!s.live) {
      // A tombstone: delete one of its forks (which may cascade it away), or try something it must refuse.
      const forks = liveDescendants(name);
      if (forks.length > 0 && r < 0.85) op = { op: 'delete', name: pickOf(forks) };
      else op = r < 0.92 ? createOp(name) : { op: pickOf(['delete', 'close']), name };
    } else if (r < 0.25) op = { op: 'append', name, ct: s.ct, msgs: newMessages(3, 1) };
    else if (r < 0.33) op = { op: 'pappend', name, ct: s.ct, seq: s.pseq + 1, msgs: newMessages(2, 1) };
    else if (r < 0.4) op = { op: 'close', name };
    else if (r < 0.63) op = { op: 'delete', name };
    else if (r < 0.9) op = forkOp(name, rng() < 0.85 ? absentName() : randomName());
    else op = createOp(name);
    op.lock =
      op.op === 'delete'
        ? lineage(op.name)
        : op.op === 'fork'
          ? [...new Set([op.name, op.source])]
          : [op.name];
    if (free(op.lock)) return op;
  }
  return undefined;
}

async function run(o) {
  switch (o.op) {
    case 'create':
      return storage.createStream(o.name, {
        contentType: o.ct,
        expiresAt: o.exp ?? undefined,
        closed: o.closed || undefined,
        messages: o.msgs.length > 0 ? bodies(o.msgs) : undefined,
      });
    case 'fork':
      return storage.createFork(o.name, {
        source: o.source,
        offset: o.offset,
        expiresAt: o.exp ?? undefined,
        closed: o.closed || undefined,
        messages: o.msgs.length > 0 ? bodies(o.msgs) : undefined,
      });
    case 'append':
      return storage.append(o.name, { messages: bodies(o.msgs), contentType: o.ct });
    case 'pappend':
      return storage.appendWithProducer(o.name, {
        messages: bodies(o.msgs),
        contentType: o.ct,
        producer: { id: 'p', epoch: 0, seq: o.seq },
      });
    case 'close':
      return storage.closeStream(o.name);
    case 'delete':
      return storage.delete(o.name);
  }
  throw new Error(`unknown op ${o.op}`);
}

function remove(name) {
  const s = state.get(name);
  state.delete(name);
  dropLive(name);
  tombs.delete(name);
  if (s.source !== null) children.get(s.source)?.delete(name);
  return s;
}

/** Updates the view with an acknowledged result. */
function learn(o, r) {
  const s = state.get(o.name);
  switch (o.op) {
    case 'create':
      if (r.created)
        put(o.name, {
          live: true,
          source: null,
          ct: o.ct,
          exp: o.exp,
          closed: r.closed,
          pseq: -1,
          offsets: [],
        });
      break;
    case 'fork':
      if (r.created) {
        const src = state.get(o.source);
        put(o.name, {
          live: true,
          source: o.source,
          ct: src.ct,
          exp: o.exp ?? src.exp,
          closed: r.closed,
          pseq: -1,
          offsets: [],
        });
      }
      break;
    case 'append':
    case 'pappend':
      if (o.op === 'pappend') s.pseq = Math.max(s.pseq, r.seq);
      if (!r.duplicate && s.offsets.length < 16) s.offsets.push(r.startOffset);
      s.closed = r.closed;
      break;
    case 'close':
      s.closed = true;
      break;
    case 'delete':
      if (r.softDeleted) {
        s.live = false;
        dropLive(o.name);
        tombs.add(o.name);
      } else {
        // The cascade: a tombstoned source left without forks goes too, and so on up the lineage.
        let gone = remove(o.name);
        while (gone.source !== null) {
          const src = state.get(gone.source);
          if (src === undefined || src.live || (children.get(gone.source)?.size ?? 0) > 0) break;
          gone = remove(gone.source);
        }
      }
      break;
  }
}

const summary = (o, r) => {
  switch (o.op) {
    case 'create':
    case 'fork':
      return { created: r.created, nextOffset: r.nextOffset, closed: r.closed };
    case 'delete':
      return { softDeleted: r.softDeleted };
    case 'pappend':
      return {
        startOffset: r.startOffset,
        nextOffset: r.nextOffset,
        closed: r.closed,
        duplicate: r.duplicate,
        seq: r.seq,
      };
    default:
      return { startOffset: r.startOffset, nextOffset: r.nextOffset, closed: r.closed };
  }
};

let nextId = 0;
async function perform(o) {
  for (const n of o.lock) locks.add(n);
  const id = nextId++;
  const { lock: _lock, ...desc } = o;
  say({ k: 'i', id, ...desc });
  try {
    const r = await run(o);
    say({ k: 'a', id, r: summary(o, r) });
    learn(o, r);
  } catch (err) {
    if (typeof err?.code !== 'string') throw err;
    say({ k: 'e', id, code: err.code });
  } finally {
    for (const n of o.lock) locks.delete(n);
  }
}

const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
say({ k: 'ready' });

// First the producer batches that were in flight when the previous child died, unchanged: each lands exactly once.
const retries = input.retries.map((o) => ({ ...o, lock: [o.name] }));
const idle = () => new Promise((resolve) => setImmediate(resolve));
const worker = async () => {
  for (;;) {
    const retry = retries.shift();
    if (retry !== undefined) {
      await perform(retry);
      continue;
    }
    const o = pick();
    if (o === undefined) await idle();
    else await perform(o);
  }
};
await Promise.all(Array.from({ length: concurrency }, worker)).catch((err) => {
  process.stderr.write(`${err?.stack ?? err}\n`);
  process.exit(1);
});
