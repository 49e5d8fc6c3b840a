import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { until as poll } from './subscriptions-helpers.js';

// Helpers of the restart tests: a real `streamkeep` process (killed with SIGKILL, restarted on the same data
// directory) and a webhook receiver on loopback whose answer the test switches between phases.

const pkgDir = resolve(import.meta.dirname, '..');

/** Polls for an outcome, with a deadline generous for a loaded machine (no duration is ever asserted). */
export function until<T>(
  predicate: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 60_000,
): Promise<T> {
  return poll(predicate, timeoutMs);
}

/** A `streamkeep` process listening on a free loopback port. */
export interface StreamkeepProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Its JSON log lines. */
  readonly logs: Record<string, unknown>[];
  /** SIGKILL, resolved once the process is gone: nothing it had not made durable survives. */
  kill(): Promise<void>;
}

/** Starts the compiled CLI (`bin`) with `args`; resolves once it logs `listening`. */
export function spawnStreamkeep(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<StreamkeepProcess> {
  const child = spawn(process.execPath, [bin, '--host', '127.0.0.1', '--port', '0', ...args], {
    cwd: pkgDir,
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<void>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    else child.once('exit', () => resolveExit());
  });
  return new Promise((resolveStart, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'listening') {
        resolveStart({
          child,
          url: entry.url as string,
          logs,
          async kill() {
            child.kill('SIGKILL');
            await exited;
          },
        });
      }
    });
    child.once('exit', (code, signal) =>
      reject(new Error(`streamkeep exited (${code ?? signal}) before listening: ${stderr}`)),
    );
  });
}

/** One webhook request the receiver got. */
export interface ReceivedWake {
  // biome-ignore lint/suspicious/noExplicitAny: the payload is checked field by field in the tests
  readonly body: any;
  readonly rawBody: string;
  readonly signature: string | undefined;
}

/**
 * How the receiver answers: `ok` 200 `{}` (the wake stays open until a callback), `done` 200 `{ done: true }`
 * (acks the wake synchronously), `hold` never (the delivery stays in flight), `fail` 500.
 */
export type ReceiverMode = 'ok' | 'done' | 'hold' | 'fail';

export interface WebhookReceiver {
  readonly url: string;
  readonly received: ReceivedWake[];
  /** Requests held unanswered (`hold`). */
  readonly held: ReceivedWake[];
  mode: ReceiverMode;
  close(): Promise<void>;
}

export async function startWebhookReceiver(mode: ReceiverMode = 'ok'): Promise<WebhookReceiver> {
  const received: ReceivedWake[] = [];
  const held: ReceivedWake[] = [];
  const open: ServerResponse[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const sig = req.headers['webhook-signature'];
      const wake: ReceivedWake = {
        body: JSON.parse(rawBody),
        rawBody,
        signature: typeof sig === 'string' ? sig : undefined,
      };
      received.push(wake);
      const answer = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (receiver.mode === 'hold') {
        held.push(wake);
        open.push(res);
      } else if (receiver.mode === 'done') answer(200, { done: true });
      else if (receiver.mode === 'fail') answer(500, { error: 'down' });
      else answer(200, {});
    });
    // The server may be killed with the request open: its socket then closes under us.
    res.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    held,
    mode,
    async close() {
      for (const res of open) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  return receiver;
}

/** The streams a wake says have pending data. */
export function pendingPaths(wake: ReceivedWake): string[] {
  return (wake.body.streams as { path: string; has_pending: boolean }[])
    .filter((s) => s.has_pending)
    .map((s) => s.path);
}

/** The entry of `path` in a wake's (or a claim's) `streams`. */
export function streamOf(
  streams: { path: string; acked_offset: string; tail_offset: string; has_pending: boolean }[],
  path: string,
) {
  return streams.find((s) => s.path === path);
}

/**
 * Verifies `Webhook-Signature: t=<unix>,kid=<kid>,ed25519=<b64url>` over `"<t>.<raw body>"` with `node:crypto` and
 * the key of that `kid` in `jwks` — an independent verifier: nothing of the server's signing code is used.
 */
export function verifyWebhookSignature(
  jwks: { keys: Record<string, string>[] },
  header: string | undefined,
  rawBody: string,
): boolean {
  if (header === undefined) return false;
  const fields = new Map(
    header.split(',').map((part) => {
      const eq = part.indexOf('=');
      return [part.slice(0, eq), part.slice(eq + 1)] as const;
    }),
  );
  const jwk = jwks.keys.find((k) => k.kid === fields.get('kid'));
  const t = fields.get('t');
  const signature = fields.get('ed25519');
  if (jwk === undefined || t === undefined || signature === undefined) return false;
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
  return verify(null, Buffer.from(`${t}.${rawBody}`), key, Buffer.from(signature, 'base64url'));
}
