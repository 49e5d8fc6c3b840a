import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module script without type declarations.
import { runSoak } from './soak-driver.mjs';

/**
 * The soak (`test/soak-driver.mjs`) in CI: writers and long-poll + SSE readers on the file backend for
 * `STREAMKEEP_SOAK_SECONDS` (default 60) against the built binary in a child process, so RSS is the server's alone.
 */
const SECONDS = Number(process.env.STREAMKEEP_SOAK_SECONDS ?? 60);
const pkgDir = resolve(import.meta.dirname, '..');
const buildDir = join(pkgDir, '.soak-test-build');

interface SoakResult {
  acked: number;
  stored: number;
  deliveries: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  readerErrors: string[];
  readers: { longPoll: number; sse: number };
  rss: {
    warmMedianMiB: number;
    tailMedianMiB: number;
    maxMiB: number;
    samples: { t: number; mib: number }[];
  };
}

describe('soak on the file backend', () => {
  beforeAll(() => {
    // Compiled into a private directory so this test never races the package's own build.
    const tsc = join(pkgDir, 'node_modules', 'typescript', 'bin', 'tsc');
    spawnSync(
      process.execPath,
      [
        tsc,
        '-p',
        'tsconfig.build.json',
        '--outDir',
        buildDir,
        '--declaration',
        'false',
        '--declarationMap',
        'false',
      ],
      { cwd: pkgDir, stdio: 'ignore' },
    );
    if (!existsSync(join(buildDir, 'main.js'))) throw new Error('could not compile the server');
  }, 60_000);
  afterAll(async () => {
    await rm(buildDir, { recursive: true, force: true });
  });

  it(`${SECONDS} s, 4 writers, 6 long-poll + 6 SSE readers: every acknowledged message reaches every reader once, in order; RSS flat`, {
    timeout: SECONDS * 1000 + 90_000,
  }, async () => {
    const r = (await runSoak({
      seconds: SECONDS,
      writers: 4,
      streams: 2,
      longPollReaders: 3,
      sseReaders: 3,
      rate: 25,
      bin: join(buildDir, 'main.js'),
    })) as SoakResult;
    console.log(
      `soak: ${SECONDS} s, ${r.acked} acknowledged, ${r.deliveries} deliveries to ${r.readers.longPoll} long-poll + ${r.readers.sse} SSE readers, lost ${r.lost}, duplicated ${r.duplicated}, out of order ${r.outOfOrder}\n` +
        `RSS MiB (t s: MiB): ${r.rss.samples.map((s) => `${s.t.toFixed(0)}:${s.mib.toFixed(0)}`).join(' ')}`,
    );
    expect(r.readerErrors).toEqual([]);
    expect(r.lost).toBe(0);
    expect(r.duplicated).toBe(0);
    expect(r.outOfOrder).toBe(0);
    // A floor so that the laws above are not vacuously true, not a speed test: the offered load is 25 appends per
    // writer per second, and on a loaded 2-core machine (five test suites at once) a run got 9 per writer per second.
    expect(r.acked).toBeGreaterThan(SECONDS * 4);
    expect(r.stored).toBe(r.acked);
    expect(r.deliveries).toBe(r.acked * 6);
    // Flat after warm-up: the median of the last quarter is within 32 MiB of the median of the second quarter.
    expect(r.rss.tailMedianMiB - r.rss.warmMedianMiB).toBeLessThan(32);
  });
});
