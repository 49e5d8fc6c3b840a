// Storage-level benchmark of FileStorage (no HTTP). Run with `pnpm bench` in this package; writes bench/results.md.
// Options (environment): BENCH_DIR (default: the OS temp dir), BENCH_SECONDS (per throughput case, default 3),
// BENCH_MESSAGES (recovery size, default 1,000,000), BENCH_REPEAT (repetitions of each throughput case, default 3),
// BENCH_ONLY (comma-separated sections: append, tail, recovery; default all), BENCH_DIST (the build to measure,
// default ../dist; results.md is written only for the default build and all sections).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = process.env.BENCH_DIST;
const { FileStorage } = await import(
  DIST === undefined ? '../dist/index.js' : pathToFileURL(join(DIST, 'index.js')).href
);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'append,tail,recovery').split(','));
const BASE = process.env.BENCH_DIR ?? tmpdir();
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 1_000_000);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
const CT = 'application/octet-stream';
const lines = [];
const log = (s) => {
  console.log(s);
  lines.push(s);
};

async function withRoot(fn) {
  const dir = await mkdtemp(join(BASE, 'sk-bench-'));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Appends 100-byte messages from `writers` concurrent loops for SECONDS; returns appends/s. */
async function appendRate({ writers, streams, sync }) {
  return withRoot(async (rootDir) => {
    const s = await FileStorage.open({ rootDir, syncOnAppend: sync });
    for (let i = 0; i < streams; i++) await s.createStream(`s${i}`, { contentType: CT });
    const msg = new Uint8Array(100).fill(7);
    let count = 0;
    let stop = false;
    const t0 = performance.now();
    const loop = async (w) => {
      const name = `s${w % streams}`;
      while (!stop) {
        await s.append(name, { messages: [msg], contentType: CT });
        count++;
      }
    };
    const timer = setTimeout(() => {
      stop = true;
    }, SECONDS * 1000);
    await Promise.all(Array.from({ length: writers }, (_, w) => loop(w)));
    clearTimeout(timer);
    const rate = count / ((performance.now() - t0) / 1000);
    await s.close();
    return rate;
  });
}

/** Fills one stream with `n` messages of `size` bytes, `perCommit` per append, 16 appends in flight. */
async function fill(s, name, n, size, perCommit) {
  await s.createStream(name, { contentType: CT });
  const msg = new Uint8Array(size).fill(1);
  let next = 0;
  const writer = async () => {
    while (next < n) {
      const k = Math.min(perCommit, n - next);
      next += k;
      await s.append(name, { messages: Array.from({ length: k }, () => msg), contentType: CT });
    }
  };
  await Promise.all(Array.from({ length: 16 }, writer));
}

function gc() {
  if (typeof globalThis.gc === 'function') {
    globalThis.gc();
    globalThis.gc();
  }
}
const mem = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
};

async function recovery(n, size, perCommit) {
  return withRoot(async (rootDir) => {
    let s = await FileStorage.open({ rootDir, syncOnAppend: false });
    await fill(s, 'r', n, size, perCommit);
    await s.close();
    s = undefined;
    gc();
    const before = mem();
    const t0 = performance.now();
    s = await FileStorage.open({ rootDir, syncOnAppend: false });
    const ms = performance.now() - t0;
    gc();
    const perMessage = (mem() - before) / n;
    const { logBytes, messages } = s.recovery;
    // Catch-up read: the whole stream from the start in 1 MiB responses.
    const r0 = performance.now();
    let from = '-1';
    let bytes = 0;
    for (;;) {
      const r = await s.read('r', from, { maxBytes: 1 << 20 });
      for (const m of r.messages) bytes += m.byteLength;
      from = r.nextOffset;
      if (r.upToDate) break;
    }
    const readMBs = bytes / 1e6 / ((performance.now() - r0) / 1000);
    await s.close();
    return { ms, logMB: logBytes / 1e6, mbs: logBytes / 1e6 / (ms / 1000), perMessage, messages, readMBs };
  });
}

const fmt = (x, d = 0) => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/**
 * Fan-out: one stream, `readers` readers waiting at its tail; each round appends one 100-byte message, then every
 * reader reads from the previous tail (what long-poll readers do once woken). Returns rounds/s.
 */
async function fanout({ readers, sync, cache }) {
  return withRoot(async (rootDir) => {
    const s = await FileStorage.open({ rootDir, syncOnAppend: sync, ...cache });
    await s.createStream('f', { contentType: CT });
    const msg = new Uint8Array(100).fill(3);
    let tail = (await s.append('f', { messages: [msg], contentType: CT })).nextOffset;
    let rounds = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < SECONDS * 1000) {
      const from = tail;
      tail = (await s.append('f', { messages: [msg], contentType: CT })).nextOffset;
      const got = await Promise.all(Array.from({ length: readers }, () => s.read('f', from)));
      if (got[0].messages.length !== 1) throw new Error('fan-out read missed the message');
      rounds++;
    }
    const rate = rounds / ((performance.now() - t0) / 1000);
    await s.close();
    return rate;
  });
}

/**
 * Live delivery: one writer appends 100-byte messages back to back, one reader follows the tail (subscribe, then
 * read from its offset when notified). Returns the delivery latency percentiles (append call → message read), ms.
 */
async function follow({ sync, cache }) {
  return withRoot(async (rootDir) => {
    const s = await FileStorage.open({ rootDir, syncOnAppend: sync, ...cache });
    await s.createStream('l', { contentType: CT });
    const sent = [];
    const lat = [];
    let stop = false;
    let offset = (await s.head('l')).nextOffset;
    let wake;
    const sub = await s.subscribe('l', () => wake?.());
    const reader = (async () => {
      let seen = 0;
      while (!stop || seen < sent.length) {
        const r = await s.read('l', offset);
        const now = performance.now();
        for (const _ of r.messages) lat.push(now - sent[seen++]);
        offset = r.nextOffset;
        if (r.messages.length === 0) {
          if (stop && seen >= sent.length) break;
          await new Promise((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
      }
    })();
    const msg = new Uint8Array(100).fill(5);
    const t0 = performance.now();
    while (performance.now() - t0 < SECONDS * 1000) {
      sent.push(performance.now());
      await s.append('l', { messages: [msg], contentType: CT });
    }
    stop = true;
    wake?.();
    await reader;
    sub.unsubscribe();
    await s.close();
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    return { p50: q(0.5), p99: q(0.99), n: lat.length };
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

log(`# FileStorage benchmark`);
log('');
log(
  `${new Date().toISOString()} · Node ${process.version} · ${cpus().length} × ${cpus()[0]?.model ?? '?'} · ` +
    `${fmt(totalmem() / 2 ** 30, 1)} GiB RAM · root under ${BASE} · ${SECONDS} s per throughput case`,
);
log('');
if (ONLY.has('append')) {
  log('## Appends (100-byte messages, one message per append call)');
  log('');
  log(
    `Each case runs ${REPEAT} times, interleaved with the others so that drift in the machine's load hits all of ` +
      'them alike; the table shows the median and the range.',
  );
  log('');
  log('| writers | streams | syncOnAppend | appends/s (median) | range |');
  log('|---:|---:|:---:|---:|---:|');
  const CASES = [
    [1, 1, false],
    [1, 1, true],
    [64, 1, false],
    [64, 1, true],
    [64, 64, false],
    [64, 64, true],
  ];
  const runs = CASES.map(() => []);
  for (let r = 0; r < REPEAT; r++) {
    for (const [i, [writers, streams, sync]] of CASES.entries()) {
      runs[i].push(await appendRate({ writers, streams, sync }));
    }
  }
  for (const [i, [writers, streams, sync]] of CASES.entries()) {
    const xs = runs[i];
    log(
      `| ${writers} | ${streams} | ${sync ? 'on' : 'off'} | ${fmt(median(xs))} | ` +
        `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} |`,
    );
  }
  // Ratios per repetition (each against the single writer of the same repetition), then their median.
  const ratio = (i) => median(runs[i].map((x, r) => x / runs[1][r]));
  log('');
  log(
    `Group commit, syncOnAppend on: 64 writers on one stream reach **${fmt(ratio(3), 1)}×** and 64 writers on 64 ` +
      `streams **${fmt(ratio(5), 1)}×** the rate of one writer, which pays one fdatasync per append ` +
      `(median ratio per repetition).`,
  );
  log('');
}
if (ONLY.has('tail')) {
  const OFF = { tailCacheBytes: 0 };
  log('## Tail reads (100-byte messages): tail cache on (default) and off (`tailCacheBytes: 0`)');
  log('');
  log(
    'Fan-out: each round appends one message to one stream, then 1,000 readers each read it from the previous ' +
      'tail (what woken long-poll readers do). Follow: one writer appends back to back, one subscribed reader reads ' +
      `each notification's new messages; latency from the append call to the read. Median of ${REPEAT} runs.`,
  );
  log('');
  log('| case | syncOnAppend | tail cache | result (median) | range |');
  log('|---|:---:|:---:|---:|---:|');
  const CASES = [
    ['fan-out 1,000 readers', false, {}],
    ['fan-out 1,000 readers', false, OFF],
    ['fan-out 1,000 readers', true, {}],
    ['fan-out 1,000 readers', true, OFF],
    ['follow', true, {}],
    ['follow', true, OFF],
  ];
  const runs = CASES.map(() => []);
  for (let r = 0; r < REPEAT; r++) {
    for (const [i, [name, sync, cache]] of CASES.entries()) {
      runs[i].push(
        name === 'follow' ? await follow({ sync, cache }) : await fanout({ readers: 1000, sync, cache }),
      );
    }
  }
  for (const [i, [name, sync, cache]] of CASES.entries()) {
    const xs = runs[i];
    const c = cache === OFF ? 'off' : 'on';
    if (name === 'follow') {
      const p50 = xs.map((x) => x.p50);
      const p99 = xs.map((x) => x.p99);
      log(
        `| ${name} | ${sync ? 'on' : 'off'} | ${c} | p50 ${fmt(median(p50), 2)} ms, p99 ${fmt(median(p99), 2)} ms | ` +
          `p99 ${fmt(Math.min(...p99), 2)}–${fmt(Math.max(...p99), 2)} ms |`,
      );
    } else {
      log(
        `| ${name} | ${sync ? 'on' : 'off'} | ${c} | ${fmt(median(xs))} rounds/s | ` +
          `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))} |`,
      );
    }
  }
  log('');
}
if (ONLY.has('recovery')) {
  log(`## Recovery, catch-up reads and index memory (${fmt(MESSAGES)} messages in one stream)`);
  log('');
  log(
    '| messages | size | per commit | log MB | open (recovery) | scan MB/s | catch-up read MB/s | memory / message |',
  );
  log('|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const [size, perCommit] of [
    [100, 1],
    [1024, 1],
    [1024, 100],
  ]) {
    const r = await recovery(MESSAGES, size, perCommit);
    log(
      `| ${fmt(r.messages)} | ${size} B | ${perCommit} | ${fmt(r.logMB)} | ${fmt(r.ms)} ms | ${fmt(r.mbs)} | ` +
        `${fmt(r.readMBs)} | ${fmt(r.perMessage, 1)} B |`,
    );
  }
  log('');
  log(
    'Recovery reads every log once, verifies every record CRC and rebuilds the index; the page cache is warm (the ' +
      'log was just written). Memory / message is the growth of heap + array buffers after opening, divided by the ' +
      'message count (run with --expose-gc).',
  );
}
if (DIST === undefined && ONLY.size === 3) await writeFile(join(here, 'results.md'), `${lines.join('\n')}\n`);
