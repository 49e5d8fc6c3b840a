import { cp, mkdtemp, readdir, readFile, rm, stat, truncate, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  formatOffset,
  planAck,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  planRemoveStream,
  type SubscriptionRecord,
} from '@streamkeep/storage';
import { expectCode } from '@streamkeep/storage/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { FaultyFs } from './faulty-fs.js';
import { ManualClock } from './helpers.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true, maxRetries: 5 })));
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'sk-file-subs-'));
  dirs.push(d);
  return d;
}

/** A copy of a live root, as a crash would leave it (the lock file of the dead process removed). */
async function crashCopy(root: string): Promise<string> {
  const copy = await tempDir();
  await cp(root, copy, { recursive: true });
  await unlink(join(copy, 'LOCK'));
  return copy;
}

const at = (seq: number) => formatOffset(seq, seq * 10);
const pull = (streams: string[]) => ({ type: 'pull-wake' as const, streams, wakeStream: 'wakes' });
/** Records as plain JSON, sorted by id: what a listing must give back after a restart. */
const plain = (records: readonly SubscriptionRecord[]) => JSON.parse(JSON.stringify(records));

/** A run of mutations over two subscriptions: create, link, claim, ack (heartbeat and done), unlink, delete. */
function script(s: FileStorage): (() => Promise<unknown>)[] {
  return [
    () => s.mutateSubscription('a', planCreateSubscription('a', pull(['x']), [{ path: 'x', offset: at(1) }])),
    () => s.mutateSubscription('b', planCreateSubscription('b', pull(['y', 'x']), [])),
    () => s.mutateSubscription('a', planAddStreams('a', [{ path: 'y', offset: at(2) }])),
    () =>
      s.mutateSubscription(
        'a',
        planClaim('a', { worker: 'w1', wakeId: 'wake-1', tails: [{ path: 'x', offset: at(5) }] }),
      ),
    () => s.mutateSubscription('a', planAck('a', { generation: 1, acks: [{ path: 'x', offset: at(3) }] })),
    () => s.mutateSubscription('a', planAck('a', { generation: 1, ackWakeTails: true, done: true })),
    () => s.mutateSubscription('b', planRemoveStream('b', 'x')),
    () => s.deleteSubscription('b'),
    () => s.mutateSubscription('b', planCreateSubscription('b', pull(['z']), [])),
  ];
}

describe('FileStorage subscriptions on disk', () => {
  it('a clean close saves the table to its own file, empties the journal, and the next open reads it', async () => {
    const root = await tempDir();
    const clock = new ManualClock(1_000);
    const s = await FileStorage.open({ rootDir: root, clock });
    for (const step of script(s)) await step();
    const before = plain(await s.listSubscriptions());
    expect(before.map((r: SubscriptionRecord) => r.id)).toEqual(['a', 'b']);
    await s.close();
    expect(await readdir(root)).toContain('subscriptions');
    expect((await stat(join(root, 'journal'))).size).toBe(16);
    const r = await FileStorage.open({ rootDir: root, clock });
    expect(r.recovery.subscriptionChanges).toBe(0);
    expect(plain(await r.listSubscriptions())).toEqual(before);
    expect((await r.getSubscription('a'))?.members.map((m) => [m.path, m.ackedOffset])).toEqual([
      ['x', at(5)],
      ['y', at(2)],
    ]);
    expect(plain(await r.listSubscriptions({ member: 'z' })).map((x: SubscriptionRecord) => x.id)).toEqual([
      'b',
    ]);
    await r.close();
  });

  it('after a crash, every acknowledged mutation is replayed from the journal over the saved file', async () => {
    const root = await tempDir();
    const clock = new ManualClock(1_000);
    let s = await FileStorage.open({ rootDir: root, clock });
    const steps = script(s);
    // The first half reaches the file at a clean close, the rest lives only in the journal when the copy is taken.
    for (const step of steps.slice(0, 4)) await step();
    await s.close();
    s = await FileStorage.open({ rootDir: root, clock });
    for (const step of script(s).slice(4)) await step();
    const before = plain(await s.listSubscriptions());
    const copy = await crashCopy(root);
    await s.close();

    const r = await FileStorage.open({ rootDir: copy, clock });
    expect(r.recovery.subscriptionChanges).toBe(steps.length - 4);
    expect(plain(await r.listSubscriptions())).toEqual(before);
    // The replayed state was saved before the journal was emptied: a second crash loses nothing either.
    const again = await crashCopy(copy);
    await r.close();
    const r2 = await FileStorage.open({ rootDir: again, clock });
    expect(plain(await r2.listSubscriptions())).toEqual(before);
    await r2.close();
  });

  it('a journal torn inside an entry loses exactly that unacknowledged mutation', async () => {
    const root = await tempDir();
    const clock = new ManualClock(1_000);
    const s = await FileStorage.open({ rootDir: root, clock });
    // After each acknowledged mutation: how far the journal reaches, and what a listing shows.
    const ends = [(await stat(join(root, 'journal'))).size];
    const states = [plain(await s.listSubscriptions())];
    for (const step of script(s)) {
      await step();
      ends.push((await stat(join(root, 'journal'))).size);
      states.push(plain(await s.listSubscriptions()));
    }
    const image = await crashCopy(root);
    await s.close();
    for (let k = 1; k < ends.length; k++) {
      // Cut mid-entry k: the entries before it are whole, it is torn.
      const copy = await tempDir();
      await cp(image, copy, { recursive: true });
      const cut = ends[k - 1]! + Math.floor((ends[k]! - ends[k - 1]!) / 2);
      await truncate(join(copy, 'journal'), cut);
      const r = await FileStorage.open({ rootDir: copy, clock });
      expect(plain(await r.listSubscriptions()), `journal cut inside entry ${k}`).toEqual(states[k - 1]);
      await r.close();
    }
  });

  it('a failed journal write rejects with a storage code and leaves the record as it was', async () => {
    const root = await tempDir();
    const fs = new FaultyFs();
    const s = await FileStorage.open({ rootDir: root, fileSystem: fs, clock: new ManualClock(1_000) });
    await s.mutateSubscription('a', planCreateSubscription('a', pull(['x']), []));
    const before = await s.getSubscription('a');
    fs.fail('datasync', 'ENOSPC', 1, false, 'journal');
    await expectCode(
      s.mutateSubscription('a', planAddStreams('a', [{ path: 'y', offset: at(1) }])),
      'INSUFFICIENT_STORAGE',
    );
    expect(await s.getSubscription('a')).toEqual(before);
    // The next mutation plans over the unchanged record (version 2, not 3) and is durable.
    const next = await s.mutateSubscription('a', planAddStreams('a', [{ path: 'z', offset: at(1) }]));
    expect(next.version).toBe(2);
    await s.close();
    const r = await FileStorage.open({ rootDir: root });
    expect((await r.getSubscription('a'))?.members.map((m) => m.path)).toEqual(['x', 'z']);
    await r.close();
  });

  it('serialises mutations of one id: concurrent ones each plan over the previous durable record', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root, clock: new ManualClock(1_000) });
    await s.mutateSubscription('a', planCreateSubscription('a', pull(['x']), []));
    const paths = Array.from({ length: 20 }, (_, i) => `s${String(i).padStart(2, '0')}`);
    const got = await Promise.all(
      paths.map((p) => s.mutateSubscription('a', planAddStreams('a', [{ path: p, offset: at(1) }]))),
    );
    expect(got.map((r) => r.version).sort((x, y) => x - y)).toEqual(paths.map((_, i) => i + 2));
    // Mutations in flight when close is called complete (durably) first.
    const late = s.mutateSubscription('a', planRemoveStream('a', 'x'));
    await s.close();
    expect((await late).version).toBe(22);
    const r = await FileStorage.open({ rootDir: root });
    const a = await r.getSubscription('a');
    expect(a?.version).toBe(22);
    expect(a?.members.map((m) => m.path)).toEqual(paths);
    await r.close();
  });

  it('removes a temporary file a crash left while the subscriptions file was being replaced', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root });
    await s.mutateSubscription('a', planCreateSubscription('a', pull(['x']), []));
    await s.close();
    const stray = 'subscriptions.0b5e0c1e-3f1a-4c59-9a47-2a3d5c6e7f80.tmp';
    await writeFile(join(root, stray), 'half written');
    const r = await FileStorage.open({ rootDir: root });
    expect(await readdir(root)).not.toContain(stray);
    expect((await r.listSubscriptions()).map((x) => x.id)).toEqual(['a']);
    await r.close();
  });

  it('refuses a damaged subscriptions file (CORRUPTED) instead of serving it', async () => {
    const root = await tempDir();
    const s = await FileStorage.open({ rootDir: root });
    await s.mutateSubscription('a', planCreateSubscription('a', pull(['x']), []));
    await s.close();
    const path = join(root, 'subscriptions');
    const bytes = await readFile(path);
    const i = bytes.length - 5;
    bytes.writeUInt8(bytes.readUInt8(i) ^ 0x20, i);
    await writeFile(path, bytes);
    await expectCode(FileStorage.open({ rootDir: root }), 'CORRUPTED');
  });

  for (const name of ['format-2-0.1.0', 'format-2-0.1.0-crashed']) {
    it(`${name}: a data directory from before subscriptions opens with none, then keeps new ones`, async () => {
      const root = await tempDir();
      await cp(fileURLToPath(new URL(`./fixtures/${name}/`, import.meta.url)), root, { recursive: true });
      expect(await readdir(root)).not.toContain('subscriptions');
      const s = await FileStorage.open({ rootDir: root });
      expect(await s.listSubscriptions()).toEqual([]);
      await s.mutateSubscription('a', planCreateSubscription('a', pull(['chat/7']), []));
      await s.close();
      const r = await FileStorage.open({ rootDir: root });
      expect((await r.listSubscriptions()).map((x) => x.id)).toEqual(['a']);
      expect(await r.exists('chat/7')).toBe(true);
      await r.close();
    });
  }
});
