/**
 * Out-of-memory handling: a readable OutOfMemoryError with the estimated need, the backend's limit and what to
 * reduce (HF names: per_device_train_batch_size, max_length, target_modules, gradient_checkpointing).
 *
 * - backendMemoryLimit(): what each backend can hold (wasm: the wasm32 heap ceiling of tfjs-backend-wasm; cpu: the
 *   longest typed array V8 makes; webgpu: the device's buffer limits; webgl: the texture size limit).
 * - checkModelFits() before loading, checkFits() before the first step: throw OutOfMemoryError when the weights /
 *   the run cannot fit, with concrete alternatives computed from the estimate's parts.
 * - explainOutOfMemory(): recognises the real out-of-memory errors of each backend and wraps them in the same
 *   message (the original one at the end); null for anything else.
 * - guardWasmHeap(): tfjs-backend-wasm 4.22 never checks malloc's result, so an exhausted heap silently writes the
 *   new tensor at address 0 and the module traps later ("memory access out of bounds", "table index is out of
 *   bounds", "Aborted()") with its heap corrupted. The guard makes such an allocation throw a WasmHeapError instead,
 *   before anything is written, and the backend stays usable.
 *
 * Measured calibration (tfjs 4.22, this engine, Node 20; see PEAK_FACTOR): the tensors alive at the peak of a
 * training step are 1.5-1.9x the session estimate's activations + logits on cpu; on wasm, where the engine's own
 * kernels save one tensor where tfjs's ops save several and its products keep no packed weight copies, the heap
 * peaks at 0.6-0.8x of them on top of the weights. The checks here use those factors; MemoryEstimate itself is left
 * as the session computes it.
 *
 * No DOM, no node: imports (runs in Node, in a worker and in a page).
 */
import type { BackendName } from '../engine/backend';
import type { ModelConfig } from '../engine/config';
import {
  compactableParams,
  compactWeightBytes,
  fusedProjectionBytes,
  paramShapes,
  weightBytes,
} from '../engine/params';
import type { FrozenDtype } from '../engine/frozen';
import { chunkedLoss } from '../engine/vocab-chunks';

export { weightBytes };
import type { FinetuneConfig } from './config';
import type { MemoryEstimate } from './estimate';
import { formatBytes } from '../util/bytes';
import { WASM_HEAP_MAX_BYTES, WasmHeapError, guardWasmHeap } from '../engine/wasm-heap';

export { WASM_HEAP_MAX_BYTES, WasmHeapError, guardWasmHeap };

// ---------------------------------------------------------------------------------------------------------
// Limits

/**
 * The longest typed array V8 creates (Node 20 / V8 11.3, and current Chrome on 64-bit): 2^32 elements.
 * `new Float32Array(2 ** 32)` succeeds, `new Float32Array(2 ** 32 + 1)` throws "Invalid typed array length: 4294967297".
 */
export const V8_MAX_TYPED_ARRAY_LENGTH = 2 ** 32;
/** WebGPU's guaranteed minimum maxStorageBufferBindingSize (the spec's default limit): 128 MiB. */
export const WEBGPU_MIN_STORAGE_BINDING_BYTES = 134217728;

export interface MemoryLimits {
  /** Everything the backend can hold at once; null = not knowable here (GPU memory, system RAM). */
  totalBytes: number | null;
  /** The largest single float32 tensor; null = no known limit. */
  maxTensorBytes: number | null;
  /** Where the numbers come from. */
  note: string;
}

export interface BackendLimitOptions {
  /** The WebGPU adapter's limits (src/worker/webgpu.ts webgpuAdapter().limits); tfjs requests the adapter's own. */
  webgpuLimits?: Record<string, number>;
  /** WebGL's MAX_TEXTURE_SIZE (tf.env().getNumber('WEBGL_MAX_TEXTURE_SIZE') once webgl is initialised). */
  webglMaxTextureSize?: number;
  /** System memory (os.totalmem() in Node; navigator.deviceMemory · 2^30 in a page): caps cpu and wasm. */
  deviceMemoryBytes?: number;
}

/** What one backend can hold: total bytes and the largest single float32 tensor, with where the numbers come from. */
export function backendMemoryLimit(backend: BackendName, opts: BackendLimitOptions = {}): MemoryLimits {
  const dev = opts.deviceMemoryBytes && opts.deviceMemoryBytes > 0 ? opts.deviceMemoryBytes : null;
  switch (backend) {
    case 'wasm': {
      const total = dev !== null ? Math.min(WASM_HEAP_MAX_BYTES, dev) : WASM_HEAP_MAX_BYTES;
      return {
        totalBytes: total,
        maxTensorBytes: total,
        note:
          `tfjs-backend-wasm is a wasm32 module: its heap stops at ${formatBytes(WASM_HEAP_MAX_BYTES)} (${WASM_HEAP_MAX_BYTES} bytes, ` +
          'emscripten getHeapMax) whatever the machine has' +
          (dev !== null && dev < WASM_HEAP_MAX_BYTES ? `; capped by this device's ${formatBytes(dev)}` : '') +
          '; browsers without 4 GB wasm memories stop at 2 GB',
      };
    }
    case 'cpu':
      return {
        totalBytes: dev,
        maxTensorBytes: 4 * V8_MAX_TYPED_ARRAY_LENGTH,
        note:
          `the cpu backend keeps each tensor in one JavaScript typed array, at most 2^32 elements (${formatBytes(4 * V8_MAX_TYPED_ARRAY_LENGTH)} of float32) in V8; ` +
          (dev !== null
            ? `the total is capped by this device's ${formatBytes(dev)}`
            : 'the total is limited only by system memory'),
      };
    case 'webgpu': {
      const l = opts.webgpuLimits ?? {};
      const sizes = [l.maxBufferSize, l.maxStorageBufferBindingSize].filter(
        (x): x is number => typeof x === 'number' && x > 0,
      );
      const max = sizes.length ? Math.min(...sizes) : null;
      return {
        totalBytes: null,
        maxTensorBytes: max,
        note:
          max !== null
            ? `each tensor is one GPU buffer bound as storage: at most min(maxBufferSize, maxStorageBufferBindingSize) = ${formatBytes(max)} on this adapter; WebGPU does not report GPU memory`
            : `each tensor is one GPU buffer: without the adapter's limits only WebGPU's guaranteed ${formatBytes(WEBGPU_MIN_STORAGE_BINDING_BYTES)} binding size is known; WebGPU does not report GPU memory`,
      };
    }
    case 'webgl': {
      const t = opts.webglMaxTextureSize && opts.webglMaxTextureSize > 0 ? opts.webglMaxTextureSize : null;
      return {
        totalBytes: null,
        maxTensorBytes: t !== null ? 4 * t * t : null,
        note:
          t !== null
            ? `each tensor is one texture of at most ${t}x${t} texels, one float32 each unpacked (${formatBytes(4 * t * t)}; 4x that packed); WebGL does not report GPU memory`
            : 'each tensor is one texture (limited by MAX_TEXTURE_SIZE, not given); WebGL does not report GPU memory',
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The error

export type OomPhase = 'load' | 'first-step' | 'step';

export interface OutOfMemoryErrorInit {
  phase: OomPhase;
  backend: BackendName;
  neededBytes: number | null;
  limitBytes: number | null;
  advice: string[];
  /** Default true. False when the backend cannot be used any more (see OutOfMemoryError.recoverable). */
  recoverable?: boolean;
  cause?: unknown;
}

export class OutOfMemoryError extends Error {
  readonly phase: OomPhase;
  readonly backend: BackendName;
  /** Estimated bytes the model / run needs on this backend; null when unknown. */
  readonly neededBytes: number | null;
  /** The limit that is exceeded (total, or the largest tensor); null when the backend does not report it. */
  readonly limitBytes: number | null;
  /** What to change, one suggestion per entry, with HF option names and the estimated need after the change. */
  readonly advice: string[];
  /**
   * False when the backend's state is no longer trustworthy and it must be re-created (reload the page or restart
   * the worker / process) before anything else runs on it: a wasm trap after an unchecked failed allocation (the
   * heap is corrupted), a lost WebGPU device or WebGL context. True when nothing was allocated (the checks here,
   * guardWasmHeap, V8's refusal to create a typed array, tfjs's texture size check).
   */
  readonly recoverable: boolean;

  constructor(message: string, init: OutOfMemoryErrorInit) {
    super(message, init.cause !== undefined ? { cause: init.cause } : undefined);
    this.name = 'OutOfMemoryError';
    this.phase = init.phase;
    this.backend = init.backend;
    this.neededBytes = init.neededBytes;
    this.limitBytes = init.limitBytes;
    this.advice = init.advice;
    this.recoverable = init.recoverable ?? true;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Formatting

export { formatBytes };

const LIMIT_NAME: Record<BackendName, string> = {
  wasm: 'heap',
  cpu: 'memory',
  webgpu: 'GPU memory',
  webgl: 'GPU memory',
};

// ---------------------------------------------------------------------------------------------------------
// Fitting a run

/**
 * Measured peak / estimate of the transient parts (activations + logits, the attention share of ATTENTION_EXTRA
 * included) per backend. wasm: heap at the end of two training steps minus weights and LoRA state, over the estimate
 * at factor 1, with the engine's own wasm kernels (wasm-kernels.ts: every product, cache-blocked with no packed
 * weight copies; RMSNorm, softmax and cross-entropy gradients that save one tensor each): SmolLM2-135M's shape at
 * 4 x 128 without checkpointing 0.77 (heap 2.08 GB), GPT-2-small's 0.69 (1.78 GB); stories260K r16 all-linear at
 * 10, 30 and 40 x 354 tokens 0.60-0.62 (40 rows grew the heap to 3.76 GB, 44 ran out of it; measured before the
 * blocked products, which change nothing there: its weights are 1 MB). With tfjs's own ops it
 * was 1.06-2.65, hence 1.5 then. cpu: live tensor bytes at the peak / estimate, 1.5-1.9 over four configurations.
 * webgl/webgpu run the same engine code path as cpu (no wasm kernels), so the same tensors are alive; they were not
 * measured and take cpu's factor.
 */
export const PEAK_FACTOR: Readonly<Record<BackendName, number>> = Object.freeze({
  wasm: 1,
  cpu: 1.9,
  webgl: 1.9,
  webgpu: 1.9,
});
/**
 * PEAK_FACTOR on wasm with gradient checkpointing: the block being recomputed holds its tensors on top of the kept
 * block inputs. Measured 0.95 (SmolLM2-135M's shape at 4 x 128: heap 1.07 GB against 523 MB of weights and LoRA state
 * and 571 MB estimated) and 0.85 (GPT-2-small's: 1.02 GB against 481 MB and 634 MB).
 */
export const WASM_CHECKPOINTING_PEAK_FACTOR = 1.1;

/** The factor a run's transient parts are scaled by (see PEAK_FACTOR); FitExtra.peakFactor overrides it. */
function peakFactorOf(backend: BackendName, checkpointing: boolean, extra: FitExtra): number {
  if (extra.peakFactor !== undefined) return extra.peakFactor;
  return backend === 'wasm' && checkpointing ? WASM_CHECKPOINTING_PEAK_FACTOR : PEAK_FACTOR[backend];
}
/** session.estimate() counts 5 vocab-sized tensors per token (logits, softmax, target update, gradient): one is bytes.logits / 5. */
const LOGIT_COPIES = 5;
/**
 * Share of a backend's total limit a run may plan on. Measured: stories260K, 15 × 354 tokens, estimated at 3.8 GB,
 * failed on wasm with the heap at 3.9 GB (fragmentation, XNNPACK's own buffers, the guard's reserve).
 */
export const USABLE_FRACTION = 0.85;
/**
 * Extra weight of the attention scores, which grow with the square of the row length. Set when stories260K (8 heads,
 * 5 layers) at 354-token rows ran out of the 4 GB heap at batch 11 while the calibrated estimate said 2.8 GB; with
 * the wasm kernels that run now reaches batch 40 (PEAK_FACTOR's measurements include this share).
 */
export const ATTENTION_EXTRA = 0.5;

export interface FitExtra {
  /** How many modules the LoRA targets (adapter.layers.size): shown as "(now all-linear, 210 layers)". */
  modules?: number;
  /** The model's config: exact single-tensor sizes (attention scores, MLP) and the weights as stored. */
  modelConfig?: ModelConfig;
  /** Override PEAK_FACTOR[backend] (1 = trust the estimate as it is). */
  peakFactor?: number;
}

/** One run's memory on one backend, calibrated: the parts and the largest single tensor. */
export interface FitReport {
  backend: BackendName;
  neededBytes: number;
  parts: { weights: number; activations: number; logits: number; loraAndOptimizer: number };
  largestTensor: { what: string; bytes: number };
  limits: MemoryLimits;
  fits: boolean;
  /** Why it does not fit, as a clause to append to the need (empty when it fits). */
  reason: string;
}

interface Variant {
  batch: number;
  seq: number;
  checkpointing: boolean;
}

function analyse(
  e: MemoryEstimate,
  backend: BackendName,
  limits: MemoryLimits,
  extra: FitExtra,
  v: Variant,
): FitReport {
  const f = peakFactorOf(backend, v.checkpointing, extra);
  const cfg = extra.modelConfig;
  // Scaled from the largest micro-batch (batch_size rows of seq_len tokens): every transient part is linear in the
  // token count, except the attention scores, which also grow with seq_len; scaling them linearly too
  // over-estimates shorter lengths, so the suggestions stay on the safe side.
  const scale = (v.batch * v.seq) / Math.max(1, e.batch_size * e.seq_len);
  let act = (v.checkpointing ? e.activations_with_checkpointing : e.activations_without_checkpointing) * scale * f;
  if (cfg) {
    // the attention scores' share (4 floats of H·S per token and block in the estimate) grows with S² and is what
    // the average calibration misses most on long rows: count ATTENTION_EXTRA of it once more
    const blocks = v.checkpointing ? 1 : cfg.num_hidden_layers;
    act += ATTENTION_EXTRA * 4 * (v.batch * v.seq) * blocks * 4 * cfg.num_attention_heads * v.seq * f;
  }
  const logits = e.bytes.logits * scale * f;
  const loraAndOptimizer = e.bytes.lora + e.bytes.gradients + e.bytes.optimizer;
  // with the config, the weights as this backend stores them (the estimate counts the backend active when it ran)
  let weights = cfg ? weightBytes(e.total_params, cfg, e.frozen_dtype) : e.bytes.weights;
  // webgpu keeps q/k/v and gate/up concatenated beside the separate weights (model.ts projection())
  if (cfg && backend === 'webgpu' && e.frozen_dtype === 'float32') weights += fusedProjectionBytes(cfg);
  const neededBytes = weights + act + logits + loraAndOptimizer;
  const N = v.batch * v.seq;
  const V =
    e.tokens_per_micro_batch > 0 ? Math.round(e.bytes.logits / (4 * LOGIT_COPIES * e.tokens_per_micro_batch)) : 0;
  const tensors: { what: string; bytes: number }[] = [
    {
      what:
        cfg && chunkedLoss(cfg.vocab_size, e.frozen_dtype !== 'float32')
          ? `a chunk of the logits (${v.batch} × ${v.seq} × ${V} of the ${cfg.vocab_size} vocabulary floats)`
          : `the logits (${v.batch} × ${v.seq} × ${V} floats)`,
      bytes: 4 * N * V,
    },
  ];
  if (cfg) {
    tensors.push({
      what: `the attention scores (${v.batch} × ${cfg.num_attention_heads} × ${v.seq} × ${v.seq} floats)`,
      bytes: 4 * v.batch * cfg.num_attention_heads * v.seq * v.seq,
    });
    tensors.push({
      what: `the MLP activations (${N} × ${cfg.intermediate_size} floats)`,
      bytes: 4 * N * cfg.intermediate_size,
    });
    const biggestWeight = Math.max(...[...paramShapes(cfg).values()].map((s) => s.reduce((a, b) => a * b, 1)));
    tensors.push({ what: `the largest weight (${biggestWeight} floats)`, bytes: 4 * biggestWeight });
  }
  const largestTensor = tensors.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  // a run may plan on USABLE_FRACTION of the limit: the heap fragments and the estimate is a measured average
  const usable = limits.totalBytes !== null ? limits.totalBytes * USABLE_FRACTION : null;
  const overTotal = usable !== null && neededBytes > usable;
  const overTensor = limits.maxTensorBytes !== null && largestTensor.bytes > limits.maxTensorBytes;
  const reason = overTotal
    ? neededBytes > limits.totalBytes!
      ? `, more than ${backend}'s ${formatBytes(limits.totalBytes!)} ${LIMIT_NAME[backend]}`
      : `, more than the ${formatBytes(usable!)} of ${backend}'s ${formatBytes(limits.totalBytes!)} ${LIMIT_NAME[backend]} a run can plan on (the rest is lost to fragmentation)`
    : overTensor
      ? `; its largest tensor, ${largestTensor.what} = ${formatBytes(largestTensor.bytes)}, is more than the ${formatBytes(limits.maxTensorBytes!)} ${backend} allows for one tensor`
      : '';
  return {
    backend,
    neededBytes,
    parts: { weights, activations: act, logits, loraAndOptimizer },
    largestTensor,
    limits,
    fits: !overTotal && !overTensor,
    reason,
  };
}

function describeTargets(config: FinetuneConfig, modules?: number): string {
  const t = config.target_modules;
  const what = t === null ? "PEFT's default for this architecture" : t === 'all-linear' ? 'all-linear' : t.join(', ');
  return modules !== undefined ? `${what}, ${modules} layers` : what;
}

interface Suggestions {
  sentence: string;
  advice: string[];
}

/**
 * The concrete alternatives, each with its estimated need: the largest batch / length that fits the limits, or, with
 * `halve` (a real out-of-memory error the known limits do not explain, e.g. GPU memory, which no API reports), the
 * largest with at most half the tokens of the failing micro-batch.
 */
function suggest(
  e: MemoryEstimate,
  config: FinetuneConfig,
  backend: BackendName,
  limits: MemoryLimits,
  extra: FitExtra,
  halve = false,
): Suggestions {
  const base: Variant = { batch: e.batch_size, seq: e.seq_len, checkpointing: e.gradient_checkpointing };
  const analysed = (v: Partial<Variant>) => analyse(e, backend, limits, extra, { ...base, ...v });
  const at = (v: Partial<Variant>) => {
    const r = analysed(v);
    if (!halve) return r;
    const w = { ...base, ...v };
    return { ...r, fits: w.batch * w.seq <= (base.batch * base.seq) / 2 && w.checkpointing === base.checkpointing };
  };
  const clauses: string[] = [];
  const advice: string[] = [];
  const nowBatch = config.per_device_train_batch_size;

  // per_device_train_batch_size: the largest that fits
  let bestBatch = 0;
  for (let b = base.batch - 1; b >= 1; b--)
    if (at({ batch: b }).fits) {
      bestBatch = b;
      break;
    }
  if (bestBatch > 0) {
    const need = at({ batch: bestBatch }).neededBytes;
    clauses.push(`per_device_train_batch_size (now ${nowBatch}; ${bestBatch} would need about ${formatBytes(need)})`);
    const ga = Math.ceil((nowBatch * config.gradient_accumulation_steps) / bestBatch);
    advice.push(
      `per_device_train_batch_size ${bestBatch} (now ${nowBatch}) would need about ${formatBytes(need)}; ` +
        `gradient_accumulation_steps ${ga} keeps an effective batch of about ${nowBatch * config.gradient_accumulation_steps}`,
    );
  } else if (base.batch > 1) {
    clauses.push(
      `per_device_train_batch_size (now ${nowBatch}; even 1 would need about ${formatBytes(at({ batch: 1 }).neededBytes)})`,
    );
    advice.push(
      `per_device_train_batch_size 1 alone is not enough (about ${formatBytes(at({ batch: 1 }).neededBytes)})`,
    );
  }

  // max_length: the largest multiple of 16 (8 for short rows) below the longest batch that fits
  const step = base.seq > 64 ? 16 : 8;
  let bestLen = 0;
  for (let s = Math.floor((base.seq - 1) / step) * step; s >= step; s -= step)
    if (at({ seq: s }).fits) {
      bestLen = s;
      break;
    }
  const lenNote = base.seq < config.max_length ? `, longest batch ${base.seq} tokens` : '';
  if (bestLen > 0) {
    const need = at({ seq: bestLen }).neededBytes;
    clauses.push(`max_length (now ${config.max_length}${lenNote}; ${bestLen} would need about ${formatBytes(need)})`);
    advice.push(
      `max_length ${bestLen} (now ${config.max_length}${lenNote}) would need about ${formatBytes(need)}; longer examples are cut to it`,
    );
  } else if (base.seq > step) {
    const half = Math.max(1, Math.floor(base.seq / 2));
    clauses.push(
      `max_length (now ${config.max_length}${lenNote}; even ${half} would need about ${formatBytes(at({ seq: half }).neededBytes)})`,
    );
  }

  // target_modules: named, not quantified (the estimate does not split activations by module)
  clauses.push(`the LoRA targets (now ${describeTargets(config, extra.modules)})`);
  advice.push(
    `fewer LoRA target_modules (now ${describeTargets(config, extra.modules)}), e.g. ["q_proj", "v_proj"]: less LoRA activation memory and ` +
      `LoRA + optimizer state (now ${formatBytes(e.bytes.lora + e.bytes.gradients + e.bytes.optimizer)})`,
  );

  // gradient_checkpointing
  let ckSentence = '';
  if (!base.checkpointing) {
    const ck = at({ checkpointing: true });
    ckSentence = `, or turn on gradient_checkpointing (about ${formatBytes(ck.neededBytes)})`;
    advice.push(
      `gradient_checkpointing true would need about ${formatBytes(ck.neededBytes)} (each block is recomputed in the backward pass, ~30% slower)` +
        (ck.fits || halve ? '' : '; not enough alone'),
    );
    if (!halve && !ck.fits && bestBatch === 0) {
      let b = 0;
      for (let x = base.batch - 1; x >= 1; x--)
        if (at({ batch: x, checkpointing: true }).fits) {
          b = x;
          break;
        }
      if (b > 0)
        advice.push(
          `gradient_checkpointing with per_device_train_batch_size ${b} would need about ${formatBytes(at({ batch: b, checkpointing: true }).neededBytes)}`,
        );
    }
  }
  const smallest = analysed({ batch: 1, seq: Math.min(base.seq, step), checkpointing: true });
  if (!halve && !smallest.fits) {
    advice.push(
      `even per_device_train_batch_size 1, max_length ${Math.min(base.seq, step)} and gradient_checkpointing would need about ` +
        `${formatBytes(smallest.neededBytes)}: choose a smaller model${backend === 'wasm' ? ' or a GPU backend (webgpu)' : ' or another backend'}`,
    );
  }
  const last = clauses.pop()!;
  const sentence = `Reduce ${clauses.length ? clauses.join(', ') + ', or ' : ''}${last}${ckSentence}.`;
  return { sentence, advice };
}

function partsText(r: FitReport): string {
  const p = r.parts;
  return `weights ${formatBytes(p.weights)}, activations ${formatBytes(p.activations)}, logits ${formatBytes(p.logits)}, LoRA + optimizer ${formatBytes(p.loraAndOptimizer)}`;
}

function calibrationNote(backend: BackendName, extra: FitExtra, checkpointing: boolean): string {
  const f = peakFactorOf(backend, checkpointing, extra);
  return f === 1 ? '' : ` (Activations and logits are the session estimate × ${f}, the peak measured on ${backend}.)`;
}

/** The run's calibrated memory on a backend, without throwing. */
export function fitReport(
  estimate: MemoryEstimate,
  backend: BackendName,
  limits: MemoryLimits = backendMemoryLimit(backend),
  extra: FitExtra = {},
): FitReport {
  return analyse(estimate, backend, limits, extra, {
    batch: estimate.batch_size,
    seq: estimate.seq_len,
    checkpointing: estimate.gradient_checkpointing,
  });
}

/**
 * Before training: throws OutOfMemoryError (phase 'first-step') when the run cannot fit the backend — the calibrated
 * total over limits.totalBytes, or its largest single tensor over limits.maxTensorBytes — with the largest
 * per_device_train_batch_size / max_length that would fit and what gradient_checkpointing would need. Returns the
 * report when it fits.
 */
export function checkFits(
  estimate: MemoryEstimate,
  config: FinetuneConfig,
  backend: BackendName,
  limits: MemoryLimits = backendMemoryLimit(backend),
  extra: FitExtra = {},
): FitReport {
  const r = fitReport(estimate, backend, limits, extra);
  const refusal = refusalOf(r, estimate, config, backend, limits, extra);
  if (refusal) throw refusal;
  return r;
}

/** The OutOfMemoryError refusing a run whose report does not fit (null when it fits). */
function refusalOf(
  r: FitReport,
  estimate: MemoryEstimate,
  config: FinetuneConfig,
  backend: BackendName,
  limits: MemoryLimits,
  extra: FitExtra,
): OutOfMemoryError | null {
  if (r.fits) return null;
  const s = suggest(estimate, config, backend, limits, extra);
  const limit =
    limits.totalBytes !== null && r.neededBytes > limits.totalBytes ? limits.totalBytes : limits.maxTensorBytes;
  const message =
    `This run needs about ${formatBytes(r.neededBytes)} on ${backend} (${partsText(r)})${r.reason}. ${s.sentence}` +
    calibrationNote(backend, extra, estimate.gradient_checkpointing);
  return new OutOfMemoryError(message, {
    phase: 'first-step',
    backend,
    neededBytes: r.neededBytes,
    limitBytes: limit,
    advice: s.advice,
    recoverable: true,
  });
}

/** What the fit check needs from a fine-tuning session (FinetuneSession has it). */
export interface FitSubject {
  estimate(): MemoryEstimate;
  readonly config: FinetuneConfig;
  readonly adapter: { readonly layers: { readonly size: number } };
  readonly model: { readonly config: ModelConfig };
}

export interface SessionFit {
  estimate: MemoryEstimate;
  report: FitReport;
  /** The session's FitExtra (adapted modules, model config), e.g. for explainOutOfMemory. */
  extra: FitExtra;
  /** Why the run cannot start (what it needs and what to reduce); null when it fits. */
  refusal: OutOfMemoryError | null;
}

/** A session's FitExtra: how many modules its adapter targets and the model's config. */
export function fitExtraOf(session: Pick<FitSubject, 'adapter' | 'model'>): FitExtra {
  return { modules: session.adapter.layers.size, modelConfig: session.model.config };
}

/**
 * Whether a session's run fits the backend — its estimate, the calibrated report and, when it does not fit, the
 * refusal to show or throw. The CLI and the worker decide with this before training.
 */
export function sessionFit(
  session: FitSubject,
  backend: BackendName,
  limits: MemoryLimits = backendMemoryLimit(backend),
): SessionFit {
  const estimate = session.estimate();
  const extra = fitExtraOf(session);
  const report = fitReport(estimate, backend, limits, extra);
  return { estimate, report, extra, refusal: refusalOf(report, estimate, session.config, backend, limits, extra) };
}

// ---------------------------------------------------------------------------------------------------------
// Fitting a model

export interface ModelFitOptions {
  /** The model's config: adds the RoPE table, and checks the largest weight tensor. */
  config?: ModelConfig;
  modelName?: string;
  /** How the frozen weights will be stored (compact ones live outside the backend). Default float32. */
  frozenDtype?: FrozenDtype;
}

function otherBackends(backend: BackendName): string {
  return backend === 'wasm'
    ? 'webgpu (GPU memory, no 4 GB heap ceiling), or cpu in Node'
    : backend === 'webgpu'
      ? 'wasm (4 GB heap) or cpu'
      : backend === 'webgl'
        ? 'webgpu or wasm'
        : 'wasm or a GPU backend';
}

function paramsText(p: number): string {
  return p >= 1e9 ? `${(p / 1e9).toFixed(2)} B` : p >= 1e6 ? `${(p / 1e6).toFixed(1)} M` : `${p}`;
}

/**
 * Before loading: throws OutOfMemoryError (phase 'load') when the float32 weights cannot fit the backend (or one
 * weight tensor is larger than it allows), naming the model size and suggesting a smaller model or another backend.
 * Returns the bytes the weights take.
 */
export function checkModelFits(
  params: number,
  backend: BackendName,
  limits: MemoryLimits = backendMemoryLimit(backend),
  opts: ModelFitOptions = {},
): number {
  const cfg = opts.config;
  const dtype = opts.frozenDtype ?? 'float32';
  if (cfg && dtype !== 'float32') {
    // the backend holds the float32 rest and one expanded layer; one tensor is at most the largest linear layer
    const need = weightBytes(params, cfg, dtype);
    const biggest = 4 * compactableParams(cfg).largest;
    const fitsTotal = limits.totalBytes === null || need <= limits.totalBytes;
    const fitsTensor = limits.maxTensorBytes === null || biggest <= limits.maxTensorBytes;
    if (fitsTotal && fitsTensor) return need;
  }
  const need = weightBytes(params, cfg);
  const extraBytes = need - 4 * params;
  const name = opts.modelName
    ? `${opts.modelName} (${paramsText(params)} parameters)`
    : `This model (${paramsText(params)} parameters)`;
  const biggest = cfg ? 4 * Math.max(...[...paramShapes(cfg).values()].map((s) => s.reduce((a, b) => a * b, 1))) : 0;
  const overTotal = limits.totalBytes !== null && need > limits.totalBytes;
  const overTensor = limits.maxTensorBytes !== null && biggest > limits.maxTensorBytes;
  if (!overTotal && !overTensor) return need;
  const advice: string[] = [];
  let message: string;
  if (overTotal) {
    const maxParams = Math.floor((limits.totalBytes! - extraBytes) / 4);
    message =
      `${name} needs about ${formatBytes(need)} on ${backend} as float32 weights` +
      (extraBytes > 0 ? ` (${formatBytes(4 * params)} + ${formatBytes(extraBytes)} for the RoPE table)` : '') +
      `, more than ${backend}'s ${formatBytes(limits.totalBytes!)} ${LIMIT_NAME[backend]}, before any training memory.`;
    advice.push(
      `a smaller model: at most about ${paramsText(Math.max(0, maxParams))} parameters fit ${backend}'s ${formatBytes(limits.totalBytes!)} as weights alone, ` +
        'and training needs room beyond them (activations, logits)',
    );
  } else {
    message = `${name}: its largest weight tensor is ${formatBytes(biggest)}, more than the ${formatBytes(limits.maxTensorBytes!)} ${backend} allows for one tensor (${limits.note}).`;
    advice.push('a model with a smaller vocabulary or hidden size (the embedding is vocab_size × hidden_size)');
  }
  if (cfg && dtype === 'float32') {
    for (const d of ['float16', 'int8'] as const) {
      const n = weightBytes(params, cfg, d);
      if (limits.totalBytes === null || n <= limits.totalBytes) {
        advice.push(
          `frozen_dtype ${d}: the frozen weights kept as ${d === 'int8' ? '8-bit integers' : '16-bit floats'} (` +
            `${formatBytes(compactWeightBytes(cfg, d))} outside ${backend}, ${formatBytes(n)} on it)`,
        );
        message += ` With frozen_dtype ${d} it needs ${formatBytes(n)} on ${backend}.`;
        break;
      }
    }
  }
  advice.push(`another backend: ${otherBackends(backend)}`);
  message += ` Choose a smaller model or another backend (${otherBackends(backend)}).`;
  throw new OutOfMemoryError(message, {
    phase: 'load',
    backend,
    neededBytes: overTotal ? need : biggest,
    limitBytes: overTotal ? limits.totalBytes : limits.maxTensorBytes,
    advice,
    recoverable: true,
  });
}

// ---------------------------------------------------------------------------------------------------------
// Recognising real out-of-memory errors

type OomKind =
  | { kind: 'wasm-guard'; requested: number }
  | { kind: 'wasm-trap' }
  | { kind: 'wasm-memory' }
  | { kind: 'js-length'; elements: number }
  | { kind: 'js-alloc' }
  | { kind: 'webgl-texture'; requested: string; max: string }
  | { kind: 'gpu-lost' }
  | { kind: 'gpu-buffer' }
  | { kind: 'generic' };

function errorText(error: unknown): { name: string; message: string } | null {
  if (typeof error === 'string') return { name: '', message: error };
  if (!error || typeof error !== 'object') return null;
  const o = error as { name?: unknown; message?: unknown; error?: unknown; reason?: unknown };
  // a GPUUncapturedErrorEvent carries its GPUError in .error
  if (!(error instanceof Error) && o.error && typeof o.error === 'object') return errorText(o.error);
  const ctor = (Object.getPrototypeOf(error) as { constructor?: { name?: string } } | null)?.constructor?.name ?? '';
  // GPUError subclasses are not Errors and have no name: their class names them (GPUOutOfMemoryError)
  const name =
    typeof o.name === 'string' && !(ctor.startsWith('GPU') && o.name === '') ? o.name : ctor === 'Object' ? '' : ctor;
  let message = typeof o.message === 'string' ? o.message : '';
  // GPUDeviceLostInfo: reason 'unknown' is a real loss ('destroyed' means the page destroyed the device itself)
  if (o.reason === 'unknown' && ctor === 'GPUDeviceLostInfo') message = `device lost (unknown): ${message}`;
  if (!message && !name) return null;
  return { name, message };
}

/** Which kind of real out-of-memory error this is, or null. The patterns are the texts the backends really produce. */
function classify(error: unknown, backend: BackendName): OomKind | null {
  if (error instanceof WasmHeapError) return { kind: 'wasm-guard', requested: error.requestedBytes };
  const t = errorText(error);
  if (!t) return null;
  const { name, message: m } = t;
  // tfjs-wasm traps after an unchecked failed malloc (WebAssembly.RuntimeError); only meaningful on wasm
  if (
    backend === 'wasm' &&
    (name === 'RuntimeError' || error instanceof WebAssembly.RuntimeError) &&
    /^(memory access out of bounds|table index is out of bounds|Aborted\()/.test(m)
  )
    return { kind: 'wasm-trap' };
  // V8 cannot reserve a wasm memory / instance (browsers on small devices)
  if (
    /WebAssembly\.Memory\(\): could not allocate memory|Cannot allocate Wasm memory|WebAssembly\.Memory\.grow\(\): Maximum memory size exceeded/.test(
      m,
    )
  )
    return { kind: 'wasm-memory' };
  // V8: a typed array longer than 2^32 elements (the cpu backend's tensors, any readback)
  const len = /^Invalid typed array length: (\d+)$/.exec(m);
  if (len && Number(len[1]) >= 2 ** 30) return { kind: 'js-length', elements: Number(len[1]) };
  // V8: the ArrayBuffer's backing store could not be allocated
  if (/^Array buffer allocation failed$/.test(m)) return { kind: 'js-alloc' };
  // tfjs-backend-webgl's texture size check (webgl_util.validateTextureSize)
  const tex =
    /Requested texture size \[(\d+x\d+)\] greater than WebGL maximum on this browser \/ GPU \[(\d+x\d+)\]/.exec(m);
  if (tex) return { kind: 'webgl-texture', requested: tex[1], max: tex[2] };
  // WebGPU: an explicit GPUOutOfMemoryError, or createBuffer refusing a size
  if (
    name === 'GPUOutOfMemoryError' ||
    (typeof GPUOutOfMemoryErrorCtor() === 'function' &&
      error instanceof (GPUOutOfMemoryErrorCtor() as new () => object))
  )
    return { kind: 'gpu-buffer' };
  if (
    /createBuffer failed, size.*too large|exceeds the max buffer size limit|Failed to execute 'createBuffer' on 'GPUDevice'.*too large/i.test(
      m,
    )
  )
    return { kind: 'gpu-buffer' };
  // a lost WebGPU device / WebGL context (GPU memory exhaustion is the usual cause during training)
  if (/Device is lost|device lost \(unknown\)|A valid external Instance reference no longer exists/.test(m))
    return { kind: 'gpu-lost' };
  if (/CONTEXT_LOST_WEBGL|WebGL context lost|Unable to create WebGL(Texture|Buffer|Framebuffer)/.test(m))
    return { kind: 'gpu-lost' };
  if (/WebGL Error: OUT_OF_MEMORY/.test(m)) return { kind: 'gpu-lost' };
  // explicit out-of-memory texts (Dawn/Vulkan "VK_ERROR_OUT_OF_DEVICE_MEMORY", "Out of memory", …)
  if (/(^|[^a-z])out[ _-]of[ _-](device[ _-])?memory([^a-z]|$)/i.test(m) || /\bOutOfMemory\b/.test(name))
    return { kind: 'generic' };
  return null;
}

function GPUOutOfMemoryErrorCtor(): unknown {
  return (globalThis as { GPUOutOfMemoryError?: unknown }).GPUOutOfMemoryError;
}

export interface OomContext {
  phase: OomPhase;
  backend: BackendName;
  estimate?: MemoryEstimate;
  config?: FinetuneConfig;
  modelName?: string;
  limits?: MemoryLimits;
  extra?: FitExtra;
}

const RECOVER_WASM = `The wasm backend's memory is now corrupted (tfjs-backend-wasm does not check failed allocations): reload the page or restart before training again.`;
const RECOVER_GPU = 'The GPU backend cannot be used any more in this page: reload it before training again.';

/**
 * A real out-of-memory error of a backend, wrapped in a clear OutOfMemoryError (with the estimated need and what to
 * reduce when ctx has the estimate and config; the original message at the end). Null for any other error.
 */
export function explainOutOfMemory(error: unknown, ctx: OomContext): OutOfMemoryError | null {
  if (error instanceof OutOfMemoryError) return error;
  const k = classify(error, ctx.backend);
  if (!k) return null;
  const b = ctx.backend;
  const limits = ctx.limits ?? backendMemoryLimit(b);
  const extra = ctx.extra ?? {};
  const where =
    ctx.phase === 'load'
      ? `while loading ${ctx.modelName ?? 'the model'}`
      : ctx.phase === 'first-step'
        ? 'on the first training step'
        : 'during training';
  let what: string;
  let recoverable = true;
  let needed: number | null = null;
  let limit: number | null = limits.totalBytes;
  switch (k.kind) {
    case 'wasm-guard':
      what =
        k.requested > WASM_HEAP_MAX_BYTES
          ? `a ${formatBytes(k.requested)} tensor is larger than the whole ${formatBytes(WASM_HEAP_MAX_BYTES)} wasm heap`
          : `the wasm heap is full: a ${formatBytes(k.requested)} tensor did not fit in its ${formatBytes(WASM_HEAP_MAX_BYTES)}`;
      needed = k.requested;
      break;
    case 'wasm-trap':
      what = `the wasm heap (at most ${formatBytes(WASM_HEAP_MAX_BYTES)}) most likely ran out; tfjs-wasm then writes out of bounds and traps`;
      recoverable = false;
      break;
    case 'wasm-memory':
      what = 'the browser could not reserve memory for the wasm backend';
      recoverable = false;
      break;
    case 'js-length':
      what = `a tensor of ${k.elements} elements is longer than JavaScript allows (2^32 elements)`;
      needed = 4 * k.elements;
      limit = 4 * V8_MAX_TYPED_ARRAY_LENGTH;
      break;
    case 'js-alloc':
      what = 'JavaScript could not allocate the memory for a tensor';
      break;
    case 'webgl-texture':
      what = `a tensor needs a ${k.requested} texture, larger than this GPU allows (${k.max})`;
      limit = limits.maxTensorBytes;
      break;
    case 'gpu-buffer':
      what = 'the GPU could not allocate a buffer for a tensor';
      limit = limits.maxTensorBytes;
      break;
    case 'gpu-lost':
      what =
        b === 'webgl'
          ? 'the WebGL context was lost (usually GPU memory running out)'
          : 'the GPU device was lost (usually GPU memory running out)';
      recoverable = false;
      break;
    default:
      what = 'the backend ran out of memory';
      recoverable = b === 'cpu'; // a GPU or wasm backend that reports OOM itself is not trusted afterwards
  }
  let detail: string;
  let advice: string[];
  if (ctx.phase !== 'load' && ctx.estimate && ctx.config) {
    const r = fitReport(ctx.estimate, b, limits, extra);
    needed = needed ?? r.neededBytes;
    const s = suggest(ctx.estimate, ctx.config, b, limits, extra, r.fits);
    detail =
      ` This run needs about ${formatBytes(r.neededBytes)} on ${b} (${partsText(r)})` +
      (limits.totalBytes !== null
        ? r.neededBytes > limits.totalBytes
          ? `, more than ${b}'s ${formatBytes(limits.totalBytes)} ${LIMIT_NAME[b]}`
          : ` by the estimate, of ${b}'s ${formatBytes(limits.totalBytes)} ${LIMIT_NAME[b]}`
        : '') +
      `. ${s.sentence}`;
    advice = s.advice;
  } else if (ctx.phase === 'load') {
    detail = ` Choose a smaller model or another backend (${otherBackends(b)}).`;
    advice = [`a smaller model`, `another backend: ${otherBackends(b)}`];
  } else {
    detail =
      ' Reduce per_device_train_batch_size, max_length or the LoRA targets (target_modules), or turn on gradient_checkpointing.';
    advice = [
      'reduce per_device_train_batch_size',
      'reduce max_length',
      'fewer LoRA target_modules',
      'turn on gradient_checkpointing',
    ];
  }
  const recover = recoverable ? '' : ' ' + (b === 'wasm' ? RECOVER_WASM : RECOVER_GPU);
  const t = errorText(error)!;
  const original = `${t.name ? t.name + ': ' : ''}${t.message}`;
  const message = `Out of memory on ${b} ${where}: ${what}.${detail}${recover} (${original})`;
  return new OutOfMemoryError(message, {
    phase: ctx.phase,
    backend: b,
    neededBytes: needed,
    limitBytes: limit,
    advice,
    recoverable,
    cause: error,
  });
}

// ---------------------------------------------------------------------------------------------------------
// The wasm allocation guard

/** Whether a model of `params` parameters fits a backend at each frozen_dtype, before its config is known. */
export interface StorageFit {
  dtype: FrozenDtype;
  /** On the backend: the float32 weights (or, compact, the few dense ones and a layer in use) plus training. */
  backendBytes: number;
  /** Compact weights, in JavaScript memory outside the backend. */
  outsideBytes: number;
  fits: boolean;
}

/** Share of a model's parameters in matrices that can be stored compact (all but norms, biases and positions). */
const COMPACTABLE_SHARE = 0.97;

/**
 * A pre-download answer for the catalog: `memoryBytes` is the float32 training need at the model's preset (weights
 * included); compact storage moves the matrices out of the backend. Judged against the usable part of the limit.
 */
export function storageFits(params: number, memoryBytes: number, limits: MemoryLimits): StorageFit[] {
  const training = Math.max(0, memoryBytes - 4 * params);
  return (['float32', 'float16', 'int8'] as const).map((dtype) => {
    const per = dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 1;
    const backendBytes = dtype === 'float32' ? memoryBytes : training + 4 * params * (1 - COMPACTABLE_SHARE);
    const outsideBytes = dtype === 'float32' ? 0 : per * params * COMPACTABLE_SHARE;
    const fits = limits.totalBytes === null || backendBytes <= limits.totalBytes * USABLE_FRACTION;
    return { dtype, backendBytes, outsideBytes, fits };
  });
}
