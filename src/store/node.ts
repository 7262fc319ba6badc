/**
 * Runs on the local file system (Node): the RunStore (./run-store.ts, ./file-tree-store.ts) over a folder, one sub-folder per run, plus the
 * helpers the CLI needs for --save-steps / --resume-from-checkpoint (continuing a session: ./resume.ts).
 *
 * Layout of a run folder (see ./generations.ts): run.json, ckpt-NNNNNN/{tensors.safetensors, checkpoint.json}, LATEST.
 * Every file is written to `<name>.tmp-<pid>-<random>` in the same folder, flushed (fsync) and renamed over the
 * target — rename is atomic on POSIX and Windows file systems — and LATEST is renamed last, so a crash at any
 * moment leaves the previous checkpoint loadable. ENOSPC / EDQUOT become a StorageQuotaError with the bytes needed.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import * as fsp from 'node:fs/promises';
import path from 'node:path';
import {
  CHECKPOINT_JSON,
  CHECKPOINT_TENSORS,
  decodeCheckpointBundle,
  encodeCheckpointBundle,
  type SessionCheckpoint,
} from '../train/checkpoint';
import { FileTreeRunStore } from './file-tree-store';
import {
  LATEST_FILE,
  readGeneration,
  readLatestGeneration,
  writeGeneration,
  type FileTree,
  type FileTreeEntry,
} from './generations';
import type { RunStoreOptions } from './run-store';

/** The two operations a save goes through; replaceable to simulate failures in tests. */
export interface NodeFileOps {
  /** Write `data` to a new file at `file` and flush it to disk. */
  writeFile(file: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
}

export const defaultNodeFileOps: NodeFileOps = {
  async writeFile(file, data) {
    const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o644);
    try {
      let off = 0;
      while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  rename: (from, to) => fsp.rename(from, to),
};

const isMissing = (e: unknown) =>
  (e as NodeJS.ErrnoException)?.code === 'ENOENT' || (e as NodeJS.ErrnoException)?.code === 'ENOTDIR';

/** FileTree over a folder: writes are temp file + fsync + rename. */
export class NodeFileTree implements FileTree {
  readonly describe: string;

  constructor(
    readonly root: string,
    private readonly ops: NodeFileOps = defaultNodeFileOps,
  ) {
    this.root = path.resolve(root);
    this.describe = this.root;
  }

  private p(parts: string[]): string {
    for (const x of parts)
      if (!x || x === '.' || x === '..' || /[\\/]/.test(x))
        throw new Error(`invalid path component ${JSON.stringify(x)}`);
    return path.join(this.root, ...parts);
  }

  async list(dir: string[]): Promise<FileTreeEntry[]> {
    try {
      const ents = await fsp.readdir(this.p(dir), { withFileTypes: true });
      return ents
        .filter((e) => e.isFile() || e.isDirectory())
        .map((e) => ({ name: e.name, kind: e.isDirectory() ? 'directory' : 'file' }));
    } catch (e) {
      if (isMissing(e)) return [];
      throw e;
    }
  }

  async read(parts: string[]): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await fsp.readFile(this.p(parts)));
    } catch (e) {
      if (isMissing(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return null;
      throw e;
    }
  }

  async write(parts: string[], data: Uint8Array): Promise<void> {
    const file = this.p(parts);
    const dir = path.dirname(file);
    await fsp.mkdir(dir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      await this.ops.writeFile(tmp, data);
      await this.ops.rename(tmp, file);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
    // make the rename itself durable (best effort: not every platform can fsync a directory)
    try {
      const dh = await fsp.open(dir, fsc.O_RDONLY);
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      /* ignore */
    }
  }

  async remove(parts: string[]): Promise<void> {
    await fsp.rm(this.p(parts), { recursive: true, force: true });
  }

  async free(): Promise<number | null> {
    try {
      const s = await fsp.statfs(this.root);
      return s.bavail * s.bsize;
    } catch {
      return null;
    }
  }
}

export interface NodeRunStoreOptions extends RunStoreOptions {
  /** Replace the low-level writes (tests simulate crashes and full disks with it). */
  fileOps?: NodeFileOps;
}

/** A RunStore in a folder: `<root>/<run id>/…`. */
export class NodeRunStore extends FileTreeRunStore {
  constructor(
    readonly root: string,
    opts: NodeRunStoreOptions = {},
  ) {
    super(new NodeFileTree(root, opts.fileOps), 'node', opts);
  }
}

// Single folders and files (the CLI)

/**
 * Save a checkpoint into a run folder (the layout above; the folder is created), atomically; keeps the newest `keep`
 * (default 2). Returns the generation folder written.
 */
export async function saveCheckpointToDir(
  runDir: string,
  ck: SessionCheckpoint,
  opts: NodeRunStoreOptions = {},
): Promise<{ path: string; bytes: number }> {
  const tree = new NodeFileTree(runDir, opts.fileOps);
  const p = await writeGeneration(tree, [], ck, opts.keep ?? 2);
  return { path: path.join(tree.root, p.generation), bytes: p.summary.bytes };
}

/** Write a checkpoint as one bundle file (temp + rename). */
export async function saveCheckpointBundle(
  file: string,
  ck: SessionCheckpoint,
  opts: { fileOps?: NodeFileOps } = {},
): Promise<void> {
  const abs = path.resolve(file);
  await new NodeFileTree(path.dirname(abs), opts.fileOps).write([path.basename(abs)], encodeCheckpointBundle(ck));
}

/**
 * Read a checkpoint from `p`, which may be:
 *   - a run folder (LATEST and ckpt-* folders): its latest checkpoint that verifies;
 *   - a checkpoint folder (checkpoint.json + tensors.safetensors), e.g. one ckpt-NNNNNN folder;
 *   - a bundle file (.webtune.safetensors, from exportRun / saveCheckpointBundle).
 */
export async function loadCheckpointFromPath(p: string): Promise<{ checkpoint: SessionCheckpoint; source: string }> {
  const abs = path.resolve(p);
  let st;
  try {
    st = await fsp.stat(abs);
  } catch (e) {
    throw new Error(`${p}: ${isMissing(e) ? 'no such file or folder' : (e as Error).message}`, { cause: e });
  }
  if (st.isFile()) {
    const { metadata: _m, ...ck } = decodeCheckpointBundle(new Uint8Array(await fsp.readFile(abs)), abs);
    return { checkpoint: ck, source: abs };
  }
  const tree = new NodeFileTree(abs);
  const names = new Set((await tree.list([])).map((e) => e.name));
  if (names.has(CHECKPOINT_JSON) || names.has(CHECKPOINT_TENSORS))
    return { checkpoint: await readGeneration(tree, []), source: abs };
  const latest = await readLatestGeneration(tree, []);
  if (latest) return { checkpoint: latest.checkpoint, source: path.join(abs, latest.generation) };
  throw new Error(
    `${p}: no checkpoint here (expected a run folder with ${LATEST_FILE} and ckpt-* folders, a folder with ${CHECKPOINT_JSON} + ${CHECKPOINT_TENSORS}, or a checkpoint bundle file)`,
  );
}
