import type { Figure } from './results.js';
import { summarise } from './stats.js';
import { TARGETS, type TargetId } from './targets.js';

const COLORS: Record<TargetId, string> = {
  'sk-memory': '#1f77b4',
  'sk-file-sync': '#2ca02c',
  'sk-file-nosync': '#17becf',
  'ref-memory': '#d62728',
  'ref-file': '#ff7f0e',
};
const DASH: Record<TargetId, string> = {
  'sk-memory': '',
  'sk-file-sync': '',
  'sk-file-nosync': '',
  'ref-memory': '6 4',
  'ref-file': '6 4',
};

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function fmtTick(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/**
 * Line chart of one metric against a categorical x axis (e.g. writer count), one line per target, on a log y axis;
 * each point is the median, with a bar from the smallest to the largest run.
 */
export function lineChart(
  title: string,
  yLabel: string,
  xLabels: readonly string[],
  series: readonly Figure[],
): string {
  const W = 760;
  const H = 380;
  const m = { l: 70, r: 260, t: 40, b: 50 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all: number[] = [];
  for (const f of series)
    for (const v of Object.values(f.values)) for (const x of v ?? []) if (x > 0) all.push(x);
  const lo = all.length ? 10 ** Math.floor(Math.log10(Math.min(...all))) : 1;
  const hi = all.length ? 10 ** Math.ceil(Math.log10(Math.max(...all))) : 10;
  const y = (v: number): number =>
    m.t + ph - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph;
  const x = (i: number): number => m.l + (xLabels.length === 1 ? pw / 2 : (i / (xLabels.length - 1)) * pw);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`,
  ];
  for (let e = Math.log10(lo); e <= Math.log10(hi) + 1e-9; e++) {
    const v = 10 ** e;
    out.push(
      `<line x1="${m.l}" x2="${m.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`,
      `<text x="${m.l - 6}" y="${y(v) + 4}" text-anchor="end">${fmtTick(v)}</text>`,
    );
  }
  xLabels.forEach((label, i) => {
    out.push(`<text x="${x(i)}" y="${m.t + ph + 18}" text-anchor="middle">${esc(label)}</text>`);
  });
  out.push(
    `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`,
    `<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`,
    `<text transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`,
  );
  let legendY = m.t + 10;
  for (const t of TARGETS) {
    const pts: Array<[number, number, number, number]> = [];
    series.forEach((f, i) => {
      const v = f.values[t.id];
      if (!v || v.length === 0) return;
      const s = summarise(v);
      if (s.median > 0) pts.push([x(i), y(s.median), y(Math.max(s.min, lo)), y(s.max)]);
    });
    if (pts.length === 0) continue;
    const c = COLORS[t.id];
    out.push(
      `<polyline fill="none" stroke="${c}" stroke-width="2" stroke-dasharray="${DASH[t.id]}" points="${pts.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>`,
    );
    for (const [px, py, pmin, pmax] of pts) {
      out.push(
        `<line x1="${px}" x2="${px}" y1="${pmin.toFixed(1)}" y2="${pmax.toFixed(1)}" stroke="${c}"/>`,
        `<circle cx="${px}" cy="${py.toFixed(1)}" r="3.5" fill="${c}"/>`,
      );
    }
    out.push(
      `<line x1="${m.l + pw + 16}" x2="${m.l + pw + 40}" y1="${legendY}" y2="${legendY}" stroke="${c}" stroke-width="2" stroke-dasharray="${DASH[t.id]}"/>`,
      `<text x="${m.l + pw + 46}" y="${legendY + 4}">${esc(t.label)}</text>`,
    );
    legendY += 20;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Horizontal bars of one or more figures (median, with min–max whiskers), grouped by figure, one bar per target. */
export function barChart(title: string, unit: string, figures: readonly Figure[]): string {
  const rows: Array<{ group: string; id: TargetId; label: string; med: number; min: number; max: number }> =
    [];
  for (const f of figures) {
    for (const t of TARGETS) {
      const v = f.values[t.id];
      if (!v || v.length === 0) continue;
      const s = summarise(v);
      if (Number.isFinite(s.median))
        rows.push({ group: f.label, id: t.id, label: t.label, med: s.median, min: s.min, max: s.max });
    }
  }
  const barH = 16;
  const gap = 4;
  const groupGap = 22;
  const m = { l: 220, r: 90, t: 40, b: 20 };
  const W = 720;
  const groups = [...new Set(rows.map((r) => r.group))];
  const H = m.t + m.b + rows.length * (barH + gap) + groups.length * groupGap;
  const maxV = Math.max(1e-9, ...rows.map((r) => r.max));
  const pw = W - m.l - m.r;
  const sx = (v: number): number => (v / maxV) * pw;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${esc(title)} (${esc(unit)})</text>`,
  ];
  let yy = m.t;
  for (const g of groups) {
    out.push(`<text x="10" y="${yy + 12}" font-weight="bold">${esc(g)}</text>`);
    yy += groupGap;
    for (const r of rows.filter((x) => x.group === g)) {
      out.push(
        `<text x="${m.l - 6}" y="${yy + 12}" text-anchor="end">${esc(r.label)}</text>`,
        `<rect x="${m.l}" y="${yy}" width="${Math.max(1, sx(r.med)).toFixed(1)}" height="${barH}" fill="${COLORS[r.id]}"/>`,
        `<line x1="${(m.l + sx(r.min)).toFixed(1)}" x2="${(m.l + sx(r.max)).toFixed(1)}" y1="${yy + barH / 2}" y2="${yy + barH / 2}" stroke="#000"/>`,
        `<text x="${(m.l + sx(Math.max(r.med, r.max)) + 6).toFixed(1)}" y="${yy + 12}">${fmtTick(r.med)}</text>`,
      );
      yy += barH + gap;
    }
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
