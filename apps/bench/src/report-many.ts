import type { BenchConfig } from './config.js';
import { cell, num, ratio, ratioText, SHORT, sum, tableHead } from './format.js';
import { MANY_GROUPS } from './many.js';
import type { Goal } from './report.js';
import type { Figure, Results } from './results.js';
import { type SeriesId, TARGETS, type TargetId } from './targets.js';

type ManyColumn = TargetId | 'sk-postgres';

const LABEL: Record<ManyColumn, string> = { ...SHORT, 'sk-postgres': 'SK postgres' };
/** Streamkeep / reference columns of the tables. */
const PAIRS: ReadonlyArray<readonly [TargetId, TargetId]> = [
  ['sk-file-sync', 'ref-file'],
  ['sk-memory', 'ref-memory'],
];
/** The goals' stream count. */
const GOAL_STREAMS = 100_000;

/** Which columns have figures of the scenario, in the usual order. */
function columns(r: Results): ManyColumn[] {
  const ids: ManyColumn[] = [...TARGETS.map((t) => t.id), 'sk-postgres'];
  const streams = r.many?.streams ?? {};
  return ids.filter((id) => streams[id] !== undefined);
}

const median = (r: Results, key: string, id: SeriesId): number =>
  sum(r.get(`many/${key}`), id)?.median ?? Number.NaN;

/** Streams created (median over the one load), or `NaN`. */
const createdOf = (r: Results, id: SeriesId): number => median(r, 'created', id);

interface Row {
  readonly label: string;
  readonly unit: string;
  readonly key?: string;
  /** A derived row: its value per column. */
  readonly derive?: (id: ManyColumn) => number;
}

function manyTable(r: Results, cols: readonly ManyColumn[], rows: readonly Row[]): string {
  const pairs = PAIRS.filter(([a, b]) => cols.includes(a) && cols.includes(b));
  const asked = r.many?.streams ?? {};
  const common = cols.map((c) => asked[c]).find((n) => n !== undefined);
  const head = [
    'figure',
    'unit',
    ...cols.map((c) =>
      asked[c] !== undefined && asked[c] !== common
        ? `${LABEL[c]} (${(asked[c] as number).toLocaleString('en')} streams)`
        : LABEL[c],
    ),
    ...pairs.map(([a, b]) => `${LABEL[a]} / ${LABEL[b]}`),
  ];
  const lines = tableHead(head);
  for (const row of rows) {
    const f: Figure | undefined = row.key ? r.get(`many/${row.key}`) : undefined;
    if (row.key && !f && !cols.some((c) => r.many?.issues[c]?.[`many/${row.key}`])) continue;
    const cells = cols.map((c) => {
      const issue = row.key ? r.many?.issues[c]?.[`many/${row.key}`] : undefined;
      const text = row.derive
        ? ratioOrDash(row.derive(c), row.unit)
        : COUNTS.includes(row.unit)
          ? countCell(f, c)
          : cell(sum(f, c));
      if (!issue) return text;
      return text === '—' ? issue : `${text} (${issue})`;
    });
    const ratios = pairs.map(([a, b]) =>
      row.derive || COUNTS.includes(row.unit) ? '' : ratioText(f ? ratio(f, a, b) : Number.NaN),
    );
    lines.push(`| ${[row.label, row.unit, ...cells, ...ratios].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Units of counts, shown as whole numbers (the range when the runs differ). */
const COUNTS = ['streams', 'readers'];

function countCell(f: Figure | undefined, id: ManyColumn): string {
  const s = sum(f, id);
  if (!s) return '—';
  const n = (v: number): string => Math.round(v).toLocaleString('en');
  return s.min === s.max ? n(s.median) : `${n(s.median)} (${n(s.min)}–${n(s.max)})`;
}

function ratioOrDash(v: number, unit: string): string {
  if (!Number.isFinite(v)) return '—';
  return unit === '×' ? ratioText(v) : num(v);
}

/** Which Streamkeep file target the goals are evaluated on: file + sync when it ran, else file without sync. */
function goalTarget(r: Results): TargetId | undefined {
  const streams = r.many?.streams ?? {};
  return (['sk-file-sync', 'sk-file-nosync'] as const).find((t) => streams[t] !== undefined);
}

/** The many-streams goals, evaluated from the figures; `met` is `undefined` when not measured. */
export function manyGoals(r: Results, c: BenchConfig): Goal[] {
  if (!r.many) return [];
  const id = goalTarget(r);
  const m = c.many;
  const asked = id ? (r.many.streams[id] ?? m.streams) : m.streams;
  const created = id ? createdOf(r, id) : Number.NaN;
  const at = `${asked.toLocaleString('en')} streams`;
  const who = id ? LABEL[id] : 'SK file';
  const scaled =
    asked < GOAL_STREAMS
      ? `scaled down to ${at} in this mode; the goal is stated for ${GOAL_STREAMS.toLocaleString('en')}`
      : undefined;
  const short =
    Number.isFinite(created) && created < asked
      ? `only ${created.toLocaleString('en')} of ${at} were created in the time allowed`
      : undefined;
  const v = (key: string): number => (id ? median(r, key, id) : Number.NaN);
  const note = (...parts: Array<string | undefined>): { note?: string } => {
    const text = parts.filter((p) => p).join('; ');
    return text ? { note: text } : {};
  };
  const goals: Goal[] = [];
  {
    const cr = v('creates');
    const ap = v('append/own');
    const q = cr / ap;
    const ref = median(r, 'creates', 'ref-file') / median(r, 'append/own', 'ref-file');
    goals.push({
      goal: `Many streams, ${who}: creates/s of ${at} (${m.concurrency} in flight) vs appends/s of ${m.writers} writers on their own streams`,
      measured: `${num(cr)} creates/s vs ${num(ap)} appends/s${Number.isFinite(ref) ? `; reference file ${ratioText(ref)}` : ''}`,
      ratio: ratioText(q),
      target: '≥ 0.5×',
      met: Number.isFinite(q) ? q >= 0.5 : undefined,
      ...note(scaled),
    });
  }
  {
    const sp = v('append/spread');
    const own = v('append/own');
    const q = sp / own;
    goals.push({
      goal: `Many streams, ${who}: ${m.writers} writers appending ${m.size} B to random streams of the ${at} vs to their own ${m.writers} streams`,
      measured: `${num(sp)} vs ${num(own)} appends/s`,
      ratio: ratioText(q),
      target: '≥ 0.8×',
      met: Number.isFinite(q) ? q >= 0.8 : undefined,
      ...note(scaled, short),
    });
  }
  const within = (n: number, e: number): boolean => n <= 1.5 * e + 50 && n <= 1000;
  for (const [what, nKeys, eKeys] of [
    ['start → ready', ['restart/readyN'], ['restart/ready0']],
    [
      'start → first read of a random stream',
      ['restart/readyN', 'restart/readN'],
      ['restart/ready0', 'restart/read0'],
    ],
  ] as const) {
    const n = nKeys.reduce((s, k) => s + v(k), 0);
    const e = eKeys.reduce((s, k) => s + v(k), 0);
    const ok = Number.isFinite(n) && Number.isFinite(e);
    goals.push({
      goal: `Many streams, ${who}: restart (${what}) with ${at} vs an empty data directory`,
      measured: `${num(n)} ms vs ${num(e)} ms (limit ${num(Math.min(1.5 * e + 50, 1000))} ms)`,
      ratio: ok ? `${ratioText(n / e)}, ${n >= e ? '+' : '−'}${num(Math.abs(n - e))} ms` : '—',
      target: '≤ 1.5× empty + 50 ms, and ≤ 1 s',
      met: ok && !short ? within(n, e) : undefined,
      ...note(scaled, short),
    });
  }
  for (const [key, what] of [
    ['rss/livePerStream', 'after creating them (live server)'],
    ['rss/restartPerStream', 'after a restart (the directory just opened, one read)'],
  ] as const) {
    const b = v(key);
    goals.push({
      goal: `Many streams, ${who}: RSS per idle stream ${what}, ${at}`,
      measured: Number.isFinite(b) ? `${num(b)} B per stream` : '—',
      ratio: Number.isFinite(b) ? `${ratioText(b / 1024)} of 1 KiB` : '—',
      target: '≤ 1 KiB',
      met: Number.isFinite(b) && !short ? b <= 1024 : undefined,
      ...note(scaled, short),
    });
  }
  return goals;
}

/** The "Many streams" section of the report: goals, tables, what cut figures short, and the method. */
export function manySection(r: Results, c: BenchConfig, goals: readonly Goal[]): string[] {
  const info = r.many;
  if (!info) return [];
  const cols = columns(r);
  const m = c.many;
  const md = ['## Many streams', ''];
  const asked = cols.map((id) => `${LABEL[id]} ${(info.streams[id] as number).toLocaleString('en')}`);
  md.push(
    `Streams per server: ${asked.join(', ')}. Each server runs alone, started fresh; file targets keep their data in ` +
      'the OS temporary directory (a real disk), so the creates of the sync targets are durable. The method is at the ' +
      'end of this section.',
    '',
  );
  if (goals.length) {
    md.push('### Goals', '', '| goal | measured | ratio | target | status |', '|---|---|---|---|---|');
    for (const g of goals) {
      const status = g.met === undefined ? 'not measured' : g.met ? '**met**' : '**gap**';
      md.push(
        `| ${g.goal} | ${g.measured} | ${g.ratio} | ${g.target} | ${status}${g.note ? ` (${g.note})` : ''} |`,
      );
    }
    md.push('');
  }
  const div = (a: string, b: string) => (id: ManyColumn) => median(r, a, id) / median(r, b, id);
  const plus = (a: string, b: string) => (id: ManyColumn) => median(r, a, id) + median(r, b, id);
  const group = (g: string, key: string): boolean =>
    r.figures.some((f) => f.group === g && f.key === `many/${key}`);
  const labelOf = (key: string, fallback: string): string => r.get(`many/${key}`)?.label ?? fallback;
  const tables: Array<[string, Row[]]> = [
    [
      MANY_GROUPS.writes,
      [
        { label: labelOf('created', 'streams created'), unit: 'streams', key: 'created' },
        { label: labelOf('creates', 'creates/s'), unit: 'per s', key: 'creates' },
        { label: labelOf('append/own', 'appends/s, own streams'), unit: 'per s', key: 'append/own' },
        { label: labelOf('append/spread', 'appends/s, spread'), unit: 'per s', key: 'append/spread' },
        { label: 'creates/s ÷ appends/s on own streams', unit: '×', derive: div('creates', 'append/own') },
        { label: 'spread ÷ own streams', unit: '×', derive: div('append/spread', 'append/own') },
      ],
    ],
    [
      MANY_GROUPS.memory,
      [
        ...[
          'rss/live0',
          'rss/liveN',
          'rss/livePerStream',
          'rss/restart0',
          'rss/restartN',
          'rss/restartPerStream',
        ].map((key) => ({ label: labelOf(key, key), unit: r.get(`many/${key}`)?.unit ?? '', key })),
      ],
    ],
    [
      MANY_GROUPS.restart,
      [
        { label: labelOf('stop', 'graceful stop'), unit: 'ms', key: 'stop' },
        { label: labelOf('restart/ready0', 'start → ready, empty'), unit: 'ms', key: 'restart/ready0' },
        { label: labelOf('restart/readyN', 'start → ready'), unit: 'ms', key: 'restart/readyN' },
        {
          label: 'start → ready: streams ÷ empty',
          unit: '×',
          derive: div('restart/readyN', 'restart/ready0'),
        },
        { label: labelOf('restart/read0', 'first read, empty'), unit: 'ms', key: 'restart/read0' },
        { label: labelOf('restart/readN', 'first read'), unit: 'ms', key: 'restart/readN' },
        {
          label: 'start → first read, with the streams',
          unit: 'ms',
          derive: plus('restart/readyN', 'restart/readN'),
        },
        { label: 'start → first read, empty', unit: 'ms', derive: plus('restart/ready0', 'restart/read0') },
      ],
    ],
    [
      MANY_GROUPS.readers,
      [
        'burst/served',
        'burst/refused',
        'burst/other',
        'burst/connect',
        'burst/ack',
        'burst/p50',
        'burst/last',
        'readers/served',
        'readers/refused',
        'readers/other',
        'readers/connect',
        'readers/p50',
        'readers/p99',
        'readers/last',
      ].map((key) => ({ label: labelOf(key, key), unit: r.get(`many/${key}`)?.unit ?? '', key })),
    ],
  ];
  for (const [title, rows] of tables) {
    const keyed = rows.filter((x) => x.key);
    if (!keyed.some((x) => group(title, x.key as string))) continue;
    const name = title.replace('Many streams: ', '');
    md.push(`### ${name[0]?.toUpperCase()}${name.slice(1)}`, '', manyTable(r, cols, rows), '');
  }
  const issues: string[] = [];
  for (const id of cols) {
    for (const [key, text] of Object.entries(info.issues[id] ?? {})) {
      issues.push(`- ${LABEL[id]}, ${key.replace(/^many\//, '')}: ${text}`);
    }
  }
  if (info.postgres?.skipped) issues.push(`- PostgreSQL part not run: ${info.postgres.skipped}.`);
  if (issues.length) md.push('### What cut figures short', '', ...issues, '');
  const pg = info.postgres && !info.postgres.skipped ? info.postgres : undefined;
  md.push(
    '### Method',
    '',
    `- One server at a time, started fresh, warmed up (${c.serverWarmupMs} ms of mixed load), then: **creates** of N ` +
      `streams (PUT, ${m.concurrency} in flight), stopped after ${Math.round(m.createTimeoutMs / 1000)} s (the rest then runs on the ` +
      `streams created by then, and the table says so); **appends**: ${m.writers} closed-loop writers of ${m.size} B ` +
      `each on its own new stream, and the same writers each appending to a stream picked at random among the N for every append, ` +
      `${m.durationMs} ms after ${m.warmupMs} ms of warm-up, ${m.reps} runs of each, alternating.`,
    `- **RSS** (\`VmRSS\` of the server process) after a ${m.settleMs} ms pause with no load (a chance for the collector): ` +
      'before the creates and after them; per idle stream = the difference ÷ streams created. After a restart: the ' +
      'RSS of the server just restarted on the N streams and read once, minus that of the same server restarted on an ' +
      'empty data directory and read once, ÷ N.',
    `- **Restart** (servers that persist): a graceful stop (SIGTERM), then, ${m.restarts === 1 ? 'once' : `${m.restarts} times`}, the server started on an ` +
      'empty data directory (one stream of one message, so there is something to read) and on the directory of the N ' +
      'streams, alternating. "Start → ready" runs from spawning the process until Streamkeep\'s `/readyz` answers 200 ' +
      '(polled every 5 ms) or, for the reference, which has no readiness endpoint, until its first answer to any ' +
      'request; "ready → first read" is a read from the start of a random stream given one message before the stop.',
    `- **Live readers**: up to ${m.burstReaders.toLocaleString('en')} long-poll readers at the tail of one stream, each on ` +
      `its own connection, then one append; and ${m.streamReaders.toLocaleString('en')} readers at the tails of ` +
      `${m.streamReaders.toLocaleString('en')} of the N streams, then one append to each (${m.writers} in flight). ` +
      'Readers connect in waves of 1,000 (all at once, 10,000 connections overflow the accept queue and measure a ' +
      'connection storm instead): once a wave is on the wire, a HEAD on a new connection, queued behind it; after the ' +
      'last wave, a pause (half the settle time plus 0.1 ms per reader) and a HEAD round trip, then the append(s). ' +
      '"Served" = got the appended message; "refused" = answered 503; "other" = any other answer (204: the long-poll ' +
      `timed out), a connection error, or nothing within ${Math.round(m.readerTimeoutMs / 1000)} s. Times run from the start ` +
      'of the append (the first append, for the readers on their own streams). The load generator may open ' +
      '`ulimit -n` files; the burst is capped below that, and the report says so when it was.',
    m.serverLimits
      ? '- Streamkeep runs with **its own admission limits** here (`--many-server-limits`: sized by memory and ' +
          '`ulimit -n`; no `STREAMKEEP_MAX_*` overrides), so the refusals are its admission control at work.'
      : '- Streamkeep runs with the admission limits raised, as in every other scenario (see the method below), so a ' +
          '503 here comes from elsewhere (`--many-server-limits` runs it with its own limits).',
    ...(pg
      ? [
          `- **PostgreSQL**: Streamkeep \`--storage postgres\` on a throwaway ${pg.version ?? ''} cluster ` +
            `(${pg.durable ? '`fsync` and `synchronous_commit` on' : '`fsync` off'}), each server on a fresh schema; ` +
            'its RSS is the Streamkeep process only (PostgreSQL runs in its own processes). Reported, not a goal.',
        ]
      : []),
    '',
  );
  return md;
}
