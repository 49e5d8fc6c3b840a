import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatOffset } from '@streamkeep/storage';
import { beforeAll, describe, expect, it } from 'vitest';
import { FileStorage } from '../src/index.js';
import { buildForChildren, mulberry32, runAndKill } from './crash-harness.js';

// At least 50 kill rounds in CI; raise locally with STREAMKEEP_CRASH_ROUNDS, pin the schedule with STREAMKEEP_CRASH_SEED.
const ROUNDS = Number(process.env.STREAMKEEP_CRASH_ROUNDS ?? 50);
const SEED = Number(process.env.STREAMKEEP_CRASH_SEED ?? 20261125);
const here = dirname(fileURLToPath(import.meta.url));
const STREAMS = ['alpha', 'beta', 'gamma'];
const BUILD = join(here, '..', 'node_modules', '.cache', 'crash-build');

type Line =
  | { kind: 'ready' }
  | { kind: 'created' | 'deleting' | 'deleted'; name: string }
  | { kind: 'ack'; stream: string; body: string; offset: string }
  | {
      kind: 'pack';
      stream: string;
      id: string;
      seq: number;
      duplicate: boolean;
      offset: string;
      bodies: string[];
    };

interface RoundOutcome {
  lines: Line[];
  stderr: string;
  killed: boolean;
}

/** Runs one child and SIGKILLs it `delay` ms after it reported being ready, or after it was spawned. */
function runChild(arg: object, afterReady: boolean, delay: number): Promise<RoundOutcome> {
  return runAndKill('crash-child.mjs', arg, {
    afterReady,
    delay,
    ready: '"kind":"ready"',
  }) as Promise<RoundOutcome>;
}

describe('crash safety under SIGKILL', () => {
  beforeAll(() => {
    buildForChildren(BUILD);
  }, 120_000);

  it(`loses no acknowledged append over ${ROUNDS} kill rounds (seed ${SEED})`, async () => {
    const rootDir = await mkdtemp(join(tmpdir(), 'sk-file-crash-'));
    const rng = mulberry32(SEED);
    // body → where it was acknowledged
    const acked = new Map<string, { stream: string; offset: string }>();
    const producers: Record<string, { epoch: number; nextSeq: number }> = {};
    const names = new Map<string, boolean | undefined>();
    const stats = {
      acks: 0,
      producerAcks: 0,
      duplicates: 0,
      afterReadyRounds: 0,
      killedAfterReady: 0,
      truncations: 0,
      redone: 0,
    };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const afterReady = rng() < 0.8;
        const delay = Math.floor(rng() * (afterReady ? 300 : 400));
        if (afterReady) stats.afterReadyRounds++;
        const module = pathToFileURL(join(BUILD, 'index.js')).href;
        const { lines, stderr, killed } = await runChild(
          // Every other round sends every group through the commit journal.
          { module, rootDir, round, producers, journal: round % 2 === 0 ? 'always' : true },
          afterReady,
          delay,
        );
        if (!killed) throw new Error(`round ${round}: the child exited on its own:\n${stderr}`);
        for (const l of lines) {
          if (l.kind === 'ready') stats.killedAfterReady++;
          else if (l.kind === 'created') names.set(l.name, true);
          // A delete cut short by the kill may or may not have happened: unknown until a later round confirms it.
          else if (l.kind === 'deleting') names.set(l.name, undefined);
          else if (l.kind === 'deleted') names.set(l.name, false);
          else if (l.kind === 'ack') {
            acked.set(l.body, { stream: l.stream, offset: l.offset });
            stats.acks++;
          } else if (l.kind === 'pack') {
            stats.producerAcks++;
            if (l.duplicate) stats.duplicates++;
            else acked.set(l.bodies[0]!, { stream: l.stream, offset: l.offset });
            producers[l.id] = { epoch: 0, nextSeq: l.seq + 1 };
          }
        }

        const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
        stats.truncations += storage.recovery.truncated.length;
        stats.redone += storage.recovery.redone;
        expect(storage.quarantined()).toEqual([]);
        const found = new Map<string, { stream: string; offset: string }>();
        for (const stream of (await storage.listStreams()).map((m) => m.name)) {
          if (!STREAMS.includes(stream)) continue;
          const { messages } = await storage.read(stream, '-1');
          let bytes = 0;
          const lastPlain = new Map<string, [number, number]>();
          const lastProducer = new Map<string, number>();
          messages.forEach((m, i) => {
            const body = Buffer.from(m.subarray(0, 64)).toString().split('|')[0]!;
            if (found.has(body)) throw new Error(`round ${round}: ${body} is stored twice`);
            found.set(body, { stream, offset: formatOffset(i, bytes) });
            bytes += m.byteLength;
            const [kind, w, a, b] = body.split(':');
            if (kind === 'A' || kind === 'B') {
              // Each plain writer's messages appear in the order they were written.
              const pos: [number, number] = [Number(a), Number(b)];
              const prev = lastPlain.get(w!);
              if (prev !== undefined && (prev[0] > pos[0] || (prev[0] === pos[0] && prev[1] >= pos[1]))) {
                throw new Error(`round ${round}: ${body} stored after ${prev}`);
              }
              lastPlain.set(w!, pos);
            } else if (kind === 'P' && b === 'a') {
              // Producer batches land whole and exactly once, in sequence order without gaps.
              const seq = Number(a);
              expect(seq, body).toBe((lastProducer.get(w!) ?? -1) + 1);
              lastProducer.set(w!, seq);
              const next = messages[i + 1];
              expect(next && Buffer.from(next).toString()).toBe(`P:${w}:${seq}:b`);
            }
          });
        }
        for (const [body, where] of acked) {
          expect(found.get(body), `round ${round}: acknowledged ${body}`).toEqual(where);
        }
        for (const [name, present] of names) {
          if (present !== undefined)
            expect(await storage.exists(name), `round ${round}: ${name}`).toBe(present);
        }
        await storage.close();
      }
      // Appends continue after the last crash.
      const storage = await FileStorage.open({ rootDir, syncOnAppend: true });
      const r = await storage.append('alpha', {
        messages: [Buffer.from('after')],
        contentType: 'text/plain',
      });
      expect(
        (await storage.read('alpha', r.startOffset)).messages.map((m) => Buffer.from(m).toString()),
      ).toEqual(['after']);
      await storage.close();
      console.log(`crash test: ${ROUNDS} rounds, seed ${SEED}`, stats);
      // How many appends a round acknowledges depends on the machine's speed: only require that some were.
      expect(stats.acks).toBeGreaterThan(0);
      expect(stats.killedAfterReady).toBeGreaterThanOrEqual(stats.afterReadyRounds);
    } finally {
      await rm(rootDir, { recursive: true, force: true, maxRetries: 5 });
    }
  }, 600_000);
});
