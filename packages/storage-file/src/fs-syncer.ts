import { type ChildProcessByStdio, spawn } from 'node:child_process';
import type { Socket } from 'node:net';

/** How long after construction the shell is started if no sync asked for it first. */
const START_DELAY_MS = 250;

/**
 * `syncfs` for checkpoints, through a small shell started once that runs coreutils' `sync --file-system` for each
 * path it reads (Node has no binding for `syncfs`).
 *
 * Why not `execFile('sync', …)` at each checkpoint: spawning forks the whole server, and after a fork every page the
 * server writes to takes a copy-on-write fault (11–17 µs each in the benchmark sandbox): at 150–200 MB of RSS one
 * spawn cost 20–40 ms of CPU, then 440–800 ms more in faults as the server rewrote its memory — a 64 KiB append cost
 * 600 µs instead of 400 while checkpoints came every second. The shell is forked once, at open, while the process is
 * small; afterwards it forks only itself.
 *
 * Not at once, though: the fork takes 7–15 ms of the main thread, which start-up need not wait for. The shell is
 * started {@link START_DELAY_MS} after construction (the storage has opened; the process is as small as it was), or
 * by the first sync, whichever comes first.
 *
 * Protocol: one path per line on its stdin; one line back per path, `ok` or `fail`. A path with a newline, or a shell
 * that died, rejects: the caller then syncs file by file.
 */
export class FileSystemSyncer {
  private child: ChildProcessByStdio<Socket, Socket, null> | undefined;
  private readonly waiting: { resolve: () => void; reject: (err: Error) => void }[] = [];
  private out = '';
  /** Until the shell is started: the timer that starts it. */
  private pending: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(startDelayMs = START_DELAY_MS) {
    this.pending = setTimeout(() => this.start(), startDelayMs);
    this.pending.unref();
  }

  private start(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    if (this.closed || this.child !== undefined) return;
    // Pipes: both ends are sockets, whose `ref`/`unref` let an idle helper not keep the process alive.
    const child = spawn(
      'sh',
      [
        '-c',
        'while IFS= read -r p; do if sync --file-system -- "$p"; then echo ok; else echo fail; fi; done',
      ],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    ) as unknown as ChildProcessByStdio<Socket, Socket, null>;
    this.child = child;
    child.on('error', (err) => this.stop(err));
    child.on('exit', () => this.stop(new Error('the sync helper exited')));
    child.stdin.on('error', (err) => this.stop(err));
    child.stdout.setEncoding('utf8').on('data', (d: string) => this.answer(d));
    this.idle();
  }

  /** Makes everything written to the file system holding `path` durable. */
  sync(path: string): Promise<void> {
    if (this.pending !== undefined) this.start();
    const child = this.child;
    if (child === undefined) return Promise.reject(new Error('the sync helper is not running'));
    if (path.includes('\n')) return Promise.reject(new Error('a path with a newline'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      // Waited for: the helper's pipes keep the process alive until it answers.
      child.ref();
      child.stdout.ref();
      child.stdin.write(`${path}\n`);
    });
  }

  /** Ends the helper (it exits when its input closes); syncs waiting are rejected. */
  close(): void {
    this.closed = true;
    clearTimeout(this.pending);
    this.pending = undefined;
    const child = this.child;
    if (child === undefined) return;
    this.stop(new Error('the sync helper was closed'));
    child.stdin.end();
  }

  private answer(d: string): void {
    this.out += d;
    for (let nl = this.out.indexOf('\n'); nl >= 0; nl = this.out.indexOf('\n')) {
      const line = this.out.slice(0, nl);
      this.out = this.out.slice(nl + 1);
      const w = this.waiting.shift();
      if (line === 'ok') w?.resolve();
      else w?.reject(new Error('sync --file-system failed'));
    }
    if (this.waiting.length === 0) this.idle();
  }

  /** Nothing waited for: the helper does not keep the process alive. */
  private idle(): void {
    const child = this.child;
    if (child === undefined) return;
    child.unref();
    child.stdout.unref();
    child.stdin.unref();
  }

  private stop(err: Error): void {
    this.child = undefined;
    for (const w of this.waiting.splice(0)) w.reject(err);
  }
}
