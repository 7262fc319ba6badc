/**
 * The engine's Web Worker: TensorFlow.js runs here, off the UI thread; the page talks to it through Comlink
 * (types in ./api.ts). Calls that touch tensors run one at a time (a queue); pause/stop/stopGenerate act at once.
 * Errors reject the call with a message for people; an error outside any call is posted as 'webtune:fatal'.
 */
import * as Comlink from 'comlink';
import * as tf from '@tensorflow/tfjs-core';
import {
  BACKEND_ORDER,
  initBackend,
  resetBackend,
  setWasmPrefix,
  type BackendChoice,
  type BackendName,
} from '../engine/backend';
import { eosIds } from '../engine/config';
import { generate } from '../engine/generate';
import { probeKernels } from '../engine/kernel-probe';
import { targetedModules, type LoraConfig } from '../engine/lora';
import { CausalLM } from '../engine/model';
import { countParams, linearModules } from '../engine/params';
import {
  defaultTemplate,
  encodeWithOffsets,
  renderGenerationPrompt,
  templateTokensOf,
  type Message,
  type TemplateSpec,
} from '../data';
import { loadModel as loadModelFiles } from '../io/load-model';
import { exportMergedModel, exportPeftAdapter, loadPeftAdapter, parsePeftAdapter } from '../io/peft';
import type { Tokenizer } from '../io/tokenizer';
import { BUNDLE_EXTENSION, newRunId, slugify, type RunStore } from '../io/run-store';
import { CheckpointMismatchError, type CheckpointOptions } from '../train/checkpoint';
import { compareBaseTuned, evaluateGeneration, promptAndReference } from '../train/evaluate';
import {
  backendMemoryLimit,
  checkFits,
  checkModelFits,
  explainOutOfMemory,
  fitReport,
  type MemoryLimits,
} from '../train/memory-guard';
import {
  FinetuneSession,
  prepareSessionData,
  resolveFinetuneConfig,
  type FinetuneConfig,
  type SessionData,
  type SessionDataset,
} from '../train/session';
import type {
  AdapterInfo,
  BackendOptions,
  BackendProbeReport,
  BackendStatus,
  DatasetInfo,
  DatasetInput,
  Estimate,
  EvalReport,
  ExportedFile,
  GenerateRequest,
  GenerateResult,
  LoadProgress,
  ModelInfo,
  ModelSource,
  RunOptions,
  RunSource,
  RunsReport,
  StoredRun,
  TrainEvent,
  TrainOutcome,
  TrainSettings,
} from './api';
import { CONTROL, CONTROL_SLOTS } from './api';
import { cachedModelFiles, cachingFetch, clearModelCache } from './model-cache';
import { resolveModelSource } from './model-source';
import { PageRun, type PageRunHooks, type RunControl } from './run';
import {
  datasetOf,
  listRuns,
  readRunSource,
  runSourceOf,
  runStore,
  StoreSaver,
  storedRun,
  writeRunSource,
} from './runs';
import { webgpuAdapter } from './webgpu';
import type { BenchLine, WorkloadRequest } from '../../bench/workloads';

export type { BackendProbeReport, WebGpuAdapterReport } from './api';

// The build copies the tfjs wasm binaries here and the dev server serves them (tools/vite-plugins.ts).
setWasmPrefix(`${import.meta.env.BASE_URL}tfjs-wasm/`);

self.addEventListener('unhandledrejection', (ev) => {
  const r = (ev as PromiseRejectionEvent).reason;
  self.postMessage({ type: 'webtune:fatal', message: r instanceof Error ? r.message : String(r) });
});

/**
 * Heartbeat for the page's watchdog (src/ui/engine.ts): a timer beats while the event loop is free, and training
 * steps, micro-batches, generated tokens and load progress beat while long work holds it. Posting needs no free
 * event loop, so a beat goes out even from inside a long synchronous loop.
 */
let lastBeat = 0;
function beat(): void {
  const t = performance.now();
  if (t - lastBeat < 200) return;
  lastBeat = t;
  self.postMessage({ type: 'webtune:beat' });
}
setInterval(beat, 1000);
beat();

// ---------------------------------------------------------------------------------------------------------
// State

interface LoadedModel {
  model: CausalLM;
  tokenizer: Tokenizer;
  info: ModelInfo;
  tokenizerFiles: Map<string, Uint8Array>;
  baseModel: string;
  /** Where it came from (reloaded from there after a lost GPU). */
  source: ModelSource;
}

interface LoadedData {
  input: DatasetInput;
  name: string;
  config: FinetuneConfig;
  prepared: SessionDataset;
}

let backend: BackendStatus | null = null;
let loaded: LoadedModel | null = null;
let data: LoadedData | null = null;
let run: PageRun | null = null;
let adapterOrigin = '';

/** Pause/stop/abort flags: in the page's SharedArrayBuffer when it sent one (see api.ts CONTROL), else local. */
let controlView: Int32Array = new Int32Array(CONTROL_SLOTS);
const control: RunControl = {
  get: (flag) => Atomics.load(controlView, CONTROL[flag]) !== 0,
  set: (flag, on) => {
    Atomics.store(controlView, CONTROL[flag], on ? 1 : 0);
  },
};
/** Set when the WebGPU device the model lives on is lost (device.lost resolved). */
let deviceLost: { reason: string; message: string } | null = null;
const runHooks: PageRunHooks = {
  alive: beat,
  explain: (e, r) =>
    explainOutOfMemory(e, {
      phase: r.step === 0 ? 'first-step' : 'step',
      backend: backend!.backend,
      estimate: r.session.estimate(),
      config: r.session.config,
      limits: memoryLimits(),
      extra: { modules: r.session.adapter.layers.size, modelConfig: r.session.model.config },
    }),
  interrupted: () => deviceLost !== null,
  // a failed step on WebGPU may be the first sign of a lost device: give device.lost a moment to say so
  settle: async () => {
    const dev = webgpuDevice();
    if (dev && !deviceLost) await Promise.race([dev.lost, new Promise((r) => setTimeout(r, 1500))]);
    await new Promise((r) => setTimeout(r, 0));
  },
};

/** The abort signal generation and evaluation poll between tokens. */
const generation = {
  get aborted() {
    return control.get('abortGeneration');
  },
};

/** Tensor work, one call at a time. */
let queue: Promise<unknown> = Promise.resolve();
function exclusive<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

function requireModel(): LoadedModel {
  if (!loaded) throw new Error('No model is loaded: load one in step 1.');
  return loaded;
}

function requireData(): LoadedData {
  if (!data) throw new Error('No dataset is loaded: load one in step 2.');
  return data;
}

/** For work that may happen while a run is paused (generate, evaluate, export, estimate). */
function assertIdle(what: string): void {
  if (run?.state === 'running') throw new Error(`Cannot ${what} while training runs: pause or stop it first.`);
}

/** For changes a paused run could not survive (model, data, backend, adapter). */
function assertNoRun(what: string): void {
  if (run?.state === 'running' || run?.state === 'paused')
    throw new Error(`Cannot ${what} during a training run: stop it first.`);
}

// ---------------------------------------------------------------------------------------------------------
// Backends

async function useBackend(choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendStatus> {
  const report = await initBackend(choice, opts);
  const webgpu = await webgpuAdapter();
  backend = {
    requested: choice,
    backend: report.backend,
    fallbacks: report.fallbacks,
    webgpu,
    crossOriginIsolated: self.crossOriginIsolated,
    wasmSimd: report.backend === 'wasm' ? Boolean(tf.env().getBool('WASM_HAS_SIMD_SUPPORT')) : undefined,
    wasmThreads: report.wasmThreads,
    wasmThreadsNote: report.wasmThreadsNote,
  };
  watchDevice();
  return backend;
}

interface GpuDeviceLike {
  lost: Promise<{ reason?: string; message?: string }>;
  destroy(): void;
}

function webgpuDevice(): GpuDeviceLike | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device?: GpuDeviceLike }).device ?? null;
}

/** What the backend in use can hold (for out-of-memory checks and messages). */
function memoryLimits(): MemoryLimits {
  const b = backend!.backend;
  return backendMemoryLimit(b, {
    webgpuLimits: b === 'webgpu' ? backend!.webgpu.limits : undefined,
    webglMaxTextureSize: b === 'webgl' ? tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE') : undefined,
  });
}

/** Notice when the WebGPU device in use is lost (driver reset, GPU removed, device.destroy()). */
function watchDevice(): void {
  const dev = webgpuDevice();
  if (!dev) return;
  void dev.lost.then((info) => {
    if (webgpuDevice() !== dev) return; // a backend we already left
    deviceLost = { reason: info?.reason ?? 'unknown', message: info?.message ?? '' };
    beat();
  });
}

async function ensureBackend(): Promise<BackendStatus> {
  return backend ?? useBackend('auto');
}

/** Move the loaded model (and its adapter) to another backend: read to the CPU, re-create there. */
async function moveModel(choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendStatus> {
  const cur = loaded;
  if (!cur) return useBackend(choice, opts);
  const raw = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, t] of cur.model.weights)
    raw.set(name, { shape: [...t.shape], data: Float32Array.from((await t.data()) as Float32Array) });
  const ad = cur.model.adapter;
  let adapter: { config: LoraConfig; values: Map<string, { shape: number[]; data: Float32Array }> } | null = null;
  if (ad) {
    const values = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, v] of ad.variables())
      values.set(name, { shape: [...v.shape], data: Float32Array.from((await v.data()) as Float32Array) });
    adapter = { config: ad.config, values };
  }
  run?.dispose(); // its metrics stay exportable
  cur.model.dispose();
  loaded = null;
  const status = await useBackend(choice, opts);
  const model = CausalLM.fromRaw(cur.model.config, raw);
  if (adapter) model.attachLora(adapter.config).assign(adapter.values);
  loaded = { ...cur, model, info: { ...cur.info, backend: status.backend } };
  return status;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

function throttled(fn: (p: LoadProgress) => void, ms = 80): (p: LoadProgress) => void {
  const last = new Map<string, number>();
  return (p) => {
    const t = performance.now();
    const done = p.total !== null && p.loaded >= p.total;
    if (!done && t - (last.get(p.file) ?? -Infinity) < ms) return;
    last.set(p.file, t);
    fn(p);
  };
}

function adapterInfo(): AdapterInfo | null {
  const ad = loaded?.model.adapter;
  if (!ad) return null;
  return {
    config: ad.config,
    trainableParams: ad.numTrainable(),
    modules: ad.layers.size,
    origin: adapterOrigin || 'trained here',
  };
}

function userMessage(instruction: string, input?: string): Message {
  const inp = input?.trim() ?? '';
  return inp
    ? { role: 'user', content: `${instruction}\n\n${inp}`, instruction, input: inp }
    : { role: 'user', content: instruction };
}

function sessionData(input: DatasetInput): SessionData {
  const of = (role: string) => input.files.filter((f) => f.role === role).map((f) => ({ name: f.name, bytes: f.data }));
  const train = of('train');
  if (train.length === 0) throw new Error('No training file was given.');
  const validation = of('validation');
  const test = of('test');
  return { train, validation: validation.length ? validation : undefined, test: test.length ? test : undefined };
}

/** Held-out examples for generation: the test split, else validation. */
function heldOut(d: LoadedData) {
  return d.prepared.test.source.length ? d.prepared.test.source : d.prepared.validation.source;
}

/** A file for the page; its bytes are transferred (so never pass bytes the worker keeps). */
function file(name: string, bytes: Uint8Array, mime = 'application/octet-stream'): ExportedFile {
  const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
  return Comlink.transfer({ name, mime, bytes: own }, [own.buffer as ArrayBuffer]);
}

/** Load a model (replacing the loaded one only once the new one has loaded). */
async function loadModelFrom(source: ModelSource, onProgress?: (p: LoadProgress) => void): Promise<ModelInfo> {
  const status = await ensureBackend();
  const t0 = performance.now();
  const cf = cachingFetch();
  const resolved = resolveModelSource(source, cf);
  const sizes = new Map<string, number>();
  const cachedFile = (f: string) => [...cf.hits].some((u) => decodeURIComponent(u).endsWith('/' + f));
  const report = onProgress ? throttled(onProgress) : undefined;
  const m = await loadModelFiles(resolved.spec, (p) => {
    beat();
    sizes.set(p.file, p.loaded);
    report?.({ file: p.file, loaded: p.loaded, total: p.total, cached: cachedFile(p.file), phase: 'download' });
  });
  const weightsFile = m.files[0] ?? 'weights';
  onProgress?.({
    file: weightsFile,
    loaded: sizes.get(weightsFile) ?? 0,
    total: sizes.get(weightsFile) ?? null,
    cached: cachedFile(weightsFile),
    phase: 'prepare',
  });
  // a model the backend cannot hold is refused before the loaded one is let go
  checkModelFits(countParams(m.config), status.backend, memoryLimits(), { config: m.config, modelName: m.name });
  // the old model goes only once the new one has loaded (a failed load keeps it)
  run?.dispose();
  run = null;
  data = null;
  loaded?.model.dispose();
  loaded = null;
  let model: CausalLM;
  try {
    model = CausalLM.fromRaw(m.config, m.weights);
  } catch (e) {
    throw (
      explainOutOfMemory(e, {
        phase: 'load',
        backend: status.backend,
        modelName: m.name,
        limits: memoryLimits(),
        extra: { modelConfig: m.config },
      }) ?? e
    );
  }
  await cf.flush();
  let cachedBytes = 0;
  for (const [f, n] of sizes) if (cachedFile(f)) cachedBytes += n;
  const cfg = m.config;
  const info: ModelInfo = {
    name: m.name,
    source: resolved.spec.source.describe,
    family: cfg.family,
    architecture: cfg.architecture,
    params: countParams(cfg),
    vocabSize: cfg.vocab_size,
    hiddenSize: cfg.hidden_size,
    layers: cfg.num_hidden_layers,
    contextLength: cfg.max_position_embeddings,
    linearModules: [...new Set(linearModules(cfg).map((l) => l.short))],
    hasChatTemplate: !!m.tokenizer.chatTemplate,
    defaultTemplate: defaultTemplate(m.tokenizer).kind,
    backend: status.backend,
    bytes: [...sizes.values()].reduce((a, b) => a + b, 0),
    cachedBytes,
    ms: performance.now() - t0,
  };
  loaded = {
    model,
    tokenizer: m.tokenizer,
    info,
    tokenizerFiles: resolved.tokenizerFiles,
    baseModel: resolved.baseModel,
    source,
  };
  adapterOrigin = '';
  return info;
}

// ---------------------------------------------------------------------------------------------------------
// Runs: checkpoints in the browser's storage, resume, recovery from a lost GPU

function checkpointOptions(m: LoadedModel): CheckpointOptions {
  return { modelId: m.baseModel };
}

/** Start storing a new run: its source.json, then its step-0 checkpoint. Null (with an event) when storage fails. */
async function storeNewRun(
  session: FinetuneSession,
  m: LoadedModel,
  d: LoadedData,
  settings: TrainSettings,
  options: RunOptions,
  onEvent: (e: TrainEvent) => void,
): Promise<StoreSaver | null> {
  const name = options.runName?.trim() || `${m.info.name} · ${d.name}`;
  let s: RunStore;
  try {
    s = await runStore();
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
    backend: backend!.backend,
    catalogId: options.catalogId ?? null,
  });
  const saver = new StoreSaver(id, name, s);
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

/** Run the current PageRun; when the GPU is lost meanwhile, carry on from the last checkpoint on the next backend. */
async function drive(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  let out = await run!.run(onEvent);
  for (let tries = 0; deviceLost && tries < BACKEND_ORDER.length; tries++) out = await recoverFromDeviceLoss(onEvent);
  const r = run!;
  if (out.state === 'diverged' && r.saver && loaded) {
    // the trainer rolled back to the last good step: store that state, so the run can go on with a lower learning rate
    await r.saver.save(await r.session.checkpoint(checkpointOptions(loaded)), onEvent);
    if (r.saver.lastSavedStep === out.step) {
      out = {
        ...out,
        message: `${out.message} The run is saved at step ${out.step}: resume it with a lower learning rate.`,
      };
      onEvent({ type: 'state', state: 'diverged', message: out.message });
    }
  }
  return out;
}

async function recoverFromDeviceLoss(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  const lost = deviceLost!;
  deviceLost = null;
  const prev = run!;
  const cur = loaded!;
  const from = backend!.backend;
  run = null;
  loaded = null;
  // everything on the lost device is gone; free what tfjs still tracks, then forget that backend instance
  try {
    prev.dispose();
  } catch {
    /* the device is gone */
  }
  try {
    cur.model.dispose();
  } catch {
    /* the device is gone */
  }
  resetBackend(from);
  const next: BackendName = BACKEND_ORDER[BACKEND_ORDER.indexOf(from) + 1] ?? 'cpu';
  const dataBefore = data;
  let status: BackendStatus;
  try {
    status = await useBackend(next);
    await loadModelFrom(cur.source);
  } catch (e) {
    throw new Error(
      `The WebGPU device was lost (${lost.reason}) and the run could not move to ${next}: ${(e as Error).message}. ` +
        'Reload the page and resume the run from Saved runs.',
      { cause: e },
    );
  }
  data = dataBefore;
  const m = loaded!;
  const saver = prev.saver;
  const ck = saver ? await (await runStore()).loadLatest(saver.runId).catch(() => null) : null;
  const at = ck ? ck.meta.progress.global_step : 0;
  const message =
    `The WebGPU device was lost (${lost.reason}${lost.message ? `: ${lost.message}` : ''}). ` +
    `Training moved to ${status.backend} and continues from ${ck ? `its checkpoint at step ${at}` : 'step 0 (no checkpoint had been saved)'}` +
    `${prev.step > at ? `; steps ${at + 1}–${prev.step} are trained again` : ''}.`;
  onEvent({ type: 'backend', status, message });
  const init = {
    model: m.model,
    tokenizer: m.tokenizer,
    data: sessionData(requireData().input),
    baseModelName: m.baseModel,
  };
  const session = ck
    ? await FinetuneSession.resume(init, ck)
    : new FinetuneSession({ ...init, config: prev.session.config });
  run = new PageRun(session, prev.options, control, saver, runHooks);
  run.note = `(The WebGPU device was lost at step ${prev.step + 1}; the run went on from step ${at} on ${status.backend}.)`;
  onEvent(run.history());
  onEvent({ type: 'state', state: 'running', message });
  return run.run(onEvent);
}

function requireStore(): Promise<RunStore> {
  return runStore().catch((e) => {
    throw new Error(`Runs cannot be stored in this browser: ${(e as Error).message}`);
  });
}

// ---------------------------------------------------------------------------------------------------------
// The API

const api = {
  /** Share the page's control flags (a SharedArrayBuffer of CONTROL_SLOTS Int32 slots). */
  async setControl(buffer: SharedArrayBuffer): Promise<void> {
    if (buffer.byteLength < CONTROL_SLOTS * 4) throw new Error('control buffer too small');
    controlView = new Int32Array(buffer, 0, CONTROL_SLOTS);
  },

  /** Initialise a backend (once at start-up: 'auto'); returns what was chosen and why others were skipped. */
  init(choice: BackendChoice = 'auto', opts: BackendOptions = {}): Promise<BackendStatus> {
    return exclusive(async () => backend ?? useBackend(choice, opts));
  },

  /** Switch backend; a loaded model and its adapter move along (a paused run is discarded). */
  setBackend(choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendStatus> {
    return exclusive(async () => {
      assertNoRun('switch backend');
      return moveModel(choice, opts);
    });
  },

  async backendStatus(): Promise<BackendStatus | null> {
    return backend;
  },

  /**
   * `npm run bench:browser` and the wasm-threads test: bench/workloads.ts (a 1024³ matMul, then LoRA steps on the
   * models asked for) on the current backend. Needs no loaded model and leaves it alone.
   */
  bench(req: WorkloadRequest = {}): Promise<BenchLine[]> {
    return exclusive(async () => {
      assertNoRun('benchmark');
      const { runWorkloads } = await import('../../bench/workloads');
      return runWorkloads(req, beat);
    });
  },

  /** Initialise each backend (default: all) in turn and check the gradients the engine needs against cpu. */
  probeBackends(opts: { backends?: BackendStatus['backend'][] } = {}): Promise<BackendProbeReport> {
    return exclusive(async () => {
      assertNoRun('check backends');
      const t0 = performance.now();
      const webgpu = await webgpuAdapter();
      const kernels = await probeKernels({ backends: opts.backends, onCase: beat });
      // the probe leaves its last backend active: return to the one the model lives on
      if (backend) await initBackend(backend.backend);
      return {
        ...kernels,
        userAgent: navigator.userAgent,
        crossOriginIsolated: self.crossOriginIsolated,
        webgpuAdapter: webgpu,
        ms: performance.now() - t0,
      };
    });
  },

  /** Load a model with byte progress; Hub files are cached in the Cache Storage. Replaces any loaded model. */
  loadModel(source: ModelSource, onProgress?: (p: LoadProgress) => void): Promise<ModelInfo> {
    return exclusive(async () => {
      assertNoRun('load a model');
      return loadModelFrom(source, onProgress);
    });
  },

  async cacheInfo(): Promise<{ files: number; bytes: number }> {
    return cachedModelFiles();
  },

  async clearCache(): Promise<void> {
    await clearModelCache();
  },

  /** Parse, split and tokenize a dataset as a run with `settings` will (template, max_length, eos_token, splits). */
  loadDataset(input: DatasetInput, settings: TrainSettings): Promise<DatasetInfo> {
    return exclusive(async () => {
      assertNoRun('change the dataset');
      const { model, tokenizer } = requireModel();
      const { config, warnings } = resolveFinetuneConfig(settings, model.config.max_position_embeddings);
      const prepared = prepareSessionData(tokenizer, sessionData(input), config);
      data = { input, name: input.files.map((f) => f.name).join(', '), config, prepared };
      if (prepared.dropped.length)
        warnings.push(
          `${prepared.dropped.length} example(s) dropped during tokenization (first: ${prepared.dropped[0].message})`,
        );
      const prompts: DatasetInfo['prompts'] = [];
      for (const ex of heldOut(data)) {
        const pr = promptAndReference(ex);
        const user = pr?.messages.filter((m) => m.role === 'user').pop();
        if (!pr || !user) continue;
        prompts.push({
          instruction: user.instruction ?? user.content,
          input: user.input ?? '',
          reference: pr.reference,
        });
      }
      return { name: input.files.map((f) => f.name).join(', '), report: prepared.report, prompts, warnings };
    });
  },

  /**
   * The session's size and memory estimate for `settings`; with measure, the time of a real optimizer step on
   * this backend (a few steps on a scratch adapter; the model's own adapter is left as it was).
   */
  estimate(settings: TrainSettings, measure: boolean): Promise<Estimate> {
    return exclusive(async () => {
      assertIdle('estimate');
      const { model, tokenizer } = requireModel();
      const d = requireData();
      const previous = model.adapter;
      model.adapter = null;
      const scratch: FinetuneSession[] = [];
      try {
        const s = new FinetuneSession({ model, tokenizer, data: sessionData(d.input), config: settings });
        scratch.push(s);
        const memory = s.estimate();
        const adaptedModules = targetedModules(model.config, s.lora).length;
        let msPerStep: number | null = null;
        if (measure) {
          const steps = 3;
          const t = new FinetuneSession({
            model,
            tokenizer,
            data: { train: sessionData(d.input).train },
            config: { ...settings, max_steps: steps, logging_steps: 1, eval_strategy: 'no', val_size: 0, test_size: 0 },
          });
          scratch.push(t);
          const times: number[] = [];
          await t.run({
            onMetrics: (m) => {
              times.push(m.ms_per_step);
            },
            onBatch: beat,
          });
          // the first step compiles kernels: time the later ones
          const later = times.slice(1);
          msPerStep = later.length ? later.reduce((a, b) => a + b, 0) / later.length : (times[0] ?? null);
        }
        const extra = { modules: s.adapter.layers.size, modelConfig: model.config };
        const fit = fitReport(memory, backend!.backend, memoryLimits(), extra);
        let advice = '';
        if (!fit.fits) {
          try {
            checkFits(memory, s.config, backend!.backend, memoryLimits(), extra);
          } catch (e) {
            advice = (e as Error).message;
          }
        }
        return {
          memory,
          adaptedModules,
          msPerStep,
          backend: backend!.backend,
          warnings: s.warnings,
          fit: { neededBytes: fit.neededBytes, limitBytes: fit.limits.totalBytes, fits: fit.fits, advice },
        };
      } finally {
        for (const s of scratch) {
          s.dispose();
          s.adapter.dispose();
        }
        model.adapter = previous;
      }
    });
  },

  /**
   * Train a fresh adapter with `settings`; events stream to onEvent. The run is stored in the browser (its source, then
   * checkpoints at step 0, every options.saveSteps, on pause/stop and at the end). Resolves when it ends or pauses.
   */
  train(settings: TrainSettings, options: RunOptions, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
    return exclusive(async () => {
      assertNoRun('start another run');
      const m = requireModel();
      const d = requireData();
      run?.dispose();
      run = null;
      adapterOrigin = '';
      const session = new FinetuneSession({
        model: m.model,
        tokenizer: m.tokenizer,
        data: sessionData(d.input),
        config: settings,
        baseModelName: m.baseModel,
      });
      try {
        // a run that cannot fit is refused with what it needs and what to reduce, before it starts
        checkFits(session.estimate(), session.config, backend!.backend, memoryLimits(), {
          modules: session.adapter.layers.size,
          modelConfig: m.model.config,
        });
      } catch (e) {
        session.dispose();
        throw e;
      }
      for (const w of session.warnings) onEvent({ type: 'state', state: 'running', message: w });
      const saver = await storeNewRun(session, m, d, settings, options, onEvent);
      run = new PageRun(session, options, control, saver, runHooks);
      return drive(onEvent);
    });
  },

  /**
   * Continue a stored run on the loaded model and dataset (which must be the ones it was trained on: checked by hash,
   * refused with what differs). Its history comes first as a 'history' event, so the page's curves continue.
   * overrides.learning_rate continues with another peak learning rate (after a divergence); nothing else may change.
   */
  resumeRun(
    runId: string,
    options: RunOptions,
    onEvent: (e: TrainEvent) => void,
    overrides: { learning_rate?: number } = {},
  ): Promise<TrainOutcome> {
    return exclusive(async () => {
      assertNoRun('resume a stored run');
      const m = requireModel();
      const d = requireData();
      const s = await requireStore();
      const info = await s.info(runId);
      if (!info) throw new Error(`There is no stored run ${runId}.`);
      const ck = await s.loadLatest(runId);
      if (!ck) throw new Error(`The run "${info.name}" has no checkpoint to resume from.`);
      if (ck.meta.progress.status === 'completed')
        throw new Error(
          `The run "${info.name}" has finished (${ck.meta.progress.global_step} steps); export its adapter instead.`,
        );
      run?.dispose();
      run = null;
      adapterOrigin = '';
      let session: FinetuneSession;
      try {
        const lr = overrides.learning_rate;
        if (lr !== undefined && !(Number.isFinite(lr) && lr > 0))
          throw new Error(`The learning rate must be a positive number, got ${lr}.`);
        session = await FinetuneSession.resume(
          { model: m.model, tokenizer: m.tokenizer, data: sessionData(d.input), baseModelName: m.baseModel },
          ck,
          { learningRate: lr },
        );
      } catch (e) {
        if (e instanceof CheckpointMismatchError)
          throw new Error(`Cannot resume "${info.name}": ${e.message}`, { cause: e });
        throw e;
      }
      const saver = new StoreSaver(runId, info.name, s, ck.meta.progress.global_step);
      run = new PageRun(session, options, control, saver, runHooks);
      onEvent(run.history());
      return drive(onEvent);
    });
  },

  /** Runs stored in this browser, most recently saved first. */
  listRuns(): Promise<RunsReport> {
    return listRuns();
  },

  /** What a stored run was trained on (to load it again before resumeRun), with its kept dataset; null without a record. */
  async runSource(runId: string): Promise<{ source: RunSource; dataset: DatasetInput | null } | null> {
    const source = await readRunSource(await requireStore(), runId);
    return source && { source, dataset: datasetOf(source) };
  },

  async renameRun(runId: string, name: string): Promise<StoredRun> {
    const s = await requireStore();
    const info = await s.rename(runId, name.trim());
    if (run?.saver?.runId === runId) run.saver.rename(info.name);
    return storedRun(info, await readRunSource(s, runId, { bodies: false }).catch((e: Error) => e.message));
  },

  async deleteRun(runId: string): Promise<void> {
    if (run?.saver?.runId === runId && (run.state === 'running' || run.state === 'paused'))
      throw new Error('This run is in progress: stop it before deleting it.');
    await (await requireStore()).delete(runId);
  },

  /** A stored run as one file (its latest checkpoint, its source and dataset): <name>.webtune.safetensors. */
  async exportRun(runId: string): Promise<ExportedFile> {
    const s = await requireStore();
    const info = await s.info(runId);
    if (!info) throw new Error(`There is no stored run ${runId}.`);
    return file(`${slugify(info.name, 60)}${BUNDLE_EXTENSION}`, await s.exportRun(runId));
  },

  /** Store a file made by exportRun as a new run. */
  async importRun(name: string, bytes: Uint8Array): Promise<StoredRun> {
    const s = await requireStore();
    let info;
    try {
      info = await s.importRun(bytes);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message.replace(/^imported file: /, '')}`, { cause: e });
    }
    return storedRun(info, await readRunSource(s, info.id, { bodies: false }).catch((e: Error) => e.message));
  },

  /**
   * Fault injection for tests and demonstrations: 'device-lost' destroys the WebGPU device in use (device.destroy()),
   * 'hang' blocks the worker (for ms, or for good), 'exit' ends the worker as a crash would (self.close()).
   */
  async injectFault(kind: 'device-lost' | 'hang' | 'exit', ms?: number): Promise<void> {
    if (kind === 'device-lost') {
      const dev = webgpuDevice();
      if (!dev) throw new Error(`There is no WebGPU device to lose: the backend is ${tf.getBackend()}.`);
      dev.destroy();
    } else if (kind === 'hang') {
      const end = ms !== undefined ? performance.now() + ms : Infinity;
      while (performance.now() < end) {
        /* hung */
      }
    } else if (kind === 'exit') {
      setTimeout(() => self.close(), 0);
    }
  },

  /** Pause after the step in flight (train() then resolves with state 'paused'). */
  async pause(): Promise<void> {
    run?.requestPause();
  },

  resume(onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
    return exclusive(async () => {
      if (!run || run.state !== 'paused') throw new Error('There is no paused run to resume.');
      return drive(onEvent);
    });
  },

  /** Stop the run (a running one after its step in flight); the adapter keeps what it learnt. */
  async stop(): Promise<TrainOutcome> {
    if (!run) throw new Error('No training run to stop.');
    if (run.state === 'running') {
      run.requestStop();
      return { state: 'stopped', step: run.step, totalSteps: run.totalSteps, runId: run.runId };
    }
    return exclusive(async () => run!.stopPaused());
  },

  /** Live tensors and their bytes on the backend (for leak checks and the console). */
  async memory(): Promise<{ backend: string; numTensors: number; numBytes: number }> {
    const m = tf.memory();
    return { backend: tf.getBackend(), numTensors: m.numTensors, numBytes: m.numBytes };
  },

  async adapterInfo(): Promise<AdapterInfo | null> {
    return adapterInfo();
  },

  /** Generate from an instruction with the adapter off ('base') or on ('tuned'), streaming text to onToken. */
  generate(req: GenerateRequest, onToken?: (delta: string) => void): Promise<GenerateResult> {
    return exclusive(async () => {
      assertIdle('generate');
      const { model, tokenizer } = requireModel();
      if (!req.instruction.trim()) throw new Error('Write an instruction first.');
      const adapter = model.adapter;
      if (req.which === 'tuned' && !adapter) throw new Error('There is no adapter yet: train or import one.');
      // the prompt as training renders it (generation prompt of the template), tokenized as training does
      const base = templateTokensOf(tokenizer);
      const tokens = req.eosToken ? { ...base, eosToken: req.eosToken } : base;
      const template: TemplateSpec = req.template ?? defaultTemplate(tokenizer);
      const prompt = renderGenerationPrompt([userMessage(req.instruction, req.input)], template, tokens);
      const ids = encodeWithOffsets(tokenizer, prompt, { limit: 0 }).ids;
      if (ids.length >= model.config.max_position_embeddings) {
        throw new Error(
          `The prompt is ${ids.length} tokens, which leaves no room in this model's context of ${model.config.max_position_embeddings}.`,
        );
      }
      const eos = new Set(eosIds(model.config));
      if (tokenizer.eosTokenId !== null) eos.add(tokenizer.eosTokenId);
      const stops = tokens.eosToken && tokens.eosToken !== base.eosToken ? [tokens.eosToken] : [];
      control.set('abortGeneration', false);
      const t0 = performance.now();
      if (req.which === 'base') model.adapter = null;
      try {
        const r = await generate(model, ids, {
          maxNewTokens: req.maxNewTokens,
          temperature: req.temperature,
          topK: req.topK,
          topP: req.topP,
          seed: req.seed,
          eosTokenIds: [...eos],
          stopStrings: stops,
          decode: (x) => tokenizer.decode(x, { skipSpecialTokens: true }),
          onToken: (_id, delta) => {
            beat();
            if (delta) void onToken?.(delta);
          },
          signal: generation,
        });
        return { text: r.text, tokens: r.ids.length, finishReason: r.finishReason, ms: performance.now() - t0 };
      } finally {
        model.adapter = adapter;
      }
    });
  },

  async stopGenerate(): Promise<void> {
    control.set('abortGeneration', true);
  },

  /** Exact match and ROUGE-L on the first n held-out examples: base (adapter off) and tuned (on). */
  evaluate(n: number, onProgress?: (done: number, total: number) => void): Promise<EvalReport> {
    return exclusive(async () => {
      assertIdle('evaluate');
      const { model, tokenizer } = requireModel();
      const d = requireData();
      const examples = heldOut(d);
      if (examples.length === 0)
        throw new Error('The dataset has no held-out examples: set "Test examples" (or a validation split) in step 2.');
      const count = Math.min(n, examples.length);
      control.set('abortGeneration', false);
      const both = !!model.adapter;
      let half = 0,
        last = 0;
      const opts = {
        template: d.prepared.template,
        eosToken: d.config.eos_token,
        maxExamples: count,
        maxNewTokens: 32,
        signal: generation,
        onProgress: (done: number) => {
          beat();
          if (both && done <= last) half = 1;
          last = done;
          void onProgress?.(half * count + done, both ? 2 * count : count);
        },
      };
      const r = both
        ? await compareBaseTuned(model, tokenizer, examples, opts)
        : { base: await evaluateGeneration(model, tokenizer, examples, opts), tuned: null };
      const instructions = examples.slice(0, count).map((ex) => {
        const user = promptAndReference(ex)
          ?.messages.filter((m) => m.role === 'user')
          .pop();
        return user?.instruction ?? user?.content ?? '';
      });
      return { base: r.base, tuned: r.tuned, instructions };
    });
  },

  /** adapter_config.json + adapter_model.safetensors (PEFT names and layout). */
  exportAdapter(): Promise<ExportedFile[]> {
    return exclusive(async () => {
      assertIdle('export');
      const m = requireModel();
      if (!m.model.adapter) throw new Error('There is no adapter to export: train or import one first.');
      const files = await exportPeftAdapter(m.model, { baseModelNameOrPath: m.baseModel });
      return [...files].map(([name, bytes]) =>
        file(name, bytes, name.endsWith('.json') ? 'application/json' : 'application/octet-stream'),
      );
    });
  },

  /** The base model with the adapter folded in, in transformers' format, with the tokenizer files. */
  exportMerged(): Promise<ExportedFile[]> {
    return exclusive(async () => {
      assertIdle('export');
      const m = requireModel();
      if (!m.model.adapter) throw new Error('There is no adapter to merge: train or import one first.');
      // copies: the exported files are transferred to the page, and the worker keeps its tokenizer files
      const files = await exportMergedModel(m.model, new Map([...m.tokenizerFiles].map(([k, v]) => [k, v.slice()])));
      return [...files].map(([name, bytes]) =>
        file(name, bytes, name.endsWith('.json') ? 'application/json' : 'application/octet-stream'),
      );
    });
  },

  /** The last run's metrics (every log and evaluation) as CSV or as trainer_state.json-like JSON. */
  async exportMetrics(format: 'csv' | 'json'): Promise<ExportedFile> {
    if (!run) throw new Error('No training run yet: the metrics come from a run.');
    const enc = new TextEncoder();
    return format === 'csv'
      ? file('metrics.csv', enc.encode(run.session.metricsCsv()), 'text/csv')
      : file('metrics.json', enc.encode(run.session.metricsJson() + '\n'), 'application/json');
  },

  /** Attach a PEFT adapter (adapter_config.json + adapter_model.safetensors) to the loaded model. */
  importAdapter(files: { name: string; bytes: Uint8Array }[]): Promise<AdapterInfo> {
    return exclusive(async () => {
      assertNoRun('import an adapter');
      const m = requireModel();
      const config = files.find((f) => f.name.endsWith('.json'));
      const weights = files.find((f) => f.name.endsWith('.safetensors'));
      if (!config || !weights) {
        throw new Error(
          `Choose both files of a PEFT adapter: adapter_config.json and adapter_model.safetensors (got ${files.map((f) => f.name).join(', ') || 'nothing'}).`,
        );
      }
      const imported = parsePeftAdapter(m.model.config, {
        config: config.bytes,
        weights: weights.bytes,
        configName: config.name,
        weightsName: weights.name,
      });
      run?.dispose(); // the run's adapter is replaced; its metrics stay exportable
      loadPeftAdapter(m.model, imported);
      adapterOrigin = `imported from ${config.name} + ${weights.name}`;
      return adapterInfo()!;
    });
  },
};

export type EngineApi = typeof api;

Comlink.expose(api);
