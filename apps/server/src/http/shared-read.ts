import type { ReadResult, Storage } from '@streamkeep/storage';

let clock = 0;

/**
 * A tick of a process-wide logical clock. Reads and wake-ups are stamped with it so that "this read started after that
 * wake-up" is one integer comparison.
 */
export function tick(): number {
  return ++clock;
}

interface InFlight {
  readonly started: number;
  readonly promise: Promise<ReadResult>;
}

/**
 * Single-flight reads: requests that read the same stream at the same offset with the same size limit while one such
 * read is in flight share it, so one append that wakes 1,000 long-poll readers costs one `storage.read` rather than
 * 1,000. Lookup is one map access per read (no scan of waiters).
 *
 * A caller passes `notBefore`, the clock tick of the moment from which it needs the data: the wake-up it is reacting
 * to, or the point after which it subscribed. It joins an in-flight read only if that read started later, which makes
 * the shared result indistinguishable from a read of its own issued a moment later; an older read in flight might
 * predate the commit that woke it, whose hint it has already consumed. A read is forgotten as soon as it settles, and
 * callers must treat the shared result as read-only.
 */
export class SharedReads {
  private readonly inFlight = new Map<string, InFlight>();

  constructor(private readonly storage: Storage) {}

  /** Reads in flight (for tests). */
  get size(): number {
    return this.inFlight.size;
  }

  read(name: string, offset: string, maxBytes: number, notBefore: number): Promise<ReadResult> {
    const key = `${maxBytes}\u0000${offset}\u0000${name}`;
    const current = this.inFlight.get(key);
    if (current !== undefined && current.started > notBefore) return current.promise;
    const started = tick();
    let promise: Promise<ReadResult>;
    try {
      promise = this.storage.read(name, offset, { maxBytes });
    } catch (err) {
      return Promise.reject(err);
    }
    const entry: InFlight = { started, promise };
    this.inFlight.set(key, entry);
    const forget = (): void => {
      if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
    };
    promise.then(forget, forget);
    return promise;
  }
}
