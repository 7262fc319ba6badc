/**
 * Runs in the origin private file system (OPFS): a FileTree over a FileSystemDirectoryHandle (atomic replace through
 * createWritable's swap file) and openOpfsRunStore. Works in windows and workers.
 */
import { FileTreeRunStore } from './file-tree-store';
import type { FileTree, FileTreeEntry } from './generations';
import { browserStorageFree } from './quota';
import type { RunStoreOptions } from './run-store';

interface WritableLike {
  write(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}
interface SyncHandleLike {
  truncate(n: number): void;
  write(data: Uint8Array, opts: { at: number }): number;
  flush(): void;
  close(): void;
}
type OpfsFile = FileSystemFileHandle & {
  createWritable?: () => Promise<WritableLike>;
  createSyncAccessHandle?: () => Promise<SyncHandleLike>;
};
type OpfsDir = FileSystemDirectoryHandle & { entries(): AsyncIterable<[string, FileSystemHandle]> };

const isNotFound = (e: unknown) =>
  !!e &&
  typeof e === 'object' &&
  ((e as { name?: string }).name === 'NotFoundError' || (e as { name?: string }).name === 'TypeMismatchError');

/** FileTree over an OPFS directory (navigator.storage.getDirectory()). Works in windows and workers. */
export class OpfsFileTree implements FileTree {
  constructor(
    readonly root: FileSystemDirectoryHandle,
    readonly describe = 'browser storage (OPFS)',
  ) {}

  private async dir(path: string[], create: boolean): Promise<OpfsDir | null> {
    let d = this.root;
    try {
      for (const n of path) d = await d.getDirectoryHandle(n, { create });
    } catch (e) {
      if (!create && isNotFound(e)) return null;
      throw e;
    }
    return d as OpfsDir;
  }

  async list(path: string[]): Promise<FileTreeEntry[]> {
    const d = await this.dir(path, false);
    if (!d) return [];
    const out: FileTreeEntry[] = [];
    for await (const [name, h] of d.entries()) out.push({ name, kind: h.kind === 'directory' ? 'directory' : 'file' });
    return out;
  }

  async read(path: string[]): Promise<Uint8Array | null> {
    const d = await this.dir(path.slice(0, -1), false);
    if (!d) return null;
    try {
      const fh = await d.getFileHandle(path[path.length - 1]);
      return new Uint8Array(await (await fh.getFile()).arrayBuffer());
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  }

  async write(path: string[], data: Uint8Array): Promise<void> {
    const d = (await this.dir(path.slice(0, -1), true))!;
    const fh = (await d.getFileHandle(path[path.length - 1], { create: true })) as OpfsFile;
    if (typeof fh.createWritable === 'function') {
      // writes go to a swap file; close() replaces the file atomically
      const w = await fh.createWritable();
      try {
        for (let o = 0; o < data.length; o += 1 << 20)
          await w.write(data.subarray(o, o + (1 << 20)) as Uint8Array<ArrayBuffer>); // 1 MiB chunks: Chromium reports a quota refusal of one big write as AbortError ('Failed to write data to data pipe') about 1 time in 3
        await w.close();
      } catch (e) {
        await w.abort().catch(() => undefined);
        throw e;
      }
    } else if (typeof fh.createSyncAccessHandle === 'function') {
      // workers in browsers without createWritable: in place (not atomic; loading falls back past a torn file)
      const h = await fh.createSyncAccessHandle();
      try {
        h.truncate(0);
        h.write(data, { at: 0 });
        h.flush();
      } finally {
        h.close();
      }
    } else {
      throw new Error('this browser cannot write OPFS files (no createWritable or createSyncAccessHandle)');
    }
  }

  async remove(path: string[]): Promise<void> {
    const d = await this.dir(path.slice(0, -1), false);
    if (!d) return;
    try {
      await d.removeEntry(path[path.length - 1], { recursive: true });
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
  }

  async free(): Promise<number | null> {
    return browserStorageFree();
  }
}

/** A RunStore in OPFS, under `dirName` of the origin's root (or under `root` when given). */
export async function openOpfsRunStore(
  opts: RunStoreOptions & { root?: FileSystemDirectoryHandle; dirName?: string } = {},
): Promise<FileTreeRunStore> {
  let root = opts.root;
  if (!root) {
    const s = typeof navigator !== 'undefined' ? navigator.storage : undefined;
    if (!s || typeof s.getDirectory !== 'function')
      throw new Error('OPFS is not available (navigator.storage.getDirectory is missing)');
    root = await s.getDirectory();
  }
  const dir = await root.getDirectoryHandle(opts.dirName ?? 'webtune-runs', { create: true });
  return new FileTreeRunStore(new OpfsFileTree(dir), 'opfs', opts);
}
