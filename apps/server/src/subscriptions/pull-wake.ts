import { randomUUID } from 'node:crypto';
import {
  planWake,
  type Storage,
  type SubscriptionRecord,
  type SubscriptionStore,
  type SubscriptionTail,
} from '@streamkeep/storage';
import type { Logger } from 'pino';

/**
 * Raises a wake of a pull-wake subscription if work is pending (`planWake`: atomic, once cluster-wide), and writes
 * its events to the subscription's wake stream.
 */
export async function raisePullWake(
  storage: Storage & SubscriptionStore,
  record: SubscriptionRecord,
  tails: readonly SubscriptionTail[],
  logger: Logger,
): Promise<void> {
  const outcome = await storage.mutateSubscription(record.id, planWake({ wakeId: randomUUID(), tails }));
  if (outcome.woken) await announce(storage, outcome.record, logger);
}

/** Appends the wake events of a pull-wake wake to the subscription's wake stream (§7: one per pending stream). */
async function announce(storage: Storage, record: SubscriptionRecord, logger: Logger): Promise<void> {
  const wakeStream = record.config.wakeStream;
  if (wakeStream === null) return;
  const ts = Date.now();
  const messages = record.wake.tails.map((t) =>
    Buffer.from(
      JSON.stringify({
        type: 'wake',
        subscription_id: record.id,
        stream: t.path,
        generation: record.wake.generation,
        ts,
      }),
    ),
  );
  try {
    const meta = await storage.head(wakeStream);
    await storage.append(wakeStream, { messages, contentType: meta.config.contentType });
  } catch (err) {
    // The application creates its wake stream; until it does, workers learn of work by claiming.
    logger.warn({ err, subscription: record.id, wakeStream }, 'could not append to the wake stream');
  }
}
