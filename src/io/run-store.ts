/**
 * Where training runs are kept between page loads: a small RunStore API over the browser's storage.
 *
 *   const store = await openBrowserRunStore();          // OPFS, else IndexedDB
 *   await store.save(runId, await session.checkpoint()); // atomic: the previous checkpoint stays until this one is complete
 *   const ck = await store.loadLatest(runId);            // → FinetuneSession.resume({ model, tokenizer, data }, ck)
 *   const file = await store.exportRun(runId);           // one file (.webtune.safetensors) → importRun(file) elsewhere
 *
 * Runs have a stable id (newRunId(); letters, digits, '.', '_', '-') and a display name (rename()).
 *
 * File-tree layout (OPFS here, the local file system in ./node-run-store.ts):
 *   <id>/run.json            { id, name, created }
 *   <id>/ckpt-000007/        one generation: tensors.safetensors, then checkpoint.json (which holds the tensors' SHA-256)
 *   <id>/LATEST              { generation, summary } — written last: the commit point
 *   <id>/files/<name>        putFile's text files (e.g. the run's model source and dataset), each replaced whole
 * Every file is replaced whole (OPFS: createWritable's swap file, committed by close(); Node: temp file + rename), a
 * new checkpoint goes to a new generation directory and LATEST flips to it only when both files are complete. A crash
 * or an error mid-save leaves LATEST on the previous generation. Loading follows LATEST and, if that generation is
 * damaged or LATEST is unreadable, falls back to the newest older generation that verifies. The newest `keep`
 * (default 2) committed generations are kept; uncommitted leftovers of an interrupted save are removed by the next save.
 *
 * IndexedDB layout: object store "runs" (one record per run: name, pointer, generation numbers) and "checkpoints"
 * (one record per generation: checkpoint.json text and the tensor file's bytes), and "files" (putFile's, keyed
 * "<run>/<name>"). A save is one readwrite transaction over the stores, so it commits entirely or not at all.
 *
 * A full disk or quota (QuotaExceededError, ENOSPC) becomes a StorageQuotaError saying how many bytes the checkpoint
 * needed and how many were free when known; nothing saved before is touched.
 *
 * Browser-safe: no node: imports.
 */
import {
  CHECKPOINT_JSON,
  CHECKPOINT_TENSORS,
  decodeCheckpointBundle,
  decodeCheckpointFiles,
  describeCheckpoint,
  encodeCheckpointBundle,
  encodeCheckpointFiles,
  BUNDLE_EXTENSION,
  type CheckpointMeta,
  type SessionCheckpoint,
} from '../train/checkpoint';
import { formatBytes } from '../util/bytes';

// ---------------------------------------------------------------------------------------------------------
// API

/** What the latest checkpoint of a run says about it (the LATEST pointer's summary). */
export interface CheckpointSummary {
  step: number;
  max_steps: number;
  epoch: number;
  status: CheckpointMeta['progress']['status'];
  model_id: string | null;
  /** Last logged training loss, if any. */
  loss: number | null;
  /** ISO time the checkpoint was taken. */
  saved: string;
  /** Bytes of the stored checkpoint. */
  bytes: number;
  description: string;
}

export interface RunInfo {
  id: string;
  name: string;
  /** ISO time of the first save. */
  created: string;
  /** Null when the run has no committed checkpoint. */
  latest: CheckpointSummary | null;
  /** Committed checkpoints kept. */
  checkpoints: number;
}

export interface RunStore {
  readonly kind: 'opfs' | 'indexeddb' | 'node';
  /** All runs, most recently saved first. */
  list(): Promise<RunInfo[]>;
  info(runId: string): Promise<RunInfo | null>;
  /** Save atomically as the run's latest checkpoint (creating the run; `name` sets or changes its display name). */
  save(runId: string, checkpoint: SessionCheckpoint, opts?: { name?: string }): Promise<RunInfo>;
  /** The latest checkpoint that verifies, null when the run has none (throws if every stored one is damaged). */
  loadLatest(runId: string): Promise<SessionCheckpoint | null>;
  rename(runId: string, name: string): Promise<RunInfo>;
  delete(runId: string): Promise<void>;
  /** The latest checkpoint as one file (a safetensors bundle, see ../train/checkpoint.ts; name it `<run>.webtune.safetensors`). */
  exportRun(runId: string): Promise<Uint8Array>;
  /** Store an exported file as a new run (id generated unless given; name from the file unless given). */
  importRun(bytes: Uint8Array, opts?: { id?: string; name?: string }): Promise<RunInfo>;
  /**
   * A text file kept with the run beside its checkpoints (e.g. what it was trained on, to rebuild it after a reload),
   * replaced whole; exported and imported with the run, deleted with it. Names: letters, digits, '.', '_', '-'.
   */
  putFile(runId: string, name: string, text: string): Promise<void>;
  /** A file put with putFile, or null. */
  getFile(runId: string, name: string): Promise<string | null>;
  /** Names of the run's files. */
  listFiles(runId: string): Promise<string[]>;
}

export interface RunStoreOptions {
  /** Committed checkpoints kept per run (≥ 1; default 2: the latest and one to fall back to). */
  keep?: number;
}

/** Saving failed for lack of space; nothing stored before was changed. */
export class StorageQuotaError extends Error {
  constructor(
    /** Bytes the checkpoint needed. */
    readonly needed: number,
    /** Bytes free when known (quota − usage, or free disk space). */
    readonly available: number | null,
    readonly where: string,
    readonly cause?: unknown,
  ) {
    super(
      `not enough storage to save the checkpoint in ${where}: it needs ${formatBytes(needed)} (${needed} bytes)` +
        // a quota error while the estimate shows room: the site's quota (or an override of it) is what refused
        `${available === null ? '' : available < needed ? `, ${formatBytes(Math.max(0, available))} free` : ", more than this site's storage quota allows"}. ` +
        'The previous checkpoint is kept. Free some space (delete old runs, or export one to a file and delete it) and save again.',
    );
    this.name = 'StorageQuotaError';
  }
}

/** Whether an error means "out of space" (DOMException QuotaExceededError, legacy code 22, Node ENOSPC/EDQUOT). */
export function isQuotaError(e: unknown): boolean {
  if (!e || typeof e !== 'object') return false;
  const x = e as { name?: unknown; code?: unknown };
  return x.name === 'QuotaExceededError' || x.code === 22 || x.code === 'ENOSPC' || x.code === 'EDQUOT';
}

const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateRunId(id: string): void {
  if (typeof id !== 'string' || !RUN_ID.test(id)) {
    throw new Error(
      `invalid run id ${JSON.stringify(id)}: use 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** A fresh run id from a display name: "<slug>-<time>-<random>". */
/** A name as lower-case letters, digits and '-' (for run ids and file names); 'run' when nothing is left. */
export function slugify(name: string, max = 40): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, max)
      .replace(/-+$/, '') || 'run'
  );
}

export function newRunId(name = 'run'): string {
  const slug = slugify(name);
  const rand = Math.floor(Math.random() * 36 ** 4)
    .toString(36)
    .padStart(4, '0');
  return `${slug}-${Date.now().toString(36)}-${rand}`;
}

/** The summary stored with a run's latest pointer. */
export function summarizeCheckpoint(meta: CheckpointMeta, bytes: number): CheckpointSummary {
  const lastLoss = [...meta.session.history].reverse().find((h) => h.loss !== undefined)?.loss;
  return {
    step: meta.progress.global_step,
    max_steps: meta.progress.max_steps,
    epoch: meta.progress.epoch,
    status: meta.progress.status,
    model_id: meta.model.id,
    loss: lastLoss ?? null,
    saved: meta.created,
    bytes,
    description: describeCheckpoint(meta),
  };
}

const RUN_NAME_KEY = 'webtune.run_name';
/** Bundle metadata key of a run file (putFile) in an exported run. */
const RUN_FILE_KEY = 'webtune.file.';
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function validateFileName(name: string): void {
  if (typeof name !== 'string' || !FILE_NAME.test(name)) {
    throw new Error(
      `invalid run file name ${JSON.stringify(name)}: use 1–100 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** export/import and argument checks shared by the stores. */
abstract class BaseRunStore implements RunStore {
  abstract readonly kind: RunStore['kind'];
  protected readonly keep: number;

  constructor(opts: RunStoreOptions = {}) {
    const keep = opts.keep ?? 2;
    if (!(Number.isInteger(keep) && keep >= 1))
      throw new Error(`RunStore: keep must be a positive integer, got ${keep}`);
    this.keep = keep;
  }

  abstract list(): Promise<RunInfo[]>;
  abstract info(runId: string): Promise<RunInfo | null>;
  abstract save(runId: string, checkpoint: SessionCheckpoint, opts?: { name?: string }): Promise<RunInfo>;
  abstract loadLatest(runId: string): Promise<SessionCheckpoint | null>;
  abstract rename(runId: string, name: string): Promise<RunInfo>;
  abstract delete(runId: string): Promise<void>;
  abstract putFile(runId: string, name: string, text: string): Promise<void>;
  abstract getFile(runId: string, name: string): Promise<string | null>;
  abstract listFiles(runId: string): Promise<string[]>;

  async exportRun(runId: string): Promise<Uint8Array> {
    validateRunId(runId);
    const info = await this.info(runId);
    const ck = info && (await this.loadLatest(runId));
    if (!info || !ck) throw new Error(`run ${runId} has no checkpoint to export`);
    const extra: Record<string, string> = { [RUN_NAME_KEY]: info.name };
    for (const f of await this.listFiles(runId)) {
      const text = await this.getFile(runId, f);
      if (text !== null) extra[RUN_FILE_KEY + f] = text;
    }
    return encodeCheckpointBundle(ck, extra);
  }

  async importRun(bytes: Uint8Array, opts: { id?: string; name?: string } = {}): Promise<RunInfo> {
    const ck = decodeCheckpointBundle(bytes, 'imported file');
    const name = opts.name ?? ck.metadata[RUN_NAME_KEY] ?? ck.meta.model.id ?? 'imported run';
    let id = opts.id;
    if (id !== undefined) {
      validateRunId(id);
      if (await this.info(id)) throw new Error(`a run with id ${id} already exists`);
    } else {
      do id = newRunId(name);
      while (await this.info(id));
    }
    const files = Object.entries(ck.metadata)
      .filter(([k]) => k.startsWith(RUN_FILE_KEY))
      .map(([k, v]) => [k.slice(RUN_FILE_KEY.length), v] as const);
    for (const [f] of files) validateFileName(f);
    for (const [f, text] of files) await this.putFile(id, f, text);
    try {
      return await this.save(id, { meta: ck.meta, lora: ck.lora, expAvg: ck.expAvg, expAvgSq: ck.expAvgSq }, { name });
    } catch (e) {
      await this.delete(id).catch(() => undefined);
      throw e;
    }
  }

  protected checkName(name: string): void {
    if (typeof name !== 'string' || name.trim() === '' || name.length > 200)
      throw new Error(`run name must be 1–200 characters, got ${JSON.stringify(name)}`);
  }
}

export { BUNDLE_EXTENSION };

// ---------------------------------------------------------------------------------------------------------
// File trees (OPFS; Node in ./node-run-store.ts)

export interface FileTreeEntry {
  name: string;
  kind: 'file' | 'directory';
}

/** The few file operations the generation layout needs. Paths are lists of names below the tree's root. */
export interface FileTree {
  /** Where, for messages. */
  readonly describe: string;
  /** Entries of a directory; [] when it does not exist. */
  list(dir: string[]): Promise<FileTreeEntry[]>;
  /** A file's bytes; null when it does not exist. */
  read(path: string[]): Promise<Uint8Array | null>;
  /** Replace a file whole (a reader sees the old or the new bytes, never a mix); creates missing directories. */
  write(path: string[], data: Uint8Array): Promise<void>;
  /** Remove a file or a directory tree; nothing when it does not exist. */
  remove(path: string[]): Promise<void>;
  /** Free bytes, when the platform tells (for quota messages). */
  free?(): Promise<number | null>;
}

const GEN = /^ckpt-(\d{6,})$/;
const genName = (seq: number) => `ckpt-${String(seq).padStart(6, '0')}`;
const seqOf = (name: string) => Number(GEN.exec(name)![1]);
export const LATEST_FILE = 'LATEST';
export const RUN_FILE = 'run.json';
/** Folder of a run's putFile files. */
export const FILES_DIR = 'files';

interface Pointer {
  generation: string;
  summary: CheckpointSummary;
}

function parsePointer(bytes: Uint8Array | null): Pointer | null {
  if (!bytes) return null;
  try {
    const p = JSON.parse(new TextDecoder().decode(bytes)) as Pointer;
    return p &&
      typeof p.generation === 'string' &&
      GEN.test(p.generation) &&
      p.summary &&
      typeof p.summary.step === 'number'
      ? p
      : null;
  } catch {
    return null;
  }
}

const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 1));

async function generations(tree: FileTree, base: string[]): Promise<string[]> {
  return (await tree.list(base))
    .filter((e) => e.kind === 'directory' && GEN.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => seqOf(a) - seqOf(b));
}

/** Load one generation directory (checkpoint.json + tensors.safetensors), verified. */
export async function readGeneration(tree: FileTree, dir: string[]): Promise<SessionCheckpoint> {
  const where = [tree.describe, ...dir].join('/');
  const [j, t] = await Promise.all([tree.read([...dir, CHECKPOINT_JSON]), tree.read([...dir, CHECKPOINT_TENSORS])]);
  if (!j || !t)
    throw new Error(`${where}: incomplete checkpoint (${!j ? CHECKPOINT_JSON : CHECKPOINT_TENSORS} is missing)`);
  return decodeCheckpointFiles({ json: j, tensors: t }, where);
}

/**
 * Save a checkpoint as a new generation under `base` and flip LATEST to it (see the module comment).
 * Returns the generation name and the summary written.
 */
export async function writeGeneration(
  tree: FileTree,
  base: string[],
  ck: SessionCheckpoint,
  keep: number,
  encoded?: Map<string, Uint8Array>,
): Promise<Pointer> {
  const files = encoded ?? (await encodeCheckpointFiles(ck));
  const bytes = [...files.values()].reduce((s, b) => s + b.length, 0);
  const ptr = parsePointer(await tree.read([...base, LATEST_FILE]));
  // temp files of a write interrupted by a crash (Node: "<name>.tmp-<pid>-<random>"; Chromium's OPFS: "<name>.crswap")
  for (const e of await tree.list(base))
    if (e.kind === 'file' && /\.tmp-|\.crswap$/.test(e.name))
      await tree.remove([...base, e.name]).catch(() => undefined);
  let gens = await generations(tree, base);
  if (ptr) {
    // generations newer than the pointer are leftovers of an interrupted save: never committed
    for (const g of gens.filter((x) => seqOf(x) > seqOf(ptr.generation)))
      await tree.remove([...base, g]).catch(() => undefined);
    gens = gens.filter((x) => seqOf(x) <= seqOf(ptr.generation));
  }
  const seq = gens.length ? seqOf(gens[gens.length - 1]) + 1 : 1;
  if (!ptr && gens.length) {
    // LATEST unreadable (torn by a crash): only complete generations count as committed; incomplete ones go
    const complete: string[] = [];
    for (const g of gens) {
      const names = new Set((await tree.list([...base, g])).map((e) => e.name));
      if (names.has(CHECKPOINT_JSON) && names.has(CHECKPOINT_TENSORS)) complete.push(g);
      else await tree.remove([...base, g]).catch(() => undefined);
    }
    gens = complete;
  }
  const gen = genName(seq);
  const pointer: Pointer = { generation: gen, summary: summarizeCheckpoint(ck.meta, bytes) };
  try {
    await tree.write([...base, gen, CHECKPOINT_TENSORS], files.get(CHECKPOINT_TENSORS)!);
    await tree.write([...base, gen, CHECKPOINT_JSON], files.get(CHECKPOINT_JSON)!);
    await tree.write([...base, LATEST_FILE], json(pointer)); // commit
  } catch (e) {
    await tree.remove([...base, gen]).catch(() => undefined);
    if (isQuotaError(e))
      throw new StorageQuotaError(
        bytes,
        tree.free ? await tree.free().catch(() => null) : null,
        [tree.describe, ...base].join('/'),
        e,
      );
    throw e;
  }
  // prune: keep the newest `keep` committed generations (best effort: a failure here loses nothing)
  const committed = [...gens, gen];
  for (const g of committed.slice(0, Math.max(0, committed.length - keep)))
    await tree.remove([...base, g]).catch(() => undefined);
  return pointer;
}

/** The latest checkpoint under `base` that verifies (LATEST first, then older generations), or null if there is none. */
export async function readLatestGeneration(
  tree: FileTree,
  base: string[],
): Promise<{ checkpoint: SessionCheckpoint; generation: string; fellBack: boolean } | null> {
  const ptr = parsePointer(await tree.read([...base, LATEST_FILE]));
  let gens = (await generations(tree, base)).reverse();
  if (ptr) gens = [ptr.generation, ...gens.filter((g) => seqOf(g) < seqOf(ptr.generation))];
  if (gens.length === 0) return null;
  const errors: string[] = [];
  for (const g of gens) {
    try {
      return { checkpoint: await readGeneration(tree, [...base, g]), generation: g, fellBack: g !== ptr?.generation };
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  throw new Error(`${[tree.describe, ...base].join('/')}: no stored checkpoint could be read: ${errors.join('; ')}`);
}

interface RunFile {
  id: string;
  name: string;
  created: string;
}

/** A RunStore over a FileTree: one directory per run. */
export class FileTreeRunStore extends BaseRunStore {
  constructor(
    readonly tree: FileTree,
    readonly kind: 'opfs' | 'node',
    opts: RunStoreOptions = {},
  ) {
    super(opts);
  }

  private async runFile(id: string): Promise<RunFile | null> {
    const b = await this.tree.read([id, RUN_FILE]);
    if (!b) return null;
    try {
      const r = JSON.parse(new TextDecoder().decode(b)) as RunFile;
      return typeof r.name === 'string' ? { id, name: r.name, created: String(r.created) } : null;
    } catch {
      return null;
    }
  }

  async info(id: string): Promise<RunInfo | null> {
    validateRunId(id);
    const rf = await this.runFile(id);
    const ptr = parsePointer(await this.tree.read([id, LATEST_FILE]));
    if (!rf && !ptr) return null;
    const gens = (await generations(this.tree, [id])).filter((g) => !ptr || seqOf(g) <= seqOf(ptr.generation));
    return {
      id,
      name: rf?.name ?? id,
      created: rf?.created ?? ptr?.summary.saved ?? '',
      latest: ptr?.summary ?? null,
      checkpoints: gens.length,
    };
  }

  async list(): Promise<RunInfo[]> {
    const out: RunInfo[] = [];
    for (const e of await this.tree.list([])) {
      if (e.kind !== 'directory' || !RUN_ID.test(e.name)) continue;
      const i = await this.info(e.name);
      if (i) out.push(i);
    }
    return out.sort((a, b) => (b.latest?.saved ?? b.created).localeCompare(a.latest?.saved ?? a.created));
  }

  async save(id: string, ck: SessionCheckpoint, opts: { name?: string } = {}): Promise<RunInfo> {
    validateRunId(id);
    if (opts.name !== undefined) this.checkName(opts.name);
    const files = await encodeCheckpointFiles(ck);
    const existing = await this.runFile(id);
    const fresh = !existing && (await this.tree.list([id])).length === 0;
    const rf: RunFile = existing ?? { id, name: opts.name ?? id, created: new Date().toISOString() };
    try {
      if (!existing || (opts.name !== undefined && opts.name !== rf.name)) {
        await this.tree.write([id, RUN_FILE], json({ ...rf, name: opts.name ?? rf.name }));
      }
      await writeGeneration(this.tree, [id], ck, this.keep, files);
    } catch (e) {
      if (fresh) await this.tree.remove([id]).catch(() => undefined);
      if (isQuotaError(e)) {
        const bytes = [...files.values()].reduce((s, b) => s + b.length, 0);
        throw new StorageQuotaError(
          bytes,
          this.tree.free ? await this.tree.free().catch(() => null) : null,
          `${this.tree.describe}/${id}`,
          e,
        );
      }
      throw e;
    }
    return (await this.info(id))!;
  }

  async loadLatest(id: string): Promise<SessionCheckpoint | null> {
    validateRunId(id);
    return (await readLatestGeneration(this.tree, [id]))?.checkpoint ?? null;
  }

  async rename(id: string, name: string): Promise<RunInfo> {
    this.checkName(name);
    const info = await this.info(id);
    if (!info) throw new Error(`no run ${id}`);
    await this.tree.write([id, RUN_FILE], json({ id, name, created: info.created }));
    return { ...info, name };
  }

  async delete(id: string): Promise<void> {
    validateRunId(id);
    await this.tree.remove([id]);
  }

  async putFile(id: string, name: string, text: string): Promise<void> {
    validateRunId(id);
    validateFileName(name);
    const bytes = new TextEncoder().encode(text);
    try {
      await this.tree.write([id, FILES_DIR, name], bytes);
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(
          bytes.length,
          this.tree.free ? await this.tree.free().catch(() => null) : null,
          `${this.tree.describe}/${id}`,
          e,
        );
      throw e;
    }
  }

  async getFile(id: string, name: string): Promise<string | null> {
    validateRunId(id);
    validateFileName(name);
    const b = await this.tree.read([id, FILES_DIR, name]);
    return b ? new TextDecoder().decode(b) : null;
  }

  async listFiles(id: string): Promise<string[]> {
    validateRunId(id);
    return (await this.tree.list([id, FILES_DIR]))
      .filter((e) => e.kind === 'file' && FILE_NAME.test(e.name))
      .map((e) => e.name)
      .sort();
  }
}

// ---------------------------------------------------------------------------------------------------------
// OPFS

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
    return storageFree();
  }
}

async function storageFree(): Promise<number | null> {
  const s = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!s?.estimate) return null;
  const e = await s.estimate();
  return e.quota !== undefined && e.usage !== undefined ? e.quota - e.usage : null;
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

// ---------------------------------------------------------------------------------------------------------
// IndexedDB

interface RunRecord {
  id: string;
  name: string;
  created: string;
  /** Committed generation numbers, oldest first. */
  seqs: number[];
  latest: { seq: number; summary: CheckpointSummary } | null;
}

interface CheckpointRecord {
  key: string;
  run: string;
  seq: number;
  json: string;
  tensors: ArrayBuffer;
}

const ckKey = (run: string, seq: number) => `${run}/${String(seq).padStart(9, '0')}`;
const fileKey = (run: string, name: string) => `${run}/${name}`;

interface FileRecord {
  key: string;
  run: string;
  name: string;
  text: string;
}

type IdbStores = { runs: IDBObjectStore; checkpoints: IDBObjectStore; files: IDBObjectStore };
const STORES = ['runs', 'checkpoints', 'files'];

/** A RunStore in IndexedDB (database "webtune-runs" unless given): one transaction per save. */
export class IndexedDbRunStore extends BaseRunStore {
  readonly kind = 'indexeddb' as const;
  private db: Promise<IDBDatabase> | null = null;
  private readonly factory: IDBFactory;
  private readonly dbName: string;

  constructor(opts: RunStoreOptions & { indexedDB?: IDBFactory; dbName?: string } = {}) {
    super(opts);
    const f = opts.indexedDB ?? (typeof indexedDB !== 'undefined' ? indexedDB : undefined);
    if (!f) throw new Error('IndexedDB is not available');
    this.factory = f;
    this.dbName = opts.dbName ?? 'webtune-runs';
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise<IDBDatabase>((resolve, reject) => {
      // version 2 added "files"
      const req = this.factory.open(this.dbName, 2);
      req.onupgradeneeded = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains('runs')) db.createObjectStore('runs', { keyPath: 'id' });
        if (!db.objectStoreNames.contains('checkpoints')) db.createObjectStore('checkpoints', { keyPath: 'key' });
        if (!db.objectStoreNames.contains('files')) db.createObjectStore('files', { keyPath: 'key' });
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error(`cannot open IndexedDB database ${this.dbName}`));
      req.onblocked = () => reject(new Error(`IndexedDB database ${this.dbName} is blocked by another tab`));
    });
    this.db.catch(() => {
      this.db = null;
    });
    return this.db;
  }

  /**
   * Run `body` in one transaction; resolves with what body's callbacks put in `out.value` once the transaction has
   * committed, rejects with the transaction's error if it aborts. Requests must be issued from request callbacks
   * (not after an await), as IndexedDB requires.
   */
  private async tx<T>(
    mode: IDBTransactionMode,
    body: (stores: IdbStores, out: { value?: T; error?: Error }, tx: IDBTransaction) => void,
  ): Promise<T | undefined> {
    const db = await this.open();
    return new Promise<T | undefined>((resolve, reject) => {
      const t = db.transaction(STORES, mode);
      const out: { value?: T; error?: Error } = {};
      t.oncomplete = () => (out.error ? reject(out.error) : resolve(out.value));
      t.onabort = () => reject(out.error ?? t.error ?? new Error('IndexedDB transaction aborted'));
      try {
        body(
          { runs: t.objectStore('runs'), checkpoints: t.objectStore('checkpoints'), files: t.objectStore('files') },
          out,
          t,
        );
      } catch (e) {
        out.error = e as Error;
        try {
          t.abort();
        } catch {
          /* already finished */
        }
      }
    });
  }

  private toInfo(r: RunRecord): RunInfo {
    return {
      id: r.id,
      name: r.name,
      created: r.created,
      latest: r.latest?.summary ?? null,
      checkpoints: r.seqs.length,
    };
  }

  async list(): Promise<RunInfo[]> {
    const recs = await this.tx<RunRecord[]>('readonly', ({ runs }, out) => {
      const q = runs.getAll();
      q.onsuccess = () => {
        out.value = q.result as RunRecord[];
      };
    });
    return (recs ?? [])
      .map((r) => this.toInfo(r))
      .sort((a, b) => (b.latest?.saved ?? b.created).localeCompare(a.latest?.saved ?? a.created));
  }

  private record(id: string): Promise<RunRecord | undefined> {
    return this.tx<RunRecord>('readonly', ({ runs }, out) => {
      const q = runs.get(id);
      q.onsuccess = () => {
        out.value = q.result as RunRecord | undefined;
      };
    });
  }

  async info(id: string): Promise<RunInfo | null> {
    validateRunId(id);
    const r = await this.record(id);
    return r ? this.toInfo(r) : null;
  }

  async save(id: string, ck: SessionCheckpoint, opts: { name?: string } = {}): Promise<RunInfo> {
    validateRunId(id);
    if (opts.name !== undefined) this.checkName(opts.name);
    const files = await encodeCheckpointFiles(ck);
    const jsonBytes = files.get(CHECKPOINT_JSON)!,
      tensors = files.get(CHECKPOINT_TENSORS)!;
    const bytes = jsonBytes.length + tensors.length;
    const summary = summarizeCheckpoint(ck.meta, bytes);
    const keep = this.keep;
    try {
      const rec = await this.tx<RunRecord>('readwrite', ({ runs, checkpoints }, out) => {
        const q = runs.get(id);
        q.onsuccess = () => {
          const prev = q.result as RunRecord | undefined;
          const r: RunRecord = prev
            ? { ...prev, seqs: [...prev.seqs], name: opts.name ?? prev.name }
            : { id, name: opts.name ?? id, created: new Date().toISOString(), seqs: [], latest: null };
          const seq = (r.seqs.length ? r.seqs[r.seqs.length - 1] : 0) + 1;
          const buf = tensors.buffer.slice(tensors.byteOffset, tensors.byteOffset + tensors.byteLength) as ArrayBuffer;
          const c: CheckpointRecord = {
            key: ckKey(id, seq),
            run: id,
            seq,
            json: new TextDecoder().decode(jsonBytes),
            tensors: buf,
          };
          checkpoints.put(c);
          r.seqs.push(seq);
          r.latest = { seq, summary };
          while (r.seqs.length > keep) checkpoints.delete(ckKey(id, r.seqs.shift()!));
          runs.put(r);
          out.value = r;
        };
      });
      return this.toInfo(rec!);
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(bytes, await storageFree().catch(() => null), `IndexedDB ${this.dbName}`, e);
      throw e;
    }
  }

  async loadLatest(id: string): Promise<SessionCheckpoint | null> {
    validateRunId(id);
    const r = await this.record(id);
    if (!r || !r.latest) return null;
    const order = [...r.seqs].reverse().filter((s) => s <= r.latest!.seq);
    const errors: string[] = [];
    for (const seq of order) {
      const c = await this.tx<CheckpointRecord>('readonly', ({ checkpoints }, out) => {
        const q = checkpoints.get(ckKey(id, seq));
        q.onsuccess = () => {
          out.value = q.result as CheckpointRecord | undefined;
        };
      });
      try {
        if (!c) throw new Error(`checkpoint ${seq} is missing`);
        return await decodeCheckpointFiles(
          { json: c.json, tensors: new Uint8Array(c.tensors) },
          `IndexedDB ${this.dbName}/${id}/${seq}`,
        );
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    throw new Error(`run ${id}: no stored checkpoint could be read: ${errors.join('; ')}`);
  }

  async rename(id: string, name: string): Promise<RunInfo> {
    validateRunId(id);
    this.checkName(name);
    const rec = await this.tx<RunRecord>('readwrite', ({ runs }, out) => {
      const q = runs.get(id);
      q.onsuccess = () => {
        const r = q.result as RunRecord | undefined;
        if (!r) {
          out.error = new Error(`no run ${id}`);
          return;
        }
        const n = { ...r, name };
        runs.put(n);
        out.value = n;
      };
    });
    return this.toInfo(rec!);
  }

  async delete(id: string): Promise<void> {
    validateRunId(id);
    await this.tx<void>('readwrite', ({ runs, checkpoints, files }) => {
      const f = files.getAll();
      f.onsuccess = () => {
        for (const r of f.result as FileRecord[]) if (r.run === id) files.delete(r.key);
      };
      const q = runs.get(id);
      q.onsuccess = () => {
        const r = q.result as RunRecord | undefined;
        if (!r) return;
        for (const s of r.seqs) checkpoints.delete(ckKey(id, s));
        runs.delete(id);
      };
    });
  }

  async putFile(id: string, name: string, text: string): Promise<void> {
    validateRunId(id);
    validateFileName(name);
    try {
      await this.tx<void>('readwrite', ({ files }) => {
        const rec: FileRecord = { key: fileKey(id, name), run: id, name, text };
        files.put(rec);
      });
    } catch (e) {
      if (isQuotaError(e))
        throw new StorageQuotaError(
          new TextEncoder().encode(text).length,
          await storageFree().catch(() => null),
          `IndexedDB ${this.dbName}`,
          e,
        );
      throw e;
    }
  }

  async getFile(id: string, name: string): Promise<string | null> {
    validateRunId(id);
    validateFileName(name);
    const r = await this.tx<FileRecord>('readonly', ({ files }, out) => {
      const q = files.get(fileKey(id, name));
      q.onsuccess = () => {
        out.value = q.result as FileRecord | undefined;
      };
    });
    return r?.text ?? null;
  }

  async listFiles(id: string): Promise<string[]> {
    validateRunId(id);
    const recs = await this.tx<FileRecord[]>('readonly', ({ files }, out) => {
      const q = files.getAll();
      q.onsuccess = () => {
        out.value = q.result as FileRecord[];
      };
    });
    return (recs ?? [])
      .filter((r) => r.run === id)
      .map((r) => r.name)
      .sort();
  }

  /** Close the database connection (tests; a page simply drops it). */
  async close(): Promise<void> {
    const db = this.db;
    this.db = null;
    if (db) (await db).close();
  }
}

// ---------------------------------------------------------------------------------------------------------

/**
 * The browser's best store: OPFS when it works here (probed with a small write), else IndexedDB.
 * Call persistStorage() once (e.g. on the first save) so the browser does not evict runs under storage pressure.
 */
export async function openBrowserRunStore(opts: RunStoreOptions = {}): Promise<RunStore> {
  let opfsError: unknown;
  try {
    const store = await openOpfsRunStore(opts);
    const probe = ['.probe'];
    await store.tree.write(probe, new Uint8Array([1]));
    await store.tree.remove(probe);
    return store;
  } catch (e) {
    opfsError = e;
  }
  try {
    return new IndexedDbRunStore(opts);
  } catch (e) {
    throw new Error(
      `no persistent storage in this browser: OPFS failed (${(opfsError as Error)?.message ?? opfsError}) and ${(e as Error).message}`,
      { cause: e },
    );
  }
}

/** Ask the browser to keep this origin's storage under pressure (navigator.storage.persist); false if refused/unavailable. */
export async function persistStorage(): Promise<boolean> {
  const s = typeof navigator !== 'undefined' ? navigator.storage : undefined;
  if (!s?.persist) return false;
  try {
    return await s.persist();
  } catch {
    return false;
  }
}
