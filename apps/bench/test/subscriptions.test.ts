import { describe, expect, it } from 'vitest';
import { configFor } from '../src/config.js';
import { buildReport } from '../src/report.js';
import { subscriptionGoals, subscriptionSection } from '../src/report-subscriptions.js';
import { Results } from '../src/results.js';
import { runBench } from '../src/run.js';
import type { TargetId } from '../src/targets.js';
import { WebhookReceiver } from '../src/webhook-receiver.js';

const meta = (key: string, unit = 'u') => ({ key, group: 'g', label: key, unit, better: 'higher' as const });

describe('webhook receiver', () => {
  it('matches a delivery to the waiter whose stream reached the offset, and times out otherwise', async () => {
    const receiver = new WebhookReceiver();
    await receiver.start();
    try {
      const box = receiver.inbox('srv');
      const post = async (sub: string, tail: string) => {
        const res = await fetch(receiver.url('srv', sub), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ subscription_id: sub, streams: [{ path: 'a', tail_offset: tail }] }),
        });
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ done: true });
      };
      const early = box.wait('s1', 'a', () => '0002', 30_000);
      const never = box.wait('s2', 'a', () => '0001', 200);
      await post('s1', '0001'); // behind the offset: not this wake
      await post('s1', '0002');
      expect((await early)?.tails.get('a')).toBe('0002');
      expect(await never).toBeUndefined();
      expect(box.count).toBe(2);
    } finally {
      await receiver.close();
    }
  });
});

describe('subscriptions scenario', () => {
  it('measures wake latency and appends with and without subscriptions on each target, and renders its section', async () => {
    const base = configFor('smoke');
    const targets: TargetId[] = ['sk-memory', 'ref-memory'];
    const config = { ...base, targets };
    const results = await runBench(config, { quiet: true, only: ['subscriptions'] });
    expect(results.subscriptions?.issues).toEqual({});
    const s = config.subscriptions;
    const keys = [
      ...s.counts.flatMap((n) => [`subs/wake/own/${n}/p50`, `subs/wake/own/${n}/p99`]),
      ...s.counts.filter((n) => n > 1).map((n) => `subs/wake/shared/${n}/max`),
      'subs/throughput/with/perSec',
      'subs/throughput/none/perSec',
      'subs/throughput/ratio',
    ];
    for (const key of keys) {
      for (const t of targets) {
        const values = results.get(key)?.values[t] ?? [];
        expect(values.length, `${key} on ${t}`).toBeGreaterThan(0);
        for (const v of values) expect(Number.isFinite(v), `${key} on ${t}: ${v}`).toBe(true);
      }
    }
    for (const t of targets) {
      for (const n of s.counts) expect(results.get(`subs/wake/own/${n}/missed`)?.values[t]).toEqual([0, 0]);
    }
    const report = buildReport(
      results,
      config,
      {
        date: '',
        mode: 'smoke',
        command: '',
        nproc: 2,
        cpu: '',
        memory: '',
        node: '',
        loadBefore: '',
        loadAfter: '',
        durationS: 0,
        note: '',
      },
      { svgDir: 'benchmarks' },
    );
    expect(report.markdown).toContain('## Subscriptions');
    expect(report.goals.some((g) => g.goal.startsWith('Subscriptions (SK mem)'))).toBe(true);
  }, 180_000);
});

describe('subscriptions report', () => {
  const config = configFor('full');

  it('evaluates the goal from the median of the paired ratios', () => {
    const r = new Results();
    r.subscriptions = { issues: {} };
    for (const v of [0.95, 0.85, 0.92]) r.record(meta('subs/throughput/ratio', '×'), 'sk-memory', v);
    for (const v of [0.8, 0.7, 0.95]) r.record(meta('subs/throughput/ratio', '×'), 'sk-file-sync', v);
    const goals = subscriptionGoals(r, config);
    expect(goals.map((g) => g.met)).toEqual([true, false]);
    expect(goals[0]?.ratio).toBe('0.920× (runs 0.850×–0.950×)');
  });

  it('shows a target that failed with its reason, and nothing for runs without the scenario', () => {
    const r = new Results();
    expect(subscriptionSection(r, config, subscriptionGoals(r, config))).toEqual([]);
    r.subscriptions = { issues: { 'ref-memory': { wake: 'PUT subscription own-0: 400', throughput: 'x' } } };
    const md = subscriptionSection(r, config, subscriptionGoals(r, config)).join('\n');
    expect(md).toContain('Ref mem: failed: PUT subscription own-0: 400');
    const back = Results.fromJSON(JSON.parse(JSON.stringify(r.toJSON())));
    expect(subscriptionSection(back, config, []).join('\n')).toBe(
      subscriptionSection(r, config, []).join('\n'),
    );
  });
});
