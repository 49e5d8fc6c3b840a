import { join } from 'node:path';
import type { FileHandleLike, FileSystem } from './fs.js';

/** What the pool needs from a stream: where its log is and the slots it keeps the handle in. */
export interface HandleOwner {
  readonly dir: string;
  removed: boolean;
  fh: FileHandleLike | null;
  opening: Promise<FileHandleLike> | null;
  users: number;
}

export const LOG_FILE = 'log';

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
      if (owner.opening === null) {
        owner.opening = this.fs.open(join(owner.dir, LOG_FILE), 'r+').then(
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
