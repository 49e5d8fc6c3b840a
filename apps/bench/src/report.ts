import type { BenchConfig } from './config.js';
import { cell, num, ratio, ratioText, SHORT, sum } from './format.js';
import { manyGoals, manySection } from './report-many.js';
import { subscriptionGoals, subscriptionSection } from './report-subscriptions.js';
import type { Figure, FsyncProbe, Results } from './results.js';
import { fmtSize } from './run.js';
import { barChart, lineChart } from './svg.js';
import { type PgSeriesId, TARGETS, type TargetId } from './targets.js';

export interface RunInfo {
  readonly date: string;
  readonly mode: string;
  readonly command: string;
  readonly nproc: number;
  readonly cpu: string;
  readonly memory: string;
  readonly node: string;
  readonly loadBefore: string;
  readonly loadAfter: string;
  readonly durationS: number;
  readonly note: string;
  readonly revision?: string;
}

/** The ratios shown for every figure: Streamkeep target / reference target. */
const RATIOS: ReadonlyArray<readonly [TargetId, TargetId]> = [
  ['sk-memory', 'ref-memory'],
  ['sk-file-sync', 'ref-file'],
  ['sk-file-nosync', 'ref-file'],
  ['sk-file-nosync', 'ref-memory'],
];

function table(figs: readonly Figure[], targets: readonly TargetId[]): string {
  const ratios = RATIOS.filter(([a, b]) => targets.includes(a) && targets.includes(b));
  const unit = figs[0]?.unit ?? '';
  const better = figs[0]?.better === 'higher' ? 'higher is better' : 'lower is better';
  const head = [
    `figure (${unit}, ${better})`,
    ...targets.map((t) => SHORT[t]),
    ...ratios.map(([a, b]) => `${SHORT[a]} / ${SHORT[b]}`),
  ];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const f of figs) {
    const row = [
      f.label,
      ...targets.map((t) => cell(sum(f, t))),
      ...ratios.map(([a, b]) => ratioText(ratio(f, a, b))),
    ];
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface Goal {
  readonly goal: string;
  readonly measured: string;
  readonly ratio: string;
  readonly target: string;
  readonly met: boolean | undefined;
  readonly note?: string;
}

/** Evaluates the issue's goals from the figures; `undefined` = not measured in this run. */
export function evaluateGoals(r: Results, c: BenchConfig): Goal[] {
  const goals: Goal[] = [];
  const maxW = Math.max(...c.append.writers);
  const size = Math.min(...c.append.sizes);
  const scaleNote =
    maxW === 64 ? undefined : `measured with ${maxW} writers (this mode has no 64-writer run)`;
  for (const [layout, need, what] of [
    ['shared', 10, 'one stream'],
    ['own', 5, 'own streams'],
  ] as const) {
    const f = r.get(`append/${layout}/${size}/${maxW}/perSec`);
    const q = ratio(f, 'sk-file-sync', 'ref-file');
    goals.push({
      goal: `File + sync on append vs reference file: appends/s, ${maxW} writers on ${what} (${fmtSize(size)})`,
      measured: `${num(sum(f, 'sk-file-sync')?.median ?? Number.NaN)} vs ${num(sum(f, 'ref-file')?.median ?? Number.NaN)} /s`,
      ratio: ratioText(q),
      target: `≥ ${need}×`,
      met: Number.isFinite(q) ? q >= need : undefined,
      ...(scaleNote ? { note: scaleNote } : {}),
    });
  }
  {
    let worst = Number.POSITIVE_INFINITY;
    let worstAt = '';
    let cells = 0;
    let atLeast = 0;
    let logSum = 0;
    const cpu: number[] = [];
    for (const f of r.figures) {
      if (!f.key.startsWith('append/') || !f.key.endsWith('/perSec')) continue;
      const q = ratio(f, 'sk-file-nosync', 'ref-memory');
      if (!Number.isFinite(q)) continue;
      cells++;
      if (q >= 1) atLeast++;
      logSum += Math.log(q);
      if (q < worst) {
        worst = q;
        worstAt = `${f.label}, ${f.key.includes('/own/') ? 'own streams' : 'shared stream'}`;
      }
      const c = ratio(r.get(f.key.replace(/perSec$/, 'cpu')), 'sk-file-nosync', 'ref-memory');
      if (Number.isFinite(c)) cpu.push(c);
    }
    const ok = Number.isFinite(worst);
    cpu.sort((a, b) => a - b);
    const cpuText =
      cpu.length > 0
        ? `; server CPU per append SK/Ref median ${ratioText(cpu[Math.floor(cpu.length / 2)] as number)} ` +
          `(${ratioText(cpu[0] as number)}–${ratioText(cpu[cpu.length - 1] as number)})`
        : '';
    goals.push({
      goal: 'File without sync vs reference memory: append throughput, every size × writers × layout',
      measured: ok
        ? `lowest ratio at ${worstAt}; ≥ 1× in ${atLeast} of ${cells} cells, geometric mean ` +
          `${ratioText(Math.exp(logSum / cells))}${cpuText}`
        : '—',
      ratio: ok ? ratioText(worst) : '—',
      target: '≥ 1× everywhere',
      met: ok ? worst >= 1 : undefined,
    });
  }
  {
    const f = r.get('catchup/identity');
    const q = ratio(f, 'ref-file', 'sk-file-sync');
    goals.push({
      goal: `Catch-up read of ${c.catchup.messages.toLocaleString('en')} × ${fmtSize(c.catchup.size)} (identity), file vs reference file`,
      measured: `${num(sum(f, 'sk-file-sync')?.median ?? Number.NaN)} vs ${num(sum(f, 'ref-file')?.median ?? Number.NaN)} ms`,
      ratio: `speed-up ${ratioText(q)} (SK/Ref ${ratioText(1 / q)})`,
      target: '≥ 3× faster',
      met: Number.isFinite(q) ? q >= 3 : undefined,
      ...(c.catchup.messages === 100_000
        ? {}
        : { note: `scaled down to ${c.catchup.messages.toLocaleString('en')} messages in this mode` }),
    });
  }
  {
    const f = r.get('fanout/long-poll/all');
    const q = ratio(f, 'ref-file', 'sk-file-sync');
    const n = c.fanout.readers.toLocaleString('en');
    goals.push({
      goal: `${n}-reader long-poll fan-out, all delivered: file + sync vs reference file`,
      measured: `${num(sum(f, 'sk-file-sync')?.median ?? Number.NaN)} vs ${num(sum(f, 'ref-file')?.median ?? Number.NaN)} ms`,
      ratio: `speed-up ${ratioText(q)} (SK/Ref ${ratioText(1 / q)})`,
      target: '≥ 5× faster',
      met: Number.isFinite(q) ? q >= 5 : undefined,
      ...(c.fanout.readers === 1000 ? {} : { note: `scaled down to ${n} readers in this mode` }),
    });
    const ack = sum(r.get('fanout/long-poll/ack'), 'sk-file-sync')?.median ?? Number.NaN;
    const base = sum(r.get('fanout/long-poll/baseAck'), 'sk-file-sync')?.median ?? Number.NaN;
    const mid = sum(r.get('fanout/long-poll/p50'), 'sk-file-sync')?.median ?? Number.NaN;
    const refAck = sum(r.get('fanout/long-poll/ack'), 'ref-file')?.median ?? Number.NaN;
    const refMid = sum(r.get('fanout/long-poll/p50'), 'ref-file')?.median ?? Number.NaN;
    goals.push({
      goal: `${n}-reader long-poll fan-out: writer's acknowledgement not held back by readers (file + sync)`,
      measured:
        `ack ${num(ack)} ms (${num(base)} ms with no readers), median reader ${num(mid)} ms; ` +
        `reference file: ack ${num(refAck)} ms, median reader ${num(refMid)} ms`,
      ratio: `ack ${ratioText(ack / refAck)} of the reference's`,
      target: 'ack before the median reader is delivered',
      met: Number.isFinite(ack) && Number.isFinite(mid) ? ack < mid : undefined,
    });
  }
  {
    const f = r.get('rss/loaded');
    const skFile = (['sk-file-nosync', 'sk-file-sync'] as const).find((t) => sum(f, t));
    const v = skFile ? (sum(f, skFile)?.median ?? Number.NaN) : Number.NaN;
    const payload = (c.rss.streams * c.rss.perStream * c.rss.size) / 2 ** 20;
    const refMem = sum(f, 'ref-memory')?.median ?? Number.NaN;
    const refFile = sum(f, 'ref-file')?.median ?? Number.NaN;
    goals.push({
      goal: `RSS after loading ${payload.toFixed(1)} MiB of payload, file backend${skFile ? ` (${SHORT[skFile]})` : ''}`,
      measured: `${num(v)} MiB (reference memory ${num(refMem)}, reference file ${num(refFile)} MiB)`,
      ratio: `${ratioText(v / refMem)} of Ref mem, ${ratioText(v / refFile)} of Ref file`,
      target: '≤ 150 MiB',
      met: Number.isFinite(v) ? v <= 150 : undefined,
      ...(payload > 90 ? {} : { note: 'payload scaled down in this mode; the goal is stated for 95 MiB' }),
    });
  }
  const probe = r.fsyncProbe;
  for (const mode of ['long-poll', 'sse'] as const) {
    const f = r.get(`latency/${mode}/p99`);
    const ref = sum(f, 'ref-memory')?.median ?? Number.NaN;
    const mem = sum(f, 'sk-memory')?.median ?? Number.NaN;
    const nosync = sum(f, 'sk-file-nosync')?.median ?? Number.NaN;
    const sync = sum(f, 'sk-file-sync')?.median ?? Number.NaN;
    goals.push({
      goal: `Live delivery p99, ${mode}: Streamkeep memory and file without sync vs reference memory`,
      measured: `SK mem ${num(mem)}, SK file nosync ${num(nosync)}, Ref mem ${num(ref)} ms`,
      ratio: `${ratioText(mem / ref)} / ${ratioText(nosync / ref)}`,
      target: '≤ 1×',
      met:
        Number.isFinite(ref) && Number.isFinite(mem) && Number.isFinite(nosync)
          ? Math.max(mem, nosync) <= ref
          : undefined,
    });
    goals.push({
      goal: `Live delivery p99, ${mode}: Streamkeep file + sync vs reference memory`,
      measured: `SK file+sync ${num(sync)}, Ref mem ${num(ref)} ms`,
      ratio: ratioText(sync / ref),
      target: '≤ 1×',
      met: Number.isFinite(ref) && Number.isFinite(sync) ? sync <= ref : undefined,
      note:
        'file + sync delivers a message only after its fdatasync, which the reference memory mode never waits for' +
        (probe ? `; this disk's fdatasync: p50 ${num(probe.p50Ms)} ms, p99 ${num(probe.p99Ms)} ms` : ''),
    });
  }
  return goals;
}

export interface Report {
  readonly markdown: string;
  /** File name (relative to the SVG folder) → SVG text. */
  readonly svgs: Map<string, string>;
  readonly goals: Goal[];
}

export function buildReport(
  r: Results,
  c: BenchConfig,
  info: RunInfo,
  extra: { analysis?: string; profile?: string; svgDir: string },
): Report {
  const targets = TARGETS.map((t) => t.id).filter((t) => c.targets.includes(t));
  const svgs = new Map<string, string>();
  const goals = evaluateGoals(r, c);
  const md: string[] = [];
  md.push(
    '# Benchmarks: Streamkeep vs the Node reference server',
    '',
    `Generated by \`${info.command}\` (package \`@streamkeep/bench\`, \`apps/bench\`). Do not edit by hand: rerun the harness.`,
    '',
    '## The run these figures come from',
    '',
    `- Date: ${info.date}; mode: **${info.mode}**; wall time ${Math.round(info.durationS)} s.`,
    `- Machine: \`nproc\` = ${info.nproc} (${info.cpu}); memory (\`free -h\`): ${info.memory}; Node ${info.node}.`,
    `- Load average before / after: ${info.loadBefore} / ${info.loadAfter}.`,
    ...(info.revision ? [`- Source: commit ${info.revision} (servers built from the working tree).`] : []),
    ...(r.fsyncProbe ? [`- Disk probe: ${probeText(r.fsyncProbe)}.`] : []),
    ...r.notes.map((n) => `- ${n}`),
    ...(info.note ? [`- ${info.note}`] : []),
    '- Servers: Streamkeep (`apps/server/dist/main.js`) with `--storage memory`, `--storage file --sync-on-append` and ' +
      '`--storage file --no-sync-on-append`, all with `--log-requests false` (the reference logs no requests); the reference `@durable-streams/server` 0.3.7 (`DurableStreamTestServer`) ' +
      'in memory mode and in file mode (`dataDir`: LMDB metadata + one log per stream, fdatasync on every append). ' +
      'Each runs in its own child process on 127.0.0.1; one load generator (undici keep-alive pools) in the harness process drives them all.',
    '',
    '## Goals',
    '',
    '| goal | measured | ratio | target | status |',
    '|---|---|---|---|---|',
  );
  for (const g of goals) {
    const status = g.met === undefined ? 'not measured' : g.met ? '**met**' : '**gap**';
    md.push(
      `| ${g.goal} | ${g.measured} | ${g.ratio} | ${g.target} | ${status}${g.note ? ` (${g.note})` : ''} |`,
    );
  }
  if (r.many) md.push('', 'The goals of the many-streams scenario are in [its own section](#many-streams).');
  if (r.subscriptions) md.push('', 'The subscriptions goal is in [its own section](#subscriptions).');
  md.push(
    '',
    'Every figure below is the **median** of its runs, followed by **±spread**: half the range (max − min) of the runs as a ' +
      `percentage of the median (${c.reps} runs per figure; catch-up reads ${c.catchup.reps}, fan-out ${c.fanout.reps}; bulk loads as stated below). Ratio columns divide the Streamkeep median by the reference median ` +
      '(for appends/s higher is better; for times and memory lower is better).',
    '',
  );
  const groups: string[] = [];
  for (const f of r.figures) {
    if (!/^(pg|many|subs)\//.test(f.key) && !groups.includes(f.group)) groups.push(f.group);
  }
  for (const g of groups) {
    md.push(
      `## ${g}`,
      '',
      table(
        r.figures.filter((f) => f.group === g),
        targets,
      ),
      '',
    );
    if (g.startsWith('Appends on') && !g.includes('latency')) {
      const layout = g.includes('own') ? 'own' : 'shared';
      for (const size of c.append.sizes) {
        const series = c.append.writers
          .map((w) => r.get(`append/${layout}/${size}/${w}/perSec`))
          .filter((x): x is Figure => !!x);
        if (series.length === 0) continue;
        const file = `append-${layout}-${size}.svg`;
        svgs.set(
          file,
          lineChart(
            `${fmtSize(size)} appends, ${layout === 'own' ? 'each writer on its own stream' : 'all writers on one stream'}`,
            'appends/s (log scale)',
            c.append.writers.map((w) => `${w} writer${w > 1 ? 's' : ''}`),
            series,
          ),
        );
        md.push(`![${fmtSize(size)} appends, ${layout}](${extra.svgDir}/${file})`, '');
      }
    }
  }
  const fan = ['fanout/long-poll/all', 'fanout/sse/all', 'fanout/long-poll/ack', 'fanout/sse/ack']
    .map((k) => r.get(k))
    .filter((x): x is Figure => !!x);
  if (fan.length) {
    svgs.set(
      'fanout.svg',
      barChart(
        `Fan-out of one append to ${c.fanout.readers.toLocaleString('en')} readers`,
        'ms, lower is better',
        fan,
      ),
    );
    md.push('## Charts: fan-out, catch-up, latency', '', `![fan-out](${extra.svgDir}/fanout.svg)`, '');
  }
  const cu = ['catchup/identity', 'catchup/gzip'].map((k) => r.get(k)).filter((x): x is Figure => !!x);
  if (cu.length) {
    svgs.set('catchup.svg', barChart('Catch-up read', 'ms, lower is better', cu));
    md.push(`![catch-up](${extra.svgDir}/catchup.svg)`, '');
  }
  const lat = ['latency/long-poll/p50', 'latency/long-poll/p99', 'latency/sse/p50', 'latency/sse/p99']
    .map((k) => r.get(k))
    .filter((x): x is Figure => !!x);
  if (lat.length) {
    svgs.set('latency.svg', barChart('Live delivery latency', 'ms, lower is better', lat));
    md.push(`![latency](${extra.svgDir}/latency.svg)`, '');
  }
  md.push(...postgresSection(r, c, info.nproc));
  const many = manyGoals(r, c);
  md.push(...manySection(r, c, many));
  const subs = subscriptionGoals(r, c);
  md.push(...subscriptionSection(r, c, subs));
  md.push(
    '## Method',
    '',
    `- **Appends**: W closed-loop writers (each waits for its acknowledgement before the next POST), ${c.append.durationMs} ms measured after ${c.append.warmupMs} ms of warm-up, ${c.reps} runs; ` +
      'every run visits each cell (size × writers × layout) on every target in turn before the next run starts, so slow drifts in machine load hit all targets alike; ' +
      '"own" = one stream per writer, "shared" = all writers on one stream; `application/octet-stream` bodies of the given size. Streams are deleted after each run, ' +
      'then the harness runs `sync` so that the file systems have committed what the run left behind before the next target is measured. ' +
      'The acknowledgement-latency tables give the p99 of every append in the run. "Server CPU per append" is the user + system CPU time of the server process ' +
      '(all its threads, from `/proc/<pid>/stat`) between the end of the warm-up and the last acknowledgement, divided by the appends counted: unlike appends/s, ' +
      'it does not depend on how much of the 2 cores the load generator or the kernel took meanwhile (kernel write-back threads are not charged to the server).',
    `- **Catch-up**: one stream loaded with ${c.catchup.messages.toLocaleString('en')} × ${fmtSize(c.catchup.size)} messages (${c.catchup.loadConcurrency} concurrent writers), then read from offset -1 ` +
      'following `Stream-Next-Offset` until `Stream-Up-To-Date`, with `Accept-Encoding: identity` and `gzip` (the gzip time includes decompression in the client). ' +
      'Streamkeep answers in chunks of at most 1 MiB (its default `--max-read-bytes`); the reference answers everything in one response.',
    `- **Live latency**: one reader follows the tail (a long-poll loop, or one SSE connection) while one writer appends a numbered ~100 B text message every ${c.latency.intervalMs} ms; ` +
      `latency = arrival at the reader − start of the writer's POST; ${c.latency.samples.toLocaleString('en')} samples per run after 5 warm-up messages (${c.latency.reps} runs); p50, p90 and p99 are nearest-rank percentiles of one run's samples, so the p99 of ${c.latency.samples.toLocaleString('en')} samples is its ${nthWorst(c.latency.samples)} sample.`,
    `- **Fan-out**: ${c.fanout.readers.toLocaleString('en')} readers, each on its own connection, wait at the tail (long-poll, or SSE); once every request is on the wire ` +
      `(SSE: every response has started), a ${c.fanout.settleMs} ms settle pause and a HEAD round trip, one append. "All delivered" = time from the start of the POST until ` +
      'the last reader has the message; "writer\'s acknowledgement" = the POST\'s own round trip; "acknowledgement with no readers" = the median of 5 appends to the same stream just before. ' +
      `Each server gets ${c.liveWarmupRounds} unmeasured fan-out round(s) of each kind at the same reader count before the live scenarios, and one more right before the fan-out runs: ` +
      'the first round at a new scale, or after the append scenarios, is slow on both ends (JIT, socket buffers, a grown heap), for every server alike.',
    `- **Memory and restart**: a fresh server is loaded with ${c.rss.streams} streams × ${c.rss.perStream.toLocaleString('en')} × ${fmtSize(c.rss.size)} (${c.rss.concurrency} appends in flight), then \`VmRSS\` of the server process ` +
      '(`/proc/<pid>/status`) is read after 0.5 s. File targets are then stopped (SIGTERM) and restarted on the same data directory; "restart to first read" runs from spawning ' +
      `the process to the first successful non-empty read of a stream (process start-up included, same for both servers). ${c.rss.loads === 1 ? 'One load per target (a million HTTP appends per target does not fit twice in the time of a full run); the restarts are repeated.' : `${c.rss.loads} loads per target, each on a fresh server, ${c.rss.restarts} restarts after each.`}`,
    `- **Where the data lives**: in the append, latency and fan-out scenarios the file targets write to the OS temporary directory (a real disk). The bulk-loading scenarios (catch-up, memory, restart) keep the file targets' data on tmpfs (\`${c.bulkDataRoot}\`), where fsync costs nothing: the reference fsyncs every append (its rates on disk are in the append tables above), so loading ${(c.rss.streams * c.rss.perStream).toLocaleString('en')} messages on disk would take hours. Those scenarios measure reads, memory and recovery, not durability.`,
    '- Streamkeep runs with `--max-body-bytes 64 MiB`, `--max-stream-bytes 0`, `--max-total-bytes 0` (unlimited), `STREAMKEEP_MAX_IN_FLIGHT=100000`, `STREAMKEEP_MAX_LIVE_READS=100000`, `STREAMKEEP_MAX_STREAMS=0`, `STREAMKEEP_MAX_LIVE_READS_PER_CLIENT=0` (admission limits out of the way; the reference has none), `--sse-reconnect 0`, `--log-level info` (no per-request logs); both servers with compression on (their default) and the same long-poll timeout.',
    ...postgresMethod(r, c),
    '',
  );
  if (extra.profile) md.push('## Profiles (`node --cpu-prof`)', '', extra.profile.trim(), '');
  if (extra.analysis) md.push(extra.analysis.trim(), '');
  return { markdown: `${md.join('\n')}\n`, svgs, goals: [...goals, ...many, ...subs] };
}

function probeText(p: FsyncProbe): string {
  return (
    `\`fdatasync\` after a 100 B append, ${p.iterations} rounds in the harness process before any server started, ` +
    `in ${p.dir} (${p.fsType}): p50 ${num(p.p50Ms)} ms, p90 ${num(p.p90Ms)} ms, p99 ${num(p.p99Ms)} ms`
  );
}

/** Which sample the nearest-rank p99 of `n` samples is, counted from the worst. */
export function nthWorst(n: number): string {
  const k = n - Math.min(n, Math.max(1, Math.ceil(0.99 * n))) + 1;
  if (k === 1) return 'worst';
  const suffix =
    k % 10 === 1 && k % 100 !== 11
      ? 'st'
      : k % 10 === 2 && k % 100 !== 12
        ? 'nd'
        : k % 10 === 3 && k % 100 !== 13
          ? 'rd'
          : 'th';
  return `${k}${suffix}-worst`;
}

const PG_COLUMNS: Record<PgSeriesId, string> = { 'pg-one': 'one instance', 'pg-two': 'two instances' };

function pgTable(
  figs: readonly Figure[],
  columns: Record<PgSeriesId, string>,
  ratioHead = 'two / one',
): string {
  const unit = figs[0]?.unit ?? '';
  const better = figs[0]?.better === 'higher' ? 'higher is better' : 'lower is better';
  const head = [`figure (${unit}, ${better})`, columns['pg-one'], columns['pg-two'], ratioHead];
  const lines = [`| ${head.join(' | ')} |`, '|---|---:|---:|---:|'];
  for (const f of figs) {
    const row = [
      f.label,
      cell(sum(f, 'pg-one')),
      cell(sum(f, 'pg-two')),
      ratioText(ratio(f, 'pg-two', 'pg-one')),
    ];
    lines.push(`| ${row.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** The figures of the PostgreSQL scenario (issue #7): tables, and what they show, computed from the figures. */
export function postgresSection(r: Results, c: BenchConfig, nproc: number): string[] {
  const info = r.postgres;
  if (!info) return [];
  const md = ['## PostgreSQL: one instance vs two instances', ''];
  if (info.skipped) {
    md.push(`Not measured in this run: ${info.skipped}.`, '');
    return md;
  }
  const figs = r.figures.filter((f) => f.key.startsWith('pg/'));
  const p = c.postgres;
  md.push(
    `Streamkeep \`--storage postgres\` on one throwaway PostgreSQL ${info.version ?? ''} cluster ` +
      `(\`scripts/postgres/cluster.sh start${info.durable ? ' --durable' : ''}\`: ` +
      `${info.durable ? '`fsync` and `synchronous_commit` on, as a deployment runs' : '`fsync`, `synchronous_commit` and `full_page_writes` off'}; ` +
      `data in ${info.dir ?? 'a temporary directory'}). "One instance": one server process; "two instances": two server processes ` +
      'on one schema, the writers alternating between them. Each configuration has its own fresh schema. ' +
      `${fmtSize(p.size)} appends, ${p.durationMs} ms measured after ${p.warmupMs} ms of warm-up, ${p.reps} runs; ` +
      `live latency ${p.latency.samples.toLocaleString('en')} samples every ${p.latency.intervalMs} ms, ${p.latency.reps} runs.`,
    '',
  );
  const appends = figs.filter((f) => f.key.endsWith('/perSec'));
  const acks = figs.filter((f) => f.key.startsWith('pg/append/') && f.key.endsWith('/p99'));
  const lat = figs.filter((f) => f.key.startsWith('pg/latency/'));
  if (appends.length) md.push('### Appends', '', pgTable(appends, PG_COLUMNS), '');
  if (acks.length) md.push('### Append acknowledgement latency p99', '', pgTable(acks, PG_COLUMNS), '');
  if (lat.length) {
    md.push(
      '### Live delivery latency',
      '',
      pgTable(
        lat,
        { 'pg-one': 'writer and reader on one instance', 'pg-two': 'writer on A, reader on B' },
        'across / one',
      ),
      '',
    );
  }
  const ratios = appends.map((f) => ratio(f, 'pg-two', 'pg-one')).filter((x) => Number.isFinite(x));
  const probe = r.fsyncProbe;
  const what: string[] = [];
  if (ratios.length) {
    const lo = Math.min(...ratios);
    const hi = Math.max(...ratios);
    let best = 0;
    let bestAt = '';
    for (const f of appends) {
      if (f.key.endsWith('/1/perSec')) continue;
      for (const id of ['pg-one', 'pg-two'] as const) {
        const v = sum(f, id)?.median ?? Number.NaN;
        if (Number.isFinite(v) && v > best) {
          best = v;
          bestAt = `${PG_COLUMNS[id]}, ${f.label}`;
        }
      }
    }
    what.push(
      `- **Appends**: two instances reach ${ratioText(lo)} to ${ratioText(hi)} of one instance's rate. ` +
        'Every append is one transaction that calls `pg_notify` (the wake-up of readers on every instance), and ' +
        'PostgreSQL serialises notifying commits with one database-wide lock held from just before the commit until ' +
        'it is done, WAL flush included (see `packages/storage-postgres/README.md`, "Cost of wake-ups"). So the ' +
        "appends of all instances together are bounded by the database's commit latency, and a second instance adds " +
        'HTTP and connection capacity, not commit capacity.' +
        separation(appends) +
        (info.durable && probe && best > 0 ? ` ${diskBound(probe, best, bestAt, nproc)}` : '') +
        (info.durable ? '' : ' This cluster runs with `fsync` off, so no commit waits for the disk here.'),
    );
  }
  const l1 = r.get('pg/latency/long-poll/p50');
  const s1 = r.get('pg/latency/sse/p50');
  if (l1 || s1) {
    const extra = (f: Figure | undefined): string => {
      const a = sum(f, 'pg-one')?.median ?? Number.NaN;
      const b = sum(f, 'pg-two')?.median ?? Number.NaN;
      return Number.isFinite(a) && Number.isFinite(b) ? `${b - a >= 0 ? '+' : ''}${num(b - a)} ms` : '—';
    };
    what.push(
      `- **Live delivery**: a reader on instance B learns of an append on instance A from the NOTIFY that ` +
        "PostgreSQL delivers to B's LISTEN connection after the commit is visible; on one instance the commit wakes " +
        `the local reader directly. The difference at p50: long-poll ${extra(l1)}, SSE ${extra(s1)}.`,
    );
  }
  if (what.length) md.push(...what, '');
  return md;
}

/** Which cells the two configurations differ in beyond their run-to-run spread (the ranges do not overlap). */
function separation(appends: readonly Figure[]): string {
  const faster: string[] = [];
  const slower: string[] = [];
  for (const f of appends) {
    const one = sum(f, 'pg-one');
    const two = sum(f, 'pg-two');
    if (!one || !two || one.runs < 2 || two.runs < 2) continue;
    if (two.min > one.max) faster.push(f.label);
    else if (two.max < one.min) slower.push(f.label);
  }
  const parts: string[] = [];
  if (faster.length)
    parts.push(
      `Two instances are faster beyond the spread of the runs (their slowest run above one instance's fastest) ` +
        `with ${faster.join('; ')}: there one instance (its CPU or its pool of connections) was the limit before ` +
        'the commit lock was.',
    );
  if (slower.length) parts.push(`Two instances are slower beyond the spread with ${slower.join('; ')}.`);
  parts.push(
    faster.length || slower.length
      ? 'In the other cells the runs of the two configurations overlap.'
      : 'In every cell the runs of the two configurations overlap.',
  );
  return ` ${parts.join(' ')}`;
}

/** Whether the disk or the CPU bounds a durable cluster's notifying commits, from the probe and the best rate. */
function diskBound(probe: FsyncProbe, best: number, bestAt: string, nproc: number): string {
  const cap = 1000 / probe.p50Ms;
  const head =
    'With a durable cluster each of those commits also waits for its own WAL flush while it holds the lock, ' +
    `so they cannot share a flush: this disk's fdatasync p50 of ${num(probe.p50Ms)} ms caps them at about ` +
    `${num(cap)}/s. The best rate measured with several writers, ${num(best)}/s (${bestAt}), is `;
  if (best >= cap / 2) return `${head}close to that cap: the disk's flush latency is the bound.`;
  return (
    `${head}far below that cap, so on this machine the bound is CPU, not the disk: each append is several round ` +
    `trips between a server and PostgreSQL plus PostgreSQL's commit work, and the instances, PostgreSQL and the load ` +
    `generator share ${nproc} cores, so a second instance competes with the first for the same CPU.`
  );
}

function postgresMethod(r: Results, c: BenchConfig): string[] {
  if (!r.postgres || r.postgres.skipped) return [];
  return [
    '- **PostgreSQL** (issue #7): the harness starts its own cluster with `scripts/postgres/cluster.sh` and stops it at ' +
      'the end (also on failure and Ctrl-C), and skips the scenario with a note when PostgreSQL cannot be started. ' +
      `Servers run with the same flags as above plus \`--storage postgres --postgres-url … --postgres-schema <fresh>\` ` +
      '(default pool: 10 connections per instance, plus one LISTEN connection). With two instances, writer w sends its ' +
      'i-th append to instance (w + i) mod 2, as a round-robin load balancer would, so even one writer spreads its load. ' +
      `Writers: ${c.postgres.writers.join(', ')}; each cell alternates between the configurations within a run.`,
  ];
}
