import {
  compareOffsets,
  findMember,
  memberLinkType,
  type SubscriptionRecord,
  type SubscriptionTail,
} from '@streamkeep/storage';

/** What the views need from the service: the signing identity and where the API lives. */
export interface ViewContext {
  readonly secrets: { readonly signingKey: { readonly kid: string } };
  readonly basePath: string;
  deliveryOrigin(id: string): string;
  wakeToken(record: SubscriptionRecord): string;
}

/** The URL of `__ds/<rest>` on this server at `origin`. */
export function apiUrl(ctx: ViewContext, origin: string, rest: string): string {
  const base = ctx.basePath === '/' ? '' : ctx.basePath;
  return `${origin}${base}/__ds/${rest}`;
}

/** The subscription document of `PUT` and `GET /__ds/subscriptions/:id` (protocol §6.1). No secret is ever in it. */
export function subscriptionView(
  ctx: ViewContext,
  record: SubscriptionRecord,
  origin: string,
): Record<string, unknown> {
  const { config } = record;
  return {
    id: record.id,
    subscription_id: record.id,
    type: config.type,
    pattern: config.pattern,
    streams: record.members.map((m) => ({
      path: m.path,
      link_type: memberLinkType(m),
      acked_offset: m.ackedOffset,
    })),
    webhook:
      config.webhookUrl === null
        ? null
        : {
            url: config.webhookUrl,
            signing: {
              alg: 'ed25519',
              kid: ctx.secrets.signingKey.kid,
              jwks_url: apiUrl(ctx, origin, 'jwks.json'),
            },
          },
    wake_stream: config.wakeStream,
    lease_ttl_ms: config.leaseTtlMs,
    created_at: new Date(record.createdAt).toISOString(),
    status: record.status,
    description: config.description,
  };
}

/** The streams of a wake as the receiver sees them: each pending stream, its acked offset and tail. */
export function wakeStreams(
  record: SubscriptionRecord,
  tails: readonly SubscriptionTail[] = record.wake.tails,
) {
  return tails.map((t) => {
    const member = findMember(record, t.path);
    const acked = member?.ackedOffset ?? t.offset;
    return {
      path: t.path,
      link_type: member === undefined ? 'explicit' : memberLinkType(member),
      acked_offset: acked,
      tail_offset: t.offset,
      has_pending: compareOffsets(t.offset, acked) > 0,
    };
  });
}

/** The body POSTed to a webhook for a wake (§6.3). */
export function wakePayload(ctx: ViewContext, record: SubscriptionRecord): Record<string, unknown> {
  const id = encodeURIComponent(record.id);
  return {
    subscription_id: record.id,
    wake_id: record.wake.wakeId,
    generation: record.wake.generation,
    streams: wakeStreams(record),
    callback_url: apiUrl(ctx, ctx.deliveryOrigin(record.id), `subscriptions/${id}/callback`),
    callback_token: ctx.wakeToken(record),
  };
}
