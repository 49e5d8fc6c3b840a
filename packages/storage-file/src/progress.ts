/** How far a long open has come (see `FileStorageOptions.onProgress`). */
export interface RecoveryProgress {
  /** `migrate`: converting an older on-disk format; `replay`: re-applying the journal; `verify`: eager log checks. */
  readonly phase: 'migrate' | 'replay' | 'verify';
  readonly streamsDone: number;
  readonly streamsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly elapsedMs: number;
}

/** Reports progress at most every `intervalMs`, and always when asked to finish. */
export class ProgressReporter {
  private last: number;
  constructor(
    private readonly cb: ((p: RecoveryProgress) => void) | undefined,
    private readonly intervalMs: number,
    private readonly started: number,
  ) {
    this.last = performance.now();
  }
  report(p: Omit<RecoveryProgress, 'elapsedMs'>, final = false): void {
    if (this.cb === undefined) return;
    const now = performance.now();
    if (!final && now - this.last < this.intervalMs) return;
    this.last = now;
    this.cb({ ...p, elapsedMs: now - this.started });
  }
}
