import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BASE_PATH, Client, runBounded } from './client.js';
import type { BenchConfig } from './config.js';
import { createStreams, OCTET, Tally } from './many-load.js';
import type { Progress } from './progress.js';
import type { Results, SubscriptionsInfo } from './results.js';
import { streamName, warmUp } from './scenarios.js';
import { percentile } from './stats.js';
import { type RunningTarget, startTarget, type TargetId, targetById } from './targets.js';
import { type Inbox, WebhookReceiver } from './webhook-receiver.js';

type Base = { longPollTimeoutMs: number; cpuProfDir?: string };

/** Tables of the scenario's figures: the report renders them by these names. */
export const SUBS_GROUPS = {
  own: 'Subscriptions: wake latency, each subscription on its own stream',
  shared: 'Subscriptions: wake latency, every subscription on one shared stream',
  throughput: 'Subscriptions: append throughput',
} as const;

/** The configured targets the scenario runs on. */
export function subscriptionTargets(c: BenchConfig): TargetId[] {
  return c.subscriptions.targets.filter((t) => c.targets.includes(t));
}

/** Shared-stream stages: one per subscription count above 1 (with one subscription it is the own-stream case). */
const sharedCounts = (c: BenchConfig): number[] => c.subscriptions.counts.filter((n) => n > 1);

export function countSubscriptionSteps(c: BenchConfig): number {
  const s = c.subscriptions;
  const perTarget = (s.counts.length + sharedCounts(c).length) * s.reps + 2 * s.throughput.reps;
  return perTarget * subscriptionTargets(c).length;
}

/**
 * The subscriptions scenario (issue #13) against each configured target in turn, each on fresh servers: wake latency
 * (append → webhook received) with 1, 100 and 1,000 webhook subscriptions, and append throughput with 1,000
 * subscriptions vs none. The webhook receiver runs in this process on 127.0.0.1 and acks every wake synchronously
 * (`{"done": true}`). A target that fails gets the reason in the report instead of its figures; the run goes on.
 */
export async function subscriptionScenarios(
  c: BenchConfig,
  results: Results,
  progress: Progress,
  base: Base,
  onPartial?: (results: Results) => Promise<void>,
): Promise<void> {
  const info: SubscriptionsInfo = results.subscriptions ?? { issues: {} };
  results.subscriptions = info;
  const receiver = new WebhookReceiver();
  await receiver.start();
  try {
    for (const id of subscriptionTargets(c)) {
      const fail = (what: string, err: unknown, steps: number): void => {
        const why = (err as Error)?.message?.split('\n')[0] ?? String(err);
        const issues = info.issues[id] ?? {};
        issues[what] = why;
        info.issues[id] = issues;
        progress.info(`${id} subscriptions ${what} failed: ${why}`);
        for (let i = 0; i < steps; i++) progress.step(`${id} subscriptions ${what}: skipped`);
      };
      let done = 0;
      const step = (msg: string): void => {
        done++;
        progress.step(msg);
      };
      const wakeSteps = (c.subscriptions.counts.length + sharedCounts(c).length) * c.subscriptions.reps;
      try {
        await wakeLatency(c, id, receiver, results, info, step, base);
      } catch (err) {
        fail('wake', err, wakeSteps - done);
      }
      done = 0;
      try {
        await throughput(c, id, receiver, results, step, base);
      } catch (err) {
        fail('throughput', err, 2 * c.subscriptions.throughput.reps - done);
      }
      await onPartial?.(results);
    }
  } finally {
    await receiver.close();
  }
}

/** `PUT {base}/__ds/subscriptions/:id`: a webhook subscription on explicit `streams`. */
async function subscribe(client: Client, id: string, streams: readonly string[], url: string): Promise<void> {
  const res = await client.pool.request({
    method: 'PUT',
    path: `${BASE_PATH}/__ds/subscriptions/${encodeURIComponent(id)}`,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'webhook', streams, webhook: { url } }),
  });
  const text = await res.body.text();
  if (res.statusCode !== 201 && res.statusCode !== 200) {
    throw new Error(`PUT subscription ${id}: ${res.statusCode} ${text.slice(0, 200)}`);
  }
}

/** Creates the subscriptions `from`…`to - 1` of a stage (`stream(i)` is the member of subscription i). */
async function subscribeRange(
  client: Client,
  receiver: WebhookReceiver,
  box: Inbox,
  prefix: string,
  from: number,
  to: number,
  stream: (i: number) => string,
): Promise<void> {
  await runBounded(to - from, 16, async (k) => {
    const sub = `${prefix}-${from + k}`;
    await subscribe(client, sub, [stream(from + k)], receiver.url(box.key, sub));
  });
}

async function startWithStreams(
  c: BenchConfig,
  id: TargetId,
  base: Base,
  names: readonly string[],
): Promise<{ target: RunningTarget; client: Client }> {
  const target = await startTarget(targetById(id), base);
  const client = new Client(target.url, 64);
  try {
    const made = await createStreams(client, names, 32, 120_000);
    if (made.created.length !== names.length) {
      throw new Error(`created ${made.created.length} of ${names.length} streams (${made.failures})`);
    }
    await warmUp(client, c.serverWarmupMs);
    return { target, client };
  } catch (err) {
    await client.close().catch(() => {});
    await target.dispose().catch(() => {});
    throw err;
  }
}

const BODY = Buffer.alloc(100, 0x73);

/**
 * Appends one message to `stream` and waits for the webhook to `sub` that carries the stream's new tail; resolves to
 * the milliseconds from the start of the POST to the arrival of the delivery, or `undefined` when none came in time.
 */
async function oneWake(client: Client, box: Inbox, sub: string, stream: string, timeoutMs: number) {
  let offset = '';
  const delivered = box.wait(sub, stream, () => offset, timeoutMs);
  const t0 = performance.now();
  offset = await client.append(stream, BODY, OCTET);
  const d = await delivered;
  return d ? d.at - t0 : undefined;
}

interface WakeStats {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly missed: number;
  readonly samples: number;
}

function wakeStats(latencies: number[], missed: number): WakeStats {
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? (latencies[latencies.length - 1] as number) : Number.NaN,
    missed,
    samples: latencies.length,
  };
}

function recordWake(results: Results, id: TargetId, layout: 'own' | 'shared', n: number, s: WakeStats): void {
  const subs = `${n.toLocaleString('en')} subscription${n > 1 ? 's' : ''}`;
  for (const [q, v] of [
    ['p50', s.p50],
    ['p99', s.p99],
    ['max', s.max],
  ] as const) {
    results.record(
      {
        key: `subs/wake/${layout}/${n}/${q}`,
        group: SUBS_GROUPS[layout],
        label: `${subs}: ${q}`,
        unit: 'ms',
        better: 'lower',
      },
      id,
      v,
    );
  }
  results.record(
    {
      key: `subs/wake/${layout}/${n}/missed`,
      group: SUBS_GROUPS[layout],
      label: `${subs}: wakes not received within the timeout`,
      unit: 'wakes',
      better: 'lower',
    },
    id,
    s.missed,
  );
}

/**
 * Wake latency on one fresh server: subscriptions are added stage by stage (1, then up to 100, then up to 1,000), each
 * on its own stream; at each stage the sampler appends to the stages' streams in turn (one append at a time, waiting
 * for its webhook, `intervalMs` apart). Then the shared variant: N subscriptions on one more stream, each append
 * waking all N (every delivery is a sample).
 */
async function wakeLatency(
  c: BenchConfig,
  id: TargetId,
  receiver: WebhookReceiver,
  results: Results,
  info: SubscriptionsInfo,
  step: (msg: string) => void,
  base: Base,
): Promise<void> {
  const s = c.subscriptions;
  const maxN = Math.max(...s.counts);
  const names = Array.from({ length: maxN }, () => streamName('sub'));
  const shared = streamName('sub-shared');
  const { target, client } = await startWithStreams(c, id, base, [...names, shared]);
  const box = receiver.inbox(`${id}-wake-${randomBytes(3).toString('hex')}`);
  try {
    let have = 0;
    let cursor = 0;
    for (const n of [...s.counts].sort((a, b) => a - b)) {
      await subscribeRange(client, receiver, box, 'own', have, n, (i) => names[i] as string);
      have = n;
      // Unmeasured wakes: the first deliveries to a new subscriber open connections and compile the delivery path.
      for (let k = 0; k < Math.min(n, 5); k++) {
        await oneWake(client, box, `own-${k}`, names[k] as string, s.wakeTimeoutMs);
      }
      for (let rep = 0; rep < s.reps; rep++) {
        const latencies: number[] = [];
        let missed = 0;
        for (let k = 0; k < s.samples; k++) {
          const i = cursor++ % n;
          const ms = await oneWake(client, box, `own-${i}`, names[i] as string, s.wakeTimeoutMs);
          if (ms === undefined) missed++;
          else latencies.push(ms);
          await sleep(s.intervalMs);
        }
        const st = wakeStats(latencies, missed);
        recordWake(results, id, 'own', n, st);
        step(
          `${id} wake, ${n} subscription(s) on own streams, rep ${rep + 1}: p50 ${st.p50.toFixed(2)} ms, ` +
            `p99 ${st.p99.toFixed(2)} ms, max ${st.max.toFixed(1)} ms (${st.samples} wakes${missed ? `, ${missed} missed` : ''})`,
        );
      }
    }
    have = 0;
    for (const n of sharedCounts(c).sort((a, b) => a - b)) {
      await subscribeRange(client, receiver, box, 'shared', have, n, () => shared);
      have = n;
      await sharedRound(client, box, shared, n, s.wakeTimeoutMs * 4); // unmeasured
      for (let rep = 0; rep < s.reps; rep++) {
        const latencies: number[] = [];
        let missed = 0;
        for (let k = 0; k < s.sharedRounds; k++) {
          const r = await sharedRound(client, box, shared, n, s.wakeTimeoutMs * 4);
          latencies.push(...r.latencies);
          missed += r.missed;
          await sleep(s.intervalMs * 10);
        }
        const st = wakeStats(latencies, missed);
        recordWake(results, id, 'shared', n, st);
        step(
          `${id} wake, ${n} subscriptions on one stream, rep ${rep + 1}: p50 ${st.p50.toFixed(1)} ms, ` +
            `p99 ${st.p99.toFixed(1)} ms, last ${st.max.toFixed(1)} ms (${st.samples} deliveries${missed ? `, ${missed} missed` : ''})`,
        );
      }
    }
    if (box.malformed > 0) {
      const m = info.malformed ?? {};
      m[id] = (m[id] ?? 0) + box.malformed;
      info.malformed = m;
    }
  } finally {
    await client.close().catch(() => {});
    await target.dispose().catch(() => {});
  }
}

/** One append to the shared stream, and the arrival of the webhook of each of its `n` subscriptions. */
async function sharedRound(client: Client, box: Inbox, stream: string, n: number, timeoutMs: number) {
  let offset = '';
  const waits = Array.from({ length: n }, (_, i) => box.wait(`shared-${i}`, stream, () => offset, timeoutMs));
  const t0 = performance.now();
  offset = await client.append(stream, BODY, OCTET);
  const got = await Promise.all(waits);
  const latencies = got.filter((d) => d !== undefined).map((d) => d.at - t0);
  return { latencies, missed: n - latencies.length };
}

/**
 * `writers` closed-loop writers append `size` bytes each to a stream picked at random among `names`, for `durationMs`
 * after `warmupMs`, and on until at least two appends per writer were counted (so a starved machine still yields a
 * rate, never a division by zero). Appends started after the warm-up are counted; the rate is over the time from the
 * end of the warm-up to the last acknowledgement.
 */
async function appendCell(
  client: Client,
  names: readonly string[],
  p: { writers: number; size: number; durationMs: number; warmupMs: number },
): Promise<{ perSec: number; counted: number; elapsedMs: number; p99Ms: number; errors: string }> {
  const body = Buffer.alloc(p.size, 0x61);
  const latencies: number[] = [];
  const errors = new Tally();
  const countFrom = performance.now() + p.warmupMs;
  const stopAt = countFrom + p.durationMs;
  const minCount = 2 * p.writers;
  const writer = async (): Promise<void> => {
    while (performance.now() < stopAt || latencies.length < minCount) {
      const t = performance.now();
      try {
        await client.append(names[Math.floor(Math.random() * names.length)] as string, body, OCTET);
        if (t >= countFrom) latencies.push(performance.now() - t);
      } catch (err) {
        errors.add(/: (\d{3})$/.exec((err as Error).message)?.[1] ?? (err as Error).message.slice(0, 60));
        if (errors.total > 100) break;
      }
    }
  };
  await Promise.all(Array.from({ length: p.writers }, writer));
  const elapsed = performance.now() - countFrom;
  latencies.sort((a, b) => a - b);
  return {
    perSec: (latencies.length / elapsed) * 1000,
    counted: latencies.length,
    elapsedMs: elapsed,
    p99Ms: percentile(latencies, 99),
    errors: errors.total ? String(errors) : '',
  };
}

/** Waits (at most 10 s) until `box` has received no delivery for 100 ms. */
async function quiet(box: Inbox): Promise<void> {
  const deadline = performance.now() + 10_000;
  let last = -1;
  while (box.count !== last && performance.now() < deadline) {
    last = box.count;
    await sleep(100);
  }
}

/**
 * Append throughput with `subscriptions` webhook subscriptions vs none: two fresh servers of the target, same flags,
 * each with the same number of streams; on one, every stream is the member of its own subscription. `writers`
 * closed-loop writers append `size` bytes to streams picked at random; the two servers alternate cell by cell (the
 * order flips every run). Also counts the webhook deliveries received while the subscribed server was measured.
 */
async function throughput(
  c: BenchConfig,
  id: TargetId,
  receiver: WebhookReceiver,
  results: Results,
  step: (msg: string) => void,
  base: Base,
): Promise<void> {
  const p = c.subscriptions.throughput;
  const namesOf = (): string[] => Array.from({ length: p.subscriptions }, () => streamName('subtp'));
  const plainNames = namesOf();
  const subNames = namesOf();
  const plain = await startWithStreams(c, id, base, plainNames);
  let subbed: Awaited<ReturnType<typeof startWithStreams>> | undefined;
  const box = receiver.inbox(`${id}-tp-${randomBytes(3).toString('hex')}`);
  try {
    subbed = await startWithStreams(c, id, base, subNames);
    await subscribeRange(
      subbed.client,
      receiver,
      box,
      'tp',
      0,
      p.subscriptions,
      (i) => subNames[i] as string,
    );
    const group = SUBS_GROUPS.throughput;
    const w = `${p.writers} writers × ${p.size} B`;
    const n = p.subscriptions.toLocaleString('en');
    const rec = (key: string, label: string, unit: string, better: 'higher' | 'lower', v: number): void =>
      results.record({ key: `subs/throughput/${key}`, group, label, unit, better }, id, v);
    // One unmeasured cell on each server first: the first runs of this load are slow on both (JIT of the spread
    // append path; on the subscribed one, of the delivery path and the first connections to the receiver).
    for (const server of [plain, subbed]) {
      await appendCell(server.client, server === plain ? plainNames : subNames, p);
      await quiet(box);
    }
    for (let rep = 0; rep < p.reps; rep++) {
      const cells = rep % 2 === 0 ? (['none', 'with'] as const) : (['with', 'none'] as const);
      const perSec: Record<string, number> = {};
      for (const kind of cells) {
        const server = kind === 'with' ? subbed : plain;
        const names = kind === 'with' ? subNames : plainNames;
        let cpuFrom = Number.NaN;
        let deliveredFrom = 0;
        const timer = setTimeout(() => {
          cpuFrom = server.target.cpuSeconds();
          deliveredFrom = box.count;
        }, p.warmupMs);
        const r = await appendCell(server.client, names, p);
        clearTimeout(timer);
        const cpuUs = ((server.target.cpuSeconds() - cpuFrom) * 1e6) / r.counted;
        const deliveries = box.count - deliveredFrom;
        perSec[kind] = r.perSec;
        const label = kind === 'with' ? `with ${n} subscriptions` : 'without subscriptions';
        rec(`${kind}/perSec`, `appends/s, ${w}, ${label}`, 'appends/s', 'higher', r.perSec);
        rec(`${kind}/cpu`, `server CPU per append, ${label}`, 'µs', 'lower', cpuUs);
        if (kind === 'with') {
          rec(
            'deliveries',
            `webhook deliveries received per second while appending with ${n} subscriptions`,
            'deliveries/s',
            'higher',
            (deliveries / r.elapsedMs) * 1000,
          );
        }
        step(
          `${id} append ${w} ${label}, rep ${rep + 1}: ${Math.round(r.perSec)}/s, p99 ${r.p99Ms.toFixed(2)} ms, ` +
            `server CPU ${cpuUs.toFixed(0)} µs/append` +
            (kind === 'with' ? `, ${deliveries} webhook deliveries` : '') +
            (r.errors ? `, ${r.errors}` : ''),
        );
        if (r.errors) throw new Error(`append errors: ${r.errors}`);
        // Deliveries still in flight land before the next cell, so they are not charged to the other server.
        await quiet(box);
      }
      rec(
        'ratio',
        `appends/s with ${n} subscriptions ÷ without (paired cells)`,
        '×',
        'higher',
        (perSec.with as number) / (perSec.none as number),
      );
    }
  } finally {
    for (const s of [plain, subbed]) {
      if (!s) continue;
      await s.client.close().catch(() => {});
      await s.target.dispose().catch(() => {});
    }
  }
}
