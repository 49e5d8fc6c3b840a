import {
  type Clock,
  isStorageError,
  planAck,
  planAddStreams,
  planClaim,
  planCreateSubscription,
  planRemoveStream,
  planUnlinkStream,
  type StorageErrorCode,
  supportsSubscriptions,
  ZERO_OFFSET,
} from '@streamkeep/storage';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../src/index.js';

class TestClock implements Clock {
  constructor(public t = 1_000_000) {}
  now() {
    return this.t;
  }
}

async function code(p: Promise<unknown>): Promise<StorageErrorCode | 'ok'> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    if (isStorageError(err)) return err.code;
    throw err;
  }
}

const T1 = '0000000000000001_0000000000000001';
const PULL = { type: 'pull-wake', streams: ['a'], wakeStream: 'w', leaseTtlMs: 1000 } as const;

describe('MemoryStorage subscriptions', () => {
  it('declares the capability and narrows through supportsSubscriptions', () => {
    const s = new MemoryStorage();
    expect(s.capabilities.subscriptions).toBe(true);
    expect(supportsSubscriptions(s)).toBe(true);
  });

  it('leases run on the storage clock, not the wall clock', async () => {
    const clock = new TestClock();
    const s = new MemoryStorage({ clock });
    await s.mutateSubscription('j', planCreateSubscription('j', PULL, []));
    const claimed = await s.mutateSubscription(
      'j',
      planClaim('j', { worker: 'A', wakeId: 'w1', tails: [{ path: 'a', offset: T1 }] }),
    );
    expect(claimed.wake.leaseExpiresAt).toBe(clock.t + 1000);
    clock.t += 1000;
    expect(await code(s.mutateSubscription('j', planAck('j', { generation: 1 })))).toBe('FENCED');
  });

  it('the member index follows adds, removes, unlinks and deletes', async () => {
    const s = new MemoryStorage();
    await s.mutateSubscription('j', planCreateSubscription('j', PULL, []));
    await s.mutateSubscription('k', planCreateSubscription('k', { ...PULL, streams: ['b'] }, []));
    const ids = async (member: string) => (await s.listSubscriptions({ member })).map((r) => r.id);
    expect(await ids('a')).toEqual(['j']);
    await s.mutateSubscription('k', planAddStreams('k', [{ path: 'a', offset: ZERO_OFFSET }]));
    expect(await ids('a')).toEqual(['j', 'k']);
    await s.mutateSubscription('j', planRemoveStream('j', 'a'));
    expect(await ids('a')).toEqual(['k']);
    await s.mutateSubscription('k', planUnlinkStream('k', 'b'));
    expect(await ids('b')).toEqual([]);
    expect(await s.deleteSubscription('k')).toBe(true);
    expect(await s.deleteSubscription('k')).toBe(false);
    expect(await ids('a')).toEqual([]);
    expect((await s.listSubscriptions()).map((r) => r.id)).toEqual(['j']);
  });

  it('stored records are frozen; a refused plan writes nothing', async () => {
    const s = new MemoryStorage();
    const { record } = await s.mutateSubscription('j', planCreateSubscription('j', PULL, []));
    expect(Object.isFrozen(record)).toBe(true);
    expect(Object.isFrozen(record.members[0])).toBe(true);
    expect(
      await code(s.mutateSubscription('j', planCreateSubscription('j', { ...PULL, leaseTtlMs: 2000 }, []))),
    ).toBe('SUBSCRIPTION_CONFLICT');
    expect(await s.getSubscription('j')).toBe(record);
  });

  it('answers arguments before state and STORAGE_CLOSED after close', async () => {
    const s = new MemoryStorage();
    expect(await code(s.getSubscription(''))).toBe('INVALID_SUBSCRIPTION');
    await expect(s.mutateSubscription('j', 'plan' as never)).rejects.toThrow(TypeError);
    await s.close();
    expect(await code(s.getSubscription('j'))).toBe('STORAGE_CLOSED');
    expect(await code(s.listSubscriptions())).toBe('STORAGE_CLOSED');
  });
});
