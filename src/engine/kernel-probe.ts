/**
 * Kernel probe: which backends initialise, and which gradients of the ops the engine needs run and
 * agree with the cpu backend. Pure TensorFlow.js (no DOM), so Node tests run it on cpu/wasm and the
 * browser worker runs it on webgpu/webgl/wasm/cpu.
 *
 * Every case builds the same inputs on every backend from a seeded generator, computes
 * loss = sum(f(inputs) * w) for a fixed random w, and takes the gradient with respect to every float input.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config';
import { CausalLM } from './model';
import { paramShapes } from './params';
import { gradsViaSink } from './grad-sink';
import { webgpuKernelsActive } from './webgpu-program';
import { bmm, linearOutIn } from './ops';
// backend.ts also registers tfjs's gradients, which tfjs-core alone does not.
import { BACKEND_ORDER, initBackend, type BackendName } from './backend';

export type GradStatus = 'ok' | 'mismatch' | 'error';

export interface GradCaseResult {
  name: string;
  /** Why training never takes this gradient (the op is probed for completeness); absent when training needs it. */
  unusedBecause?: string;
  status: GradStatus;
  /** Kernels the forward and backward pass ran (recorded on cpu). */
  kernels: string[];
  /** Of `kernels`, those this backend has no implementation for. */
  missingKernels: string[];
  /** Largest |this backend - cpu| over the loss and every gradient; absent on cpu itself and on errors. */
  maxAbsDiff?: number;
  error?: string;
  ms: number;
}

export interface BackendProbe {
  backend: BackendName;
  available: boolean;
  /** Why the backend could not be initialised. */
  reason?: string;
  /** A few tfjs flags that explain the backend's numbers (float32 textures, SIMD, ...). */
  flags: Record<string, unknown>;
  grads: GradCaseResult[];
  ms: number;
}

export interface KernelProbeReport {
  reference: 'cpu';
  tolerance: number;
  backends: BackendProbe[];
}

type Rand = (n: number, lo?: number, hi?: number) => Float32Array;

export interface GradCase {
  name: string;
  /** Why training never takes this gradient; a failure here does not affect fine-tuning. */
  unusedBecause?: string;
  /** Builds the differentiated inputs and the function of them; constants (indices, masks) are made inside. */
  make(rand: Rand): { args: tf.Tensor[]; f: (...xs: tf.Tensor[]) => tf.Tensor };
  /** On webgpu, the gradients of all args are taken by a gradient sink, as the trainer's (engine/grad-sink.ts). */
  sink?: boolean;
}

export const GRAD_TOLERANCE = 1e-3;

/** A 2-layer model of the family with LoRA on every linear layer; the case's arguments stand in for the LoRA weights. */
function loraModelCase(family: 'llama' | 'gpt2', gradientCheckpointing: boolean, sink = false): GradCase {
  return {
    name: `LoRA causal LM (${family}${family === 'llama' ? ', GQA + RoPE' : ''}${gradientCheckpointing ? ', gradient checkpointing' : ''}${sink ? ', gradient sink' : ''})`,
    sink,
    make: (r) => {
      const D = 8,
        V = 13,
        L = 2;
      const cfg: ModelConfig = {
        family,
        architecture: family === 'gpt2' ? 'GPT2LMHeadModel' : 'LlamaForCausalLM',
        vocab_size: V,
        hidden_size: D,
        intermediate_size: 16,
        num_hidden_layers: L,
        num_attention_heads: 4,
        num_key_value_heads: family === 'gpt2' ? 4 : 2,
        max_position_embeddings: 16,
        norm_eps: 1e-5,
        rope_theta: 10000,
        rope_layout: 'half',
        tie_word_embeddings: true,
        attention_bias: false,
        hidden_act: family === 'gpt2' ? 'gelu_new' : 'silu',
        bos_token_id: 1,
        eos_token_id: 2,
        head_dim: 2,
      };
      const weights = new Map<string, tf.Tensor>();
      for (const [name, shape] of paramShapes(cfg)) {
        const n = shape.reduce((a, b) => a * b, 1);
        weights.set(
          name,
          /norm|ln_/.test(name) && name.endsWith('.weight')
            ? tf.add(tf.tensor(r(n, -0.1, 0.1), shape), 1)
            : tf.tensor(r(n, -0.5, 0.5), shape),
        );
      }
      const model = new CausalLM(cfg, weights);
      const adapter = model.attachLora(
        { r: 2, lora_alpha: 4, lora_dropout: 0, target_modules: 'all-linear', use_rslora: false },
        1,
      );
      const layers = [...adapter.layers.values()];
      const args = layers.flatMap((l) => [
        tf.tensor(r(l.A.size, -0.5, 0.5), l.A.shape),
        tf.tensor(r(l.B.size, -0.5, 0.5), l.B.shape),
      ]);
      const batch = {
        inputIds: Int32Array.from([1, 5, 6, 7, 8, 9, 1, 10, 11, 12, 2, 2]),
        labels: Int32Array.from([-100, -100, 6, 7, 8, 9, -100, -100, 11, 12, -100, -100]),
        attentionMask: Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
        batchSize: 2,
        seqLen: 6,
      };
      return {
        args,
        f: (...xs) => {
          // the case's tensors take the place of the adapter's variables, so gradients flow to them
          layers.forEach((l, k) => {
            (l as { A: tf.Tensor }).A = xs[2 * k];
            (l as { B: tf.Tensor }).B = xs[2 * k + 1];
          });
          return model.loss(batch, { gradientCheckpointing }).loss;
        },
      };
    },
  };
}

const t = (rand: Rand, shape: number[], lo = -1, hi = 1) =>
  tf.tensor(
    rand(
      shape.reduce((a, b) => a * b, 1),
      lo,
      hi,
    ),
    shape,
  );
const ints = (values: number[], shape?: number[]) => tf.tensor(values, shape, 'int32');

/** One case per op (and a few combinations) that the engine's forward and backward passes use. */
export const GRAD_CASES: GradCase[] = [
  { name: 'matMul', make: (r) => ({ args: [t(r, [3, 4]), t(r, [4, 5])], f: (a, b) => tf.matMul(a, b) }) },
  {
    name: 'matMul transposeA',
    make: (r) => ({ args: [t(r, [4, 3]), t(r, [4, 5])], f: (a, b) => tf.matMul(a, b, true, false) }),
  },
  {
    name: 'matMul transposeB',
    make: (r) => ({ args: [t(r, [3, 4]), t(r, [5, 4])], f: (a, b) => tf.matMul(a, b, false, true) }),
  },
  {
    name: 'matMul transposeA+B',
    make: (r) => ({ args: [t(r, [4, 3]), t(r, [5, 4])], f: (a, b) => tf.matMul(a, b, true, true) }),
  },
  {
    name: 'batchMatMul 3-D',
    make: (r) => ({ args: [t(r, [2, 3, 4]), t(r, [2, 4, 5])], f: (a, b) => tf.matMul(a, b) }),
  },
  {
    name: 'batchMatMul 3-D transposeB',
    make: (r) => ({ args: [t(r, [2, 3, 4]), t(r, [2, 5, 4])], f: (a, b) => tf.matMul(a, b, false, true) }),
  },
  {
    name: 'batchMatMul 4-D',
    make: (r) => ({ args: [t(r, [2, 2, 3, 4]), t(r, [2, 2, 4, 5])], f: (a, b) => tf.matMul(a, b) }),
  },
  {
    name: 'batchMatMul 4-D transposeB',
    make: (r) => ({ args: [t(r, [2, 2, 3, 4]), t(r, [2, 2, 5, 4])], f: (a, b) => tf.matMul(a, b, false, true) }),
  },
  {
    // On wasm with threads: both passes run cache-blocked on every thread (128 x 512 x 256 reaches THREADED_MACS)
    name: 'frozen linear x·Wᵀ (blocked, threaded on wasm)',
    make: (r) => {
      const W = t(r, [256, 512], -0.2, 0.2);
      return { args: [t(r, [128, 512], -0.2, 0.2)], f: (x) => linearOutIn(x as tf.Tensor2D, W as tf.Tensor2D) };
    },
  },
  {
    // attention's products: on wasm with threads, the batch is split across threads
    name: 'batched a·bᵀ (items threaded on wasm)',
    make: (r) => ({
      args: [t(r, [16, 128, 64], -0.2, 0.2), t(r, [16, 128, 64], -0.2, 0.2)],
      f: (a, b) => bmm(a as tf.Tensor3D, b as tf.Tensor3D, true),
    }),
  },
  {
    // Embedding lookup; repeated ids make the gradient (UnsortedSegmentSum) accumulate.
    name: 'gather (embedding)',
    unusedBecause: 'the embeddings are frozen: no gradient flows into the lookup table',
    make: (r) => ({ args: [t(r, [11, 6])], f: (e) => tf.gather(e, ints([3, 0, 3, 10, 7, 3], [2, 3])) }),
  },
  { name: 'softmax', make: (r) => ({ args: [t(r, [3, 7], -3, 3)], f: (x) => tf.softmax(x) }) },
  { name: 'logSoftmax', make: (r) => ({ args: [t(r, [3, 7], -3, 3)], f: (x) => tf.logSoftmax(x) }) },
  { name: 'exp', make: (r) => ({ args: [t(r, [3, 5])], f: (x) => tf.exp(x) }) },
  { name: 'log', make: (r) => ({ args: [t(r, [3, 5], 0.5, 2)], f: (x) => tf.log(x) }) },
  { name: 'rsqrt', make: (r) => ({ args: [t(r, [3, 5], 0.5, 2)], f: (x) => tf.rsqrt(x) }) },
  { name: 'mean', make: (r) => ({ args: [t(r, [3, 8])], f: (x) => tf.mean(x, -1, true) }) },
  { name: 'sum', make: (r) => ({ args: [t(r, [3, 8])], f: (x) => tf.sum(x, 0) }) },
  { name: 'sigmoid', make: (r) => ({ args: [t(r, [3, 5], -3, 3)], f: (x) => tf.sigmoid(x) }) },
  { name: 'tanh', make: (r) => ({ args: [t(r, [3, 5], -2, 2)], f: (x) => tf.tanh(x) }) },
  { name: 'concat', make: (r) => ({ args: [t(r, [2, 3]), t(r, [2, 5])], f: (a, b) => tf.concat([a, b], -1) }) },
  { name: 'slice', make: (r) => ({ args: [t(r, [3, 8])], f: (x) => tf.slice(x, [1, 2], [2, 4]) }) },
  {
    name: 'stridedSlice',
    unusedBecause: 'the model uses plain slices',
    make: (r) => ({ args: [t(r, [4, 9])], f: (x) => tf.stridedSlice(x, [0, 1], [4, 9], [2, 3]) }),
  },
  { name: 'transpose', make: (r) => ({ args: [t(r, [2, 3, 4, 5])], f: (x) => tf.transpose(x, [0, 2, 1, 3]) }) },
  { name: 'reshape', make: (r) => ({ args: [t(r, [2, 3, 4])], f: (x) => tf.reshape(x, [6, 4]) }) },
  { name: 'tile', make: (r) => ({ args: [t(r, [2, 3])], f: (x) => tf.tile(x, [2, 3]) }) },
  {
    name: 'where (select)',
    make: (r) => ({
      args: [t(r, [3, 4]), t(r, [3, 4])],
      f: (a, b) => tf.where(tf.tensor([1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0], [3, 4], 'bool'), a, b),
    }),
  },
  { name: 'maximum', make: (r) => ({ args: [t(r, [3, 5]), t(r, [3, 5])], f: (a, b) => tf.maximum(a, b) }) },
  {
    name: 'gatherND',
    unusedBecause: 'the model never gathers by index pairs',
    make: (r) => ({ args: [t(r, [4, 5])], f: (x) => tf.gatherND(x, ints([0, 1, 3, 4, 0, 1], [3, 2])) }),
  },
  {
    name: 'split',
    make: (r) => ({
      args: [t(r, [2, 9])],
      f: (x) => {
        const [p0, , p2] = tf.split(x, 3, -1);
        return tf.add(p0, tf.mul(p2, 2));
      },
    }),
  },
  {
    name: 'pad',
    make: (r) => ({
      args: [t(r, [2, 3])],
      f: (x) =>
        tf.pad(x, [
          [1, 0],
          [0, 2],
        ]),
    }),
  },
  // tfjs 4.22's Cumsum gradient handles only a non-negative last axis: axis 0 fails its shape check, and
  // axis -1 builds an invalid transpose (on wasm it corrupts the module's memory, so it is not probed).
  {
    name: 'cumsum (last axis)',
    unusedBecause: 'the model has no cumulative sums',
    make: (r) => ({ args: [t(r, [3, 6])], f: (x) => tf.cumsum(x, 1) }),
  },
  {
    name: 'cumsum (axis 0)',
    unusedBecause: 'the model has no cumulative sums',
    make: (r) => ({ args: [t(r, [3, 6])], f: (x) => tf.cumsum(x, 0) }),
  },
  {
    name: 'scatterND',
    unusedBecause: 'only the loss’s hand-written gradient uses it, as a plain op (its own gradient is never taken)',
    make: (r) => ({ args: [t(r, [3, 4])], f: (u) => tf.scatterND(ints([0, 2, 4]), u, [6, 4]) }),
  },
  {
    name: 'broadcast arithmetic',
    make: (r) => ({
      args: [t(r, [3, 4]), t(r, [4]), t(r, [3, 1], 0.5, 2)],
      f: (a, b, c) => tf.div(tf.sub(tf.mul(a, b), tf.square(b)), c),
    }),
  },
  {
    name: 'rmsnorm (composite)',
    make: (r) => ({
      args: [t(r, [3, 8]), t(r, [8])],
      f: (x, w) => tf.mul(tf.mul(x, tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), 1e-5))), w),
    }),
  },
  { name: 'silu (composite)', make: (r) => ({ args: [t(r, [3, 5], -3, 3)], f: (x) => tf.mul(x, tf.sigmoid(x)) }) },
  {
    // Cross-entropy without oneHot: pick each row's target log-probability from the flattened logSoftmax.
    name: 'cross-entropy (composite)',
    make: (r) => ({
      args: [t(r, [4, 9], -3, 3)],
      f: (logits) =>
        tf.neg(tf.gather(tf.reshape(tf.logSoftmax(logits), [-1]), ints([0 * 9 + 2, 1 * 9 + 8, 2 * 9 + 0, 3 * 9 + 5]))),
    }),
  },
  // The engine itself: a tiny LoRA model's loss, differentiated w.r.t. every lora_A/lora_B (the training step's gradients).
  ...(['llama', 'gpt2'] as const).flatMap((family) =>
    [false, true].map((gradientCheckpointing) => loraModelCase(family, gradientCheckpointing)),
  ),
  // The same with the trainer's gradient sink (it only takes gradients on webgpu; elsewhere the case repeats the above).
  ...(['llama', 'gpt2'] as const).flatMap((family) =>
    [false, true].map((gradientCheckpointing) => loraModelCase(family, gradientCheckpointing, true)),
  ),
];

/** Deterministic uniform numbers, so every backend sees identical inputs. */
function seededRand(seedText: string): Rand {
  let s = 2166136261;
  for (let i = 0; i < seedText.length; i++) s = Math.imul(s ^ seedText.charCodeAt(i), 16777619);
  return (n, lo = -1, hi = 1) => {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      s = (s + 0x6d2b79f5) | 0;
      let z = Math.imul(s ^ (s >>> 15), 1 | s);
      z = (z + Math.imul(z ^ (z >>> 7), 61 | z)) ^ z;
      out[i] = lo + (hi - lo) * (((z ^ (z >>> 14)) >>> 0) / 4294967296);
    }
    return out;
  };
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0].slice(0, 300);

/** Builds the tensors of one case: [loss, ...gradients]. Must run inside tf.tidy. */
function lossAndGrads(c: GradCase): tf.Tensor[] {
  const rand = seededRand(c.name);
  const { args, f } = c.make(rand);
  const loss = (...xs: tf.Tensor[]) => {
    const y = f(...xs);
    return tf.sum(tf.mul(y, tf.tensor(rand(y.size), y.shape)));
  };
  if (c.sink && webgpuKernelsActive()) {
    let value: tf.Tensor | null = null;
    const grads = gradsViaSink(args, args.length, () => {
      const r = tf.valueAndGrads(loss)(args);
      value = r.value;
      return r.grads;
    });
    return [value!, ...grads];
  }
  const { value, grads } = tf.valueAndGrads(loss)(args);
  return [value, ...grads];
}

async function runCase(
  c: GradCase,
  timeoutMs: number,
): Promise<{ values?: Float32Array[]; error?: string; ms: number }> {
  const t0 = performance.now();
  let outs: tf.Tensor[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    outs = tf.tidy(() => lossAndGrads(c));
    const download = Promise.all(outs.map((o) => o.data() as Promise<Float32Array>));
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    return { values: await Promise.race([download, timeout]), ms: performance.now() - t0 };
  } catch (e) {
    return { error: errorText(e), ms: performance.now() - t0 };
  } finally {
    clearTimeout(timer);
    tf.dispose(outs);
  }
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i].length !== b[i].length) return Infinity;
    for (let j = 0; j < a[i].length; j++) {
      const d = Math.abs(a[i][j] - b[i][j]);
      if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
    }
  }
  return m;
}

/** Kernel names a case runs, recorded with the profiler on the current (cpu) backend. */
async function kernelsOf(c: GradCase): Promise<string[]> {
  try {
    const info = await tf.profile(() => tf.tidy(() => lossAndGrads(c)));
    // Keep real kernels: the profiler also lists customGrad scopes such as 'logSoftmax__op'.
    return [...new Set(info.kernelNames)].filter((k) => tf.getKernel(k, 'cpu') !== undefined).sort();
  } catch {
    return [];
  }
}

function backendFlags(name: BackendName): Record<string, unknown> {
  const keys: Record<BackendName, string[]> = {
    webgpu: ['WEBGPU_USE_GLSL', 'WEBGPU_CPU_FORWARD'],
    webgl: ['WEBGL_VERSION', 'WEBGL_RENDER_FLOAT32_ENABLED', 'WEBGL_RENDER_FLOAT32_CAPABLE', 'WEBGL_PACK'],
    wasm: ['WASM_HAS_SIMD_SUPPORT', 'WASM_HAS_MULTITHREAD_SUPPORT'],
    cpu: [],
  };
  const out: Record<string, unknown> = {};
  for (const k of keys[name]) {
    try {
      out[k] = tf.env().get(k);
    } catch {
      /* flag not registered by this build */
    }
  }
  return out;
}

export interface ProbeOptions {
  backends?: BackendName[];
  cases?: GradCase[];
  /** Per-case limit, so a hung GPU queue cannot hang the whole probe. */
  caseTimeoutMs?: number;
  /** Called before each case (a sign of life for watchdogs). */
  onCase?: () => void;
}

/**
 * Initialise each backend in turn (cpu first: it is the reference) and run every gradient case on it.
 * Leaves the last probed backend active.
 */
export async function probeKernels(opts: ProbeOptions = {}): Promise<KernelProbeReport> {
  const cases = opts.cases ?? GRAD_CASES;
  const wanted = opts.backends ?? BACKEND_ORDER;
  const timeoutMs = opts.caseTimeoutMs ?? 60_000;
  const order: BackendName[] = ['cpu', ...wanted.filter((b) => b !== 'cpu')];
  const reference = new Map<string, Float32Array[]>();
  const kernels = new Map<string, string[]>();
  const backends: BackendProbe[] = [];

  for (const name of order) {
    const t0 = performance.now();
    let reason: string | undefined;
    try {
      const report = await initBackend(name);
      if (report.backend !== name) {
        reason = report.fallbacks.find((f) => f.backend === name)?.reason ?? `fell back to ${report.backend}`;
      }
    } catch (e) {
      reason = errorText(e);
    }
    if (reason !== undefined) {
      backends.push({ backend: name, available: false, reason, flags: {}, grads: [], ms: performance.now() - t0 });
      continue;
    }
    const grads: GradCaseResult[] = [];
    for (const c of cases) {
      opts.onCase?.();
      if (name === 'cpu') kernels.set(c.name, await kernelsOf(c));
      const ks = kernels.get(c.name) ?? [];
      const missingKernels = ks.filter((k) => tf.getKernel(k, name) === undefined);
      const r = await runCase(c, timeoutMs);
      const base = { name: c.name, unusedBecause: c.unusedBecause, kernels: ks, missingKernels, ms: r.ms };
      if (!r.values) {
        grads.push({ ...base, status: 'error', error: r.error });
      } else if (name === 'cpu') {
        reference.set(c.name, r.values);
        grads.push({ ...base, status: 'ok' });
      } else {
        const ref = reference.get(c.name);
        if (!ref) {
          grads.push({ ...base, status: 'ok', error: 'no cpu reference to compare with' });
        } else {
          const d = maxAbsDiff(r.values, ref);
          grads.push({ ...base, status: d <= GRAD_TOLERANCE ? 'ok' : 'mismatch', maxAbsDiff: d });
        }
      }
    }
    backends.push({ backend: name, available: true, flags: backendFlags(name), grads, ms: performance.now() - t0 });
  }
  const byOrder = (b: BackendProbe) => BACKEND_ORDER.indexOf(b.backend);
  backends.sort((a, b) => byOrder(a) - byOrder(b));
  return { reference: 'cpu', tolerance: GRAD_TOLERANCE, backends };
}

/** A plain-text table: one row per case, one column per available backend. */
export function formatProbeTable(report: KernelProbeReport): string {
  const cols = report.backends.filter((b) => b.available);
  const cell = (r: GradCaseResult | undefined) => {
    if (!r) return '-';
    if (r.status === 'error') return 'ERROR';
    if (r.status === 'mismatch') return `DIFF ${r.maxAbsDiff?.toExponential(1)}`;
    return r.maxAbsDiff === undefined ? 'ok' : `ok ${r.maxAbsDiff.toExponential(0)}`;
  };
  const names = cols[0]?.grads.map((g) => g.name) ?? [];
  const rows = [['case', ...cols.map((c) => c.backend)]];
  for (const n of names) rows.push([n, ...cols.map((c) => cell(c.grads.find((g) => g.name === n)))]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) =>
    r
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd(),
  );
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of report.backends) {
    if (!b.available) lines.push(`${b.backend}: unavailable (${b.reason})`);
    for (const g of b.grads) {
      if (g.status !== 'ok') {
        const why = g.error ?? `max |diff| ${g.maxAbsDiff} > ${report.tolerance}`;
        const missing = g.missingKernels.length ? ` [missing kernels: ${g.missingKernels.join(', ')}]` : '';
        lines.push(`${b.backend} / ${g.name}: ${why}${missing}`);
      }
    }
  }
  return lines.join('\n');
}
