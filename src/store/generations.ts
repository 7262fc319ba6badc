/**
 * The generation protocol of a run kept as files, over a minimal FileTree (OPFS in ./opfs.ts, a folder in ./node.ts):
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
 * Browser-safe: no node: imports.
 */
import {
  CHECKPOINT_JSON,
  CHECKPOINT_TENSORS,
  decodeCheckpointFiles,
  encodeCheckpointFiles,
  type SessionCheckpoint,
} from '../train/checkpoint';
import { isQuotaError, StorageQuotaError } from './quota';
import { summarizeCheckpoint, type CheckpointSummary } from './run-store';

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
/** The generation number of a ckpt-NNNNNN name. */
export const seqOf = (name: string) => Number(GEN.exec(name)![1]);
export const LATEST_FILE = 'LATEST';
export const RUN_FILE = 'run.json';
/** Folder of a run's putFile files. */
export const FILES_DIR = 'files';

/** The LATEST file: the committed generation and its summary. */
export interface Pointer {
  generation: string;
  summary: CheckpointSummary;
}

/** LATEST's contents, or null when missing or unreadable (torn by a crash). */
export function parsePointer(bytes: Uint8Array | null): Pointer | null {
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

/** A value as the JSON bytes the store writes (run.json, LATEST). */
export const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v, null, 1));

/** The generation directories under `base`, oldest first. */
export async function generations(tree: FileTree, base: string[]): Promise<string[]> {
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
