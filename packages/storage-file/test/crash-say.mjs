// How the kill -9 children report: one JSON line, in the pipe before `say` returns. `process.stdout` queues a write in
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
