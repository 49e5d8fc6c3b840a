import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Storage } from '@streamkeep/storage';
import type { Logger } from 'pino';
import { generateSigningKey, type SigningKey, signingKeyFrom } from '../webhooks/signing.js';

/** The server's subscription secrets: the webhook signing key and the HMAC key of callback tokens. */
export interface SubscriptionSecrets {
  readonly signingKey: SigningKey;
  readonly tokenSecret: Buffer;
}

/** The file in a file backend's data directory that keeps the secrets (mode 0600). */
export const SECRETS_FILE = 'subscription-secrets.json';

/** What a storage offers when it can keep a secret shared by every instance (PostgreSQL, duck-typed). */
interface SecretKeeper {
  loadOrCreateSecret(name: string, create: () => string): Promise<string>;
}

function keepsSecrets(storage: Storage): storage is Storage & SecretKeeper {
  return typeof (storage as Partial<SecretKeeper>).loadOrCreateSecret === 'function';
}

function fresh(): { signing: string; token: string } {
  return {
    signing: generateSigningKey().pkcs8.toString('base64'),
    token: randomBytes(32).toString('base64'),
  };
}

function decode(signing: string, token: string): SubscriptionSecrets {
  const tokenSecret = Buffer.from(token, 'base64');
  if (tokenSecret.byteLength < 32) throw new Error('the callback token secret is shorter than 32 bytes');
  return { signingKey: signingKeyFrom(Buffer.from(signing, 'base64')), tokenSecret };
}

/**
 * Loads the secrets, creating them the first time, so that the signing key (and its `kid`) survives restarts:
 * - a storage with `loadOrCreateSecret` (PostgreSQL): kept in it, the first instance's value wins;
 * - a data directory (file backend): kept in {@link SECRETS_FILE}, created atomically (written to a private temporary
 *   file, then hard-linked into place, which fails if another process got there first) with mode 0600;
 * - otherwise (memory): per process — a memory backend loses its subscriptions on restart anyway.
 */
export async function loadSubscriptionSecrets(
  storage: Storage,
  dataDir: string | undefined,
  logger: Logger,
): Promise<SubscriptionSecrets> {
  if (keepsSecrets(storage)) {
    const signing = await storage.loadOrCreateSecret('webhook-signing-key', () => fresh().signing);
    const token = await storage.loadOrCreateSecret('callback-token-secret', () => fresh().token);
    return decode(signing, token);
  }
  if (dataDir !== undefined) return loadFromDirectory(dataDir);
  if (storage.capabilities.durable) {
    logger.warn(
      'the storage keeps no secrets and no data directory was given: the webhook signing key lives in this process only, so its kid changes on restart',
    );
  }
  const { signing, token } = fresh();
  return decode(signing, token);
}

async function loadFromDirectory(dir: string): Promise<SubscriptionSecrets> {
  const path = join(dir, SECRETS_FILE);
  const existing = await readSecretsFile(path);
  if (existing !== undefined) return existing;
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const { signing, token } = fresh();
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify({ version: 1, signing, token }));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    await unlink(tmp).catch(() => {});
  }
  // The new name must outlive a power loss like the subscriptions it signs for (their writes are synced): without
  // the directory's sync, a host crash soon after the first start could lose the file and change the kid.
  await syncDirectory(dir);
  const kept = await readSecretsFile(path);
  if (kept === undefined) throw new Error(`${path} vanished while it was created`);
  return kept;
}

async function syncDirectory(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(dir, 'r');
  } catch (err) {
    // Platforms that cannot open a directory (Windows) have no directory sync to do.
    if (['EISDIR', 'EPERM', 'EACCES'].includes((err as NodeJS.ErrnoException).code ?? '')) return;
    throw err;
  }
  try {
    await handle.sync();
  } catch (err) {
    // File systems that do not sync directories (EINVAL) keep names durable by other means.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    await handle.close();
  }
}

async function readSecretsFile(path: string): Promise<SubscriptionSecrets | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as { signing?: unknown; token?: unknown };
  if (typeof parsed.signing !== 'string' || typeof parsed.token !== 'string') {
    throw new Error(`${path} is not a subscription secrets file`);
  }
  return decode(parsed.signing, parsed.token);
}
