/**
 * The workloads of `npm run bench` (Node) and `npm run bench:browser` (the engine worker in Chromium): a large plain
 * matMul and LoRA training steps, batch 4 x seq 128, with the FLOP counts (see bench/run.ts). Environment-neutral:
 * no file system, no process; results are returned, not printed. bench/run.ts and bench/browser.ts print them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { CausalLM, type TrainBatch } from '../engine/model';
import { llamaConfig, type ModelConfig, type RawTensors } from '../engine/config';
import { compactableWeights, paramShapes } from '../engine/params';
import { matMul2d } from '../engine/ops';
import { wasmKernelThreads, wasmKernelsRelaxed } from '../engine/wasm-kernels';
import { compactWeight, type CompactWeight, type FrozenDtype } from '../engine/frozen';
import { targetedModules, type LoraConfig } from '../engine/lora-config';
import { parseLlama2cCheckpoint } from '../io/llama2c';
import { Trainer } from './trainer';
import { Rng } from '../util/rng';
import { perStep, startGpuCounting, type GpuCounts } from '../engine/gpu-counters';
import { startKernelTiming, type KernelTime } from '../engine/kernel-times';

export const B = 4,
  T = 128;

export type BenchLine = Record<string, unknown>;

/**
 * The workloads' adapters are the PyTorch anchor's (../shared/anchors/bench_torch.py), so that the two step times
 * compare the same work: LoRA r 8, alpha 16, no dropout (PEFT's default), on q, k, v and o — GPT-2's attn.c_attn and
 * attn.c_proj (not the MLP's c_proj).
 */
export const STORIES_LORA: LoraConfig = {
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'],
  use_rslora: false,
};
export const SMOLLM2_LORA: LoraConfig = STORIES_LORA;
export const GPT2_LORA: LoraConfig = {
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  target_modules: ['c_attn', 'attn.c_proj'],
  use_rslora: false,
};
/**
 * PEFT's default targets for these families (Llama: q_proj and v_proj; GPT-2: c_attn) with dropout 0.05: the GPU
 * programs per layer are also counted with these (the count grows with every LoRA tensor: its path and its share of
 * the optimizer step).
 */
export const PEFT_DEFAULT_LORA: Record<'llama' | 'gpt2', LoraConfig> = {
  llama: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'], use_rslora: false },
  gpt2: { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['c_attn'], use_rslora: false },
};

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function smollm2(): ModelConfig {
  return llamaConfig({
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 2048,
    rope_theta: 100000,
  });
}
/** Qwen2.5-0.5B's shape (its config.json): 494M parameters, 151,936-token vocabulary, tied embeddings. */
export function qwen25_05b(): ModelConfig {
  return {
    family: 'qwen2',
    architecture: 'Qwen2ForCausalLM',
    vocab_size: 151936,
    hidden_size: 896,
    intermediate_size: 4864,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    max_position_embeddings: 32768,
    norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: true,
    hidden_act: 'silu',
    bos_token_id: 151643,
    eos_token_id: 151643,
    head_dim: 64,
  };
}

/** Qwen3-0.6B's shape: 596M parameters (head_dim 128 ≠ hidden/heads, q/k norms), tied embeddings. */
export function qwen3_06b(): ModelConfig {
  return {
    family: 'qwen3',
    architecture: 'Qwen3ForCausalLM',
    vocab_size: 151936,
    hidden_size: 1024,
    intermediate_size: 3072,
    num_hidden_layers: 28,
    num_attention_heads: 16,
    num_key_value_heads: 8,
    max_position_embeddings: 40960,
    norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: 151643,
    eos_token_id: 151645,
    head_dim: 128,
  };
}

/** Gemma-3-270M's shape: 268M parameters, 170M of them the 262,144 x 640 embedding; 5 sliding layers to 1 full. */
export function gemma3_270m(): ModelConfig {
  return {
    family: 'gemma3',
    architecture: 'Gemma3ForCausalLM',
    vocab_size: 262144,
    hidden_size: 640,
    intermediate_size: 2048,
    num_hidden_layers: 18,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    max_position_embeddings: 32768,
    norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: false,
    hidden_act: 'gelu_pytorch_tanh',
    bos_token_id: 2,
    eos_token_id: [1, 106],
    head_dim: 256,
    layer_types: Array.from({ length: 18 }, (_, i) => ((i + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention')),
    sliding_window: 512,
    rope_local_base_freq: 10000,
    rope_scaling: null,
    query_pre_attn_scalar: 256,
    attn_logit_softcapping: null,
    final_logit_softcapping: null,
  };
}

export function gpt2small(): ModelConfig {
  return {
    family: 'gpt2',
    architecture: 'GPT2LMHeadModel',
    vocab_size: 50257,
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    num_key_value_heads: 12,
    max_position_embeddings: 1024,
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: true,
    hidden_act: 'gelu_new',
    bos_token_id: 50256,
    eos_token_id: 50256,
    head_dim: 64,
  };
}

/** One parameter in the HF init's spirit: N(0, 0.02) as a uniform of equal variance, norms at 1, biases at 0. */
function randomParam(name: string, shape: number[], rng: Rng): Float32Array {
  const n = shape.reduce((x, y) => x * y, 1);
  const data = new Float32Array(n);
  const a = 0.02 * Math.sqrt(3);
  if (/(norm|ln_\d|ln_f)\.weight$/.test(name)) data.fill(1);
  else if (!name.endsWith('.bias')) for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * a;
  return data;
}

/** Random weights for every parameter of `cfg` (randomParam). */
export function randomInit(cfg: ModelConfig, seed = 0): RawTensors {
  const rng = new Rng(seed);
  const raw: RawTensors = new Map();
  for (const [name, shape] of paramShapes(cfg)) raw.set(name, { shape, data: randomParam(name, shape, rng) });
  return raw;
}

/**
 * A randomly initialised model (as randomInit) whose frozen matrices go to `frozenDtype` storage one tensor at a time,
 * so that building a 0.5B model never holds all of it in float32.
 */
export function randomCompactModel(cfg: ModelConfig, frozenDtype: FrozenDtype, seed = 0): CausalLM {
  if (frozenDtype === 'float32') return CausalLM.fromRaw(cfg, randomInit(cfg, seed));
  const rng = new Rng(seed);
  const compactable = compactableWeights(cfg);
  const dense = new Map<string, tf.Tensor>();
  const compact = new Map<string, CompactWeight>();
  for (const [name, shape] of paramShapes(cfg)) {
    const data = randomParam(name, shape, rng);
    const axis = compactable.get(name);
    if (axis !== undefined) compact.set(name, compactWeight(data, [shape[0], shape[1]], frozenDtype, axis));
    else dense.set(name, tf.tensor(data, shape));
  }
  return new CausalLM(cfg, dense, compact);
}

export function flopsPerToken(cfg: ModelConfig, lora: LoraConfig, checkpointing: boolean) {
  const D = cfg.hidden_size,
    L = cfg.num_hidden_layers,
    I = cfg.intermediate_size,
    hd = cfg.head_dim;
  const H = cfg.num_attention_heads,
    KV = cfg.num_key_value_heads;
  const perLayerLinear =
    cfg.family === 'gpt2' ? D * 3 * D + D * D + 2 * D * I : D * H * hd + 2 * D * KV * hd + H * hd * D + 3 * D * I;
  const head = D * cfg.vocab_size;
  const attnFwd = 4 * T * H * hd; // QKᵀ and PV per token per layer (full T, as usually counted)
  const loraParams = targetedModules(cfg, lora).reduce((s, m) => s + lora.r * (m.inFeatures + m.outFeatures), 0);
  const blockFwd = L * (2 * perLayerLinear + attnFwd) + 2 * loraParams;
  const useful = 2 * (blockFwd + 2 * head) + L * attnFwd + 4 * loraParams; // fwd + bwd(act) + attn/LoRA weight-side grads
  return { useful, hardware: useful + (checkpointing ? blockFwd : 0) };
}

/**
 * 1024³ matMul on the current backend, as the engine multiplies (matMul2d: on wasm our cache-blocked, threaded
 * kernel) and as tfjs's own matMul does, sustained: after 2 warm-up runs, 5 rounds of products back to back (at least
 * ~0.3 s each) with one read-back at the end of each round, which waits for them all on a GPU; the best round's time
 * per product. (A read-back after every product, as this did before, understated wasm's rate: Chromium 35 and 54-58
 * against 43 and 70-88 GFLOP/s sustained, on 1 and 2 threads.) `gflops`, what MFU is measured against, is the better
 * of the two rates (`engine_gflops`, `tfjs_matmul_gflops`): the backend's attainable large-matMul rate.
 */
export async function plainMatmul(n = 1024): Promise<BenchLine & { gflops: number }> {
  const a = tf.randomNormal([n, n]) as tf.Tensor2D,
    b = tf.randomNormal([n, n]) as tf.Tensor2D;
  const time = async (f: () => tf.Tensor) => {
    let once = Infinity;
    for (let i = 0; i < 2; i++) {
      const t0 = performance.now();
      const c = tf.tidy(f);
      await c.data();
      c.dispose();
      once = Math.min(once, performance.now() - t0);
    }
    const reps = Math.max(3, Math.ceil(300 / Math.max(once, 1)));
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now();
      for (let i = 0; i < reps - 1; i++) tf.tidy(f).dispose();
      const c = tf.tidy(f);
      await c.data();
      c.dispose();
      best = Math.min(best, (performance.now() - t0) / reps);
    }
    return best;
  };
  const ms = await time(() => matMul2d(a, b));
  const tfjsMs = await time(() => tf.matMul(a, b));
  tf.dispose([a, b]);
  const rate = (t: number) => +((2 * n ** 3) / t / 1e6).toFixed(2);
  return {
    bench: 'matmul',
    backend: tf.getBackend(),
    shape: [n, n, n],
    ms: +ms.toFixed(2),
    gflops: Math.max(rate(ms), rate(tfjsMs)),
    engine_gflops: rate(ms),
    tfjs_matmul_gflops: rate(tfjsMs),
    ...(tf.getBackend() === 'wasm' ? { kernel_threads: wasmKernelThreads(), relaxed_simd: wasmKernelsRelaxed() } : {}),
  };
}

/**
 * LoRA training steps on `cfg` (weights `raw`, consumed, or a model built already, disposed): median ms/step of
 * `steps` steps after WARMUP_STEPS warm-up steps.
 */
/**
 * The wasm helper threads now, with the blocks split among them since `before`, per step: in all and run by the engine
 * worker itself (the rest ran on the helpers).
 */
function blocksSince(before: { totalBlocks: number; callerBlocks: number }, steps: number) {
  const now = wasmKernelThreads();
  const perStep = (n: number) => Math.round(n / Math.max(steps, 1));
  return {
    threads: now.threads,
    ready: now.ready,
    blocks_per_step: perStep(now.totalBlocks - before.totalBlocks),
    caller_blocks_per_step: perStep(now.callerBlocks - before.callerBlocks),
  };
}

/** Kernel times of one more step added to those so far. */
function addKernelTimes(sum: KernelTime[], step: KernelTime[]): KernelTime[] {
  const byName = new Map(sum.map((k) => [k.kernel, { ...k }]));
  for (const k of step) {
    const t = byName.get(k.kernel) ?? { kernel: k.kernel, calls: 0, ms: 0 };
    t.calls += k.calls;
    t.ms += k.ms;
    byName.set(k.kernel, t);
  }
  return [...byName.values()].sort((a, b) => b.ms - a.ms);
}

/** The profile's line: the 25 longest kernels per step (calls and ms), then all the others together. */
function kernelsPerStep(all: KernelTime[], steps: number): BenchLine {
  const per = (k: KernelTime) => ({ calls: +(k.calls / steps).toFixed(1), ms: +(k.ms / steps).toFixed(2) });
  const top = all.slice(0, 25);
  const rest = all.slice(25).reduce((s, k) => ({ kernel: 'others', calls: s.calls + k.calls, ms: s.ms + k.ms }), {
    kernel: 'others',
    calls: 0,
    ms: 0,
  });
  const total = all.reduce((s, k) => s + k.ms, 0);
  return {
    total_ms: +(total / steps).toFixed(1),
    ...Object.fromEntries([...top, rest].map((k) => [k.kernel, per(k)])),
  };
}

/**
 * Steps run before the timed ones, as the PyTorch anchor's default (bench_torch.py --warmup 2): the first steps also
 * fault in the pages of the heap the run's largest tensors land on (GPT-2's logits: ~0.4 s in the second step).
 */
export const WARMUP_STEPS = 2;

export async function benchModel(
  name: string,
  cfg: ModelConfig,
  raw: RawTensors | CausalLM,
  lora: LoraConfig,
  checkpointing: boolean,
  matmulGflops: number,
  steps: number,
  onStep: () => void = () => {},
  /** Add `kernel_ms`: the timed steps' kernels by time per step (src/engine/kernel-times.ts). */
  profile = false,
): Promise<BenchLine> {
  const model = raw instanceof CausalLM ? raw : CausalLM.fromRaw(cfg, raw);
  if (!(raw instanceof CausalLM)) raw.clear();
  const adapter = model.attachLora(lora, 0);
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const batch: TrainBatch = { inputIds: ids, labels: ids, batchSize: B, seqLen: T };
  const trainer = new Trainer<TrainBatch>(
    {
      vars: adapter.variables(),
      lossFn: (b) => model.loss(b, { dropoutSeed: 1, gradientCheckpointing: checkpointing }),
    },
    { learning_rate: 1e-4, max_steps: steps + WARMUP_STEPS, lr_scheduler_type: 'constant', seed: 0 },
  );
  const times: number[] = [];
  let tensorsAfter1 = 0,
    tensors = 0;
  // webgpu/webgl: programs dispatched and bytes read back during the timed steps
  let gpu: GpuCounts | null = null;
  let kernels: KernelTime[] = [];
  // wasm: blocks of the timed steps' products and row kernels, and how many the engine worker ran itself
  let blocksBefore = { totalBlocks: 0, callerBlocks: 0 };
  for (let s = 1 - WARMUP_STEPS; s <= steps; s++) {
    if (s === 1) blocksBefore = wasmKernelThreads();
    const counting = s > 0 ? startGpuCounting() : null;
    const timing = s > 0 && profile ? startKernelTiming() : null;
    const t0 = performance.now();
    let m;
    try {
      m = await trainer.step([batch]);
    } finally {
      counting?.stop();
      if (timing) kernels = addKernelTimes(kernels, timing.stop());
    }
    const dt = performance.now() - t0;
    if (counting) gpu = addCounts(gpu, counting.counts);
    if (s === 1 - WARMUP_STEPS) tensorsAfter1 = tf.memory().numTensors;
    if (s > 0) times.push(dt);
    tensors = tf.memory().numTensors;
    if (!Number.isFinite(m.loss)) throw new Error(`${name}: non-finite loss`);
    onStep();
  }
  const ms = median(times);
  const f = flopsPerToken(cfg, lora, checkpointing);
  const tokS = (B * T) / (ms / 1000);
  const gflops = (f.useful * B * T) / ms / 1e6;
  const line: BenchLine = {
    bench: 'lora_step',
    model: name,
    backend: tf.getBackend(),
    shape: {
      layers: cfg.num_hidden_layers,
      hidden: cfg.hidden_size,
      intermediate: cfg.intermediate_size,
      heads: cfg.num_attention_heads,
      kv_heads: cfg.num_key_value_heads,
      vocab: cfg.vocab_size,
    },
    batch: B,
    seq: T,
    lora: { r: lora.r, alpha: lora.lora_alpha, targets: lora.target_modules, trainable: adapter.numTrainable() },
    gradient_checkpointing: checkpointing,
    frozen_dtype: model.frozenDtype,
    steps_timed: times.length,
    ms_per_step: +ms.toFixed(1),
    tokens_per_s: +tokS.toFixed(1),
    flops_per_token: Math.round(f.useful),
    hardware_flops_per_token: Math.round(f.hardware),
    gflops: +gflops.toFixed(2),
    hardware_gflops: +((f.hardware * B * T) / ms / 1e6).toFixed(2),
    matmul_gflops: +matmulGflops.toFixed(2),
    mfu_vs_matmul: +(gflops / matmulGflops).toFixed(3),
    live_tensors_after_step1: tensorsAfter1,
    live_tensors: tensors,
    ...(gpu ? gpuFields(gpu, times.length) : {}),
    ...(profile ? { kernel_ms: kernelsPerStep(kernels, times.length) } : {}),
    ...(tf.getBackend() === 'wasm' ? { kernel_threads: blocksSince(blocksBefore, times.length) } : {}),
  };
  trainer.dispose();
  model.dispose();
  return line;
}

function addCounts(a: GpuCounts | null, b: GpuCounts): GpuCounts {
  if (!a) return { ...b, byProgram: { ...b.byProgram } };
  const byProgram = { ...a.byProgram };
  for (const [k, v] of Object.entries(b.byProgram)) byProgram[k] = (byProgram[k] ?? 0) + v;
  return {
    programs: a.programs + b.programs,
    byProgram,
    reads: a.reads + b.reads,
    bytesRead: a.bytesRead + b.bytesRead,
  };
}

/** The benchmark line's GPU fields: per training step, and the ten most dispatched programs per step. */
function gpuFields(c: GpuCounts, steps: number): BenchLine {
  const p = perStep(c, steps);
  const top = Object.entries(c.byProgram)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([k, v]) => [k, Math.round((10 * v) / steps) / 10]);
  return {
    gpu_programs_per_step: p.programs,
    gpu_reads_per_step: p.reads,
    gpu_bytes_read_per_step: p.bytes_read,
    gpu_top_programs_per_step: Object.fromEntries(top),
  };
}

/**
 * GPU programs per training step of a randomly initialised `cfg` with `layers` blocks (webgpu/webgl; null on other
 * backends): mean over `steps` steps after one warm-up. Program counts depend on shapes only, not on the weights.
 */
export async function gpuCountsPerStep(
  cfg: ModelConfig,
  lora: LoraConfig,
  checkpointing: boolean,
  layers: number,
  steps = 2,
): Promise<GpuCounts | null> {
  const c: ModelConfig = { ...cfg, num_hidden_layers: layers };
  if (c.layer_types) c.layer_types = c.layer_types.slice(0, layers);
  const model = CausalLM.fromRaw(c, randomInit(c));
  const adapter = model.attachLora(lora, 0);
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(c.vocab_size));
  const batch: TrainBatch = { inputIds: ids, labels: ids, batchSize: B, seqLen: T };
  const trainer = new Trainer<TrainBatch>(
    {
      vars: adapter.variables(),
      lossFn: (b) => model.loss(b, { dropoutSeed: 1, gradientCheckpointing: checkpointing }),
    },
    { learning_rate: 1e-4, max_steps: steps + WARMUP_STEPS, lr_scheduler_type: 'constant', seed: 0 },
  );
  let total: GpuCounts | null = null;
  try {
    for (let s = 0; s <= steps; s++) {
      const counting = s > 0 ? startGpuCounting() : null;
      if (s > 0 && !counting) return null;
      try {
        await trainer.step([batch]);
      } finally {
        counting?.stop();
      }
      if (counting) total = addCounts(total, counting.counts);
    }
  } finally {
    trainer.dispose();
    model.dispose();
  }
  if (!total) return null;
  const per = (x: number) => x / steps;
  const byProgram = Object.fromEntries(Object.entries(total.byProgram).map(([k, v]) => [k, per(v)]));
  return { programs: per(total.programs), byProgram, reads: per(total.reads), bytesRead: per(total.bytesRead) };
}

/**
 * Programs per transformer layer per step: the difference between `cfg` cut to 2 blocks and to 1 block (so the
 * embedding, LM head, loss and optimizer, which do not grow with depth, are not counted); null off the GPU.
 */
export async function gpuProgramsPerLayer(
  cfg: ModelConfig,
  lora: LoraConfig,
  checkpointing: boolean,
): Promise<BenchLine | null> {
  const one = await gpuCountsPerStep(cfg, lora, checkpointing, 1);
  const two = await gpuCountsPerStep(cfg, lora, checkpointing, 2);
  if (!one || !two) return null;
  const byProgram: [string, number][] = Object.entries(two.byProgram)
    .map(([k, v]): [string, number] => [k, v - (one.byProgram[k] ?? 0)])
    .filter(([, v]) => v !== 0)
    .sort((a, b) => b[1] - a[1]);
  return {
    gpu_programs_per_layer_per_step: two.programs - one.programs,
    gpu_programs_per_step_outside_layers: 2 * one.programs - two.programs,
    gpu_programs_per_layer_by_program: Object.fromEntries(byProgram),
  };
}

export type WorkloadName = 'stories260K' | 'smollm2' | 'gpt2';

export interface WorkloadRequest {
  /** LoRA-step workloads after the matMul (none: the matMul alone). */
  models?: WorkloadName[];
  steps?: number;
  /** Where stories260K.bin is fetched from (e.g. the app's /hub/ mirror). */
  storiesUrl?: string;
  /**
   * GPU only: programs per transformer layer per step for these families' layer shapes (batch 4 x 128, their LoRA
   * targets), without timing them. The vocabulary is cut to 512 (the embedding, LM head and loss are outside the
   * layers, and the count per layer does not depend on it), so a software adapter gets through GPT-2's shapes.
   */
  layerCounts?: WorkloadName[];
  /** Each lora_step line adds `kernel_ms`, its kernels by time per step (benchModel's profile). */
  profile?: boolean;
}

const FAMILY_SHAPES: Record<
  Exclude<WorkloadName, 'stories260K'>,
  () => { name: string; cfg: ModelConfig; lora: LoraConfig; peft: LoraConfig }
> = {
  smollm2: () => ({ name: 'SmolLM2-135M', cfg: smollm2(), lora: SMOLLM2_LORA, peft: PEFT_DEFAULT_LORA.llama }),
  gpt2: () => ({ name: 'GPT-2-small', cfg: gpt2small(), lora: GPT2_LORA, peft: PEFT_DEFAULT_LORA.gpt2 }),
};

/** A gpu_layer_programs line: the programs per layer of cfg's layers with adapter lora (null off the GPU). */
async function layerProgramsLine(model: string, cfg: ModelConfig, lora: LoraConfig): Promise<BenchLine | null> {
  const counts = await gpuProgramsPerLayer(cfg, lora, false);
  if (!counts) return null;
  return {
    bench: 'gpu_layer_programs',
    model,
    batch: B,
    seq: T,
    lora: { r: lora.r, dropout: lora.lora_dropout, targets: lora.target_modules },
    ...counts,
  };
}

/** The matMul, then each workload asked for, on the current backend (used by the engine worker's bench()). */
export async function runWorkloads(req: WorkloadRequest, onStep: () => void = () => {}): Promise<BenchLine[]> {
  const steps = req.steps ?? 5;
  const profile = req.profile ?? false;
  const matmul = await plainMatmul();
  const lines: BenchLine[] = [matmul];
  for (const m of req.models ?? []) {
    if (m === 'stories260K') {
      if (!req.storiesUrl) throw new Error('stories260K needs storiesUrl');
      const res = await fetch(req.storiesUrl);
      if (!res.ok) throw new Error(`${req.storiesUrl}: HTTP ${res.status}`);
      const { config, weights } = parseLlama2cCheckpoint(new Uint8Array(await res.arrayBuffer()), 'stories260K.bin');
      const line = await benchModel(
        'stories260K',
        config,
        weights,
        STORIES_LORA,
        false,
        matmul.gflops,
        steps,
        onStep,
        profile,
      );
      Object.assign(line, await gpuProgramsPerLayer(config, STORIES_LORA, false));
      lines.push(line);
      // and with PEFT's default adapter
      const peftLine = await layerProgramsLine('stories260K', config, PEFT_DEFAULT_LORA.llama);
      if (peftLine) lines.push(peftLine);
    } else if (m === 'smollm2') {
      const name = 'SmolLM2-135M (random init)';
      lines.push(
        await benchModel(
          name,
          smollm2(),
          randomInit(smollm2()),
          SMOLLM2_LORA,
          false,
          matmul.gflops,
          steps,
          onStep,
          profile,
        ),
      );
    } else {
      const name = 'GPT-2-small (random init)';
      lines.push(
        await benchModel(
          name,
          gpt2small(),
          randomInit(gpt2small()),
          GPT2_LORA,
          false,
          matmul.gflops,
          steps,
          onStep,
          profile,
        ),
      );
    }
  }
  for (const m of req.layerCounts ?? []) {
    if (m === 'stories260K') continue; // its lora_step line has the count already
    const { name, cfg, lora, peft } = FAMILY_SHAPES[m]();
    for (const adapter of [lora, peft]) {
      onStep();
      const shapes = `${name} layer shapes (vocabulary cut to 512)`;
      const line = await layerProgramsLine(shapes, { ...cfg, vocab_size: 512 }, adapter);
      if (line) lines.push(line);
    }
  }
  return lines;
}
