import { createPublicKey, randomBytes, verify } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  generateSigningKey,
  issueWakeToken,
  jwks,
  readWakeToken,
  signatureHeader,
  signingKeyFrom,
} from '../src/webhooks/signing.js';

/** An independent verifier: only node:crypto and the published JWK set, as a receiver would. */
function verifyWithJwks(set: { keys: Record<string, string>[] }, header: string, body: Buffer): boolean {
  const fields = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  const jwk = set.keys.find((k) => k.kid === fields.kid);
  if (jwk === undefined || fields.t === undefined || fields.ed25519 === undefined) return false;
  const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x } as never, format: 'jwk' });
  return verify(
    null,
    Buffer.concat([Buffer.from(`${fields.t}.`), body]),
    key,
    Buffer.from(fields.ed25519, 'base64url'),
  );
}

describe('webhook signatures', () => {
  it('verify against the served JWK set, and only for the exact body and timestamp', () => {
    const key = generateSigningKey();
    const set = jwks([key]);
    expect(key.kid).toMatch(/^ds_[A-Za-z0-9_-]{43}$/);
    expect(set.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig', kid: key.kid });
    expect(Object.keys(set.keys[0]!)).not.toContain('d');
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2048 }),
        fc.integer({ min: 1, max: 4_000_000_000 }),
        (bytes, t) => {
          const body = Buffer.from(bytes);
          const header = signatureHeader(key, body, t);
          expect(header).toMatch(new RegExp(`^t=${t},kid=${key.kid},ed25519=[A-Za-z0-9_-]+$`));
          expect(verifyWithJwks(set, header, body)).toBe(true);
          const other = Buffer.concat([body, Buffer.from([1])]);
          expect(verifyWithJwks(set, header, other)).toBe(false);
          expect(verifyWithJwks(set, header.replace(`t=${t},`, `t=${t + 1},`), body)).toBe(false);
        },
      ),
      { seed: 20261206, numRuns: 50 },
    );
  });

  it('keep their kid across a reload of the persisted key, and refuse a key of another type', () => {
    const key = generateSigningKey();
    const again = signingKeyFrom(key.pkcs8);
    expect(again.kid).toBe(key.kid);
    expect(verifyWithJwks(jwks([key]), signatureHeader(again, Buffer.from('x'), 5), Buffer.from('x'))).toBe(
      true,
    );
    expect(generateSigningKey().kid).not.toBe(key.kid);
    expect(() => signingKeyFrom(randomBytes(48))).toThrow();
  });
});

describe('wake tokens', () => {
  const secret = randomBytes(32);
  const claims = {
    subscription: 'sub-1',
    createdAt: 1_700_000_000_000,
    generation: 7,
    wakeId: 'w7',
    expiresAt: 2_000_000,
  };

  it('cannot be forged: any change to a token, or another secret, is refused', () => {
    const token = issueWakeToken(secret, claims);
    expect(readWakeToken(randomBytes(32), token, 0)).toBeUndefined();
    fc.assert(
      fc.property(fc.nat({ max: token.length - 1 }), fc.constantFrom(...'ABCxyz019-_.'), (i, ch) => {
        fc.pre(token[i] !== ch);
        const changed = token.slice(0, i) + ch + token.slice(i + 1);
        const read = readWakeToken(secret, changed, 0);
        // A change in the base64url padding bits can decode to the same bytes: then the claims are the same too.
        if (read !== undefined) expect(read).toEqual(claims);
      }),
      { seed: 20261206, numRuns: 300 },
    );
    const forged = Buffer.from(
      JSON.stringify(['wake', 'sub-1', claims.createdAt, 8, 'w7', 2_000_000]),
    ).toString('base64url');
    expect(readWakeToken(secret, `${forged}.${token.split('.')[1]}`, 0)).toBeUndefined();
    expect(readWakeToken(secret, 'garbage', 0)).toBeUndefined();
  });
});
