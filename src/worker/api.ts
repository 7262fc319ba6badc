/**
 * The engine worker's API as the page sees it (through Comlink): plain, structured-cloneable data only.
 * The worker (engine.worker.ts) implements EngineApi; the page (src/ui/engine.ts) wraps it.
 *
 * Callbacks (progress, training events, streamed tokens) are passed wrapped in Comlink.proxy by the page.
 * Every method rejects with an Error whose message is meant for people (file, line, what to do).
 */
import type { BackendChoice, BackendName } from '../engine/backend';
import type { ModelFamily } from '../engine/config';
import type { LoraConfig } from '../engine/lora';
import type { KernelProbeReport } from '../engine/kernel-probe';
import type { DatasetReport, TemplateName } from '../data';
import type { GenerationEvalExample, GenerationEvalResult } from '../train/evaluate';
import type { EvalMetrics, FinetuneConfig, MemoryEstimate, SessionMetrics } from '../train/session';

export type { BackendChoice, BackendName };

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

/** Byte progress of one file. `cached`: served from the page's Cache Storage (no download). */
export interface LoadProgress {
  file: string;
  loaded: number;
  total: number | null;
  cached: boolean;
  /** 'download' while bytes arrive, then 'prepare' while weights are decoded and uploaded to the backend. */
  phase: 'download' | 'prepare';
}

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

/** The run's settings, in Hugging Face's names (PEFT LoraConfig, TrainingArguments, TRL SFTConfig). */
export type TrainSettings = FinetuneConfig;

export interface Estimate {
  /** The session's memory and size estimate for these settings and data. */
  memory: MemoryEstimate;
  /** Adapted linear layers. */
  adaptedModules: number;
  /** Measured on the current backend (a few real optimizer steps on a scratch adapter); null when not measured. */
  msPerStep: number | null;
  backend: BackendName;
  warnings: string[];
}

/** How a run reports, beyond the session's settings. */
export interface RunOptions {
  /** Held-out prompts generated from at each evaluation (0 = none). */
  samplePrompts: number;
  sampleMaxNewTokens: number;
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

export type TrainEvent = TrainMetricsEvent | TrainEvalEvent | TrainSamplesEvent | TrainStateEvent;

export interface TrainOutcome {
  state: TrainState;
  step: number;
  totalSteps: number;
  message?: string;
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
}
