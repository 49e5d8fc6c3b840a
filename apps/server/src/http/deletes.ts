/**
 * Deletes in progress, by stream name. A read that races a delete of its stream may fail inside a backend (the file
 * backend can open a log the delete has just moved away); waiting for the delete to settle lets the server answer
 * what the read would have answered a moment later (404 / 410) instead of a 500.
 */
export class InFlightDeletes {
  private readonly pending = new Map<string, Promise<unknown>>();

  /** Runs `del` for `name`, registered until it settles. */
  run<T>(name: string, del: () => Promise<T>): Promise<T> {
    const p = del();
    const settled = p.then(
      () => undefined,
      () => undefined,
    );
    this.pending.set(name, settled);
    settled.then(() => {
      if (this.pending.get(name) === settled) this.pending.delete(name);
    });
    return p;
  }

  /** Resolves once no delete of `name` that started before this call is in progress. */
  settled(name: string): Promise<unknown> {
    return this.pending.get(name) ?? Promise.resolve();
  }
}
