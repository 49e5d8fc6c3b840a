import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { codeOf, expectCode, ManualClock, withTempDir } from '@streamkeep/storage-conformance/helpers';
import { MemoryStorage } from '@streamkeep/storage-memory';
import { expect, it } from 'vitest';

it('expires a stream exactly at its deadline, without sleeping', async () => {
  const clock = new ManualClock();
  const storage = new MemoryStorage({ clock });
  await storage.createStream('s', { contentType: 'text/plain', ttlSeconds: 60 });
  clock.advance(59_999);
  expect(await codeOf(storage.head('s'))).toBeUndefined();
  clock.advance(1);
  await expectCode(storage.head('s'), 'EXPIRED');
  const err = await expectCode(() => storage.append('s', { messages: [] }), 'EMPTY_APPEND');
  expect(err.details).toEqual({});
  await storage.close();
});

it('gives each test its own temporary directory and removes it afterwards', async () => {
  const written = await withTempDir(async (dir) => {
    await writeFile(join(dir, 'LOCK'), 'pid');
    return dir;
  });
  expect(written).toMatch(/streamkeep-/);
});
