import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  timingSafeEqual,
} from 'node:crypto';

/**
 * The server's webhook signing identity: one Ed25519 key pair, created once and kept (by the storage that persists
 * it), published as a JWK set at `{base}/__ds/jwks.json`. A receiver verifies `Webhook-Signature:
 * t=<unix seconds>,kid=<kid>,ed25519=<base64url signature>` over the bytes `"<t>.<raw body>"` with the key of that
 * `kid`. The `kid` is derived from the public key (`ds_` + RFC 7638 thumbprint), so it is stable across restarts as
 * long as the key is, and two servers sharing a key (PostgreSQL) publish the same `kid`.
 */
export interface SigningKey {
  readonly kid: string;
  /** The private key in PKCS #8 DER, as persisted. */
  readonly pkcs8: Buffer;
  readonly privateKey: KeyObject;
  /** The public key as a JWK (`kty: OKP`, `crv: Ed25519`, `x`, plus `kid`, `alg`, `use`). */
  readonly jwk: Readonly<Record<string, string>>;
}

/** A new Ed25519 key pair (to persist with {@link SigningKey.pkcs8}). */
export function generateSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  return signingKeyFrom(privateKey.export({ format: 'der', type: 'pkcs8' }));
}

/**
 * The signing key from its persisted PKCS #8 DER bytes.
 *
 * @throws TypeError when the bytes are not an Ed25519 private key.
 */
export function signingKeyFrom(pkcs8: Buffer): SigningKey {
  const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError(`the webhook signing key is ${privateKey.asymmetricKeyType}, not ed25519`);
  }
  const pub = createPublicKey(privateKey).export({ format: 'jwk' }) as {
    kty: string;
    crv: string;
    x: string;
  };
  // RFC 7638: the thumbprint hashes the required members in lexicographic order, without whitespace.
  const thumbprint = createHash('sha256')
    .update(JSON.stringify({ crv: pub.crv, kty: pub.kty, x: pub.x }))
    .digest('base64url');
  const kid = `ds_${thumbprint}`;
  return {
    kid,
    pkcs8: Buffer.from(pkcs8),
    privateKey,
    jwk: Object.freeze({ kty: pub.kty, crv: pub.crv, x: pub.x, kid, alg: 'EdDSA', use: 'sig' }),
  };
}

/** The JWK set served at `__ds/jwks.json` (`application/jwk-set+json`). */
export function jwks(keys: readonly SigningKey[]): { keys: Record<string, string>[] } {
  return { keys: keys.map((k) => ({ ...k.jwk })) };
}

/** The `Webhook-Signature` header value for `body` sent at `unixSeconds`. */
export function signatureHeader(key: SigningKey, body: Uint8Array, unixSeconds: number): string {
  const t = Math.floor(unixSeconds);
  const signed = Buffer.concat([Buffer.from(`${t}.`), body]);
  return `t=${t},kid=${key.kid},ed25519=${sign(null, signed, key.privateKey).toString('base64url')}`;
}

/** Seals `fields` as `<base64url JSON>.<HMAC-SHA256>` with `secret`. */
function seal(secret: Buffer, fields: readonly unknown[]): string {
  const payload = Buffer.from(JSON.stringify(fields)).toString('base64url');
  return `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
}

/** The fields sealed in `token` with `secret`, or `undefined` for a token this secret did not seal (or garbage). */
function unseal(secret: Buffer, token: string): unknown[] | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0 || dot !== token.lastIndexOf('.')) return undefined;
  const payload = token.slice(0, dot);
  const mac = Buffer.from(token.slice(dot + 1), 'base64url');
  const expected = createHmac('sha256', secret).update(payload).digest();
  if (mac.byteLength !== expected.byteLength || !timingSafeEqual(mac, expected)) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return Array.isArray(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The claims of a wake token: the callback token of a webhook wake and the token a pull-wake claim returns. It binds
 * one wake of one *incarnation* of a subscription: `createdAt` tells a re-created id apart (its generations start
 * again at 0), `generation` and `wakeId` the wake, so a token can be neither forged nor replayed against a later
 * wake or a later subscription of the same id.
 */
export interface WakeClaims {
  readonly subscription: string;
  readonly createdAt: number;
  readonly generation: number;
  readonly wakeId: string;
  /** Expiry, epoch milliseconds. */
  readonly expiresAt: number;
}

export function issueWakeToken(secret: Buffer, claims: WakeClaims): string {
  const { subscription, createdAt, generation, wakeId, expiresAt } = claims;
  return seal(secret, ['wake', subscription, createdAt, generation, wakeId, expiresAt]);
}

/** The claims of a wake token this server issued and that has not expired at `now`, or `undefined`. */
export function readWakeToken(secret: Buffer, token: string, now: number): WakeClaims | undefined {
  const parsed = unseal(secret, token);
  if (parsed === undefined || parsed.length !== 6 || parsed[0] !== 'wake') return undefined;
  const [, subscription, createdAt, generation, wakeId, expiresAt] = parsed as unknown[];
  if (
    typeof subscription !== 'string' ||
    typeof createdAt !== 'number' ||
    !Number.isSafeInteger(generation) ||
    typeof wakeId !== 'string' ||
    typeof expiresAt !== 'number' ||
    now >= expiresAt
  ) {
    return undefined;
  }
  return { subscription, createdAt, generation: generation as number, wakeId, expiresAt };
}
