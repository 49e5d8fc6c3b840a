import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compareOffsets, type SubscriptionRecord } from '@streamkeep/storage';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { buildForChildren, mulberry32, runAndKill } from './crash-harness.js';

// Subscription crash test: a child mutates subscription records (creates, links, claims, heartbeats, final acks,
// deletes; a few records only once per round, so that after a checkpoint only the subscriptions file has them) with
// appends alongside, reporting each intent and each acknowledged result; the parent SIGKILLs it at a
// random moment, reopens the directory and checks every record against what was acknowledged: an id with nothing in
// flight holds exactly its last acknowledged record; an id with a mutation in flight holds that record or the whole
// next one (one version on, generation and acked offsets never behind). The same directory serves every round.
//
// 16 rounds by default; more with STREAMKEEP_CRASH_SUBSCRIPTION_ROUNDS, another schedule with STREAMKEEP_CRASH_SEED.
const ROUNDS = Number(process.env.STREAMKEEP_CRASH_SUBSCRIPTION_ROUNDS ?? 16);
const SEED = Number(process.env.STREAMKEEP_CRASH_SEED ?? 20261206);
const here = dirname(fileURLToPath(import.meta.url));
const BUILD = join(here, '..', 'node_modules', '.cache', 'crash-subscriptions-build');
const PULLS = ['pull-0', 'pull-1', 'pull-2', 'pull-3', 'pull-4', 'pull-5'];
const LIVES = ['life-0', 'life-1', 'life-2'];
const STILLS = ['still-0', 'still-1'];

type Line =
  | { k: 'ready' }
  | { k: 'i'; id: string; op: string }
  | { k: 'a'; id: string; op: string; record: SubscriptionRecord | null };

/** Per id: the last acknowledged state (`null`: no record) and the mutation in flight at the kill, if any. */
interface Known {
  acked: SubscriptionRecord | null;
  inFlight: string | undefined;
}

/** Runs one child and SIGKILLs it `delay` ms after it reported being ready, or after it was spawned. */
function runChild(
  arg: object,
  afterReady: boolean,
  delay: number,
): Promise<{ lines: Line[]; stderr: string; killed: boolean }> {
  return runAndKill('crash-subscriptions-child.mjs', arg, {
    afterReady,
    delay,
    ready: '"k":"ready"',
  }) as Promise<{
    lines: Line[];
    stderr: string;
    killed: boolean;
  }>;
}

const plain = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** Checks the record found for `id` after a crash against what the child acknowledged. */
function check(round: number, id: string, known: Known, found: SubscriptionRecord | undefined): void {
  const where = `round ${round}: ${id} (in flight: ${known.inFlight ?? 'nothing'})`;
  const { acked, inFlight } = known;
  if (inFlight === undefined) {
    expect(found === undefined ? null : plain(found), where).toEqual(acked);
    return;
  }
  if (inFlight === 'delete') {
    // Deleted whole, or untouched.
    if (found !== undefined) expect(plain(found), where).toEqual(acked);
    return;
  }
  if (acked === null) {
    // A create in flight: absent, or the new record at version 1.
    if (found !== undefined) expect(found.version, where).toBe(1);
    return;
  }
  expect(found, where).toBeDefined();
  const f = found!;
  if (f.version === acked.version) {
    expect(plain(f), where).toEqual(acked);
    return;
  }
  // The mutation in flight, applied whole: one version on, nothing behind what was acknowledged.
  expect(f.version, where).toBe(acked.version + 1);
  expect(f.createdAt, where).toBe(acked.createdAt);
  expect(f.wake.generation, where).toBeGreaterThanOrEqual(acked.wake.generation);
  for (const m of acked.members) {
    const now = f.members.find((x) => x.path === m.path);
    expect(now, `${where}: member ${m.path}`).toBeDefined();
    expect(
      compareOffsets(now!.ackedOffset, m.ackedOffset),
      `${where}: ${m.path} acked`,
    ).toBeGreaterThanOrEqual(0);
  }
}

describe('subscription crash safety under SIGKILL', () => {
  beforeAll(() => {
    buildForChildren(BUILD);
  }, 120_000);

  it(`keeps every acknowledged subscription mutation over ${ROUNDS} kill rounds (seed ${SEED})`, async () => {
    const rootDir = await mkdtemp(join(tmpdir(), 'sk-file-crash-subs-'));
    const rng = mulberry32(SEED);
    const known = new Map<string, Known>(
      [...PULLS, ...LIVES, ...STILLS].map((id) => [id, { acked: null, inFlight: undefined }]),
    );
    const stats = { acks: 0, inFlightAtKill: 0, appliedInFlight: 0, killedAfterReady: 0, replayed: 0 };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const afterReady = rng() < 0.85;
        const delay = Math.floor(rng() * (afterReady ? 400 : 500));
        const module = pathToFileURL(join(BUILD, 'index.js')).href;
        const { lines, stderr, killed } = await runChild(
          {
            module,
            rootDir,
            round,
            pulls: PULLS,
            lives: LIVES,
            stills: STILLS,
            // Every other round sends every group through the journal; every third checkpoints often, so that
            // some kills land while the subscriptions file is being replaced.
            journal: round % 2 === 0 ? 'always' : true,
            journalCheckpointBytes: round % 3 === 0 ? 4096 : undefined,
          },
          afterReady,
          delay,
        );
        if (!killed) throw new Error(`round ${round}: the child exited on its own:\n${stderr}`);
        for (const l of lines) {
          if (l.k === 'ready') stats.killedAfterReady++;
          else if (l.k === 'i') known.get(l.id)!.inFlight = l.op;
          else {
            known.set(l.id, { acked: l.record, inFlight: undefined });
            stats.acks++;
          }
        }

        const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
        stats.replayed += storage.recovery.subscriptionChanges;
        for (const [id, k] of known) {
          const found = await storage.getSubscription(id);
          if (k.inFlight !== undefined) {
            stats.inFlightAtKill++;
            if ((found?.version ?? 0) !== (k.acked?.version ?? 0)) stats.appliedInFlight++;
          }
          check(round, id, k, found);
          // What is there now is what the next child continues from.
          known.set(id, { acked: found === undefined ? null : plain(found), inFlight: undefined });
        }
        // The member index agrees with the records after recovery.
        const all = await storage.listSubscriptions();
        expect(all.map((r) => r.id)).toEqual([...all.map((r) => r.id)].sort());
        const onX = (await storage.listSubscriptions({ member: 'x' })).map((r) => r.id);
        expect(onX).toEqual(all.filter((r) => r.members.some((m) => m.path === 'x')).map((r) => r.id));
        await storage.close();
      }
      console.log(`subscription crash test: ${ROUNDS} rounds, seed ${SEED}`, stats);
      // How many mutations a round acknowledges depends on the machine's speed: only require that some were.
      expect(stats.acks).toBeGreaterThan(0);
    } finally {
      await rm(rootDir, { recursive: true, force: true, maxRetries: 5 });
    }
  }, 600_000);
});
