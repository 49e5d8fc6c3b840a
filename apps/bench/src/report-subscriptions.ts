import type { BenchConfig } from './config.js';
import { cell, num, ratio, ratioText, SHORT, sum, tableHead } from './format.js';
import type { Goal } from './report.js';
import type { Figure, Results } from './results.js';
import { SUBS_GROUPS } from './subscriptions.js';
import { TARGETS, type TargetId } from './targets.js';

/** The goal: appends/s with 1,000 subscriptions at least this fraction of appends/s without. */
const GOAL_RATIO = 0.9;
/** Streamkeep / reference columns. */
const PAIRS: ReadonlyArray<readonly [TargetId, TargetId]> = [
  ['sk-memory', 'ref-memory'],
  ['sk-file-sync', 'ref-memory'],
];

/** Targets with any figure (or failure) of the scenario, in the usual order. */
function columns(r: Results): TargetId[] {
  return TARGETS.map((t) => t.id).filter(
    (id) =>
      r.subscriptions?.issues[id] !== undefined ||
      r.figures.some((f) => f.key.startsWith('subs/') && f.values[id] !== undefined),
  );
}

function subsTable(r: Results, figs: readonly Figure[], cols: readonly TargetId[], part: string): string {
  const pairs = PAIRS.filter(([a, b]) => cols.includes(a) && cols.includes(b));
  const head = [
    'figure',
    'unit',
    ...cols.map((c) => SHORT[c]),
    ...pairs.map(([a, b]) => `${SHORT[a]} / ${SHORT[b]}`),
  ];
  const lines = tableHead(head);
  for (const f of figs) {
    const counted = f.unit === 'wakes';
    const cells = cols.map((c) => {
      const issue = r.subscriptions?.issues[c]?.[part];
      if (issue && !f.values[c]) return `failed: ${issue.replaceAll('|', '/')}`;
      const s = sum(f, c);
      if (counted) return s ? `${Math.round(s.max)} (worst run)` : '—';
      return f.unit === '×'
        ? s
          ? `${ratioText(s.median)} (${ratioText(s.min)}–${ratioText(s.max)})`
          : '—'
        : cell(s);
    });
    const ratios = pairs.map(([a, b]) => (counted || f.unit === '×' ? '' : ratioText(ratio(f, a, b))));
    lines.push(`| ${[f.label, f.unit, ...cells, ...ratios].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The goal rows: appends/s with 1,000 subscriptions vs none, on each Streamkeep target measured. */
export function subscriptionGoals(r: Results, c: BenchConfig): Goal[] {
  if (!r.subscriptions) return [];
  const n = c.subscriptions.throughput.subscriptions;
  const goals: Goal[] = [];
  for (const id of ['sk-memory', 'sk-file-sync', 'sk-file-nosync'] as const) {
    const q = sum(r.get('subs/throughput/ratio'), id);
    const issue = r.subscriptions.issues[id]?.throughput;
    if (!q && !issue) continue;
    const withS = sum(r.get('subs/throughput/with/perSec'), id)?.median ?? Number.NaN;
    const none = sum(r.get('subs/throughput/none/perSec'), id)?.median ?? Number.NaN;
    const deliveries = sum(r.get('subs/throughput/deliveries'), id)?.median ?? Number.NaN;
    const cpuWith = sum(r.get('subs/throughput/with/cpu'), id)?.median ?? Number.NaN;
    const cpuNone = sum(r.get('subs/throughput/none/cpu'), id)?.median ?? Number.NaN;
    goals.push({
      goal: `Subscriptions (${SHORT[id]}): appends/s with ${n.toLocaleString('en')} webhook subscriptions vs none, ${c.subscriptions.throughput.writers} writers × ${c.subscriptions.throughput.size} B`,
      measured: q
        ? `${num(withS)} vs ${num(none)} /s; server CPU ${num(cpuWith)} vs ${num(cpuNone)} µs per append; ` +
          `${num(deliveries)} webhook deliveries/s meanwhile`
        : `failed: ${issue}`,
      ratio: q ? `${ratioText(q.median)} (runs ${ratioText(q.min)}–${ratioText(q.max)})` : '—',
      target: `≥ ${GOAL_RATIO}×`,
      met: q ? q.median >= GOAL_RATIO : undefined,
      ...(n < 1_000 ? { note: `scaled down to ${n} subscriptions in this mode` } : {}),
    });
  }
  return goals;
}

/** The report's "Subscriptions" section: its goals, the wake-latency and throughput tables, and how they were taken. */
export function subscriptionSection(r: Results, c: BenchConfig, goals: readonly Goal[]): string[] {
  if (!r.subscriptions) return [];
  const s = c.subscriptions;
  const cols = columns(r);
  const md: string[] = ['## Subscriptions', ''];
  if (goals.length) {
    md.push('| goal | measured | ratio | target | status |', '|---|---|---|---|---|');
    for (const g of goals) {
      const status = g.met === undefined ? 'not measured' : g.met ? '**met**' : '**gap**';
      md.push(
        `| ${g.goal} | ${g.measured} | ${g.ratio} | ${g.target} | ${status}${g.note ? ` (${g.note})` : ''} |`,
      );
    }
    md.push('');
  }
  const parts: ReadonlyArray<readonly [string, string]> = [
    [SUBS_GROUPS.own, 'wake'],
    [SUBS_GROUPS.shared, 'wake'],
    [SUBS_GROUPS.throughput, 'throughput'],
  ];
  for (const [group, part] of parts) {
    const figs = r.figures.filter((f) => f.group === group);
    const failed = cols.some((id) => r.subscriptions?.issues[id]?.[part]);
    if (figs.length === 0 && !failed) continue;
    const title = group.replace(/^Subscriptions: /, '');
    md.push(`### ${title.charAt(0).toUpperCase()}${title.slice(1)}`, '');
    if (figs.length) md.push(subsTable(r, figs, cols, part), '');
    else {
      for (const id of cols) {
        const issue = r.subscriptions?.issues[id]?.[part];
        if (issue) md.push(`- ${SHORT[id]}: failed: ${issue}`);
      }
      md.push('');
    }
  }
  const malformed = Object.entries(r.subscriptions.malformed ?? {}).filter(([, v]) => (v ?? 0) > 0);
  if (malformed.length) {
    md.push(
      `Deliveries whose body was not a readable wake: ${malformed.map(([k, v]) => `${SHORT[k as TargetId] ?? k} ${v}`).join(', ')}.`,
      '',
    );
  }
  const counts = s.counts.map((n) => n.toLocaleString('en')).join(', ');
  const tp = s.throughput;
  md.push(
    '**How these were measured.** Each target runs alone, on fresh servers, one after the other; the webhook receiver is ' +
      'an HTTP server on 127.0.0.1 in the harness process that answers every delivery at once with `200 {"done": true}`, ' +
      'so the server acks the wake synchronously and the next append to a stream wakes its subscription again (nothing calls ' +
      'back). Subscriptions are `webhook` subscriptions on explicit streams.',
    '',
    `- **Wake latency**: from the start of the append's POST to the arrival (whole body read) of the webhook delivery to ` +
      "that subscription carrying the stream's new tail. Subscriptions are added stage by stage " +
      `(${counts}), each on its own stream; at each stage ${s.samples.toLocaleString('en')} wakes per run (${s.reps} runs), ` +
      `one append at a time, each waiting for its webhook, ${s.intervalMs} ms apart, cycling through the stage's ` +
      'streams (so with 1 subscription every append wakes the same one). Five unmeasured wakes open each stage. p50 and ' +
      "p99 are nearest-rank percentiles of one run's wakes, max its slowest; a wake not received within " +
      `${s.wakeTimeoutMs / 1000} s counts as missed. The shared variant then subscribes N more subscriptions to one more ` +
      `stream on the same server (the own-stream subscriptions stay): each of ${s.sharedRounds} appends per run wakes all ` +
      'N, and every delivery is a sample (its max is the last subscription delivered).',
    `- **Append throughput**: two fresh servers of the target with the same flags, each holding ` +
      `${tp.subscriptions.toLocaleString('en')} streams; on one, each stream is the member of its own webhook ` +
      `subscription. ${tp.writers} closed-loop writers append ${tp.size} B to streams picked at random, ` +
      `${tp.durationMs} ms measured after ${tp.warmupMs} ms of warm-up; the two servers alternate cell by cell ` +
      `(${tp.reps} runs each, the order flipped every run, after one unmeasured cell on each). The ratio is taken per pair of adjacent cells; its median ` +
      'and range are shown. Webhook deliveries are those the receiver got while the subscribed server was measured; ' +
      'the receiver shares the harness process (and its CPU) with the writers, as any receiver on the same machine would.',
    '- The reference server (`@durable-streams/server` 0.3.7) keeps subscriptions in memory and delivers webhooks with ' +
      '`fetch`; Streamkeep delivers through its scheduler (at most 16 in flight by default, wakes coalesced).',
    '',
  );
  return md;
}
