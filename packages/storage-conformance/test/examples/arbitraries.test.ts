import { formatOffset } from '@streamkeep/storage';
import { ManualClock, messagesArb, StorageModel } from '@streamkeep/storage-conformance';
import { MemoryStorage } from '@streamkeep/storage-memory';
import fc from 'fast-check';
import { expect, it } from 'vitest';

it('the backend and the model agree on the tail after any sequence of batches', () =>
  fc.assert(
    fc.asyncProperty(fc.array(messagesArb, { maxLength: 5 }), async (batches) => {
      const clock = new ManualClock();
      const model = new StorageModel(clock);
      const storage = new MemoryStorage({ clock });
      const options = { contentType: 'text/plain' };
      model.createStream('s', options);
      await storage.createStream('s', options);
      for (const messages of batches) {
        if (messages.length === 0) continue;
        model.append('s', { messages, contentType: 'text/plain' });
        await storage.append('s', { messages, contentType: 'text/plain' });
      }
      const expected = model.head('s');
      expect(expected.ok && expected.value.nextOffset).toBe((await storage.head('s')).nextOffset);
      expect((await storage.read('s', formatOffset(0, 0))).messages).toHaveLength(
        model.messagesOf('s').length,
      );
      await storage.close();
    }),
    { numRuns: 50 },
  ));
