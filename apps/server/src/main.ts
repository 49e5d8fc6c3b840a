#!/usr/bin/env node
import { CommanderError, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { parseServerConfig, type ServerConfig } from './config.js';
import { startServer } from './server.js';

/** Where the data lives, for the `listening` log line; the postgres URL is reduced to its host and database. */
function storageLocation(config: ServerConfig): Record<string, unknown> {
  if (config.storage === 'file') return { dataDir: config.dataDir };
  if (config.storage === 'postgres' && config.postgresUrl !== undefined) {
    const url = new URL(config.postgresUrl);
    return { postgres: `${url.host}${url.pathname}`, schema: config.postgresSchema };
  }
  return {};
}

async function main(): Promise<void> {
  let config: ServerConfig;
  try {
    config = parseServerConfig(process.argv.slice(2), process.env, (cmd) => cmd.exitOverride());
  } catch (err) {
    // commander has already printed its own errors (unknown flags) and the help text; bad values are ours to print.
    if (err instanceof CommanderError && !(err instanceof InvalidArgumentError)) process.exit(err.exitCode);
    process.stderr.write(`streamkeep: ${(err as Error).message}\nTry 'streamkeep --help'.\n`);
    process.exit(2);
  }
  const logger = pino({ level: config.logLevel, base: { service: 'streamkeep', pid: process.pid } });
  const running = await startServer(config, { logger });
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
    logger.fatal({ err }, 'cannot open storage');
    await running.close().catch(() => {});
    process.exit(1);
  });

  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
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
  process.stderr.write(`streamkeep: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
