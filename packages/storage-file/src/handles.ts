import type { FileHandleLike, FileSystem } from './fs.js';

/** What the pool needs from a stream: where its log is and the slots it keeps the handle in. */
export interface HandleOwner {
  readonly path: string;
  removed: boolean;
  fh: FileHandleLike | null;
  opening: Promise<FileHandleLike> | null;
  users: number;
}

/**
 * Keeps at most `max` log files open, least recently used first out. A handle in use (a write, sync or positional
 * read in flight) is never closed; the limit is then exceeded briefly rather than making callers wait.
 */
export class HandlePool {
  private readonly lru = new Map<HandleOwner, true>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly fs: FileSystem,
    private readonly max: number,
  ) {}

  get openCount(): number {
    return this.lru.size;
  }

  /** {@link HandlePool.acquire} without waiting, when the owner's handle is open; `undefined` otherwise. */
  acquireOpen(owner: HandleOwner): FileHandleLike | undefined {
    const fh = owner.fh;
    if (fh === null) return undefined;
    owner.users++;
    this.lru.delete(owner);
    this.lru.set(owner, true);
    return fh;
  }

  async acquire(owner: HandleOwner): Promise<FileHandleLike> {
    owner.users++;
    try {
      if (owner.fh !== null) {
        this.lru.delete(owner);
        this.lru.set(owner, true);
        return owner.fh;
      }
      if (owner.opening === null && this.fs.openSync !== undefined) {
        // A synchronous open costs a few microseconds on the event loop; through the thread pool it costs a round
        // trip, which dominates appends spread over more streams than there are handles.
        owner.fh = this.fs.openSync(owner.path, 'r+');
        this.lru.set(owner, true);
        this.evict();
        return owner.fh;
      }
      if (owner.opening === null) {
        owner.opening = this.fs.open(owner.path, 'r+').then(
          (fh) => {
            owner.fh = fh;
            owner.opening = null;
            this.lru.set(owner, true);
            this.evict();
            return fh;
          },
          (err) => {
            owner.opening = null;
            throw err;
          },
        );
      }
      return await owner.opening;
    } catch (err) {
      owner.users--;
      throw err;
    }
  }

  /** Takes `fh` (just opened by the caller) as the owner's handle, in use once, as {@link HandlePool.acquire} would. */
  adopt(owner: HandleOwner, fh: FileHandleLike): void {
    owner.fh = fh;
    owner.users++;
    this.lru.delete(owner);
    this.lru.set(owner, true);
    this.evict();
  }

  release(owner: HandleOwner): void {
    owner.users--;
    if (owner.users === 0 && (owner.removed || this.lru.size > this.max)) {
      if (owner.removed) this.closeOne(owner);
      else this.evict();
    }
  }

  /** Closes the owner's handle once nobody uses it (for removed streams). */
  discard(owner: HandleOwner): void {
    if (owner.users === 0) this.closeOne(owner);
  }

  private evict(): void {
    if (this.lru.size <= this.max) return;
    for (const owner of this.lru.keys()) {
      if (this.lru.size <= this.max) break;
      if (owner.users === 0) this.closeOne(owner);
    }
  }

  private closeOne(owner: HandleOwner): void {
    const fh = owner.fh;
    this.lru.delete(owner);
    if (fh === null) return;
    owner.fh = null;
    const p = fh.close().catch(() => undefined);
    this.closing.add(p);
    void p.finally(() => this.closing.delete(p));
  }

  async closeAll(): Promise<void> {
    for (const owner of [...this.lru.keys()]) this.closeOne(owner);
    await Promise.all(this.closing);
  }
}
