/**
 * The size of a LoRA fine-tuning run before it starts: trainable parameters (PEFT's print_trainable_parameters:
 * trainable, total, percent) and an approximate memory budget of a training step — weights, LoRA weights, gradients,
 * AdamW moments, the activations the backward pass keeps (with and without gradient_checkpointing) and the logits —
 * for the largest micro-batch of the first epoch. ./memory-guard.ts calibrates it per backend.
 *
 * No TensorFlow.js (the weights take the same bytes on every backend).
 */
import { hasLearnedPositions, hasQkNorm, type ModelConfig } from '../engine/config';
import { targetedModules, type LoraConfig } from '../engine/lora-config';
import { compactWeightBytes, countParams, weightBytes } from '../engine/params';
import type { FrozenDtype } from '../engine/frozen';
import { chunkedLoss, vocabChunk } from '../engine/vocab-chunks';
import type { FinetuneConfig } from './config';

export interface MemoryEstimate {
  trainable_params: number;
  total_params: number;
  /** 100 · trainable / total. */
  trainable_percent: number;
  /** Largest micro-batch (rows × padded length) of the training data. */
  batch_size: number;
  seq_len: number;
  tokens_per_micro_batch: number;
  gradient_checkpointing: boolean;
  /** How the frozen weights are stored (compact ones live in JavaScript memory, outside the backend). */
  frozen_dtype: FrozenDtype;
  /** Bytes (float32). Approximate: activations count the tensors the backward pass keeps plus one block's peak. */
  bytes: {
    weights: number;
    lora: number;
    gradients: number;
    optimizer: number;
    activations: number;
    logits: number;
    /** Compact frozen matrices (frozen_dtype float16/int8), held outside the backend. */
    compact_weights: number;
    /** Everything: the backend's parts and the compact weights. */
    total: number;
  };
  activations_without_checkpointing: number;
  activations_with_checkpointing: number;
  batches_per_epoch: number;
  steps_per_epoch: number;
  max_steps: number;
}

/** What the estimate is computed from: the run's configuration and its training batches (epoch 0). */
export interface EstimateInput {
  modelConfig: ModelConfig;
  config: FinetuneConfig;
  lora: LoraConfig;
  /** The micro-batches of one epoch (their largest rows × length sizes the activations). */
  batches: readonly { batchSize: number; seqLen: number }[];
  batchesPerEpoch: number;
  stepsPerEpoch: number;
  maxSteps: number;
}

/** Trainable parameters and an approximate memory budget for a configuration and its data. */
export function estimateMemory(run: EstimateInput): MemoryEstimate {
  const { modelConfig: cfg, config: c } = run;
  const mods = targetedModules(cfg, run.lora);
  const trainable = mods.reduce((s, m) => s + c.r * (m.inFeatures + m.outFeatures), 0);
  const total = countParams(cfg);
  let batchSize = 1,
    seqLen = 1,
    worst = 0;
  for (const b of run.batches) {
    if (b.batchSize * b.seqLen > worst) {
      worst = b.batchSize * b.seqLen;
      batchSize = b.batchSize;
      seqLen = b.seqLen;
    }
  }
  const N = batchSize * seqLen;
  const D = cfg.hidden_size,
    I = cfg.intermediate_size,
    L = cfg.num_hidden_layers,
    V = cfg.vocab_size;
  const Dq = cfg.num_attention_heads * cfg.head_dim,
    Dkv = cfg.num_key_value_heads * cfg.head_dim,
    H = cfg.num_attention_heads;
  // floats per token kept for backward by one block (the ops' saved inputs/outputs), incl. H·S attention scores
  // (GPT-Neo as GPT-2; the q/k norms of Qwen3 and Gemma 3 and Gemma's two extra norms add their inputs and outputs)
  const qkNorm = hasQkNorm(cfg) ? 2 * Dq + 2 * Dkv : 0;
  // Llama-family RMSNorms keep only their input and SwiGLU's silu(g) · u only g and u (ops.ts: rmsNorm, siluMul);
  // Gemma 3's (1 + w) norms and GeGLU keep every intermediate.
  const gemma = cfg.family === 'gemma3';
  const block = hasLearnedPositions(cfg)
    ? 26 * D + 7 * I + 4 * H * seqLen
    : (gemma ? 15 : 7) * D + 8 * Dq + 8 * Dkv + (gemma ? 5 : 3) * I + 4 * H * seqLen + qkNorm;
  const perLayer = L > 0 ? mods.length / L : 0;
  const loraPerBlock = mods
    .slice(0, Math.round(perLayer))
    .reduce((s, m) => s + c.r + 3 * m.outFeatures + (c.lora_dropout > 0 ? 2 * m.inFeatures : 0), 0);
  const blockAll = block + loraPerBlock;
  const outer = (hasLearnedPositions(cfg) ? 3 : 2) * D + 3 * D; // embeddings (+ positions) and final norm
  const actNo = 4 * N * (L * blockAll + outer);
  const actCk = 4 * N * (L * D + blockAll + outer);
  const compactHead = c.frozen_dtype !== 'float32';
  // logits, then softmax, target update and gradient in the CE backward: of the whole vocabulary, or of one chunk
  const logits = 4 * N * (chunkedLoss(V, compactHead) ? vocabChunk(N, V) : V) * 5;
  const weights = weightBytes(total, cfg, c.frozen_dtype);
  const compactWeights = compactWeightBytes(cfg, c.frozen_dtype);
  const lora = 4 * trainable;
  const gradients = 4 * trainable * (c.gradient_accumulation_steps > 1 ? 3 : 2); // grads (+ running sum) + clipped copy
  const optimizer = 4 * trainable * 2; // AdamW exp_avg, exp_avg_sq
  const activations = c.gradient_checkpointing ? actCk : actNo;
  return {
    trainable_params: trainable,
    total_params: total,
    trainable_percent: (100 * trainable) / total,
    batch_size: batchSize,
    seq_len: seqLen,
    tokens_per_micro_batch: N,
    gradient_checkpointing: c.gradient_checkpointing,
    frozen_dtype: c.frozen_dtype,
    bytes: {
      weights,
      lora,
      gradients,
      optimizer,
      activations,
      logits,
      compact_weights: compactWeights,
      total: weights + lora + gradients + optimizer + activations + logits + compactWeights,
    },
    activations_without_checkpointing: actNo,
    activations_with_checkpointing: actCk,
    batches_per_epoch: run.batchesPerEpoch,
    steps_per_epoch: run.stepsPerEpoch,
    max_steps: run.maxSteps,
  };
}
