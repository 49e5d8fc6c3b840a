#!/usr/bin/env node
import { CommanderError } from 'commander';
import { pino } from 'pino';
import { tuneHeapForMemoryBackend } from './heap-tuning.js';
import { startServer } from './server.js';
import { parseServerConfig } from './settings/cli.js';
import type { ServerConfig } from './settings/table.js';
import { describeStartupFailure } from './startup-failure.js';

/**
 * The `streamkeep` binary. Exit codes: 0 after a clean stop (and for `--help`, `--version`); 2 for a usage error
 * (unknown flag, bad value, bad choice), with one line on stderr; 1 for a runtime failure (cannot listen, storage
 * cannot open, shutdown past `--shutdown-timeout`), with one line on stderr or one fatal log line, never a stack.
 */

/** Where the data lives, for the `listening` log line; the postgres URL is reduced to its host and database. */
function storageLocation(config: ServerConfig): Record<string, unknown> {
  if (config.storage === 'file') return { dataDir: config.dataDir };
  if (config.storage === 'postgres' && config.postgresUrl !== undefined) {
    const url = new URL(config.postgresUrl);
    return { postgres: `${url.host}${url.pathname}`, schema: config.postgresSchema };
  }
  return {};
}

function usageError(message: string): never {
  process.stderr.write(`streamkeep: ${message}\nTry 'streamkeep --help'.\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    // commander's own errors ("error: unknown option '--bogus'") are thrown, and printed below in our format.
    config = parseServerConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof CommanderError && err.exitCode === 0) process.exit(0); // --help, --version
    usageError((err as Error).message.replace(/^error: /, ''));
  }
  if (config.storage === 'memory') tuneHeapForMemoryBackend();
  const logger = pino({ level: config.logLevel, base: { service: 'streamkeep', pid: process.pid } });
  // Loaded only when on (see startServer).
  const metrics = config.metrics
    ? new (await import('./metrics.js')).ServerMetrics({ processMetrics: true })
    : undefined;
  let stopping = false;
  const fail = (err: unknown, what: string): never => {
    const reason = describeStartupFailure(err, config);
    logger.fatal({ reason }, what);
    process.stderr.write(`streamkeep: ${what}: ${reason}\n`);
    process.exit(1);
  };
  const running = await startServer(config, { logger, ...(metrics === undefined ? {} : { metrics }) }).catch(
    (err: unknown) => fail(err, 'cannot start'),
  );
  logger.info(
    {
      url: running.url,
      basePath: config.basePath,
      storage: config.storage,
      ...storageLocation(config),
    },
    'listening',
  );
  // startServer logs "storage open" with what recovery found; only a failure is ours to handle.
  running.storage.catch(async (err: unknown) => {
    if (stopping) return;
    stopping = true;
    await running.close().catch(() => {});
    fail(err, 'cannot open storage');
  });

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    // `close` keeps to --shutdown-timeout by itself; this backstop only covers a bug or a wedged event loop.
    setTimeout(() => {
      logger.error({ shutdownTimeoutMs: config.shutdownTimeoutMs }, 'shutdown timed out: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + 2_000).unref();
    running.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`streamkeep: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
});
