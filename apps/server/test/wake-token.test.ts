import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueWakeToken, readWakeToken } from '../src/webhooks/signing.js';

describe('wake tokens', () => {
  const secret = randomBytes(32);
  const claims = {
    subscription: 'sub',
    createdAt: 1_700_000_000_000,
    generation: 3,
    wakeId: 'w-1',
    expiresAt: 5_000,
  };

  it('round-trips until they expire', () => {
    const token = issueWakeToken(secret, claims);
    expect(readWakeToken(secret, token, 4_999)).toEqual(claims);
    expect(readWakeToken(secret, token, 5_000)).toBeUndefined();
  });

  it('refuses another secret, any changed claim, and tokens of another kind', () => {
    const token = issueWakeToken(secret, claims);
    expect(readWakeToken(randomBytes(32), token, 0)).toBeUndefined();
    const [payload, mac] = token.split('.') as [string, string];
    for (const changed of [
      { ...claims, generation: 4 },
      { ...claims, wakeId: 'w-2' },
      { ...claims, createdAt: claims.createdAt + 1 },
      { ...claims, subscription: 'other' },
    ]) {
      const forged = `${issueWakeToken(randomBytes(32), changed).split('.')[0]}.${mac}`;
      expect(readWakeToken(secret, forged, 0)).toBeUndefined();
    }
    expect(readWakeToken(secret, `${payload}.`, 0)).toBeUndefined();
    expect(readWakeToken(secret, `${payload}.${mac}.x`, 0)).toBeUndefined();
    // Sealed by the same secret but not a wake token (another kind, another length): refused.
    const sealed = (fields: unknown[]) => {
      const p = Buffer.from(JSON.stringify(fields)).toString('base64url');
      return `${p}.${createHmac('sha256', secret).update(p).digest('base64url')}`;
    };
    expect(readWakeToken(secret, sealed(['sub', 3, 5_000]), 0)).toBeUndefined();
    expect(readWakeToken(secret, sealed(['other', 'sub', 1, 3, 'w-1', 5_000]), 0)).toBeUndefined();
    expect(readWakeToken(secret, sealed(['wake', 'sub', 1, 3, 'w-1', 5_000]), 0)).toMatchObject({
      wakeId: 'w-1',
    });
  });
});
