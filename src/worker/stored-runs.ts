/**
 * Stored runs as the page sees them: the worker's RunStore (OPFS, else IndexedDB), the page's StoredRun rows, the
 * saver that stores a training job's checkpoints, and the API to list, rename, delete, export and import stored runs.
 * (What each run was trained on, its source.json, is in ./run-source.ts; resuming one is training: ./training.ts.)
 */
import { openBrowserRunStore, persistStorage } from '../store/browser';
import { StorageQuotaError } from '../store/quota';
import { newRunId, slugify, type RunInfo, type RunStore } from '../store/run-store';
import { BUNDLE_EXTENSION, type SessionCheckpoint } from '../train/checkpoint';
import type { FinetuneSession } from '../train/session';
import type {
  DatasetInput,
  ExportedFile,
  RunOptions,
  RunSource,
  RunStoreKind,
  RunsReport,
  StoredRun,
  TrainEvent,
  FinetuneConfig,
} from './api';
import { exportedFile } from './exported-file';
import { datasetOf, readRunSource, runSourceOf, writeRunSource } from './run-source';
import { checkpointOptions, type LoadedData, type LoadedModel, type WorkerState } from './state';
import type { CheckpointSaver } from './training-job';

/** The worker's run store (opened once; a failure is reported and retried on the next call). */
export function runStore(s: WorkerState): Promise<RunStore> {
  const store = (s.store ??= openBrowserRunStore());
  store.catch(() => {
    if (s.store === store) s.store = null;
  });
  return store;
}

/** runStore for the API's stored-run calls: a failure says runs cannot be stored here. */
export function requireStore(s: WorkerState): Promise<RunStore> {
  return runStore(s).catch((e) => {
    throw new Error(`Runs cannot be stored in this browser: ${(e as Error).message}`);
  });
}

/** Ask once for persistent storage, so the browser does not evict runs under pressure. */
async function askPersist(s: WorkerState): Promise<void> {
  if (s.persistAsked) return;
  s.persistAsked = true;
  await persistStorage();
}

/** A saver of a run's checkpoints to the worker's store. */
export function storeSaver(s: WorkerState, runId: string, name: string, store: RunStore, lastSavedStep = -1) {
  return new StoreSaver(runId, name, store, lastSavedStep, () => void askPersist(s));
}

/** readRunSource for listing: a damaged record becomes what the row says instead of an error for the whole list. */
async function runSourceForList(s: RunStore, id: string): Promise<RunSource | string | null> {
  try {
    return await readRunSource(s, id, { bodies: false });
  } catch (e) {
    return (e as Error).message;
  }
}

export function storedRun(info: RunInfo, kept: RunSource | string | null): StoredRun {
  const st = info.latest?.status;
  const src = typeof kept === 'string' ? null : kept;
  const needs =
    typeof kept === 'string'
      ? `the model and dataset it was trained on (its record is damaged: ${kept})`
      : !src
        ? 'the model and dataset it was trained on (this run has no record of them)'
        : src.model.kind === 'files' && !src.data
          ? `the model files (${src.model.files.join(', ')}) and the dataset ${src.dataName}`
          : src.model.kind === 'files'
            ? `the model files (${src.model.files.join(', ')})`
            : !src.data
              ? `the dataset ${src.dataName}`
              : null;
  return {
    id: info.id,
    name: info.name,
    created: info.created,
    latest: info.latest,
    checkpoints: info.checkpoints,
    unfinished: !!info.latest && st !== 'completed',
    modelName: src?.modelName ?? info.latest?.model_id ?? null,
    dataName: src?.dataName ?? null,
    backend: src?.backend ?? null,
    needs,
  };
}

export async function listRuns(ws: WorkerState): Promise<RunsReport> {
  let s: RunStore;
  try {
    s = await runStore(ws);
  } catch (e) {
    return { store: null, error: (e as Error).message, runs: [], usage: null };
  }
  const runs: StoredRun[] = [];
  for (const info of await s.list()) runs.push(storedRun(info, await runSourceForList(s, info.id)));
  let usage: RunsReport['usage'] = null;
  try {
    const e = await navigator.storage?.estimate?.();
    if (e && e.quota !== undefined && e.usage !== undefined) usage = { used: e.usage, quota: e.quota };
  } catch {
    /* not available */
  }
  return { store: s.kind as RunStoreKind, runs, usage };
}

/** Saves a run's checkpoints to the store, reporting each as a 'checkpoint' event; a failure never stops training. */
export class StoreSaver implements CheckpointSaver {
  /** lastSavedStep: a resumed run starts from its stored checkpoint's step. */
  constructor(
    readonly runId: string,
    public name: string,
    private readonly s: RunStore,
    public lastSavedStep = -1,
    /** Called after each checkpoint stored (the worker asks for persistent storage then). */
    private readonly onSaved: () => void = () => undefined,
  ) {}

  rename(name: string): void {
    this.name = name;
  }

  async save(ck: SessionCheckpoint, onEvent: (e: TrainEvent) => void): Promise<void> {
    const step = ck.meta.progress.global_step;
    try {
      const info = await this.s.save(this.runId, ck, { name: this.name });
      this.lastSavedStep = step;
      onEvent({
        type: 'checkpoint',
        ok: true,
        runId: this.runId,
        step,
        bytes: info.latest?.bytes ?? 0,
        store: this.s.kind as RunStoreKind,
      });
      this.onSaved();
    } catch (e) {
      const q = e instanceof StorageQuotaError ? e : null;
      const kept =
        this.lastSavedStep >= 0
          ? `the checkpoint of step ${this.lastSavedStep} is kept`
          : 'no earlier checkpoint of this run exists';
      const message = q
        ? `${q.message.replace(/The previous checkpoint is kept\. /, '')} Training goes on; ${kept}.`
        : `Could not save the checkpoint of step ${step}: ${(e as Error).message}. Training goes on; ${kept}.`;
      onEvent({
        type: 'checkpoint',
        ok: false,
        runId: this.runId,
        step,
        message,
        neededBytes: q?.needed ?? null,
        freeBytes: q?.available ?? null,
      });
    }
  }
}

/** A new run's name unless the page gives one: "<model> · <dataset> · <local date and time>", distinct for each run. */
export function defaultRunName(model: string, data: string, at: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  const when = `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())} ${p(at.getHours())}:${p(at.getMinutes())}:${p(at.getSeconds())}`;
  return `${model} · ${data} · ${when}`;
}

/** Start storing a new run: its source.json, then its step-0 checkpoint. Null (with an event) when storage fails. */
export async function storeNewRun(
  ws: WorkerState,
  session: FinetuneSession,
  m: LoadedModel,
  d: LoadedData,
  settings: FinetuneConfig,
  options: RunOptions,
  onEvent: (e: TrainEvent) => void,
): Promise<StoreSaver | null> {
  const name = options.runName?.trim() || defaultRunName(m.info.name, d.name, new Date());
  let s: RunStore;
  try {
    s = await runStore(ws);
  } catch (e) {
    onEvent({
      type: 'checkpoint',
      ok: false,
      runId: '',
      step: 0,
      message: `This run is not saved: ${(e as Error).message}`,
      neededBytes: null,
      freeBytes: null,
    });
    return null;
  }
  const id = newRunId(name);
  const source = runSourceOf({
    model: m.source,
    modelName: m.info.name,
    data: d.input,
    dataName: d.name,
    settings,
    runOptions: options,
    backend: ws.backend!.backend,
    catalogId: options.catalogId ?? null,
  });
  const saver = storeSaver(ws, id, name, s);
  try {
    await writeRunSource(s, id, source);
  } catch (e) {
    onEvent({
      type: 'checkpoint',
      ok: false,
      runId: id,
      step: 0,
      message: `This run is not saved: ${(e as Error).message}`,
      neededBytes: null,
      freeBytes: null,
    });
    return null;
  }
  await saver.save(await session.checkpoint(checkpointOptions(m)), onEvent);
  return saver;
}

/** The API's stored-runs part (resumeRun is in ./training.ts). */
export function storedRunsApi(ws: WorkerState) {
  return {
    /** Runs stored in this browser, most recently saved first. */
    listRuns(): Promise<RunsReport> {
      return listRuns(ws);
    },

    /** What a stored run was trained on (to load it again before resumeRun), with its kept dataset; null without a record. */
    async runSource(runId: string): Promise<{ source: RunSource; dataset: DatasetInput | null } | null> {
      const source = await readRunSource(await requireStore(ws), runId);
      return source && { source, dataset: datasetOf(source) };
    },

    async renameRun(runId: string, name: string): Promise<StoredRun> {
      const s = await requireStore(ws);
      const info = await s.rename(runId, name.trim());
      if (ws.job?.saver?.runId === runId) ws.job.saver.rename(info.name);
      return storedRun(info, await readRunSource(s, runId, { bodies: false }).catch((e: Error) => e.message));
    },

    async deleteRun(runId: string): Promise<void> {
      if (ws.job?.saver?.runId === runId && (ws.job.state === 'running' || ws.job.state === 'paused'))
        throw new Error('This run is in progress: stop it before deleting it.');
      await (await requireStore(ws)).delete(runId);
    },

    /** A stored run as one file (its latest checkpoint, its source and dataset): <name>.webtune.safetensors. */
    async exportRun(runId: string): Promise<ExportedFile> {
      const s = await requireStore(ws);
      const info = await s.info(runId);
      if (!info) throw new Error(`There is no stored run ${runId}.`);
      return exportedFile(`${slugify(info.name, 60)}${BUNDLE_EXTENSION}`, await s.exportRun(runId));
    },

    /** Store a file made by exportRun as a new run. */
    async importRun(name: string, bytes: Uint8Array): Promise<StoredRun> {
      const s = await requireStore(ws);
      let info;
      try {
        info = await s.importRun(bytes);
      } catch (e) {
        throw new Error(`${name}: ${(e as Error).message.replace(/^imported file: /, '')}`, { cause: e });
      }
      return storedRun(info, await readRunSource(s, info.id, { bodies: false }).catch((e: Error) => e.message));
    },
  };
}
