/**
 * The engine worker's API as the page sees it (through Comlink): plain, structured-cloneable data only.
 * The worker (engine.worker.ts) implements EngineApi; the page (src/ui/engine.ts) wraps it.
 *
 * Callbacks (progress, training events, streamed tokens) are passed wrapped in Comlink.proxy by the page.
 * Every method rejects with an Error whose message is meant for people (file, line, what to do).
 */
import type { BackendChoice, BackendName, InitOptions } from '../engine/backend';
import type { ModelFamily } from '../engine/config';
import type { FrozenDtype } from '../engine/frozen';
import type { LoraConfig } from '../engine/lora-config';
import type { KernelProbeReport } from '../engine/kernel-probe';
import type { KernelCheckReport } from '../engine/webgpu-kernel-check';
import type { DatasetReport, TemplateName } from '../data';
import type { GenerationEvalExample, GenerationEvalResult } from '../train/evaluate';
import type { EvalMetrics, SessionMetrics } from '../train/metrics';
import type { FinetuneConfig } from '../train/config';
import type { MemoryEstimate } from '../train/estimate';
import type { CheckpointSummary } from '../store/run-store';
import type { BenchLine, WorkloadRequest } from '../train/benchmark';
import type { StorageFit } from '../train/memory-guard';

// What the page needs from the layers below, as plain types and tf-free values: src/ui imports only this file.
export type { BackendChoice, BackendName };
export type { DatasetReport, RowError, TemplateName, TemplateSpec } from '../data';
export type { ScheduleName } from '../train/schedule';
export { DEFAULT_FINETUNE_CONFIG, type FinetuneConfig } from '../train/config';
export { defaultTargets } from '../engine/lora-config';
export { FROZEN_DTYPES, type FrozenDtype } from '../engine/frozen';
export type { StorageFit } from '../train/memory-guard';
export { formatBytes } from '../util/bytes';
/** Backend options: `threads` for wasm (default navigator.hardwareConcurrency). */
export type BackendOptions = InitOptions;

/**
 * Control flags the page sets and the worker polls (pause/stop before each training step, abort between
 * generated tokens). A long run on wasm/cpu never yields to the worker's event loop, so a message would wait
 * for the run to end: when the page is cross-origin isolated they live in a SharedArrayBuffer (Int32 slots).
 */
export const CONTROL = { pause: 0, stop: 1, abortGeneration: 2 } as const;
export const CONTROL_SLOTS = 4;
export type ControlFlag = keyof typeof CONTROL;

// ---------------------------------------------------------------------------------------------------------
// Backends

export interface WebGpuAdapterReport {
  available: boolean;
  reason?: string;
  /** GPUAdapterInfo: e.g. vendor 'google', architecture 'swiftshader' for the software adapter. */
  info?: { vendor: string; architecture: string; device: string; description: string };
  isFallbackAdapter?: boolean;
  features?: string[];
  limits?: Record<string, number>;
}

export interface BackendProbeReport extends KernelProbeReport {
  userAgent: string;
  /** Whether the worker is cross-origin isolated (COOP/COEP served correctly). */
  crossOriginIsolated: boolean;
  webgpuAdapter: WebGpuAdapterReport;
  ms: number;
}

/** The backend in use and how it was chosen. */
export interface BackendStatus {
  requested: BackendChoice;
  backend: BackendName;
  /** Backends tried before the one in use, each with why it was skipped. */
  fallbacks: { backend: BackendName; reason: string }[];
  webgpu: WebGpuAdapterReport;
  crossOriginIsolated: boolean;
  /** wasm only: whether the SIMD build runs. */
  wasmSimd?: boolean;
  /** wasm only: whether webtune's own SIMD kernels run (src/engine/wasm-kernels.ts; else tfjs's own ops do). */
  wasmKernels?: boolean;
  /** wasm only: whether those kernels' products use relaxed SIMD's fused multiply-add (else a multiply and an add). */
  wasmRelaxedSimd?: boolean;
  /** wasm only: threads our kernels' large products run on (the engine worker and the helpers that started). */
  wasmKernelThreads?: number;
  /** wasm only: threads the engine's products run on (our kernels; tfjs's own pool runs one), and why fewer than asked. */
  wasmThreads?: number;
  wasmThreadsNote?: string;
}

// ---------------------------------------------------------------------------------------------------------
// Models

/** Where a model comes from: a Hub(-layout) repository, or files the user picked or dropped. */
export type ModelSource =
  | {
      kind: 'hub';
      /** e.g. https://huggingface.co or the dev server's http://host/hub mirror. */
      baseUrl: string;
      repo: string;
      revision?: string;
      /** The files to read (a file may come from another repo, e.g. a tokenizer). */
      files: { path: string; repo?: string; size?: number; role?: string }[];
      format: 'llama2c' | 'hf';
      name: string;
    }
  | { kind: 'files'; files: { path: string; file: Blob }[]; name?: string };

/** How to load a model: frozen_dtype keeps the frozen weights as 16-bit or 8-bit (see FinetuneConfig.frozen_dtype). */
export interface LoadOptions {
  frozen_dtype?: FrozenDtype;
}

/** Byte progress of one file. `cached`: served from the page's Cache Storage (no download). */
export interface LoadProgress {
  file: string;
  loaded: number;
  total: number | null;
  cached: boolean;
  /** 'download' while bytes arrive, then 'prepare' while weights are decoded and uploaded to the backend. */
  phase: 'download' | 'prepare';
}

/** Where a model would come from if loaded now. */
export type ModelAvailability =
  | { kind: 'cached' }
  | { kind: 'server'; bytes: number }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'unknown' };

export interface ModelInfo {
  name: string;
  /** Human-readable origin, e.g. the repo URL or "local folder …". */
  source: string;
  family: ModelFamily;
  architecture: string;
  params: number;
  vocabSize: number;
  hiddenSize: number;
  layers: number;
  contextLength: number;
  /** Short names of the linear layers LoRA can target (q_proj, …, or c_attn, …). */
  linearModules: string[];
  hasChatTemplate: boolean;
  /** Template a dataset gets by default with this tokenizer. */
  defaultTemplate: TemplateName;
  backend: BackendName;
  /** How the frozen weights are stored. */
  frozenDtype: FrozenDtype;
  /** Bytes read, and how many of them came from the Cache Storage. */
  bytes: number;
  cachedBytes: number;
  ms: number;
}

// ---------------------------------------------------------------------------------------------------------
// Data

export type DatasetRole = 'train' | 'validation' | 'test';

export interface DatasetInput {
  /** Training files (validation / test splits are cut from them by val_size / test_size unless given as files). */
  files: { name: string; data: Uint8Array | string; role: DatasetRole }[];
}

export interface DatasetInfo {
  name: string;
  /** As the run will see the data (template, max_length, eos_token, splits of the current settings). */
  report: DatasetReport;
  /** Prompts of the held-out split (test, else validation) for the playground, with their references. */
  prompts: { instruction: string; input: string; reference: string }[];
  warnings: string[];
}

// ---------------------------------------------------------------------------------------------------------
// Training

export interface Estimate {
  /** The session's memory and size estimate for these settings and data. */
  memory: MemoryEstimate;
  /** Adapted linear layers. */
  adaptedModules: number;
  /** Measured on the current backend (a few real optimizer steps on a scratch adapter); null when not measured. */
  msPerStep: number | null;
  backend: BackendName;
  warnings: string[];
  /** Whether the run's peak memory (as measured per backend) fits what this backend can hold. */
  fit: {
    neededBytes: number;
    limitBytes: number | null;
    fits: boolean;
    /** What it needs and what to reduce, when it does not fit. */ advice: string;
  };
}

/** How a run reports and saves, beyond the session's settings. */
export interface RunOptions {
  /** Held-out prompts generated from at each evaluation (0 = none). */
  samplePrompts: number;
  sampleMaxNewTokens: number;
  /**
   * Checkpoint to the browser's storage every save_steps optimizer steps (HF TrainingArguments.save_steps; 0 = only on
   * pause, stop and at the end). Runs are always saved on pause, stop and completion.
   */
  saveSteps?: number;
  /** Display name of the stored run (default: "<model> · <dataset> · <local date and time>"). */
  runName?: string;
  /** The page's catalog entry of the model, kept with the run (its presets apply again on resume). */
  catalogId?: string | null;
}

/** A logging window's metrics (every logging_steps steps), with the run's totals. */
export type TrainMetricsEvent = SessionMetrics & {
  type: 'metrics';
  totalSteps: number;
  /** Trained tokens so far. */
  tokensSoFar: number;
  /** Training time so far (pauses excluded). */
  elapsedMs: number;
};

/** Validation loss after a step. */
export type TrainEvalEvent = EvalMetrics & { type: 'eval' };

/** Greedy generations for a few held-out prompts after a step. */
export interface TrainSamplesEvent {
  type: 'samples';
  step: number;
  samples: GenerationEvalExample[];
}

export type TrainState = 'idle' | 'running' | 'paused' | 'stopped' | 'done' | 'diverged' | 'error';

export interface TrainStateEvent {
  type: 'state';
  state: TrainState;
  message?: string;
}

/** A checkpoint was written to the browser's storage (ok), or could not be (the run goes on; nothing saved before is lost). */
export type TrainCheckpointEvent =
  | { type: 'checkpoint'; ok: true; runId: string; step: number; bytes: number; store: RunStoreKind }
  | {
      type: 'checkpoint';
      ok: false;
      runId: string;
      step: number;
      message: string;
      neededBytes: number | null;
      freeBytes: number | null;
    };

/**
 * The run's metrics history up to `step`: the page replaces its curves with it (a resumed run continues its curve;
 * after a lost GPU the run goes back to its last checkpoint and later points are dropped).
 */
export interface TrainHistoryEvent {
  type: 'history';
  runId: string;
  step: number;
  metrics: TrainMetricsEvent[];
  evals: TrainEvalEvent[];
}

/** The run moved to another backend (the WebGPU device was lost): it goes on there from its last checkpoint. */
export interface TrainBackendEvent {
  type: 'backend';
  status: BackendStatus;
  message: string;
}

export type TrainEvent =
  | TrainMetricsEvent
  | TrainEvalEvent
  | TrainSamplesEvent
  | TrainStateEvent
  | TrainCheckpointEvent
  | TrainHistoryEvent
  | TrainBackendEvent;

export interface TrainOutcome {
  state: TrainState;
  step: number;
  totalSteps: number;
  message?: string;
  /** The stored run (null when it could not be stored). */
  runId: string | null;
}

// ---------------------------------------------------------------------------------------------------------
// Stored runs

export type RunStoreKind = 'opfs' | 'indexeddb';

/** One dataset file as kept with a run: UTF-8 text, or base64 for other bytes. */
export interface RunSourceFile {
  name: string;
  role: DatasetRole;
  text?: string;
  base64?: string;
}

/** What a stored run was trained on and with, so that it can be rebuilt after a reload (kept as the run's source.json). */
export interface RunSource {
  version: 1;
  /** A Hub(-layout) source is loaded again (usually from the Cache Storage); local files must be chosen again. */
  model:
    | { kind: 'hub'; source: Extract<ModelSource, { kind: 'hub' }>; catalogId: string | null }
    | { kind: 'files'; name: string; files: string[] };
  modelName: string;
  /** The dataset's files; null when they were too large to keep (then they must be loaded again). */
  data: { name: string; files: RunSourceFile[] } | null;
  dataName: string;
  settings: FinetuneConfig;
  runOptions: RunOptions;
  backend: BackendName;
}

export interface StoredRun {
  id: string;
  name: string;
  created: string;
  latest: CheckpointSummary | null;
  checkpoints: number;
  /** Has a checkpoint and is neither finished nor diverged. */
  unfinished: boolean;
  /** The model and dataset names, from its source (null for a run stored without one). */
  modelName: string | null;
  dataName: string | null;
  /** The backend it was started on, from its source (null for a run stored without one). */
  backend: BackendName | null;
  /** Whether Resume can rebuild it alone (Hub model and kept dataset), or what must be loaded first. */
  needs: string | null;
}

export interface RunsReport {
  store: RunStoreKind | null;
  /** Why there is no store (private mode, storage disabled). */
  error?: string;
  runs: StoredRun[];
  /** navigator.storage.estimate(), when available. */
  usage: { used: number; quota: number } | null;
}

// ---------------------------------------------------------------------------------------------------------
// Generation, evaluation, export

export interface SamplingOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

export interface GenerateRequest extends SamplingOptions {
  instruction: string;
  input?: string;
  /** 'base': adapter detached; 'tuned': adapter attached. */
  which: 'base' | 'tuned';
  /** Template and end-of-response string, as the run uses them. */
  template: FinetuneConfig['template'];
  eosToken: string | null;
}

export interface GenerateResult {
  text: string;
  tokens: number;
  finishReason: string;
  ms: number;
}

export interface EvalReport {
  /** Exact match and ROUGE-L (percent) of the base model (adapter detached). */
  base: GenerationEvalResult;
  /** The same with the adapter attached; null when there is no adapter. */
  tuned: GenerationEvalResult | null;
  /** The user turn of each evaluated example (same order as base.examples). */
  instructions: string[];
}

/** A file for the page to save. */
export interface ExportedFile {
  name: string;
  mime: string;
  bytes: Uint8Array;
}

export interface AdapterInfo {
  config: LoraConfig;
  trainableParams: number;
  modules: number;
  /** Where it came from: 'trained here' or the imported file names. */
  origin: string;
  /** For an imported adapter: what was chosen among several (checkpoint-N) and what was not applied (modules_to_save). */
  warnings: string[];
  /** Set by importAdapter when the adapter names another base model than the loaded one (it is still attached). */
  warning?: string;
}

// ---------------------------------------------------------------------------------------------------------
// The worker's API (engine.worker.ts implements it; the page calls it through Comlink.Remote<EngineApi>)

export interface EngineApi {
  /** Share the page's control flags (a SharedArrayBuffer of CONTROL_SLOTS Int32 slots). */
  setControl(buffer: SharedArrayBuffer): Promise<void>;
  /** Initialise a backend (once at start-up: 'auto'); returns what was chosen and why others were skipped. */
  init(choice?: BackendChoice, opts?: BackendOptions): Promise<BackendStatus>;
  /** Switch backend; a loaded model and its adapter move along (a paused run is discarded). */
  setBackend(choice: BackendChoice, opts?: BackendOptions): Promise<BackendStatus>;
  /** Benchmarks (npm run bench:browser): the matMul and LoRA-step workloads on the current backend. */
  bench(req?: WorkloadRequest): Promise<BenchLine[]>;
  backendStatus(): Promise<BackendStatus | null>;
  /** Our WGSL kernels on webgpu against the plain ops on cpu, forward and gradient (leaves the backend as it was). */
  checkWebgpuKernels(): Promise<KernelCheckReport>;
  /** Initialise each backend (default: all) in turn and check the gradients the engine needs against cpu. */
  probeBackends(opts?: { backends?: BackendStatus['backend'][] }): Promise<BackendProbeReport>;

  /** Load a model with byte progress; Hub files are cached in the Cache Storage. Replaces any loaded model. */
  loadModel(source: ModelSource, onProgress?: (p: LoadProgress) => void, options?: LoadOptions): Promise<ModelInfo>;
  cacheInfo(): Promise<{ files: number; bytes: number }>;
  /** Before a click: whether each Hub model is in this browser's cache, on its server, or not reachable (and why). */
  modelAvailability(sources: ModelSource[]): Promise<ModelAvailability[]>;
  /** At which frozen_dtype models of these sizes fit the backend in use (catalog cards, before download); null before one runs. */
  storageFits(models: { params: number; memoryBytes: number }[]): Promise<StorageFit[][] | null>;
  clearCache(): Promise<void>;

  /** Parse, split and tokenize a dataset as a run with `settings` will (template, max_length, eos_token, splits). */
  loadDataset(input: DatasetInput, settings: FinetuneConfig): Promise<DatasetInfo>;
  /**
   * The session's size and memory estimate for `settings`; with measure, the time of a real optimizer step on
   * this backend (a few steps on a scratch adapter; the model's own adapter is left as it was).
   */
  estimate(settings: FinetuneConfig, measure: boolean): Promise<Estimate>;

  /**
   * Train a fresh adapter with `settings`; events stream to onEvent. The run is stored in the browser (its source, then
   * checkpoints at step 0, every options.saveSteps, on pause/stop and at the end). Resolves when it ends or pauses.
   */
  train(settings: FinetuneConfig, options: RunOptions, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome>;
  /**
   * Continue a stored run on the loaded model and dataset (which must be the ones it was trained on: checked by hash,
   * refused with what differs). Its history comes first as a 'history' event, so the page's curves continue.
   * overrides.learning_rate continues with another peak learning rate (after a divergence); nothing else may change.
   */
  resumeRun(
    runId: string,
    options: RunOptions,
    onEvent: (e: TrainEvent) => void,
    overrides?: { learning_rate?: number },
  ): Promise<TrainOutcome>;
  /**
   * Open a finished stored run on the loaded model and dataset (the ones it was trained on, checked as resumeRun
   * checks them): the adapter of its last checkpoint becomes the model's adapter, without training, for Compare and
   * Export. Its history comes as a 'history' event (its curves and metrics export are the run's); resolves 'done'.
   */
  openRun(runId: string, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome>;
  /** Pause after the step in flight (train() then resolves with state 'paused'). */
  pause(): Promise<void>;
  resume(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome>;
  /** Stop the run (a running one after its step in flight); the adapter keeps what it learnt. */
  stop(): Promise<TrainOutcome>;

  /** Runs stored in this browser, most recently saved first. */
  listRuns(): Promise<RunsReport>;
  /** What a stored run was trained on (to load it again before resumeRun), with its kept dataset; null without a record. */
  runSource(runId: string): Promise<{ source: RunSource; dataset: DatasetInput | null } | null>;
  renameRun(runId: string, name: string): Promise<StoredRun>;
  deleteRun(runId: string): Promise<void>;
  /** A stored run as one file (its latest checkpoint, its source and dataset): <name>.webtune.safetensors. */
  exportRun(runId: string): Promise<ExportedFile>;
  /** Store a file made by exportRun as a new run. */
  importRun(name: string, bytes: Uint8Array): Promise<StoredRun>;

  /**
   * Fault injection for tests and demonstrations: 'device-lost' destroys the WebGPU device in use (device.destroy()),
   * 'hang' blocks the worker (for ms, or for good), 'exit' ends the worker as a crash would (self.close()).
   */
  injectFault(kind: 'device-lost' | 'hang' | 'exit', ms?: number): Promise<void>;
  /** Live tensors and their bytes on the backend (for leak checks and the console). */
  memory(): Promise<{ backend: string; numTensors: number; numBytes: number }>;

  adapterInfo(): Promise<AdapterInfo | null>;
  /** Generate from an instruction with the adapter off ('base') or on ('tuned'), streaming text to onToken. */
  generate(req: GenerateRequest, onToken?: (delta: string) => void): Promise<GenerateResult>;
  stopGenerate(): Promise<void>;
  /** Exact match and ROUGE-L on the first n held-out examples: base (adapter off) and tuned (on). */
  evaluate(n: number, onProgress?: (done: number, total: number) => void): Promise<EvalReport>;

  /** One zip: adapter_config.json + adapter_model.safetensors (PEFT names and layout) + README.md (loading it). */
  exportAdapter(): Promise<ExportedFile>;
  /**
   * One zip: the base model with the adapter folded in, as a transformers folder (config.json, generation_config.json,
   * model.safetensors) with tokenizer.json and tokenizer_config.json (a llama2.c tokenizer converted).
   */
  exportMerged(): Promise<ExportedFile>;
  /** One zip: the last run's metrics (every log and evaluation) as metrics.json (trainer_state.json-like) and metrics.csv. */
  exportMetrics(): Promise<ExportedFile>;
  /**
   * One zip for GPUs: the run's data as trained, its template as Jinja, train_trl.py (TRL + PEFT), axolotl.yaml,
   * accelerate_config.yaml, requirements.txt, README. The training started here, else the dataset with `settings`.
   */
  exportRunBundle(settings: FinetuneConfig): Promise<ExportedFile>;
  /** Attach a PEFT adapter (adapter_config.json + adapter_model.safetensors) to the loaded model. */
  importAdapter(files: { name: string; bytes: Uint8Array }[]): Promise<AdapterInfo>;
}
