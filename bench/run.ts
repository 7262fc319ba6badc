/**
 * `npm run bench`: LoRA training-step throughput on the wasm backend in Node, as JSON lines.
 * One line for a large plain matMul (the backend's attainable rate), then one per model:
 * stories260K (real weights, when ../shared is present) and randomly initialised SmolLM2-135M and
 * GPT-2-small shapes, batch 4 x seq 128. ms/step is the median of >= 5 steps after warm-up.
 *
 * FLOPs are counted from the matmuls a LoRA step needs: forward 2·N per token through every frozen
 * projection and the LM head, the same again for gradients w.r.t. activations (no weight gradients for
 * frozen weights), attention scores/values forward (4·T·d per layer and token) and twice that backward,
 * plus the LoRA matmuls (3 x forward). Recomputation under gradient checkpointing is not useful work and
 * is reported separately (hardware FLOPs). MFU = useful GFLOP/s / plain-matMul GFLOP/s.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/engine/backend';
import { CausalLM, type TrainBatch } from '../src/engine/model';
import type { ModelConfig, RawTensors } from '../src/engine/config';
import { paramShapes } from '../src/engine/params';
import { targetedModules, type LoraConfig } from '../src/engine/lora-config';
import { parseLlama2cCheckpoint } from '../src/io/llama2c';
import { Trainer } from '../src/train/trainer';
import { Rng } from '../src/util/rng';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const STORIES = path.resolve(ROOT, '..', 'shared', 'models', 'stories260K', 'stories260K.bin');
const args = new Set(process.argv.slice(2));
const STEPS = Number(process.env.BENCH_STEPS ?? 5);
const B = 4,
  T = 128;

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 50);
const emit = (o: object) => console.log(JSON.stringify(o));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function smollm2(): ModelConfig {
  return {
    family: 'llama',
    architecture: 'LlamaForCausalLM',
    vocab_size: 49152,
    hidden_size: 576,
    intermediate_size: 1536,
    num_hidden_layers: 30,
    num_attention_heads: 9,
    num_key_value_heads: 3,
    max_position_embeddings: 2048,
    norm_eps: 1e-5,
    rope_theta: 100000,
    rope_layout: 'half',
    tie_word_embeddings: true,
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: 64,
  };
}
function gpt2small(): ModelConfig {
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

/** Random weights in the HF init's spirit (N(0, 0.02) as uniform of equal variance, norms at 1). */
function randomInit(cfg: ModelConfig, seed = 0): RawTensors {
  const rng = new Rng(seed);
  const raw: RawTensors = new Map();
  const a = 0.02 * Math.sqrt(3);
  for (const [name, shape] of paramShapes(cfg)) {
    const n = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    if (/(norm|ln_\d|ln_f)\.weight$/.test(name)) data.fill(1);
    else if (!name.endsWith('.bias')) for (let i = 0; i < n; i++) data[i] = (2 * rng.uniform() - 1) * a;
    raw.set(name, { shape, data });
  }
  return raw;
}

function flopsPerToken(cfg: ModelConfig, lora: LoraConfig, checkpointing: boolean) {
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

async function plainMatmulRate(): Promise<number> {
  const n = 1024;
  const a = tf.randomNormal([n, n]),
    b = tf.randomNormal([n, n]);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
    if (i >= 2) times.push(performance.now() - t0);
  }
  tf.dispose([a, b]);
  const ms = median(times);
  const gflops = (2 * n ** 3) / ms / 1e6;
  emit({ bench: 'matmul', backend: tf.getBackend(), shape: [n, n, n], ms: +ms.toFixed(2), gflops: +gflops.toFixed(2) });
  return gflops;
}

async function benchModel(
  name: string,
  cfg: ModelConfig,
  raw: RawTensors,
  lora: LoraConfig,
  checkpointing: boolean,
  matmulGflops: number,
) {
  const model = CausalLM.fromRaw(cfg, raw);
  raw.clear();
  const adapter = model.attachLora(lora, 0);
  const rng = new Rng(1);
  const ids = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const batch: TrainBatch = { inputIds: ids, labels: ids, batchSize: B, seqLen: T };
  const trainer = new Trainer<TrainBatch>(
    {
      vars: adapter.variables(),
      lossFn: (b) => model.loss(b, { dropoutSeed: 1, gradientCheckpointing: checkpointing }),
    },
    { learning_rate: 1e-4, max_steps: STEPS + 1, lr_scheduler_type: 'constant', seed: 0 },
  );
  const times: number[] = [];
  let tensorsAfter1 = 0,
    tensors = 0;
  for (let s = 0; s <= STEPS; s++) {
    const t0 = performance.now();
    const m = await trainer.step([batch]);
    const dt = performance.now() - t0;
    if (s === 0) tensorsAfter1 = tf.memory().numTensors;
    else times.push(dt);
    tensors = tf.memory().numTensors;
    if (!Number.isFinite(m.loss)) throw new Error(`${name}: non-finite loss`);
  }
  const ms = median(times);
  const f = flopsPerToken(cfg, lora, checkpointing);
  const tokS = (B * T) / (ms / 1000);
  const gflops = (f.useful * B * T) / ms / 1e6;
  emit({
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
    steps_timed: times.length,
    ms_per_step: +ms.toFixed(1),
    tokens_per_s: +tokS.toFixed(1),
    flops_per_token: Math.round(f.useful),
    hardware_flops_per_token: Math.round(f.hardware),
    gflops: +gflops.toFixed(2),
    hardware_gflops: +((f.hardware * B * T) / ms / 1e6).toFixed(2),
    matmul_gflops: +matmulGflops.toFixed(2),
    mfu_vs_matmul: +(gflops / matmulGflops).toFixed(3),
    peak_rss_mb: Math.round(Math.max(peakRss, process.memoryUsage().rss) / 2 ** 20),
    live_tensors_after_step1: tensorsAfter1,
    live_tensors: tensors,
  });
  trainer.dispose();
  model.dispose();
}

async function main() {
  await initBackend((process.env.BENCH_BACKEND as 'wasm' | 'cpu') ?? 'wasm');
  const rate = await plainMatmulRate();
  const only = (n: string) => args.size === 0 || args.has(n);
  if (only('stories260K')) {
    if (existsSync(STORIES)) {
      const { config, weights } = parseLlama2cCheckpoint(new Uint8Array(readFileSync(STORIES)), 'stories260K.bin');
      await benchModel(
        'stories260K',
        config,
        weights,
        { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'], use_rslora: false },
        false,
        rate,
      );
    } else emit({ bench: 'lora_step', model: 'stories260K', skipped: `not found: ${STORIES}` });
  }
  if (only('smollm2'))
    await benchModel(
      'SmolLM2-135M (random init)',
      smollm2(),
      randomInit(smollm2()),
      { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj'], use_rslora: false },
      true,
      rate,
    );
  if (only('gpt2'))
    await benchModel(
      'GPT-2-small (random init)',
      gpt2small(),
      randomInit(gpt2small()),
      { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['c_attn'], use_rslora: false },
      true,
      rate,
    );
  clearInterval(sampler);
}

main().catch((e) => {
  clearInterval(sampler);
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
