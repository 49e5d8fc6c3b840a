/**
 * Stream names gathered for `delayMs`, then handed to `run` once each: many appends to one stream in the window cost
 * one subscriber lookup. Armed by the first name after a flush, so nothing waits longer than `delayMs`.
 */
export class StreamBatch {
  private names = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  private flushed: Promise<void> | undefined;
  private resolveFlushed: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly delayMs: number,
    private readonly run: (name: string) => void,
  ) {}

  add(name: string): void {
    if (this.closed) return;
    this.names.add(name);
    if (this.timer !== undefined) return;
    this.flushed = new Promise<void>((resolve) => {
      this.resolveFlushed = resolve;
    });
    this.timer = setTimeout(() => this.flush(), this.delayMs);
    this.timer.unref();
  }

  /** Resolves once the names gathered so far have been handed to `run`. */
  async settled(): Promise<void> {
    while (this.flushed !== undefined) await this.flushed;
  }

  /** Drops the gathered names (shutdown: their wakes are not started). */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.names.clear();
    this.done();
  }

  private flush(): void {
    const names = this.names;
    this.names = new Set();
    this.timer = undefined;
    this.done();
    for (const name of names) this.run(name);
  }

  private done(): void {
    const resolve = this.resolveFlushed;
    this.flushed = undefined;
    this.resolveFlushed = undefined;
    resolve?.();
  }
}
