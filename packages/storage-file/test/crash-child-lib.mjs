// What the kill -9 tests share with their children (plain JavaScript: the children run without a build step).
//
// `say`: how a child reports: one JSON line, in the pipe before `say` returns. `process.stdout` queues a write in
// memory when the pipe is full (a parent slow to read on a loaded machine), and a SIGKILL would then lose lines of
// operations already acknowledged, which the parent would take for lost writes.
import { writeSync } from 'node:fs';

export function say(o) {
  const line = Buffer.from(`${JSON.stringify(o)}\n`);
  let done = 0;
  while (done < line.length) {
    try {
      done += writeSync(1, line, done);
    } catch (err) {
      // The pipe is full (stdout is non-blocking): wait for the parent to read.
      if (err.code !== 'EAGAIN') throw err;
    }
  }
}

/** A small seeded generator, so that a failing schedule can be replayed from its seed. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
