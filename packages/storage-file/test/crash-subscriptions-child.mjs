// Subscription crash-test child: mutates subscription records (create, link streams, claim, heartbeat and final acks,
// delete and re-create) with appends running alongside, and reports on stdout, one JSON line each, the intent before
// every mutation and the resulting record once it is acknowledged, until the parent kills it with SIGKILL. Runs
// against the compiled package the parent names. Each worker continues from the record the previous child left.
import { say } from './crash-child-lib.mjs';

const { module, rootDir, round, journal, journalCheckpointBytes, pulls, lives, stills } = JSON.parse(
  process.argv[2],
);
const { FileStorage } = await import(module);
const { formatOffset, planAck, planAddStreams, planClaim, planCreateSubscription } = await import(
  '@streamkeep/storage'
);

const storage = await FileStorage.open({ rootDir, syncOnAppend: true, journal, journalCheckpointBytes });
if (!(await storage.exists('x'))) await storage.createStream('x', { contentType: 'text/plain' });
say({ k: 'ready' });

// Offsets grow across rounds, so that acks always move forward.
const at = (n) => formatOffset(round * 1_000_000 + n, (round * 1_000_000 + n) * 8);

/** One acknowledged mutation: the intent first, then the record (or the deletion) once it resolved. */
async function step(id, op, call) {
  say({ k: 'i', id, op });
  const result = await call();
  say({ k: 'a', id, op, record: result === true || result === false ? null : result });
  return result;
}

async function pullWorker(id) {
  const worker = `w-${id}`;
  let record = await storage.getSubscription(id);
  if (record === undefined) {
    const input = { type: 'pull-wake', streams: ['x'], wakeStream: 'wakes', leaseTtlMs: 600_000 };
    // Reported is the record, not the planner's `{ created, record }`.
    record = await step(id, 'create', async () => {
      const plan = planCreateSubscription(id, input, [{ path: 'x', offset: at(0) }]);
      return (await storage.mutateSubscription(id, plan)).record;
    });
  } else if (record.wake.wakeId !== null && record.wake.leaseExpiresAt > Date.now()) {
    // The previous child held this wake when it died: finish it, as a restarted worker would.
    record = await step(id, 'finish', () =>
      storage.mutateSubscription(id, planAck(id, { generation: record.wake.generation, done: true })),
    );
  }
  for (let n = 1; ; n++) {
    const claimed = await step(id, 'claim', () =>
      storage.mutateSubscription(
        id,
        planClaim(id, { worker, wakeId: `${id}-${round}-${n}`, tails: [{ path: 'x', offset: at(2 * n) }] }),
      ),
    );
    const generation = claimed.wake.generation;
    await step(id, 'heartbeat', () =>
      storage.mutateSubscription(
        id,
        planAck(id, { generation, acks: [{ path: 'x', offset: at(2 * n - 1) }] }),
      ),
    );
    if (n % 3 === 0) {
      await step(id, 'link', () =>
        storage.mutateSubscription(id, planAddStreams(id, [{ path: `m${n % 4}`, offset: at(0) }])),
      );
    }
    await step(id, 'done', () =>
      storage.mutateSubscription(id, planAck(id, { generation, ackWakeTails: true, done: true })),
    );
  }
}

async function lifeWorker(id) {
  const input = { type: 'pull-wake', streams: [`life/${id}`], wakeStream: 'wakes' };
  for (;;) {
    if ((await storage.getSubscription(id)) === undefined) {
      await step(
        id,
        'create',
        async () => (await storage.mutateSubscription(id, planCreateSubscription(id, input, []))).record,
      );
    }
    await step(id, 'delete', () => storage.deleteSubscription(id));
  }
}

// Written once per round and then left alone: after a checkpoint, only the subscriptions file holds their records.
async function stillWorker(id) {
  if ((await storage.getSubscription(id)) === undefined) {
    const input = { type: 'pull-wake', streams: ['x'], wakeStream: 'wakes' };
    await step(
      id,
      'create',
      async () => (await storage.mutateSubscription(id, planCreateSubscription(id, input, []))).record,
    );
  }
  await step(id, 'link', () =>
    storage.mutateSubscription(id, planAddStreams(id, [{ path: `r${round}`, offset: at(0) }])),
  );
}

async function appender() {
  for (let n = 0; ; n++) {
    await storage.append('x', { messages: [Buffer.from(`${round}:${n}`)], contentType: 'text/plain' });
  }
}

const work = [appender(), appender()];
for (const id of pulls) work.push(pullWorker(id));
for (const id of lives) work.push(lifeWorker(id));
for (const id of stills) work.push(stillWorker(id));
await Promise.all(work);
