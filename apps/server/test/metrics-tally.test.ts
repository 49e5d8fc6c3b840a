import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import { describe, expect, it } from 'vitest';
import { TalliedHistogram } from '../src/metrics-tally.js';

const require = createRequire(import.meta.url);
const Registry = require('prom-client/lib/registry') as typeof PromClient.Registry;
const Histogram = require('prom-client/lib/histogram') as typeof PromClient.Histogram;

const buckets = [0.001, 0.01, 0.1, 1];
const values = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.7, 3, 1e9];

describe('TalliedHistogram', () => {
  it("scrapes as prom-client's own histogram fed the same observations, labelled or not", async () => {
    const plain = new Registry();
    const tallied = new Registry();
    const a = new Histogram({ name: 'h', help: 'x', labelNames: ['k'], buckets, registers: [plain] });
    const b = new TalliedHistogram({
      name: 'h',
      help: 'x',
      labelNames: ['k'],
      buckets,
      registers: [tallied],
    });
    const c = new Histogram({ name: 'u', help: 'y', buckets, registers: [plain] });
    const d = new TalliedHistogram({ name: 'u', help: 'y', buckets, registers: [tallied] }).tally();
    for (const [i, v] of values.entries()) {
      const k = i % 2 === 0 ? 'even' : 'odd';
      a.labels({ k }).observe(v);
      b.tally({ k }).observe(v);
      c.observe(v);
      d.observe(v);
    }
    expect(await tallied.metrics()).toBe(await plain.metrics());
    a.reset();
    b.reset();
    a.zero({ k: 'even' });
    a.zero({ k: 'odd' });
    expect(await tallied.metrics()).toContain((await plain.metrics()).split('# HELP u')[0]);
    expect(() => d.observe(Number.NaN)).toThrow(TypeError);
  });
});
