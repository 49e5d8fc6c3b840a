import { execFileSync, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// What the kill -9 tests share: a seeded schedule, the compiled sources their children run, and running one child
// until a SIGKILL.

const here = dirname(fileURLToPath(import.meta.url));

export { mulberry32 } from './crash-child-lib.mjs';

/**
 * Compiles the package's sources into `outDir` for the children, which run JavaScript: a private directory, not
 * `dist`, which other packages' builds and tests may be rewriting at the same time.
 */
export function buildForChildren(outDir: string): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', join(here, '..', 'tsconfig.build.json'), '--outDir', outDir], {
    stdio: 'inherit',
  });
}

export interface KilledChild {
  /** Whole JSON lines the child printed (a last line cut short by the kill is left out). */
  readonly lines: unknown[];
  readonly stderr: string;
  readonly killed: boolean;
}

/**
 * Runs `script` (in this folder) with `arg` as JSON, `input` as JSON on its standard input if given, and kills it with
 * SIGKILL `delay` ms after its output contains `ready` (`afterReady`), or `delay` ms after it was spawned (so that some
 * kills land while it is still opening the root).
 */
export function runAndKill(
  script: string,
  arg: object,
  options: { afterReady: boolean; delay: number; ready: string; input?: object },
): Promise<KilledChild> {
  const { afterReady, delay, ready, input } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(here, script), JSON.stringify(arg)], {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const kill = () => child.kill('SIGKILL');
    // Only against a child that hangs: generous, so that a slow open on a loaded machine is never cut short.
    const safety = setTimeout(kill, 120_000);
    if (!afterReady) timer = setTimeout(kill, delay);
    if (input !== undefined) {
      // A child killed before it read all of its input closes the pipe under us.
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(JSON.stringify(input));
    }
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (afterReady && timer === undefined && out.includes(ready)) timer = setTimeout(kill, delay);
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => {
      clearTimeout(timer);
      clearTimeout(safety);
      resolve({ lines: wholeLines(out), stderr, killed: signal === 'SIGKILL' });
    });
  });
}

/** The JSON lines of `out`; the last one may be cut short by the kill, and is then left out. */
function wholeLines(out: string): unknown[] {
  const raw = out.split('\n');
  const last = raw.pop()!;
  if (last !== '') {
    try {
      JSON.parse(last);
      raw.push(last);
    } catch {
      // cut short
    }
  }
  return raw.filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
}
