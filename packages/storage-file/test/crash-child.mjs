// Crash-test child: appends with syncOnAppend on and reports every acknowledgement on stdout, one JSON line each,
// until the parent kills it with SIGKILL. Runs against the compiled package the parent names.
import { say } from './crash-child-lib.mjs';

const { module, rootDir, round, producers, journal } = JSON.parse(process.argv[2]);
const { FileStorage } = await import(module);
const enc = (s) => Buffer.from(s);
const STREAMS = ['alpha', 'beta', 'gamma'];
const PLAIN_WRITERS = 6;

const storage = await FileStorage.open({ rootDir, syncOnAppend: true, journal });
for (const name of STREAMS) await storage.createStream(name, { contentType: 'text/plain' });
say({ kind: 'ready' });

// Metadata operations: a stream per round, a fork of it, and deleting those from two rounds ago and before.
const meta = (async () => {
  const name = `round-${round}`;
  await storage.createStream(name, { contentType: 'text/plain', messages: [enc(`r${round}`)] });
  say({ kind: 'created', name });
  await storage.createFork(`${name}-fork`, { source: name });
  say({ kind: 'created', name: `${name}-fork` });
  // Deletes of every older round, so that one cut short by a kill is retried; NOT_FOUND confirms absence too.
  for (let k = 0; k <= round - 2; k++) {
    for (const old of [`round-${k}-fork`, `round-${k}`]) {
      say({ kind: 'deleting', name: old });
      try {
        await storage.delete(old);
      } catch (err) {
        if (err.code !== 'NOT_FOUND') throw err;
      }
      say({ kind: 'deleted', name: old });
    }
  }
})();

const plain = async (stream, w) => {
  for (let n = 0; ; n++) {
    const body = `A:${w}:${round}:${n}`;
    const r = await storage.append(stream, { messages: [enc(body)], contentType: 'text/plain' });
    say({ kind: 'ack', stream, body, offset: r.startOffset });
  }
};

// Idempotent producers resume where the parent saw their last acknowledgement, retrying the batch that was in
// flight when the previous child died: it must land exactly once.
// Large appends, so that some kills land in the middle of a write and leave a torn tail behind.
const PAD = `|${'x'.repeat(1 << 20)}`;
const big = async (stream, w) => {
  for (let n = 0; ; n++) {
    const key = `B:${w}:${round}:${n}`;
    const r = await storage.append(stream, { messages: [enc(key + PAD)], contentType: 'text/plain' });
    say({ kind: 'ack', stream, body: key, offset: r.startOffset });
  }
};

const producer = async (stream, id) => {
  const epoch = producers[id]?.epoch ?? 0;
  for (let seq = producers[id]?.nextSeq ?? 0; ; seq++) {
    const bodies = [`P:${id}:${seq}:a`, `P:${id}:${seq}:b`];
    const r = await storage.appendWithProducer(stream, {
      messages: bodies.map(enc),
      contentType: 'text/plain',
      producer: { id, epoch, seq },
    });
    say({ kind: 'pack', stream, id, seq, duplicate: r.duplicate, offset: r.startOffset, bodies });
  }
};

const work = [meta];
for (const [i, stream] of STREAMS.entries()) {
  for (let w = 0; w < PLAIN_WRITERS; w++) work.push(plain(stream, `${stream}${w}`));
  work.push(producer(stream, `prod-${i}`));
  work.push(big(stream, `${stream}-big`));
}
await Promise.all(work);
