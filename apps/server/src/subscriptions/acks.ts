import {
  type AckRequest,
  planAck,
  StorageError,
  type SubscriptionPlan,
  type SubscriptionRecord,
} from '@streamkeep/storage';

/**
 * `planAck` for the wake a token (or a delivery) names: also fenced when the record is another incarnation of the id
 * (`createdAt`) or the outstanding wake is another one (`wakeId`).
 */
export function ackPlanFor(
  bound: {
    readonly id: string;
    readonly createdAt: number;
    readonly wake: { readonly wakeId: string | null };
  },
  request: AckRequest,
  plan: SubscriptionPlan<SubscriptionRecord> = planAck(bound.id, request),
): SubscriptionPlan<SubscriptionRecord> {
  return (current, now) => {
    if (
      current !== undefined &&
      (current.createdAt !== bound.createdAt || current.wake.wakeId !== bound.wake.wakeId)
    ) {
      throw new StorageError('FENCED', `subscription ${JSON.stringify(bound.id)}: the wake has ended`, {
        details: { generation: current.wake.generation },
      });
    }
    return plan(current, now);
  };
}

export function answeredDone(body: Buffer): boolean {
  if (body.byteLength === 0) return false;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { done?: unknown };
    return typeof parsed === 'object' && parsed !== null && parsed.done === true;
  } catch {
    return false;
  }
}
