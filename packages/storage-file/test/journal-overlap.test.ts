import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type FileHandleLike,
  FileStorage,
  type FileSystem,
  nodeFileSystem,
  type OpenFlags,
} from '../src/index.js';
import { dec, enc } from './helpers.js';

/** The real file system; log writes can be held, and writes and syncs are recorded in order. */
class RecordingFs implements FileSystem {
  events: string[] = [];
  holdLogWrites = false;
  private held: (() => void)[] = [];
  journalSynced: (() => void) | undefined;

  release(): void {
    for (const go of this.held.splice(0)) go();
  }

  async open(path: string, flags: OpenFlags): Promise<FileHandleLike> {
    const fh = await nodeFileSystem.open(path, flags);
    const self = this;
    const what =
      path.includes(`${sep}logs${sep}`) && flags !== 'r'
        ? 'log'
        : path.endsWith(`${sep}journal`)
          ? 'journal'
          : 'other';
    return {
      read: (b, o, l, p) => fh.read(b, o, l, p),
      async writev(buffers, position) {
        if (what === 'log' && self.holdLogWrites) await new Promise<void>((go) => self.held.push(go));
        const r = await fh.writev(buffers, position);
        self.events.push(`${what} write`);
        return r;
      },
      async datasync() {
        await fh.datasync();
        self.events.push(`${what} sync`);
        if (what === 'journal') self.journalSynced?.();
      },
      sync: () => fh.sync(),
      truncate: (n) => fh.truncate(n),
      stat: () => fh.stat(),
      close: () => fh.close(),
    };
  }
  readFile = nodeFileSystem.readFile;
  writeFile = nodeFileSystem.writeFile;
  mkdir = nodeFileSystem.mkdir;
  readdir = nodeFileSystem.readdir;
  rename = nodeFileSystem.rename;
  unlink = nodeFileSystem.unlink;
  link = nodeFileSystem.link;
  rmrf = nodeFileSystem.rmrf;
  exists = nodeFileSystem.exists;
}

let dir: string;
let storage: FileStorage | undefined;
afterEach(async () => {
  await storage?.close();
  storage = undefined;
  await rm(dir, { recursive: true, force: true, maxRetries: 5 });
});

describe('journal rounds overlapping log writes', () => {
  it('a checkpoint right after a round syncs a log only after its pending write', async () => {
    dir = await mkdtemp(join(tmpdir(), 'sk-file-overlap-'));
    const fs = new RecordingFs();
    // A checkpoint after every round.
    storage = await FileStorage.open({
      rootDir: dir,
      fileSystem: fs,
      journal: 'always',
      journalCheckpointBytes: 1,
    });
    const s = storage;
    // Created with a message, so that its log exists before the append (a first write would create it).
    await s.createStream('s', { contentType: 'text/plain', messages: [enc('first')] });
    fs.holdLogWrites = true;
    const journalSynced = new Promise<void>((resolve) => {
      fs.journalSynced = resolve;
    });
    fs.events = [];
    const appended = s.append('s', { messages: [enc('held')], contentType: 'text/plain' });
    // The round is durable in the journal while the log write is still held.
    await journalSynced;
    // (The checkpoint after the create's round may still have been finishing when the events were reset: it runs
    // before the next round, so what it did comes before this round's journal write.)
    const events = fs.events.filter((e) => !e.startsWith('other'));
    expect(events.slice(events.indexOf('journal write'))).toEqual(['journal write', 'journal sync']);
    // Let the checkpoint that follows the round run as far as it can before the write goes through.
    for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setImmediate(resolve));
    fs.holdLogWrites = false;
    fs.release();
    await appended;
    await s.close();
    storage = undefined;
    const write = fs.events.indexOf('log write');
    const sync = fs.events.indexOf('log sync', write);
    expect(write).toBeGreaterThan(-1);
    expect(sync).toBeGreaterThan(write);
    storage = await FileStorage.open({ rootDir: dir });
    expect((await storage.read('s', '-1')).messages.map(dec)).toEqual(['first', 'held']);
  });
});
