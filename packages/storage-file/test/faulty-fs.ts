import { type FileHandleLike, type FileSystem, nodeFileSystem, type OpenFlags } from '../src/index.js';

export type Op = 'writev' | 'datasync' | 'truncate' | 'rename' | 'mkdir' | 'sync';

/**
 * A file system that fails the next calls of one operation with an errno code. `writev` faults apply to the
 * asynchronous and the synchronous write alike.
 */
export class FaultyFs implements FileSystem {
  private faults: { op: Op; code: string; times: number; partial?: boolean; path?: string }[] = [];
  /** Positional reads done, and synchronous writes that succeeded. */
  reads = 0;
  syncWrites = 0;

  /** Fails the next `times` calls of `op` (on files whose path contains `path`, when given). */
  fail(op: Op, code: string, times = 1, partial = false, path?: string): void {
    this.faults.push({ op, code, times, partial, path });
  }
  clear(): void {
    this.faults = [];
  }
  private take(op: Op, path = ''): { code: string; partial?: boolean } | undefined {
    const f = this.faults.find(
      (x) => x.op === op && x.times > 0 && (x.path === undefined || path.includes(x.path)),
    );
    if (f === undefined) return undefined;
    f.times--;
    return f;
  }
  private raise(code: string): never {
    throw Object.assign(new Error(`injected ${code}`), { code });
  }

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    const fh = await nodeFileSystem.open(path, flags);
    const self = this;
    return {
      read: (b, o, l, p) => {
        self.reads++;
        return fh.read(b, o, l, p);
      },
      async writev(buffers, position) {
        const f = self.take('writev', path);
        if (f !== undefined) {
          // A partial write: the first half of the first buffer reaches the file before the error.
          if (f.partial && buffers[0] !== undefined) {
            await fh.writev([buffers[0].subarray(0, Math.ceil(buffers[0].byteLength / 2))], position);
          }
          self.raise(f.code);
        }
        return fh.writev(buffers, position);
      },
      // The same faults on the synchronous path (small group writes and journal rounds take it).
      writevSync(buffers, position) {
        const f = self.take('writev', path);
        if (f !== undefined) {
          if (f.partial && buffers[0] !== undefined) {
            fh.writevSync!([buffers[0].subarray(0, Math.ceil(buffers[0].byteLength / 2))], position);
          }
          self.raise(f.code);
        }
        self.syncWrites++;
        return fh.writevSync!(buffers, position);
      },
      async datasync() {
        const f = self.take('datasync', path);
        if (f !== undefined) self.raise(f.code);
        return fh.datasync();
      },
      async sync() {
        const f = self.take('sync', path);
        if (f !== undefined) self.raise(f.code);
        return fh.sync();
      },
      async truncate(len) {
        const f = self.take('truncate', path);
        if (f !== undefined) self.raise(f.code);
        return fh.truncate(len);
      },
      stat: () => fh.stat(),
      close: () => fh.close(),
    };
  }
  readFile = nodeFileSystem.readFile;
  writeFile = nodeFileSystem.writeFile;
  async mkdir(path: string): Promise<void> {
    const f = this.take('mkdir');
    if (f !== undefined) this.raise(f.code);
    return nodeFileSystem.mkdir(path);
  }
  readdir = nodeFileSystem.readdir;
  async rename(from: string, to: string): Promise<void> {
    const f = this.take('rename', to);
    if (f !== undefined) this.raise(f.code);
    return nodeFileSystem.rename(from, to);
  }
  unlink = nodeFileSystem.unlink;
  link = nodeFileSystem.link;
  rmrf = nodeFileSystem.rmrf;
  exists = nodeFileSystem.exists;
}
