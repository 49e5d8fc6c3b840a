/** Progress lines on stderr: elapsed time, step counter and what is running. */
export class Progress {
  private readonly started = performance.now();
  private done = 0;

  constructor(
    private readonly total: number,
    private readonly quiet = false,
  ) {}

  private stamp(): string {
    const s = Math.round((performance.now() - this.started) / 1000);
    const elapsed = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
    return `[${elapsed} ${String(this.done).padStart(String(this.total).length)}/${this.total}]`;
  }

  info(message: string): void {
    if (!this.quiet) process.stderr.write(`${this.stamp()} ${message}\n`);
  }

  step(message: string): void {
    this.done++;
    this.info(message);
  }
}
