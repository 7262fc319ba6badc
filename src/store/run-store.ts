/**
 * The RunStore interface (where training runs are kept between page loads and CLI invocations), its types, run ids
 * and names, and what every store shares: argument checks and export/import of a run as one bundle file.
 *
 *   const store = await openBrowserRunStore();          // ./browser.ts: OPFS, else IndexedDB; Node: ./node.ts
 *   await store.save(runId, await session.checkpoint()); // atomic: the previous checkpoint stays until this one is complete
 *   const ck = await store.loadLatest(runId);            // → FinetuneSession.resume({ model, tokenizer, data }, ck)
 *   const file = await store.exportRun(runId);           // one file (.webtune.safetensors) → importRun(file) elsewhere
 *
 * Runs have a stable id (newRunId(); letters, digits, '.', '_', '-') and a display name (rename()).
 * Implementations: ./file-tree-store.ts over a file tree (./opfs.ts, ./node.ts; layout in ./generations.ts) and
 * ./indexeddb.ts. A full disk or quota becomes a StorageQuotaError (./quota.ts); nothing saved before is touched.
 *
 * Browser-safe: no node: imports.
 */
import {
  decodeCheckpointBundle,
  describeCheckpoint,
  encodeCheckpointBundle,
  type CheckpointMeta,
  type SessionCheckpoint,
} from '../train/checkpoint';

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

/** What a run id may be (see validateRunId). */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function validateRunId(id: string): void {
  if (typeof id !== 'string' || !RUN_ID.test(id)) {
    throw new Error(
      `invalid run id ${JSON.stringify(id)}: use 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

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

/** A fresh run id from a display name: "<slug>-<time>-<random>". */
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
/** What a run file name may be (see validateFileName). */
export const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function validateFileName(name: string): void {
  if (typeof name !== 'string' || !FILE_NAME.test(name)) {
    throw new Error(
      `invalid run file name ${JSON.stringify(name)}: use 1–100 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    );
  }
}

/** export/import and argument checks shared by the stores. */
export abstract class BaseRunStore implements RunStore {
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
