/**
 * Stored runs as the page sees them: the worker's RunStore (OPFS, else IndexedDB), each run's source.json (what it was
 * trained on, so Resume can rebuild it after a reload), and the page's StoredRun rows.
 */
import { openBrowserRunStore, persistStorage, StorageQuotaError, type RunInfo, type RunStore } from '../io/run-store';
import type { SessionCheckpoint } from '../train/checkpoint';
import type {
  BackendName, DatasetInput, ModelSource, RunOptions, RunSource, RunSourceFile, RunStoreKind, RunsReport, StoredRun, TrainEvent, TrainSettings,
} from './api';
import type { RunSaver } from './run';

export const SOURCE_FILE = 'source.json';
/** Datasets up to this size are kept with the run (bigger ones must be loaded again to resume). */
export const MAX_KEPT_DATASET_BYTES = 64 * 1024 * 1024;

let store: Promise<RunStore> | null = null;

/** The worker's run store (opened once; a failure is reported and retried on the next call). */
export function runStore(): Promise<RunStore> {
  store ??= openBrowserRunStore();
  store.catch(() => { store = null; });
  return store;
}

let persistAsked = false;

/** Ask once for persistent storage, so the browser does not evict runs under pressure. */
async function askPersist(): Promise<void> {
  if (persistAsked) return;
  persistAsked = true;
  await persistStorage();
}

function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string, where: string): Uint8Array {
  let s: string;
  try {
    s = atob(b64);
  } catch {
    throw new Error(`${where}: the kept dataset file is not valid base64`);
  }
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function keptFile(f: DatasetInput['files'][number]): RunSourceFile {
  if (typeof f.data === 'string') return { name: f.name, role: f.role, text: f.data };
  try {
    return { name: f.name, role: f.role, text: new TextDecoder('utf-8', { fatal: true }).decode(f.data) };
  } catch {
    return { name: f.name, role: f.role, base64: toBase64(f.data) };
  }
}

/** The dataset input a run's source.json kept. */
export function datasetOf(src: RunSource): DatasetInput | null {
  if (!src.data) return null;
  return {
    files: src.data.files.map(f => ({
      name: f.name, role: f.role, data: f.text !== undefined ? f.text : fromBase64(f.base64 ?? '', `${SOURCE_FILE} (${f.name})`),
    })),
  };
}

export function runSourceOf(p: {
  model: ModelSource; modelName: string; data: DatasetInput; dataName: string; settings: TrainSettings; runOptions: RunOptions; backend: BackendName; catalogId: string | null;
}): RunSource {
  const bytes = p.data.files.reduce((s, f) => s + (typeof f.data === 'string' ? f.data.length : f.data.byteLength), 0);
  return {
    version: 1,
    model: p.model.kind === 'hub'
      ? { kind: 'hub', source: { ...p.model, files: p.model.files.map(f => ({ ...f })) }, catalogId: p.catalogId }
      : { kind: 'files', name: p.model.name ?? 'local model', files: p.model.files.map(f => f.path) },
    modelName: p.modelName,
    data: bytes <= MAX_KEPT_DATASET_BYTES ? { name: p.dataName, files: p.data.files.map(keptFile) } : null,
    dataName: p.dataName,
    settings: p.settings,
    runOptions: p.runOptions,
    backend: p.backend,
  };
}

/** A run's source.json, or null (a run imported without one, or an unreadable file). */
export async function readRunSource(s: RunStore, id: string): Promise<RunSource | null> {
  const text = await s.getFile(id, SOURCE_FILE);
  if (text === null) return null;
  try {
    const j = JSON.parse(text) as RunSource;
    return j && j.version === 1 && j.model && j.settings ? j : null;
  } catch {
    return null;
  }
}

export function storedRun(info: RunInfo, src: RunSource | null): StoredRun {
  const st = info.latest?.status;
  const needs = !src ? 'the model and dataset it was trained on (this run has no record of them)'
    : src.model.kind === 'files' && !src.data ? `the model files (${src.model.files.join(', ')}) and the dataset ${src.dataName}`
    : src.model.kind === 'files' ? `the model files (${src.model.files.join(', ')})`
    : !src.data ? `the dataset ${src.dataName}` : null;
  return {
    id: info.id, name: info.name, created: info.created, latest: info.latest, checkpoints: info.checkpoints,
    unfinished: !!info.latest && st !== 'completed',
    modelName: src?.modelName ?? info.latest?.model_id ?? null,
    dataName: src?.dataName ?? null,
    needs,
  };
}

export async function listRuns(): Promise<RunsReport> {
  let s: RunStore;
  try {
    s = await runStore();
  } catch (e) {
    return { store: null, error: (e as Error).message, runs: [], usage: null };
  }
  const runs: StoredRun[] = [];
  for (const info of await s.list()) runs.push(storedRun(info, await readRunSource(s, info.id)));
  let usage: RunsReport['usage'] = null;
  try {
    const e = await navigator.storage?.estimate?.();
    if (e && e.quota !== undefined && e.usage !== undefined) usage = { used: e.usage, quota: e.quota };
  } catch { /* not available */ }
  return { store: s.kind as RunStoreKind, runs, usage };
}

/** Saves a run's checkpoints to the store, reporting each as a 'checkpoint' event; a failure never stops training. */
export class StoreSaver implements RunSaver {
  /** Step of the last checkpoint that was stored, -1 before the first. */
  lastSavedStep = -1;

  constructor(readonly runId: string, private name: string, private readonly s: RunStore) {}

  /** The run was renamed meanwhile: later saves keep the new name. */
  rename(name: string): void { this.name = name; }

  async save(ck: SessionCheckpoint, onEvent: (e: TrainEvent) => void): Promise<void> {
    const step = ck.meta.progress.global_step;
    try {
      const info = await this.s.save(this.runId, ck, { name: this.name });
      this.lastSavedStep = step;
      onEvent({ type: 'checkpoint', ok: true, runId: this.runId, step, bytes: info.latest?.bytes ?? 0, store: this.s.kind as RunStoreKind });
      void askPersist();
    } catch (e) {
      const q = e instanceof StorageQuotaError ? e : null;
      const kept = this.lastSavedStep >= 0 ? `the checkpoint of step ${this.lastSavedStep} is kept` : 'no earlier checkpoint of this run exists';
      const message = q
        ? `${q.message.replace(/The previous checkpoint is kept\. /, '')} Training goes on; ${kept}.`
        : `Could not save the checkpoint of step ${step}: ${(e as Error).message}. Training goes on; ${kept}.`;
      onEvent({ type: 'checkpoint', ok: false, runId: this.runId, step, message, neededBytes: q?.needed ?? null, freeBytes: q?.available ?? null });
    }
  }
}

