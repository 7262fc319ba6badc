/**
 * The engine worker's state: one object holding the backend in use, the loaded model and dataset, the training job,
 * the control flags shared with the page, the tensor-work queue and the run store; created once by engine.worker.ts
 * and passed to every part of the API. Also the checks the API's methods share (a model is loaded, nothing trains).
 */
import type { CausalLM } from '../engine/model';
import type { Tokenizer } from '../io/tokenizer';
import type { RunStore } from '../store/run-store';
import type { CheckpointOptions } from '../train/checkpoint';
import type { FinetuneConfig } from '../train/config';
import type { SessionDataset } from '../train/dataset';
import type { BackendStatus, DatasetInput, ModelInfo, ModelSource } from './api';
import { CONTROL, CONTROL_SLOTS } from './api';
import type { ControlFlags, TrainingJob } from './training-job';

export interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  info: ModelInfo;
  tokenizerFiles: Map<string, Uint8Array>;
  baseModel: string;
  /** Where it came from (reloaded from there after a lost GPU). */
  source: ModelSource;
}

export interface LoadedData {
  input: DatasetInput;
  name: string;
  config: FinetuneConfig;
  prepared: SessionDataset;
}

export interface WorkerState {
  backend: BackendStatus | null;
  loaded: LoadedModel | null;
  data: LoadedData | null;
  /** The training the page started (running, paused or ended: its metrics stay exportable). */
  job: TrainingJob | null;
  /** Where the adapter on the model came from ('' when trained here). */
  adapterOrigin: string;
  /** An imported adapter's warnings (which checkpoint was taken, modules_to_save not applied). */
  adapterWarnings: string[];
  /** Pause/stop/abort flags: in the page's SharedArrayBuffer when it sent one (see api.ts CONTROL), else local. */
  controlView: Int32Array;
  readonly control: ControlFlags;
  /** The abort signal generation and evaluation poll between tokens. */
  readonly generation: { readonly aborted: boolean };
  /** Set when the WebGPU device the model lives on is lost (device.lost resolved). */
  deviceLost: { reason: string; message: string } | null;
  /** Tensor work, one call at a time (see exclusive). */
  queue: Promise<unknown>;
  /** The worker's run store, opened on first use (see stored-runs.ts runStore). */
  store: Promise<RunStore> | null;
  /** Whether persistent storage was asked for already. */
  persistAsked: boolean;
  /** The heartbeat for the page's watchdog: call it during long work. */
  readonly beat: () => void;
}

export function createState(beat: () => void): WorkerState {
  const s: WorkerState = {
    backend: null,
    loaded: null,
    data: null,
    job: null,
    adapterOrigin: '',
    adapterWarnings: [],
    controlView: new Int32Array(CONTROL_SLOTS),
    control: {
      get: (flag) => Atomics.load(s.controlView, CONTROL[flag]) !== 0,
      set: (flag, on) => {
        Atomics.store(s.controlView, CONTROL[flag], on ? 1 : 0);
      },
    },
    generation: {
      get aborted() {
        return s.control.get('abortGeneration');
      },
    },
    deviceLost: null,
    queue: Promise.resolve(),
    store: null,
    persistAsked: false,
    beat,
  };
  return s;
}

/** Run tensor work after the calls queued before it (one at a time). */
export function exclusive<T>(s: WorkerState, fn: () => Promise<T>): Promise<T> {
  const next = s.queue.then(fn, fn);
  s.queue = next.catch(() => undefined);
  return next;
}

export function requireModel(s: WorkerState): LoadedModel {
  if (!s.loaded) throw new Error('No model is loaded: load one in step 1.');
  return s.loaded;
}

export function requireData(s: WorkerState): LoadedData {
  if (!s.data) throw new Error('No dataset is loaded: load one in step 2.');
  return s.data;
}

/** For work that may happen while a run is paused (generate, evaluate, export, estimate). */
export function assertIdle(s: WorkerState, what: string): void {
  if (s.job?.state === 'running') throw new Error(`Cannot ${what} while training runs: pause or stop it first.`);
}

/** For changes a paused run could not survive (model, data, backend, adapter). */
export function assertNoRun(s: WorkerState, what: string): void {
  if (s.job?.state === 'running' || s.job?.state === 'paused')
    throw new Error(`Cannot ${what} during a training run: stop it first.`);
}

/** What a checkpoint of the loaded model records about it. */
export function checkpointOptions(m: LoadedModel): CheckpointOptions {
  return { modelId: m.baseModel };
}

/** The API's control part: share the page's control flags. */
export function controlApi(s: WorkerState) {
  return {
    /** Share the page's control flags (a SharedArrayBuffer of CONTROL_SLOTS Int32 slots). */
    async setControl(buffer: SharedArrayBuffer): Promise<void> {
      if (buffer.byteLength < CONTROL_SLOTS * 4) throw new Error('control buffer too small');
      s.controlView = new Int32Array(buffer, 0, CONTROL_SLOTS);
    },
  };
}
