#!/usr/bin/env node
// Starts the Node reference server (@durable-streams/server) in this process, so the harness can read its RSS and
// stop it with a signal. Argument: a JSON object { dataDir?, longPollTimeout? }. Prints "BENCH_READY <url>" once
// listening; SIGTERM / SIGINT stop it gracefully (so --cpu-prof profiles are written).
import { DurableStreamTestServer } from '@durable-streams/server';

const options = JSON.parse(process.argv[2] ?? '{}');
const server = new DurableStreamTestServer({
  port: 0,
  host: '127.0.0.1',
  longPollTimeout: options.longPollTimeout ?? 30_000,
  // Webhook subscriptions are off unless asked for; on, they cost an append nothing while no subscription exists (the
  // subscriptions scenario needs them, the others create none).
  webhooks: true,
  ...(options.dataDir ? { dataDir: options.dataDir } : {}),
});
const url = await server.start();
process.stdout.write(`BENCH_READY ${url}\n`);

let stopping = false;
const stop = () => {
  if (stopping) process.exit(1);
  stopping = true;
  server.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
