import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const SCRIPT = fileURLToPath(new URL('../../../scripts/postgres/cluster.sh', import.meta.url));

/** A throwaway PostgreSQL cluster started by the repository's script. */
export interface TestCluster {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  /** Stops the cluster and removes its directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a cluster with `scripts/postgres/cluster.sh start` (installing PostgreSQL first when it is missing). Throws
 * when it cannot start, so a test that needs it fails rather than skips. The cluster is also stopped when the test
 * process exits without calling `stop` (a crashed or interrupted run must not leave a server behind).
 */
export async function startCluster(): Promise<TestCluster> {
  const { stdout } = await promisify(execFile)('bash', [SCRIPT, 'start'], {
    encoding: 'utf8',
    timeout: 15 * 60_000,
    maxBuffer: 1024 * 1024,
  });
  const field = (key: string) => {
    const line = stdout.split('\n').find((l) => l.startsWith(`${key}=`));
    if (line === undefined) throw new Error(`cluster.sh start printed no ${key}= line:\n${stdout}`);
    return line.slice(key.length + 1);
  };
  const dir = field('dir');
  const url = field('url');
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    process.off('exit', stopNow);
    execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
  };
  process.on('exit', stopNow);
  return {
    url,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off('exit', stopNow);
      await promisify(execFile)('bash', [SCRIPT, 'stop', dir]);
    },
  };
}

/** A schema name no other test uses. */
export function freshSchema(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}
