import type {
  ListSubscriptionsOptions,
  SubscriptionConfig,
  SubscriptionInput,
  SubscriptionMember,
  SubscriptionRecord,
  SubscriptionTail,
  SubscriptionWakeState,
} from '@streamkeep/storage';

// An independent restatement of the subscription rules of the contract (its planners are not used here), so that a
// bug in the shared planners fails the kit as surely as a bug in a backend. Records are plain values compared whole.

/** What the model says an operation does: a value, or a refusal with the documented details. */
export type SubOutcome =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly code: string; readonly details?: Record<string, unknown> };

const ZERO = '0000000000000000_0000000000000000';
const ok = (value: unknown): SubOutcome => ({ ok: true, value });
const no = (code: string, details?: Record<string, unknown>): SubOutcome =>
  details === undefined ? { ok: false, code } : { ok: false, code, details };

/** UTF-8 byte order of two strings (the kit's names are ASCII, where it is plain code unit order). */
function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The glob as a regular expression over `name + '/'`: each segment followed by its `/`, `**` any run of them. */
export function globRegExp(pattern: string): RegExp {
  const body = pattern
    .split('/')
    .map((segment) =>
      segment === '**'
        ? '(?:[^/]*/)*'
        : `${segment
            .split('*')
            .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
            .join('[^/]*')}/`,
    )
    .join('');
  return new RegExp(`^${body}$`, 'u');
}

export function modelMatches(pattern: string, name: string): boolean {
  return globRegExp(pattern).test(`${name}/`);
}

/** The model's validation of a create request: `undefined` when valid, else the config it normalises to. */
export function modelConfig(input: SubscriptionInput): SubscriptionConfig | undefined {
  const i = input as unknown as Record<string, unknown>;
  if (i.type !== 'webhook' && i.type !== 'pull-wake') return undefined;
  const pattern = i.pattern;
  if (pattern !== undefined) {
    if (typeof pattern !== 'string' || pattern === '') return undefined;
    if (pattern.split('/').some((s) => s !== '**' && s.includes('**'))) return undefined;
  }
  const streams = (i.streams ?? []) as unknown[];
  if (!Array.isArray(streams) || streams.some((s) => typeof s !== 'string' || s === '')) return undefined;
  if (pattern === undefined && streams.length === 0) return undefined;
  const lease = i.leaseTtlMs ?? 30_000;
  if (typeof lease !== 'number' || !Number.isInteger(lease) || lease < 1000 || lease > 600_000)
    return undefined;
  const url = i.webhookUrl;
  const wake = i.wakeStream;
  if (
    i.type === 'webhook' ? typeof url !== 'string' || url === '' || wake !== undefined : url !== undefined
  ) {
    return undefined;
  }
  if (i.type === 'pull-wake' && (typeof wake !== 'string' || wake === '')) return undefined;
  if (i.description !== undefined && typeof i.description !== 'string') return undefined;
  return {
    type: i.type,
    pattern: (pattern as string | undefined) ?? null,
    streams: [...new Set(streams as string[])].sort(byBytes),
    webhookUrl: (url as string | undefined) ?? null,
    wakeStream: (wake as string | undefined) ?? null,
    leaseTtlMs: lease,
    description: (i.description as string | undefined) ?? null,
  };
}

function sameConfig(a: SubscriptionConfig, b: SubscriptionConfig): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

const IDLE = (generation: number): SubscriptionWakeState => ({
  generation,
  wakeId: null,
  holder: null,
  leaseExpiresAt: null,
  tails: [],
});

/** The subscription state the model expects a backend to hold. */
export class SubscriptionModel {
  readonly records = new Map<string, SubscriptionRecord>();

  private bump(r: SubscriptionRecord, changes: Partial<SubscriptionRecord>): SubscriptionRecord {
    const next = { ...r, ...changes, version: r.version + 1 };
    next.members = [...next.members].sort((a, b) => byBytes(a.path, b.path));
    this.records.set(r.id, next);
    return next;
  }

  private live(r: SubscriptionRecord, now: number): boolean {
    return r.wake.wakeId !== null && r.wake.leaseExpiresAt !== null && r.wake.leaseExpiresAt > now;
  }

  /** Members whose tail in `tails` lies beyond their acked offset, with that tail, by path. */
  private pending(r: SubscriptionRecord, tails: readonly SubscriptionTail[]): SubscriptionTail[] {
    return tails
      .filter((t) => {
        const m = r.members.find((x) => x.path === t.path);
        return m !== undefined && t.offset > m.ackedOffset;
      })
      .sort((a, b) => byBytes(a.path, b.path));
  }

  create(id: string, input: SubscriptionInput, tails: readonly SubscriptionTail[], now: number): SubOutcome {
    const config = modelConfig(input);
    if (config === undefined) return no('INVALID_SUBSCRIPTION');
    const current = this.records.get(id);
    if (current !== undefined) {
      return sameConfig(current.config, config)
        ? ok({ created: false, record: current })
        : no('SUBSCRIPTION_CONFLICT');
    }
    const members: SubscriptionMember[] = [];
    const paths = new Set([
      ...config.streams,
      ...tails.map((t) => t.path).filter((p) => config.pattern !== null && modelMatches(config.pattern, p)),
    ]);
    for (const path of paths) {
      members.push({
        path,
        explicit: config.streams.includes(path),
        glob: config.pattern !== null && modelMatches(config.pattern, path),
        ackedOffset: tails.find((t) => t.path === path)?.offset ?? ZERO,
      });
    }
    members.sort((a, b) => byBytes(a.path, b.path));
    const record = {
      id,
      version: 1,
      config,
      createdAt: now,
      status: 'active' as const,
      members,
      wake: IDLE(0),
    };
    this.records.set(id, record);
    return ok({ created: true, record });
  }

  addStreams(id: string, tails: readonly SubscriptionTail[]): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    let members = [...r.members];
    let changed = false;
    for (const t of tails) {
      const m = members.find((x) => x.path === t.path);
      if (m === undefined) members.push({ path: t.path, explicit: true, glob: false, ackedOffset: t.offset });
      else if (!m.explicit) members = members.map((x) => (x === m ? { ...m, explicit: true } : x));
      else continue;
      changed = true;
    }
    return ok(changed ? this.bump(r, { members }) : r);
  }

  removeStream(id: string, path: string): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    const m = r.members.find((x) => x.path === path);
    if (m === undefined || !m.explicit) return ok(r);
    const members = m.glob
      ? r.members.map((x) => (x === m ? { ...m, explicit: false } : x))
      : r.members.filter((x) => x !== m);
    return ok(this.bump(r, { members }));
  }

  link(id: string, tail: SubscriptionTail): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined || r.config.pattern === null || !modelMatches(r.config.pattern, tail.path))
      return ok(false);
    const m = r.members.find((x) => x.path === tail.path);
    if (m?.glob) return ok(true);
    const members =
      m === undefined
        ? [...r.members, { path: tail.path, explicit: false, glob: true, ackedOffset: tail.offset }]
        : r.members.map((x) => (x === m ? { ...m, glob: true } : x));
    this.bump(r, { members });
    return ok(true);
  }

  unlink(id: string, path: string): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined || !r.members.some((x) => x.path === path)) return ok(false);
    this.bump(r, { members: r.members.filter((x) => x.path !== path) });
    return ok(true);
  }

  setStatus(id: string, status: 'active' | 'failed'): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    return ok(r.status === status ? r : this.bump(r, { status }));
  }

  wake(id: string, wakeId: string, tails: readonly SubscriptionTail[], now: number): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return ok({ woken: false, reason: 'gone', record: undefined });
    if (this.live(r, now)) return ok({ woken: false, reason: 'live', record: r });
    const pending = this.pending(r, tails);
    if (pending.length === 0) {
      const record = r.wake.wakeId === null ? r : this.bump(r, { wake: IDLE(r.wake.generation) });
      return ok({ woken: false, reason: 'idle', record });
    }
    const wake = {
      generation: r.wake.generation + 1,
      wakeId,
      holder: null,
      leaseExpiresAt: now + r.config.leaseTtlMs,
      tails: pending,
    };
    return ok({ woken: true, record: this.bump(r, { wake }) });
  }

  claim(
    id: string,
    worker: string,
    wakeId: string,
    tails: readonly SubscriptionTail[],
    now: number,
  ): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    if (r.config.type !== 'pull-wake') return no('INVALID_SUBSCRIPTION');
    const lease = now + r.config.leaseTtlMs;
    if (this.live(r, now)) {
      if (r.wake.holder !== null) {
        return no('ALREADY_CLAIMED', { currentHolder: r.wake.holder, generation: r.wake.generation });
      }
      return ok(this.bump(r, { wake: { ...r.wake, holder: worker, leaseExpiresAt: lease } }));
    }
    const pending = this.pending(r, tails);
    if (pending.length === 0) return no('NO_PENDING_WORK');
    const wake = {
      generation: r.wake.generation + 1,
      wakeId,
      holder: worker,
      leaseExpiresAt: lease,
      tails: pending,
    };
    return ok(this.bump(r, { wake }));
  }

  private fenced(r: SubscriptionRecord, generation: number, now: number): SubOutcome | undefined {
    return r.wake.generation === generation && this.live(r, now)
      ? undefined
      : no('FENCED', { generation: r.wake.generation });
  }

  ack(
    id: string,
    generation: number,
    acks: readonly SubscriptionTail[],
    wakeTails: boolean,
    done: boolean,
    now: number,
  ): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    const refused = this.fenced(r, generation, now);
    if (refused !== undefined) return refused;
    const best = new Map<string, string>();
    for (const a of wakeTails ? [...acks, ...r.wake.tails] : acks) {
      if ((best.get(a.path) ?? '') < a.offset) best.set(a.path, a.offset);
    }
    const members = r.members.map((m) => {
      const offset = best.get(m.path);
      return offset !== undefined && offset > m.ackedOffset ? { ...m, ackedOffset: offset } : m;
    });
    const wake = done ? IDLE(r.wake.generation) : { ...r.wake, leaseExpiresAt: now + r.config.leaseTtlMs };
    return ok(this.bump(r, { members, wake }));
  }

  release(id: string, generation: number, now: number): SubOutcome {
    const r = this.records.get(id);
    if (r === undefined) return no('SUBSCRIPTION_NOT_FOUND');
    return this.fenced(r, generation, now) ?? ok(this.bump(r, { wake: IDLE(r.wake.generation) }));
  }

  delete(id: string): SubOutcome {
    return ok(this.records.delete(id));
  }

  get(id: string): SubOutcome {
    return ok(this.records.get(id));
  }

  list(options: ListSubscriptionsOptions, now: number): SubOutcome {
    const page = [...this.records.values()]
      .filter((r) => options.after === undefined || byBytes(r.id, options.after) > 0)
      .filter((r) => !options.withPattern || r.config.pattern !== null)
      .filter((r) => !options.withExpiredLease || (r.wake.wakeId !== null && !this.live(r, now)))
      .filter((r) => options.member === undefined || r.members.some((m) => m.path === options.member))
      .sort((a, b) => byBytes(a.id, b.id));
    return ok(options.limit === undefined ? page : page.slice(0, options.limit));
  }
}
